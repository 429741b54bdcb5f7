"""A trained run as a TensorFlow SavedModel for serving (TensorFlow Serving, Python); the app
is `python -m kpvp.export` (`kpvp/export.py`).

The SavedModel holds Q, the decoder of M (its encoder is not needed to sample) and T, and two
signatures:

* `serving_default`: `images` uint8 `[B, H, W, 3]` (any H, W), `actions` int32 `[B]`,
  `seed` int32 `[]` -> `video` uint8 `[B, T+1, S, S, 3]` (frame 0 is the input image taken to
  the networks by `kpvp.ops.images.model_input` in the graph: the centre square cut out,
  then resized), `keypoints` float32 `[B, T+1, K, 2]` (k_0..k_T), `mask` float32
  `[B, T+1, S, S, 1]` (T's foreground mask; 0 in frame 0).
* `detect_keypoints`: `images` uint8 `[B, H, W, 3]` -> `keypoints` float32 `[B, K, 2]`.

The graph is a pure function of its inputs: z is drawn with a stateless random op from `seed`
(`kpvp.models.motion_cvae.latent_noise`), so the served model,
`VideoGenerator.generate(seed=...)` and `MotionCVAE.sample(seed=...)` use the same z.
Beside the SavedModel, `kpvp_export.json` records the class names, the image size, the
signatures' shapes and the input limits; the module also carries the class names and sizes as
variables (`class_names`, `image_size`, `num_steps`, `num_keypoints`).

Input limits: both signatures refuse (with an `InvalidArgumentError` naming the limit, from a
`tf.debugging` assertion run before any resize) images with a zero height or width, a side over
`max_side` (default `MAX_SIDE`) or a long side over `max_aspect_ratio` (default `MAX_ASPECT_RATIO`)
times the short one, so that one odd image cannot make the server allocate gigabytes; the
centre square is cut out before the resize, which then reads at most `max_side / max_aspect_ratio`
squared pixels per image and writes S x S (tests/test_images.py checks it on the largest input).
"""
from __future__ import annotations

import os
import types

import tensorflow as tf

from kpvp import errors
from kpvp.generation import VideoGenerator, render_frames  # (+ networks)
from kpvp.models.motion_cvae import latent_noise
from kpvp import rundir
from kpvp.rundir import RunDir
from kpvp.ops import images as image_ops

METADATA_FILE = "kpvp_export.json"
IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
ACTIONS_SPEC = tf.TensorSpec([None], tf.int32, name="actions")
SEED_SPEC = tf.TensorSpec([], tf.int32, name="seed")
# Input limits of the exported signatures (see the module docstring).
MAX_SIDE = 4096
MAX_ASPECT_RATIO = 4.0


