"""The keypoint detector Q: an hourglass (U-Net) from an image to K soft-argmax keypoints.

Encoder (the authors' widths 32 -> 64 -> 128 -> 256 at a 128x128 input):
  conv7x7 + conv3x3 at full resolution, then per further width a stride-2 conv3x3 and a
  conv3x3, ending at 16x16x256.
Decoder, back up to full resolution with skip connections, one of two layouts:
  * "authors" (the authors' code): at the bottleneck four conv3x3; then per finer level a
    bilinear 2x upsampling, a concatenation with the encoder features of that resolution and
    four conv3x3 (two at full resolution); each level half its encoder width (128, 64, 32,
    16 at the default widths).
  * "light" (ours): at each level a conv3x3 to the next (finer) width, a bilinear 2x
    upsampling and a concatenation with the encoder features of that resolution; at full
    resolution a conv3x3. Convolving before upsampling keeps the cost at the coarser level.
Both end in a 1x1 conv to K heatmap logits. The 2x upsampling is Keras's half-pixel bilinear
resize (the code's TF1 `resize_images` samples without the half-pixel offset). Keypoints are
the expectation of the spatial softmax of the logits (paper eq. 1; the authors' code: marginal
softmaxes).

`jacobians=True` (for the first-order translator, `kpvp.models.first_order`; not in the paper)
adds Siarohin et al.'s Jacobian head: a conv3x3 from the last decoder features to 4 channels per
keypoint, averaged under the keypoint's soft map into a 2x2 Jacobian `J_k` (the local affine
frame of keypoint k: an offset `d` in the keypoint's own frame lies at `k + J_k d` in the
image). Its kernel starts at zero and its bias at the identity, so every Jacobian starts at I.
`call` still returns keypoints only; `keypoints_and_jacobians` returns both, and the function
`locate` either (Jacobians None for a Q without the head, or any keypoint callable).
"""
import keras
from keras import ops

from kpvp.models import layers

DECODERS = ("authors", "light")
# The translators (`config.stage1.translator`) that take Jacobians: Q gets its Jacobian head.
JACOBIAN_TRANSLATORS = ("first_order",)
# The constructor arguments added with the authors' layout, as the models saved before it
# were built (their .keras configs lack these keys).
LEGACY_ARGUMENTS = dict(decoder_layout="light", use_bias=False, bn_momentum=0.99, bn_epsilon=1e-3)


