"""Generation (paper Fig. 2): image x0 + action a -> k0 = Q(x0) -> k1..kT = M(z, k0, a) ->
x_t = T(x0, k0, k_t).

`VideoGenerator` holds the three trained networks. The translator's source encoder runs once per
video and its features are reused for every frame (T is ~90 % of the work). `generate()` runs
Q, M and T on a batch of videos as one `tf.function`; `from_workdir(mixed_precision=...)`
loads the networks to compute in bfloat16.

With the first-order translator (`stage1.translator=first_order`, Q with Jacobians), generated
frames keep the Jacobians of the input frame (M generates keypoints only: T is called without
Jacobians, i.e. `J_s J_t^-1 = I`), and motion transfer moves the source's Jacobians as the
driving video's move (Siarohin et al.'s relative mode, `J_t = J_d,t J_d,0^-1 J_s`).
"""
from __future__ import annotations

import functools
import os

import keras
import numpy as np
import tensorflow as tf

import kpvp.models  # noqa: F401  (registers the networks for `load_model`)
from kpvp import errors, output_paths, visualize
from kpvp.data import readers, video_io
from kpvp.models import dense_motion, precision
from kpvp.models.keypoint_detector import locate
from kpvp.ops import images as image_ops
from kpvp.rundir import RunDir


# Frames per call of T's decoder: batching is faster than one call per frame, chunks bound memory.
FRAMES_PER_CALL = 16


def render_frames(translator, x0, k0, keypoints, frames_per_call: int = FRAMES_PER_CALL,
                  jacobians=None):
    """T(x0, k0, k_t) for every t, in eager mode or in a graph (`kpvp.export`).

    x0 `[B, S, S, 3]` in [-1, 1], k0 `[B, K, 2]`, keypoints `[B, T, K, 2]` (T static) ->
    frames `[B, T, S, S, 3]` clipped to [-1, 1] and masks `[B, T, S, S, 1]`. The source is
    encoded once; the decoder runs on `frames_per_call` frames of every video at a time.
    `jacobians`: optional `(J_0 [B, K, 2, 2], J_t [B, T, K, 2, 2])` for a translator that
    takes them (`kpvp.models.first_order`).
    """
    features = translator.encode_source(x0, training=False)
    num_frames, k = keypoints.shape[1], keypoints.shape[2]
    batch, size = tf.shape(x0)[0], translator.image_size
    frames, masks = [], []
    for start in range(0, num_frames, frames_per_call):
        n = min(frames_per_call, num_frames - start)

        def repeat(x, n=n):  # [B, ...] -> [B * n, ...], video-major like the reshape below
            return tf.repeat(x, n, axis=0)

        targets = tf.reshape(keypoints[:, start:start + n], [-1, k, 2])
        extra = {}
        if jacobians is not None:
            extra = dict(source_jacobians=repeat(jacobians[0]), target_jacobians=tf.reshape(
                jacobians[1][:, start:start + n], [-1, k, 2, 2]))
        out = translator.decode(tf.nest.map_structure(repeat, features), repeat(x0),
                                repeat(k0), targets, training=False, **extra)
        frames.append(tf.reshape(out["image"], [batch, n, size, size, 3]))
        masks.append(tf.reshape(out["mask"], [batch, n, size, size, 1]))
    return tf.clip_by_value(tf.concat(frames, 1), -1.0, 1.0), tf.concat(masks, 1)


