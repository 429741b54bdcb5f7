"""The keypoint detector Q: an hourglass (U-Net) from an image to K soft-argmax keypoints.

Encoder (the authors' widths 32 -> 64 -> 128 -> 256 at a 128x128 input):
  conv7x7 + conv3x3 at full resolution, then per further width a stride-2 conv3x3 and a
  conv3x3, ending at 16x16x256.
Decoder, back up to full resolution with skip connections: at each level a conv3x3 to the
next (finer) width, a bilinear 2x upsampling and a concatenation with the encoder features
of that resolution; at full resolution a conv3x3 and a 1x1 conv to K heatmap logits.
Convolving before upsampling keeps the decoder's cost at the coarser resolution.
Keypoints are the expectation of the spatial softmax of the logits (paper eq. 1).
"""
import keras
from keras import ops

from kpvp import layers


@keras.saving.register_keras_serializable(package="kpvp")
class KeypointDetector(keras.Model):
    """Q: images `v` `[B, H, W, 3]` in [-1, 1] -> keypoints `k_hat` `[B, K, 2]` in [-1, 1].

    `call(images, return_heatmaps=True)` returns `(keypoints, maps)` with `maps` the soft
    binary maps `l` `[B, H, W, K]` of paper eq. 1 (probabilities summing to 1 per channel).
    H and W must be multiples of `2 ** (len(filters) - 1)`.

    Args:
      num_keypoints: K.
      filters: encoder widths, one per resolution (full, 1/2, 1/4, ...).
      softmax_mode: "joint" (paper) or "marginal" (authors' code); see `SpatialSoftmax`.
      softmax_temperature: divides the heatmap logits before the softmax (1: paper eq. 1);
        see `SpatialSoftmax`.
      norm: normalisation in every conv block: "batch" (the authors'), "instance", "none".
    """

    def __init__(self, num_keypoints, filters=(32, 64, 128, 256), softmax_mode="joint",
                 norm="batch", softmax_temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_keypoints) < 1:
            raise ValueError(
                f"KeypointDetector: num_keypoints must be >= 1, got {num_keypoints}")
        if len(filters) < 1:
            raise ValueError(f"KeypointDetector: filters must be non-empty, got {filters}")
        self.num_keypoints = int(num_keypoints)
        self.filters = tuple(int(f) for f in filters)
        self.softmax_mode = softmax_mode
        self.softmax_temperature = float(softmax_temperature)
        self.norm = norm

        def block(width, kernel_size=3, strides=1, name=None):
            return layers.ConvBlock(width, kernel_size, strides, norm=norm, name=name)

        self.stem = [block(self.filters[0], 7, name="stem_0"),
                     block(self.filters[0], name="stem_1")]
        self.down = [
            [block(width, strides=2, name=f"down{i}_0"), block(width, name=f"down{i}_1")]
            for i, width in enumerate(self.filters[1:], start=1)
        ]
        self.up = [block(width, name=f"up{i}") for i, width in enumerate(self.filters[:-1])]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        self.final = block(self.filters[0], name="final")
        # float32 logits: under bfloat16 the softmax would see logits rounded to ~3 digits.
        self.heatmap_head = keras.layers.Conv2D(self.num_keypoints, 1, dtype="float32",
                                                name="heatmap_logits")
        self.spatial_softmax = layers.SpatialSoftmax(softmax_mode, self.softmax_temperature,
                                                     name="spatial_softmax")

    def heatmap_logits(self, images, training=None):
        """Q's last feature map before the softmax, `[B, H, W, 3] -> [B, H, W, K]`."""
        self._check_images(images)
        x = images
        for layer in self.stem:
            x = layer(x, training=training)
        skips = [x]
        for first, second in self.down:
            x = second(first(x, training=training), training=training)
            skips.append(x)
        # skips[-1] is the bottleneck itself; walk the others from coarse to fine.
        for level in reversed(range(len(self.filters) - 1)):
            x = self.up[level](x, training=training)
            x = ops.concatenate([self.upsample(x), skips[level]], axis=-1)
        x = self.final(x, training=training)
        return self.heatmap_head(x)

    def call(self, images, training=None, return_heatmaps=False):
        logits = self.heatmap_logits(images, training=training)
        keypoints, maps = self.spatial_softmax(logits, return_maps=True)
        if return_heatmaps:
            return keypoints, maps
        return keypoints

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
                      softmax_temperature=self.softmax_temperature)
        return config


def from_config(config, **kwargs) -> KeypointDetector:
    """Q as a run's config describes it (`config.num_keypoints`, `config.stage1.*`)."""
    s1 = config.stage1
    kwargs.setdefault("name", "detector")
    return KeypointDetector(num_keypoints=config.num_keypoints,
                            filters=tuple(s1.detector_filters), softmax_mode=s1.softmax_mode,
                            norm=s1.norm, softmax_temperature=s1.softmax_temperature, **kwargs)