@keras.saving.register_keras_serializable(package="kpvp")
class KeypointDetector(keras.Model):
    """Q: images `v` `[B, H, W, 3]` in [-1, 1] -> keypoints `k_hat` `[B, K, 2]` in [-1, 1].

    `call(images, return_heatmaps=True)` returns `(keypoints, maps)` with `maps` the soft
    binary maps `l` `[B, H, W, K]` of paper eq. 1 (probabilities summing to 1 per channel).
    H and W must be multiples of `2 ** (len(filters) - 1)`.

    Args:
      num_keypoints: K.
      filters: encoder widths, one per resolution (full, 1/2, 1/4, ...).
      softmax_mode: "marginal" (authors' code) or "joint" (paper eq. 1); see `SpatialSoftmax`.
      softmax_temperature: divides the heatmap logits before the softmax (1: paper eq. 1 and
        the authors' code); see `SpatialSoftmax`.
      norm: normalisation in every conv block: "batch" (the authors'), "instance", "none".
      decoder_layout: "authors" or "light" (ours), see the module docstring.
      use_bias: a bias in every conv block even before a normalisation (the authors').
      bn_momentum, bn_epsilon: batch norm settings (the authors' tf.contrib: 0.999, 1e-5).
      jacobians: add the Jacobian head (module docstring; `keypoints_and_jacobians`).
    """

    def __init__(self, num_keypoints, filters=(32, 64, 128, 256), softmax_mode="marginal",
                 norm="batch", softmax_temperature=1.0, decoder_layout="authors", use_bias=True,
                 bn_momentum=0.999, bn_epsilon=1e-5, jacobians=False, **kwargs):
        super().__init__(**kwargs)
        if int(num_keypoints) < 1:
            raise ValueError(
                f"KeypointDetector: num_keypoints must be >= 1, got {num_keypoints}")
        if len(filters) < 1:
            raise ValueError(f"KeypointDetector: filters must be non-empty, got {filters}")
        if decoder_layout not in DECODERS:
            raise ValueError(f"KeypointDetector: decoder_layout must be one of {DECODERS}, "
                             f"got {decoder_layout!r}")
        self.num_keypoints = int(num_keypoints)
        self.filters = tuple(int(f) for f in filters)
        self.softmax_mode = softmax_mode
        self.softmax_temperature = float(softmax_temperature)
        self.norm = norm
        self.decoder_layout = decoder_layout
        self.use_bias = bool(use_bias)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.jacobians = bool(jacobians)

        def block(width, kernel_size=3, strides=1, name=None):
            # use_bias None: a bias only where there is no normalisation (ours).
            return layers.ConvBlock(width, kernel_size, strides, norm=norm,
                                    use_bias=self.use_bias or None, momentum=self.bn_momentum,
                                    epsilon=self.bn_epsilon, name=name)

        self.stem = [block(self.filters[0], 7, name="stem_0"),
                     block(self.filters[0], name="stem_1")]
        self.down = [
            [block(width, strides=2, name=f"down{i}_0"), block(width, name=f"down{i}_1")]
            for i, width in enumerate(self.filters[1:], start=1)
        ]
        if decoder_layout == "authors":
            # Level i (resolution 1 / 2**i): four convs, two at full resolution.
            self.levels = [
                [block(max(width // 2, 1), name=f"dec{i}_{j}") for j in range(2 if i == 0 else 4)]
                for i, width in enumerate(self.filters)
            ]
        else:
            self.up = [block(width, name=f"up{i}") for i, width in enumerate(self.filters[:-1])]
            self.final = block(self.filters[0], name="final")
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        # float32 logits: under bfloat16 the softmax would see logits rounded to ~3 digits.
        self.heatmap_head = keras.layers.Conv2D(self.num_keypoints, 1, dtype="float32",
                                                name="heatmap_logits")
        self.spatial_softmax = layers.SpatialSoftmax(softmax_mode, self.softmax_temperature,
                                                     name="spatial_softmax")
        if self.jacobians:
            identity = [1.0, 0.0, 0.0, 1.0] * self.num_keypoints
            self.jacobian_head = keras.layers.Conv2D(
                4 * self.num_keypoints, 3, padding="same", dtype="float32",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(identity), name="jacobian_head")

    def heatmap_logits(self, images, training=None):
        """Q's last feature map before the softmax, `[B, H, W, 3] -> [B, H, W, K]`."""
        return self.heatmap_head(self.features(images, training=training))

    def features(self, images, training=None):
        """The decoder's last features, what the heads see: `[B, H, W, 3] -> [B, H, W, C]`."""
        self._check_images(images)
        x = images
        for layer in self.stem:
            x = layer(x, training=training)
        skips = [x]
        for first, second in self.down:
            x = second(first(x, training=training), training=training)
            skips.append(x)
        if self.decoder_layout == "authors":
            x = self._authors_decoder(x, skips, training)
        else:
            # skips[-1] is the bottleneck itself; walk the others from coarse to fine.
            for level in reversed(range(len(self.filters) - 1)):
                x = self.up[level](x, training=training)
                x = ops.concatenate([self.upsample(x), skips[level]], axis=-1)
            x = self.final(x, training=training)
        return x

    def _authors_decoder(self, x, skips, training):
        bottom = len(self.filters) - 1
        for level in reversed(range(len(self.filters))):
            if level < bottom:  # the bottleneck is itself the encoder feature of its level
                x = ops.concatenate([self.upsample(x), skips[level]], axis=-1)
            for layer in self.levels[level]:
                x = layer(x, training=training)
        return x

    def call(self, images, training=None, return_heatmaps=False):
        x = self.features(images, training=training)
        if self.jacobians and not self.jacobian_head.built:
            self.jacobian_head.build(x.shape)  # its weights exist before a reload sets them
        logits = self.heatmap_head(x)
        keypoints, maps = self.spatial_softmax(logits, return_maps=True)
        if return_heatmaps:
            return keypoints, maps
        return keypoints

    def keypoints_and_jacobians(self, images, training=None):
        """`(keypoints [B, K, 2], jacobians [B, K, 2, 2])`; needs `jacobians=True`.

        Each Jacobian is the average of the head's 4 channels of that keypoint under its soft
        map `l_k` (Siarohin et al.), rows `[[dx/da, dx/db], [dy/da, dy/db]]`.
        """
        if not self.jacobians:
            raise ValueError("KeypointDetector: built without jacobians=True, it has no "
                             "Jacobian head")
        x = self.features(images, training=training)
        keypoints, maps = self.spatial_softmax(self.heatmap_head(x), return_maps=True)
        shape = ops.shape(maps)
        values = ops.reshape(self.jacobian_head(x),
                             (shape[0], shape[1], shape[2], self.num_keypoints, 4))
        jacobians = ops.sum(ops.cast(maps, "float32")[..., None] * values, axis=(1, 2))
        return keypoints, ops.reshape(jacobians, (-1, self.num_keypoints, 2, 2))

    def _check_images(self, images):
        shape = tuple(images.shape)
        factor = 2 ** (len(self.filters) - 1)
        if (len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None
                or shape[1] % factor or shape[2] % factor):
            raise ValueError(
                f"KeypointDetector: images must be [B, H, W, 3] with H and W multiples of "
                f"{factor}, got shape {shape}")

    def get_config(self):
        config = super().get_config()
        config.update(num_keypoints=self.num_keypoints, filters=list(self.filters),
                      softmax_mode=self.softmax_mode, norm=self.norm,
                      softmax_temperature=self.softmax_temperature,
                      decoder_layout=self.decoder_layout,
                      use_bias=self.use_bias, bn_momentum=self.bn_momentum,
                      bn_epsilon=self.bn_epsilon, jacobians=self.jacobians)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{**LEGACY_ARGUMENTS, **config})


def build_detector(config, **kwargs) -> KeypointDetector:
    """Q as a run's config describes it (`config.num_keypoints`, `config.stage1.*`)."""
    s1 = config.stage1
    kwargs.setdefault("name", "detector")
    return KeypointDetector(num_keypoints=config.num_keypoints,
                            filters=tuple(s1.detector_filters), softmax_mode=s1.softmax_mode,
                            norm=s1.norm, softmax_temperature=s1.softmax_temperature,
                            decoder_layout=s1.detector_decoder, use_bias=s1.conv_bias,
                            bn_momentum=s1.bn_momentum, bn_epsilon=s1.bn_epsilon,
                            jacobians=s1.get("translator", "masked") in JACOBIAN_TRANSLATORS,
                            **kwargs)


def locate(detector, images, training=None):
    """`(keypoints, jacobians)` of any Q, `jacobians` None for a Q without a Jacobian head (or a
    plain keypoint callable): the one call for code that serves both kinds of Q."""
    kwargs = {} if training is None else {"training": training}
    if not getattr(detector, "jacobians", False):
        return detector(images, **kwargs), None
    return detector.keypoints_and_jacobians(images, **kwargs)