class VideoGenerator:
    """Q (keypoint detector), M (motion cVAE) and T (masked translator) put together."""

    def __init__(self, detector, motion_generator, translator, class_names=None):
        self.detector = detector
        self.motion_generator = motion_generator
        self.translator = translator
        self.image_size = int(translator.image_size)
        self.class_names = tuple(class_names) if class_names else None

    @classmethod
    def from_workdir(cls, workdir: str, class_names=None, stage1_only: bool = False,
                     mixed_precision="float32") -> "VideoGenerator":
        """Loads the `.keras` exports of a trained run (`stage1/`, and `stage2/` unless
        `stage1_only`, which is enough for motion transfer).

        `mixed_precision`: the dtype policy the networks compute in (`kpvp.models.precision`;
        "mixed_bfloat16" for bf16 generation: the layers are rebuilt under it on load, the
        keypoint layers and output heads stay float32, the weights are the saved float32 ones).
        """
        names = ["detector", "translator"] + ([] if stage1_only else ["motion_generator"])
        paths = {name: RunDir(workdir).exported(name) for name in names}
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            stage = "1" if stage1_only else "all"
            raise errors.InputNotFound(
                f"{workdir!r} lacks trained networks {missing}: run "
                f"`python -m kpvp.train --stage={stage} --workdir={workdir}` first")
        # Layers read the global policy when made: loading under it rebuilds them in it.
        policy = precision.policy_name(mixed_precision)
        precision.warn_if_slow(policy, "Generation")
        with precision.policy_scope(policy):
            models = {name: keras.models.load_model(path) for name, path in paths.items()}
        return cls(models["detector"], models.get("motion_generator"), models["translator"],
                   class_names)

    def action_id(self, action) -> int:
        """An action given as id (int or digit string) or class name -> id; clear errors."""
        num = len(self.class_names) if self.class_names else None
        if isinstance(action, str) and not action.isdigit():
            if not self.class_names or action not in self.class_names:
                raise errors.InvalidInput(
                    f"Unknown action {action!r}; expected one of {self.class_names}")
            return self.class_names.index(action)
        action = int(action)
        if num is not None and not 0 <= action < num:
            raise errors.InvalidInput(f"Action id {action} out of range [0, {num})")
        return action

    def preprocess(self, images) -> tf.Tensor:
        """uint8 `[B, H, W, 3]` of any size -> float32 `[B, S, S, 3]` in [-1, 1].

        `kpvp.ops.images.model_input` at the model's image size S: the road every frame takes
        to Q and T (the centre square cut out, then resized to S x S).
        """
        images = tf.convert_to_tensor(images)
        if images.dtype != tf.uint8 or images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"images must be uint8 [B, H, W, 3]; got {images.dtype.name} {images.shape}")
        return image_ops.model_input(images, self.image_size)

    def generate(self, images, actions, seed: int = 0, z=None) -> dict:
        """Generates one video per image.

        Args:
          images: uint8 `[B, H, W, 3]`.
          actions: int `[B]` action ids (ignored by a model without class condition).
          seed: seed of z ~ N(0, I); the same seed gives the same videos.
          z: optional explicit latent `[B, latent_dim]` (overrides `seed`).
        Returns:
          dict with `video` uint8 `[B, T+1, S, S, 3]` (frame 0 is the input image x0, resized),
          `keypoints` float32 `[B, T+1, K, 2]` (k0..kT), `mask` float32 `[B, T+1, S, S, 1]`
          (frame 0's mask is 0: nothing is redrawn).
        """
        x0 = self.preprocess(images)
        labels = tf.convert_to_tensor(np.asarray(actions, dtype=np.int32).reshape(-1))
        if self.motion_generator is None:
            raise ValueError("This generator has no motion generator M (stage 1 only): "
                             "train stage 2 first")
        if z is None:
            z = self.motion_generator.draw_latent(int(x0.shape[0]), seed)
        out = self._generate_graph(x0, labels, tf.convert_to_tensor(z, tf.float32))
        return {name: value.numpy() for name, value in out.items()}

    @functools.cached_property
    def _generate_graph(self):
        """Q, M and T on preprocessed images, labels and z, as one `tf.function`: the batch of
        videos runs as one graph (several times faster than op by op)."""
        @tf.function(reduce_retracing=True, autograph=False)
        def generate(x0, labels, z):
            k0 = self.detector(x0, training=False)
            future = self.motion_generator.sample(k0, labels, z=z)
            frames, masks = self.render(x0, k0, future)
            frames = tf.concat([x0[:, None], frames], axis=1)
            masks = tf.concat([tf.zeros_like(masks[:, :1]), masks], axis=1)
            return {"video": image_ops.to_uint8(frames), "mask": masks,
                    "keypoints": tf.concat([k0[:, None], future], axis=1)}
        return generate

    def render(self, x0, k0, keypoints):
        """T(x0, k0, k_t) for every t: `[B,T,K,2]` -> images `[B,T,S,S,3]`, masks `[B,T,S,S,1]`."""
        return render_frames(self.translator, x0, k0, keypoints)

    def transfer(self, source_image, driving_video, relative: bool = True) -> dict:
        """Motion transfer: moves `source_image` with the keypoints of `driving_video`.

        Args:
          source_image: uint8 `[H, W, 3]`.
          driving_video: uint8 `[T, H', W', 3]`.
          relative: apply the driving keypoints' displacements from its first frame to the
            source's keypoints (default); otherwise use the driving keypoints as they are.
            With Jacobians (a first-order T), the source's Jacobians are moved the same way,
            `J_t = J_d,t J_d,0^-1 J_s` (otherwise the driving Jacobians as they are).
        Returns:
          dict with `video` uint8 `[T, S, S, 3]`, `keypoints` `[T, K, 2]`,
          `driving_keypoints` `[T, K, 2]`.
        """
        x0 = self.preprocess(np.asarray(source_image)[None])
        driving = self.preprocess(np.asarray(driving_video))
        k0, j0 = locate(self.detector, x0)
        kd, jd = locate(self.detector, driving)
        jacobians = None
        if j0 is not None:
            if relative:
                jd = tf.matmul(tf.matmul(jd, dense_motion.invert_2x2(jd[:1])), j0)
            jacobians = (j0, jd[None])
        target = k0 + (kd - kd[:1]) if relative else kd
        frames, _ = render_frames(self.translator, x0, k0, target[None], jacobians=jacobians)
        video = image_ops.to_uint8(frames[0])
        return {"video": video.numpy(), "keypoints": target.numpy(),
                "driving_keypoints": kd.numpy()}


