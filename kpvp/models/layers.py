"""Reusable Keras layers: soft-argmax keypoints, gaussian keypoint maps, conv-norm-act blocks.

The tensor math lives in `kpvp.ops.keypoints`; these layers wrap it so that networks can hold
it as a serialisable part. Keypoint layers compute in float32 by default (even under a
mixed-precision policy): bfloat16 would round a keypoint by up to about half a pixel.
"""
import keras

from kpvp.ops import keypoints as kp_ops

NORMS = ("batch", "instance", "none")
ACTIVATIONS = ("relu", "leaky_relu", "none")


@keras.saving.register_keras_serializable(package="kpvp")
class SpatialSoftmax(keras.layers.Layer):
    """Heatmap logits `Q(v)` `[B, H, W, K]` -> keypoints `k_hat` `[B, K, 2]` (paper eq. 1).

    The expectation of the spatial softmax; `mode` is `"joint"` (softmax over all pixels, the
    paper) or `"marginal"` (softmax of row / column means, the authors' code, which takes the
    expectation over `linspace(-1, 1)` where kpvp uses pixel centres: at most half a pixel
    apart); see `kpvp.ops.keypoints.spatial_softmax`. `call(heatmaps, return_maps=True)` also
    returns the probability maps `l` `[B, H, W, K]` (each channel sums to 1).

    `temperature` divides the logits first. 1 is the paper's eq. 1. A freshly initialised
    detector's logits are nearly flat, so at 1 every keypoint starts near the image centre and
    the translator gets no position to learn from. 0.1 (as in Siarohin et al.'s keypoint
    detector) is the same network with its last layer's weights and learning rate scaled by 10.
    """

    def __init__(self, mode="joint", temperature=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in kp_ops.SOFTMAX_MODES:
            raise ValueError(
                f"SpatialSoftmax: mode must be one of {kp_ops.SOFTMAX_MODES}, got {mode!r}")
        if not float(temperature) > 0:
            raise ValueError(f"SpatialSoftmax: temperature must be > 0, got {temperature}")
        self.mode = mode
        self.temperature = float(temperature)

    def call(self, heatmaps, return_maps=False):
        maps = kp_ops.spatial_softmax(heatmaps, mode=self.mode, temperature=self.temperature)
        keypoints = kp_ops.expected_keypoints(maps)
        if return_maps:
            return keypoints, maps
        return keypoints

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 2)

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, temperature=self.temperature)
        return config


@keras.saving.register_keras_serializable(package="kpvp")
class GaussianMaps(keras.layers.Layer):
    """Keypoints `[B, K, 2]` -> gaussian maps `d_hat` `[B, size, size, K]` (paper eq. 2).

    `exp(-|u - k|^2 * inv_std^2)` at the pixel centres `u` of a `size x size` map (peak 1);
    see `kpvp.ops.keypoints.gaussian_maps`.
    """

    def __init__(self, size, inv_std, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(size) < 1 or float(inv_std) <= 0:
            raise ValueError(
                f"GaussianMaps: size must be >= 1 and inv_std > 0, got {size}, {inv_std}")
        self.size = int(size)
        self.inv_std = float(inv_std)

    def call(self, keypoints):
        return kp_ops.gaussian_maps(keypoints, self.size, self.inv_std)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, inv_std=self.inv_std)
        return config


def fold_batch_norm(conv, batch_norm):
    """(kernel, bias) of the one convolution equal to `conv` then `batch_norm` at inference:
    `kernel * s` and `(bias - mean) * s + beta` with `s = gamma / sqrt(variance + epsilon)`,
    from the layers' current weights (float32 math on the weights as the layers read them)."""
    def value(variable):
        return keras.ops.cast(variable, "float32")

    scale = keras.ops.rsqrt(value(batch_norm.moving_variance) + batch_norm.epsilon)
    if batch_norm.scale:
        scale = scale * value(batch_norm.gamma)
    bias = -value(batch_norm.moving_mean)
    if conv.use_bias:
        bias = bias + value(conv.bias)
    bias = bias * scale
    if batch_norm.center:
        bias = bias + value(batch_norm.beta)
    return value(conv.kernel) * scale, bias


