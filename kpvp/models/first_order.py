"""The first-order motion translator T (Siarohin et al., 2019; the renderer Lee et al. build on).

`config.stage1.translator = "first_order"` (not the paper's T, which is `kpvp.models.translator`):
  * an encoder of the source `s`: conv7x7 at full resolution, then a stride-2 conv3x3 per
    further width of `filters`;
  * `DenseMotion` (`kpvp.models.dense_motion`): the keypoints and their Jacobians give one local
    affine map per keypoint, `z -> k_s + J_s J_t^-1 (z - k_t)`; an hourglass at `motion_size`
    mixes them (and the still background) into a dense flow and predicts an occlusion map;
  * the source's features are warped by the flow, multiplied by the occlusion map, passed
    through `num_residual` residual blocks and decoded (bilinear 2x upsampling + conv3x3 per
    level, conv7x7 to 3 tanh channels) into the output image;
  * `warped_skips=True` (ours, after Zhao & Zhang's thin-plate-spline model; the tiny
    variant's): every encoder level, warped and occluded the same way, is concatenated to the
    decoder at its resolution, so the decoder sees the source's full-resolution detail instead
    of redrawing it from the bottleneck; `False` (the default) is Siarohin et al.'s generator.
Jacobians are optional inputs: without them both frames' Jacobians count as equal (J_s J_t^-1 =
I, each keypoint's neighbourhood is translated), which is what generation uses: M generates
keypoints only, and each generated frame keeps the Jacobians of the input frame.
"""
import keras
from keras import ops

from kpvp.models import dense_motion, layers
from kpvp.ops import warping