def sample_start_frames(source, num_classes: int, per_class: int,
                        max_scanned: int = 0) -> dict:
    """First frames of test videos to generate each class from: `{class: uint8 [n, H, W, 3]}`.

    Each class starts from videos of that class (someone who is seen doing the action), in the
    source's order; a class with fewer than `per_class` such videos among the first
    `max_scanned` (default `50 * num_classes`) is filled up with the first videos of any
    class. Corrupt videos are skipped.
    """
    groups = readers.first_per_class(readers.iter_valid(source), num_classes, per_class,
                                     limit=max_scanned or 50 * num_classes)
    if not groups[None]:
        raise ValueError("The test split has no readable video to start the samples from")
    return {c: np.stack([e["frames"][0] for e in (groups[c] + groups[None])[:per_class]])
            for c in range(num_classes)}


def write_class_samples(config, workdir: str, videos_per_class: int = 2, seed: int = 0,
                        fps: int = 8) -> list[str]:
    """Generates videos for every class from test images; writes GIFs to `workdir/samples/`.

    Each GIF shows, side by side, the generated frames, the same frames with the keypoints
    drawn, and the translator's mask, named `<class>_<i>.gif` with the class name made a safe
    file name (`kpvp.output_paths`). Class c starts from the first frames of test videos of
    class c (`sample_start_frames`). Returns the paths written.
    """
    generator = VideoGenerator.from_workdir(workdir, config.class_names)
    starts = sample_start_frames(readers.open_source(config, "test"), len(config.class_names),
                                 videos_per_class)
    out_dir = RunDir(workdir).samples
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    # Class names may come from folder names on disk: never let one leave out_dir.
    file_names = output_paths.safe_file_names(config.class_names)
    for action, name in enumerate(file_names):
        images = starts[action]
        result = generator.generate(images, [action] * len(images), seed=seed + action)
        for i in range(len(images)):
            panel = visualize.side_by_side(
                result["video"][i],
                visualize.draw_keypoints(result["video"][i], result["keypoints"][i]),
                visualize.gray_to_rgb(result["mask"][i]))
            path = os.path.join(out_dir, f"{name}_{i}.gif")
            video_io.write_video(path, panel, fps=fps)
            paths.append(path)
    return paths