@keras.saving.register_keras_serializable(package="kpvp")
class ConvBlock(keras.layers.Layer):
    """Conv2D ('same' padding) -> normalisation -> activation, `[B, H, W, C] -> [B, H/s, W/s, F]`.

    `norm`: "batch", "instance" (`GroupNormalization(groups=-1)`) or "none". `activation`:
    "relu", "leaky_relu" (with `negative_slope`) or "none". `use_bias`: None gives the conv a
    bias only when `norm` is "none" (a normalisation cancels it); the authors' convs always
    have one (True). `momentum` (batch) and `epsilon` (batch, instance) go to the
    normalisation; the defaults are Keras's, the authors' tf.contrib batch norm used 0.999
    and 1e-5. At inference a batch norm runs folded into the convolution (`fold_batch_norm`):
    the same values up to rounding, in one fused op.
    """

    def __init__(self, filters, kernel_size=3, strides=1, norm="batch", activation="relu",
                 negative_slope=0.01, use_bias=None, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if norm not in NORMS:
            raise ValueError(f"ConvBlock: norm must be one of {NORMS}, got {norm!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"ConvBlock: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.norm = norm
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.use_bias = norm == "none" if use_bias is None else bool(use_bias)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

        self.conv = keras.layers.Conv2D(
            self.filters, self.kernel_size, strides=self.strides, padding="same",
            use_bias=self.use_bias, dtype=self.dtype_policy, name="conv")
        if norm == "batch":
            self.norm_layer = keras.layers.BatchNormalization(
                momentum=self.momentum, epsilon=self.epsilon, dtype=self.dtype_policy,
                name="norm")
        elif norm == "instance":
            self.norm_layer = keras.layers.GroupNormalization(
                groups=-1, epsilon=self.epsilon, dtype=self.dtype_policy, name="norm")
        else:
            self.norm_layer = None
        if activation == "relu":
            self.act = keras.layers.ReLU(dtype=self.dtype_policy, name="act")
        elif activation == "leaky_relu":
            self.act = keras.layers.LeakyReLU(negative_slope=self.negative_slope,
                                              dtype=self.dtype_policy, name="act")
        else:
            self.act = None

    def build(self, input_shape):
        self.conv.build(input_shape)
        output_shape = self.conv.compute_output_shape(input_shape)
        if self.norm_layer is not None:
            self.norm_layer.build(output_shape)

    def call(self, inputs, training=None):
        if self.norm == "batch" and not training:
            # Inference: one convolution with the batch norm folded in, which oneDNN fuses with
            # the bias and ReLU (and, in bf16, no cast to float32 and back for the norm).
            kernel, bias = fold_batch_norm(self.conv, self.norm_layer)
            dtype = self.compute_dtype
            x = keras.ops.conv(keras.ops.cast(inputs, dtype), keras.ops.cast(kernel, dtype),
                               strides=self.strides, padding="same")
            x = x + keras.ops.cast(bias, dtype)
        else:
            x = self.conv(inputs)
            if self.norm_layer is not None:
                x = self.norm_layer(x, training=training)
        if self.act is not None:
            x = self.act(x)
        return x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      norm=self.norm, activation=self.activation,
                      negative_slope=self.negative_slope, use_bias=self.use_bias,
                      momentum=self.momentum, epsilon=self.epsilon)
        return config


class SourceTranslatorMixin:
    """What the masked and the light translator share: `call` on `[source_image, source_kp,
    target_kp]` = `decode(encode_source(s), ...)`, input checks naming the class, and the
    source encoder (`self.encoder`, a list of layers) run once per source image."""

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError(f"{type(self).__name__} expects [source_image, source_kp, "
                             f"target_kp], got {type(inputs).__name__}")
        source_image, source_kp, target_kp = inputs
        features = self.encode_source(source_image, training=training)
        return self.decode(features, source_image, source_kp, target_kp, training=training)

    def _check_inputs(self, source_image=None, source_kp=None, target_kp=None):
        size, name = self.image_size, type(self).__name__
        if source_image is not None and tuple(source_image.shape[1:]) != (size, size, 3):
            raise ValueError(f"{name}: source_image must be [B, {size}, {size}, 3], "
                             f"got shape {tuple(source_image.shape)}")
        for label, kp in (("source_kp", source_kp), ("target_kp", target_kp)):
            if kp is not None and tuple(kp.shape[1:]) != (self.num_keypoints, 2):
                raise ValueError(f"{name}: {label} must be [B, {self.num_keypoints}, 2], got "
                                 f"shape {tuple(kp.shape)}")

    def encode_source(self, source_image, training=None):
        """The source encoder: `s` `[B, S, S, 3]` -> its features (see the class docstring)."""
        self._check_inputs(source_image=source_image)
        x = source_image
        for layer in self.encoder:
            x = layer(x, training=training)
        return x