class ServingModule(tf.Module):
    """Q, M and T behind `tf.function`s with fixed input signatures (see the module docstring).

    Args:
      generator: a `VideoGenerator` with all three networks and its `class_names` (index =
        action id; one name for a data set without classes).
      max_side, max_aspect_ratio: the input limits (see the module docstring).
    """

    def __init__(self, generator: VideoGenerator, max_side: int = MAX_SIDE,
                 max_aspect_ratio: float = MAX_ASPECT_RATIO):
        super().__init__(name="kpvp")
        if max_side < generator.image_size or max_aspect_ratio < 1:
            raise ValueError(f"max_side must be >= the image size {generator.image_size} and "
                             f"max_aspect_ratio >= 1, got {max_side}, {max_aspect_ratio}")
        self._max_side, self._max_aspect = int(max_side), float(max_aspect_ratio)
        motion = generator.motion_generator
        if motion is None:
            raise ValueError("The generator has no motion generator M (stage 1 only): train "
                             "stage 2 before exporting")
        class_names = tuple(generator.class_names or ())
        if not class_names:
            raise ValueError("The generator needs class_names (at least one) to export: they "
                             "define the valid action ids")
        if motion.conditional and motion.num_classes != len(class_names):
            raise ValueError(
                f"M was trained on {motion.num_classes} classes but class_names has "
                f"{len(class_names)}: {class_names}")
        for name, net in (("detector Q", generator.detector), ("motion generator M", motion),
                          ("translator T", generator.translator)):
            # An unbuilt network would create fresh random weights while being traced, and
            # the export would serve those.
            if not net.built or not net.weights:
                raise ValueError(
                    f"The {name} has no weights: it is not built (a .keras file saved before "
                    "its network was built holds no weights; build or call the network once "
                    "before saving it)")
        self._num_classes = len(class_names)
        self._size = generator.image_size
        self._latent_dim = int(motion.latent_dim)
        self._conditional = bool(motion.conditional)
        # The networks are held where tf.Module does not track them (a SimpleNamespace), and
        # their weights are listed once on the module itself, as Keras's own SavedModel export
        # does: tracked as Keras models too, Q's and T's weights were saved twice (Keras 3
        # variables and their TF variables are separate checkpoint objects), and list-held
        # layers would depend on how each network holds them. Only M's decoder serves (z comes
        # from the seed, not from M's encoder), so M's encoder weights stay out of the file.
        self._nets = types.SimpleNamespace(detector=generator.detector,
                                           translator=generator.translator,
                                           decode_motion=motion.decode)
        weights = (generator.detector.variables + motion.decoder_variables
                   + generator.translator.variables)
        self.network_variables = [v.value if hasattr(v, "value") else v for v in weights]
        self.class_names = tf.Variable(list(class_names), trainable=False, name="class_names")
        self.image_size = tf.Variable(self._size, trainable=False, name="image_size")
        self.num_steps = tf.Variable(int(motion.num_steps), trainable=False, name="num_steps")
        self.num_keypoints = tf.Variable(int(generator.detector.num_keypoints), trainable=False,
                                         name="num_keypoints")

    def _bounded(self, images):
        """`images` once their height and width are within the limits (asserted in the graph,
        before anything is allocated for them)."""
        images = tf.ensure_shape(images, [None, None, None, 3], name="frames_must_be_N_H_W_3")
        shape = tf.shape(images)
        short, long = tf.minimum(shape[1], shape[2]), tf.maximum(shape[1], shape[2])
        nonzero = tf.debugging.assert_positive(
            short, message="images must have a non-zero height and width")
        with tf.control_dependencies([nonzero]):  # the ratio is defined once short > 0
            checks = [
                tf.debugging.assert_less_equal(
                    long, self._max_side,
                    message=f"images: height and width must be at most {self._max_side}"),
                tf.debugging.assert_less_equal(
                    tf.cast(long, tf.float64), self._max_aspect * tf.cast(short, tf.float64),
                    message=f"images: the long side may be at most {self._max_aspect:g} times "
                            "the short one (crop the image first)"),
            ]
        with tf.control_dependencies(checks):
            return tf.identity(images)

    # autograph off: the code has no Python control flow on tensors, and converting the Keras
    # layers' code only makes tracing slower.
    @tf.function(input_signature=[IMAGES_SPEC], autograph=False)
    def detect_keypoints(self, images):
        """Q: uint8 `[B, H, W, 3]` -> dict(keypoints float32 `[B, K, 2]`)."""
        x0 = image_ops.model_input(self._bounded(images), self._size)
        return {"keypoints": self._nets.detector(x0, training=False)}

    @tf.function(input_signature=[IMAGES_SPEC, ACTIONS_SPEC, SEED_SPEC], autograph=False)
    def generate(self, images, actions, seed):
        """x0 uint8 `[B, H, W, 3]`, a int32 `[B]`, seed int32 `[]` -> dict(video uint8
        `[B, T+1, S, S, 3]`, keypoints float32 `[B, T+1, K, 2]`, mask float32
        `[B, T+1, S, S, 1]`), as `VideoGenerator.generate(..., seed=seed)`."""
        images = self._bounded(images)
        actions = tf.ensure_shape(actions, [None], name="actions_must_be_B")
        seed = tf.ensure_shape(seed, [], name="seed_must_be_a_scalar")
        batch = tf.shape(images)[0]
        valid = f"action ids must lie in [0, {self._num_classes})"
        checks = [
            tf.debugging.assert_equal(tf.shape(actions)[0], batch,
                                      message="actions must hold one id per image ([B] int32)"),
            tf.debugging.assert_greater_equal(actions, 0, message=valid),
            tf.debugging.assert_less(actions, self._num_classes, message=valid),
        ]
        with tf.control_dependencies(checks):
            actions = tf.identity(actions)
        x0 = image_ops.model_input(images, self._size)
        k0 = self._nets.detector(x0, training=False)
        z = latent_noise(seed, batch, self._latent_dim)
        future = self._nets.decode_motion(z, k0, actions, training=False)
        frames, masks = render_frames(self._nets.translator, x0, k0, future)
        frames = tf.concat([x0[:, None], frames], axis=1)
        masks = tf.concat([tf.zeros_like(masks[:, :1]), masks], axis=1)
        video = image_ops.to_uint8(frames)
        return {"video": video, "keypoints": tf.concat([k0[:, None], future], axis=1),
                "mask": masks}

    def metadata(self) -> dict:
        """What a client needs to know, as written to `kpvp_export.json`."""
        size, k = self._size, int(self.num_keypoints.numpy())
        frames = int(self.num_steps.numpy()) + 1
        return {
            "class_names": [n.decode() for n in self.class_names.numpy()],
            "image_size": size,
            "num_keypoints": k,
            "num_frames": frames,
            "latent_dim": self._latent_dim,
            "class_conditional": self._conditional,
            "input_limits": {"min_side": 1, "max_side": self._max_side,
                             "max_aspect_ratio": self._max_aspect},
            "signatures": {
                "serving_default": {
                    "inputs": {"images": "uint8 [B, H, W, 3]", "actions": "int32 [B]",
                               "seed": "int32 []"},
                    "outputs": {"video": f"uint8 [B, {frames}, {size}, {size}, 3]",
                                "keypoints": f"float32 [B, {frames}, {k}, 2]",
                                "mask": f"float32 [B, {frames}, {size}, {size}, 1]"}},
                "detect_keypoints": {
                    "inputs": {"images": "uint8 [B, H, W, 3]"},
                    "outputs": {"keypoints": f"float32 [B, {k}, 2]"}},
            },
        }