@keras.saving.register_keras_serializable(package="kpvp")
class FirstOrderTranslator(keras.Model):
    """T: `[s, k_s, k_t]` or `[s, k_s, k_t, J_s, J_t]` -> dict of `[B, H, W, C]` tensors.

    `s` `[B, H, W, 3]` in [-1, 1], keypoints `[B, K, 2]`, Jacobians `[B, K, 2, 2]` (Q's
    `keypoints_and_jacobians`). Returns, float32:
      * `"image"`: the generated target `[B, H, W, 3]` in [-1, 1];
      * `"mask"`: `1 - occlusion` `[B, H, W, 1]` in [0, 1], the share of the output the
        generator inpaints rather than takes from the warped source (T's `"mask"` contract:
        1 where new content is drawn);
      * `"warped"`: the source image warped by the dense flow `[B, H, W, 3]`.
    `encode_source` once and `decode` per target renders many targets from one source.

    Args:
      image_size: H = W.
      num_keypoints: K.
      filters: encoder widths from full resolution down (the decoder mirrors them).
      num_residual: residual blocks at the bottleneck.
      motion_filters: `DenseMotion`'s hourglass widths.
      motion_size: the resolution of the dense motion (divides `image_size`).
      kp_inv_std: `inv_std` of the keypoints' gaussian maps in `DenseMotion`.
      warped_skips: concatenate every warped encoder level to the decoder (see above).
      norm, use_bias, bn_momentum, bn_epsilon: every conv block's (`layers.ConvBlock`).
    """

    def __init__(self, image_size, num_keypoints, filters=(64, 128, 256), num_residual=2,
                 motion_filters=(32, 64, 128), motion_size=64, kp_inv_std=7.0, warped_skips=False,
                 norm="batch", use_bias=False, bn_momentum=0.99, bn_epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.num_keypoints = int(num_keypoints)
        self.filters = tuple(int(f) for f in filters)
        self.num_residual = int(num_residual)
        self.motion_filters = tuple(int(f) for f in motion_filters)
        self.motion_size = int(motion_size)
        self.kp_inv_std = float(kp_inv_std)
        self.warped_skips = bool(warped_skips)
        self.norm = norm
        self.use_bias = bool(use_bias)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self._check_arguments()

        def block(width, kernel_size=3, strides=1, activation="relu", name=None):
            return layers.ConvBlock(width, kernel_size, strides, norm=norm,
                                    activation=activation, use_bias=self.use_bias or None,
                                    momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                                    name=name)

        f = self.filters
        self.encoder = [block(f[0], 7, name="enc0")] + [
            block(width, strides=2, name=f"enc{i}") for i, width in enumerate(f[1:], start=1)]
        self.dense_motion = dense_motion.DenseMotion(
            self.num_keypoints, self.motion_size, self.motion_filters, self.kp_inv_std,
            norm=norm, use_bias=self.use_bias or None, momentum=self.bn_momentum,
            epsilon=self.bn_epsilon, name="dense_motion")
        self.residual = [[block(f[-1], name=f"res{i}_0"),
                          block(f[-1], activation="none", name=f"res{i}_1")]
                         for i in range(self.num_residual)]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        self.decoder = [block(width, name=f"dec{i}") for i, width in enumerate(f[:-1])]
        self.image_head = keras.layers.Conv2D(3, 7, padding="same", activation="tanh",
                                              dtype="float32", name="image_head")

    def _check_arguments(self):
        if not self.filters or self.image_size % 2 ** (len(self.filters) - 1):
            raise ValueError(f"FirstOrderTranslator: image_size ({self.image_size}) must be "
                             f"divisible by 2 ** (len(filters) - 1) for filters={self.filters}")
        if self.motion_size < 1 or self.image_size % self.motion_size:
            raise ValueError(f"FirstOrderTranslator: motion_size ({self.motion_size}) must "
                             f"divide image_size ({self.image_size})")
        if self.num_residual < 0 or self.num_keypoints < 1:
            raise ValueError("FirstOrderTranslator: num_residual must be >= 0 and "
                             f"num_keypoints >= 1, got {self.num_residual}, "
                             f"{self.num_keypoints}")
        if self.norm not in layers.NORMS:
            raise ValueError(f"FirstOrderTranslator: norm must be one of {layers.NORMS}, "
                             f"got {self.norm!r}")

    def _check_inputs(self, source_image=None, keypoints=(), jacobians=()):
        size, k = self.image_size, self.num_keypoints
        if source_image is not None and tuple(source_image.shape[1:]) != (size, size, 3):
            raise ValueError(f"FirstOrderTranslator: source_image must be [B, {size}, {size}, "
                             f"3], got shape {tuple(source_image.shape)}")
        for name, kp in keypoints:
            if tuple(kp.shape[1:]) != (k, 2):
                raise ValueError(f"FirstOrderTranslator: {name} must be [B, {k}, 2], got "
                                 f"shape {tuple(kp.shape)}")
        for name, jac in jacobians:
            if tuple(jac.shape[1:]) != (k, 2, 2):
                raise ValueError(f"FirstOrderTranslator: {name} must be [B, {k}, 2, 2], got "
                                 f"shape {tuple(jac.shape)}")

    def encode_source(self, source_image, training=None):
        """Encoder: `s` `[B, H, W, 3]` -> the list of every level's features, level i
        `[B, H / 2**i, ., filters[i]]` (the last is the bottleneck)."""
        self._check_inputs(source_image)
        x, features = source_image, []
        for layer in self.encoder:
            x = layer(x, training=training)
            features.append(x)
        return features

    def decode(self, source_features, source_image, source_kp, target_kp,
               source_jacobians=None, target_jacobians=None, training=None):
        """The rest of T: `encode_source`'s list, `s`, `k_s`, `k_t` (and optionally `J_s`, `J_t`,
        both or neither) -> dict(image, mask, warped)."""
        self._check_inputs(source_image, [("source_kp", source_kp), ("target_kp", target_kp)])
        if (source_jacobians is None) != (target_jacobians is None):
            raise ValueError("FirstOrderTranslator: give both source_jacobians and "
                             "target_jacobians, or neither")
        if source_jacobians is None:
            eye = ops.eye(2, dtype="float32")[None, None]
            jacobians = ops.zeros_like(ops.cast(source_kp, "float32"))[..., None] + eye
        else:
            self._check_inputs(jacobians=[("source_jacobians", source_jacobians),
                                          ("target_jacobians", target_jacobians)])
            jacobians = dense_motion.relative_jacobians(source_jacobians, target_jacobians)
        motion = self.dense_motion(source_image, source_kp, target_kp, jacobians,
                                   training=training)

        resized = {}

        def at(size):  # the flow and the occlusion map at `size`, each resized once
            if size not in resized:
                resized[size] = (dense_motion.resize(motion["flow"], size),
                                 dense_motion.resize(motion["occlusion"], size))
            return resized[size]

        def warp(features):  # the source's features as the target would show them
            flow, occlusion = at(features.shape[1])
            return ops.cast(warping.bilinear_sample(features, flow) * occlusion, features.dtype)

        x = warp(source_features[-1])
        for first, second in self.residual:
            x = x + second(first(x, training=training), training=training)
        for level in reversed(range(len(self.decoder))):
            x = self.upsample(x)
            if self.warped_skips:
                x = ops.concatenate([x, warp(source_features[level])], axis=-1)
            x = self.decoder[level](x, training=training)
        flow, occlusion = at(self.image_size)
        return {"image": self.image_head(x), "mask": 1.0 - occlusion,
                "warped": warping.bilinear_sample(ops.cast(source_image, "float32"), flow)}

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (3, 5):
            raise ValueError("FirstOrderTranslator expects [source_image, source_kp, target_kp] "
                             "or [..., source_jacobians, target_jacobians], got "
                             f"{type(inputs).__name__}")
        source_image, source_kp, target_kp = inputs[:3]
        jacobians = tuple(inputs[3:]) or (None, None)
        features = self.encode_source(source_image, training=training)
        return self.decode(features, source_image, source_kp, target_kp, *jacobians,
                           training=training)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, num_keypoints=self.num_keypoints,
                      filters=list(self.filters), num_residual=self.num_residual,
                      motion_filters=list(self.motion_filters), motion_size=self.motion_size,
                      kp_inv_std=self.kp_inv_std, warped_skips=self.warped_skips,
                      norm=self.norm, use_bias=self.use_bias,
                      bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
        return config


def build_first_order_translator(config, **kwargs) -> FirstOrderTranslator:
    """The first-order T from `config.image_size` and `config.stage1.first_order_*`."""
    s1 = config.stage1
    return FirstOrderTranslator(
        image_size=config.image_size, num_keypoints=config.num_keypoints,
        filters=tuple(s1.first_order_filters), num_residual=s1.first_order_residual,
        motion_filters=tuple(s1.first_order_motion_filters),
        motion_size=config.image_size // s1.first_order_motion_downscale,
        kp_inv_std=s1.first_order_kp_inv_std, warped_skips=s1.first_order_warped_skips,
        norm=s1.norm, use_bias=s1.conv_bias,
        bn_momentum=s1.bn_momentum, bn_epsilon=s1.bn_epsilon, **kwargs)