def export(generator: VideoGenerator, output_dir: str, overwrite: bool = False,
           extra_metadata: dict | None = None, max_side: int = MAX_SIDE,
           max_aspect_ratio: float = MAX_ASPECT_RATIO) -> dict:
    """Writes `generator` as a SavedModel to `output_dir`, and `kpvp_export.json` into it.

    Refuses a non-empty `output_dir` unless `overwrite`. `extra_metadata` (e.g. the data set's
    name) is added to the JSON file; `max_side`, `max_aspect_ratio` bound the served inputs.
    Returns the metadata written.
    """
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise errors.OutputExists(f"output_dir {output_dir!r} is not empty; pass overwrite=True "
                              "(--overwrite) to replace it or choose another folder")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise errors.OutputExists(f"output_dir {output_dir!r} is a file, expected a folder")
    module = ServingModule(generator, max_side, max_aspect_ratio)
    # The tf.functions themselves, not concrete functions traced beforehand: saving traces in
    # its own context and would trace everything a second time.
    signatures = {"serving_default": module.generate,
                  "detect_keypoints": module.detect_keypoints}
    tf.saved_model.save(module, output_dir, signatures=signatures)
    info = {**module.metadata(), **(extra_metadata or {})}
    rundir.write_json(os.path.join(output_dir, METADATA_FILE), info, indent=2)
    return info


def export_run(workdir: str, output_dir: str, config, overwrite: bool = False,
               max_side: int = MAX_SIDE, max_aspect_ratio: float = MAX_ASPECT_RATIO) -> dict:
    """Exports the trained run in `workdir` (its `stage1/`, `stage2/` networks) with `config`'s
    class names; checks that the config's image size is the networks'."""
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise errors.OutputExists(f"--output {output_dir!r} is not empty; pass --overwrite to "
                              "replace it or choose another folder")
    generator = VideoGenerator.from_workdir(workdir, config.class_names)
    if generator.image_size != config.image_size:
        raise errors.InvalidInput(
            f"The networks in {workdir!r} work at {generator.image_size}x{generator.image_size} "
            f"but the config says image_size={config.image_size}: is "
            f"{RunDir(workdir).config_file!r} this run's config?")
    return export(generator, output_dir, overwrite=overwrite,
                  extra_metadata={"dataset": config.dataset, "variant": config.variant,
                                  "translator": str(config.stage1.get("translator", "masked")),
                                  "workdir": os.path.abspath(workdir)},
                  max_side=max_side, max_aspect_ratio=max_aspect_ratio)
