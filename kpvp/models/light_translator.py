"""A light translator T for serving (`stage1.translator = "light"`; not in the paper).

The authors' T spends about 90 % of generation redrawing every frame with wide convs at full
resolution. This one lets the keypoints move the source's pixels and learns only a correction:

  * `encode_source` (once per video): conv3x3 at full resolution and a stride-2 conv3x3 to
    features `f_0` at S/2 (`filters[0]` wide);
  * per frame, the keypoint flow `W(.; k, k')` of `kpvp.ops.warping` (source keypoints `k`,
    target keypoints `k'`; computed at S/2, its displacement upsampled to S) moves the source
    image (`"warped"`, at S) and `f_0` (at S/2);
  * a small U-Net on the moved features: one stride-2 conv + conv3x3 per further level of
    `filters` (S/4, S/8, ...), the gaussian maps of `k'` and of `k` joining at the level whose
    resolution is `gaussian_size`; back up with bilinear 2x upsampling, the skip and a conv3x3
    per level;
  * two conv3x3 heads at S/2 on the top level's features and the warped image's 2x2 pixel
    blocks, each giving its values for the 4 pixels of a block (a pixel shuffle, no wide
    features at S): a tanh crude image `v_crude` and a sigmoid mask, the share of `v_crude`
    in the output:
    `v_hat = mask * v_crude + (1 - mask) * W(s; k, k')`.
Every conv of the per-frame path runs at S/2 or below (about 0.25 GFLOP per 128x128 frame at
K = 40). The outputs are those of `MaskedTranslator(warp=True)` (image, crude, mask, warped),
so training, generation, motion transfer, the SavedModel and evaluation use it unchanged. It
can be trained from scratch (stage 1) or distilled from a trained run's T
(`kpvp.trainers.distill`).
"""
import math

import keras
from keras import ops

from kpvp.models import layers
from kpvp.ops import warping


@keras.saving.register_keras_serializable(package="kpvp")
class LightTranslator(layers.SourceTranslatorMixin, keras.Model):
    """T: `[source_image s, source_kp k, target_kp k']` -> dict of `[B, H, W, C]` tensors.

    `s` `[B, S, S, 3]` in [-1, 1], keypoints `[B, K, 2]`. Returns, float32:
      * `"image"`: `v_hat` `[B, S, S, 3]`;
      * `"crude"`: `v_crude` `[B, S, S, 3]` in [-1, 1];
      * `"mask"`: `[B, S, S, 1]` in [0, 1], the share of `v_crude` in `v_hat` (T's contract:
        1 where new content is drawn, 0 where the warped source is kept);
      * `"warped"`: `W(s; k, k')` `[B, S, S, 3]`.
    `encode_source` once and `decode` per target renders many targets from one source.

    Args:
      image_size: S.
      num_keypoints: K.
      filters: widths of the levels at S/2, S/4, ... (at least two levels).
      gaussian_size: the resolution at which the keypoints' gaussian maps join (one of the
        levels' resolutions).
      gaussian_inv_std: their `inv_std` (`kpvp.ops.keypoints.gaussian_maps`).
      warp_inv_std, warp_background: the warp's keypoint reach and still-background weight
        (`kpvp.ops.warping.keypoint_flow`).
      norm: every conv block's normalisation ("none", "batch" or "instance").
      initial_crude_share: the mask's value at initialisation, in (0, 1) (the head's bias).
    """

    def __init__(self, image_size, num_keypoints, filters=(16, 32, 64), gaussian_size=32,
                 gaussian_inv_std=14.3, warp_inv_std=10.0, warp_background=0.01, norm="none",
                 initial_crude_share=0.1, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.num_keypoints = int(num_keypoints)
        self.filters = tuple(int(f) for f in filters)
        self.gaussian_size = int(gaussian_size)
        self.gaussian_inv_std = float(gaussian_inv_std)
        self.warp_inv_std = float(warp_inv_std)
        self.warp_background = float(warp_background)
        self.norm = norm
        self.initial_crude_share = float(initial_crude_share)
        self._check_arguments()

        def block(width, strides=1, name=None):
            return layers.ConvBlock(width, 3, strides, norm=norm, name=name)

        f = self.filters
        self.encoder = [block(f[0], name="enc_full"), block(f[0], strides=2, name="enc_half")]
        self.down = [[block(width, strides=2, name=f"down{i}_0"), block(width, name=f"down{i}_1")]
                     for i, width in enumerate(f[1:], start=1)]
        self.up = [block(width, name=f"up{i}") for i, width in enumerate(f[:-1])]
        self.gaussian_maps = layers.GaussianMaps(self.gaussian_size, self.gaussian_inv_std,
                                                 name="gaussian_maps")
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        # float32 heads: the outputs are compared with images and blended in float32. Each
        # gives its channels for the 2x2 pixels of a block (`depth_to_space`).
        self.crude_head = keras.layers.Conv2D(3 * 4, 3, padding="same", activation="tanh",
                                              dtype="float32", name="crude_head")
        share = self.initial_crude_share
        self.mask_head = keras.layers.Conv2D(
            1 * 4, 3, padding="same", activation="sigmoid", dtype="float32", name="mask_head",
            bias_initializer=keras.initializers.Constant(math.log(share / (1.0 - share))))

    @property
    def level_sizes(self) -> tuple:
        """The resolution of each level of `filters`: S/2, S/4, ..."""
        return tuple(self.image_size // 2 ** (i + 1) for i in range(len(self.filters)))

    def _check_arguments(self):
        if len(self.filters) < 2 or min(self.filters) < 1:
            raise ValueError(f"LightTranslator: filters must have at least two positive widths, "
                             f"got {self.filters}")
        if self.image_size % 2 ** len(self.filters):
            raise ValueError(f"LightTranslator: image_size ({self.image_size}) must be divisible "
                             f"by 2 ** len(filters) = {2 ** len(self.filters)}")
        if self.gaussian_size not in self.level_sizes:
            raise ValueError(f"LightTranslator: gaussian_size ({self.gaussian_size}) must be the "
                             f"resolution of one of its levels {self.level_sizes}")
        if self.num_keypoints < 1 or self.gaussian_inv_std <= 0:
            raise ValueError("LightTranslator: num_keypoints must be >= 1 and gaussian_inv_std "
                             f"> 0, got {self.num_keypoints}, {self.gaussian_inv_std}")
        if self.warp_inv_std <= 0 or self.warp_background <= 0:
            raise ValueError("LightTranslator: warp_inv_std and warp_background must be > 0, "
                             f"got {self.warp_inv_std}, {self.warp_background}")
        if self.norm not in layers.NORMS:
            raise ValueError(f"LightTranslator: norm must be one of {layers.NORMS}, "
                             f"got {self.norm!r}")
        if not 0.0 < self.initial_crude_share < 1.0:
            raise ValueError("LightTranslator: initial_crude_share must be in (0, 1), got "
                             f"{self.initial_crude_share}")

    def flows(self, source_kp, target_kp):
        """Where each pixel of the target comes from in the source, at S/2 and at S (`[B, s,
        s, 2]` each): `kpvp.ops.warping.keypoint_flow` at S/2; at S its displacement upsampled
        (bilinear), a quarter of the gaussians for a flow that is smooth at that scale."""
        half = warping.keypoint_flow(source_kp, target_kp, self.level_sizes[0],
                                     self.warp_inv_std, self.warp_background)
        shift = half - warping.pixel_grid(self.level_sizes[0])[None]
        full = ops.image.resize(shift, (self.image_size, self.image_size),
                                interpolation="bilinear")
        return half, full + warping.pixel_grid(self.image_size)[None]

    def decode(self, source_features, source_image, source_kp, target_kp, training=None):
        """The per-frame part: encoded source, `s`, `k`, `k'` -> dict(image, crude, mask,
        warped); shapes as in `call`."""
        self._check_inputs(source_image, source_kp, target_kp)
        dtype = source_features.dtype
        flow_half, flow_full = self.flows(source_kp, target_kp)
        x = ops.cast(warping.bilinear_sample(source_features, flow_half), dtype)
        x = self._with_maps(x, self.level_sizes[0], source_kp, target_kp)
        skips = []
        for level, (strided, conv) in enumerate(self.down, start=1):
            skips.append(x)
            x = strided(x, training=training)
            x = self._with_maps(x, self.level_sizes[level], source_kp, target_kp)
            x = conv(x, training=training)
        for level in reversed(range(len(self.up))):
            x = ops.concatenate([self.upsample(x), skips[level]], axis=-1)
            x = self.up[level](x, training=training)
        warped = warping.bilinear_sample(ops.cast(source_image, "float32"), flow_full)
        # The heads run at S/2 on the warped image's 2x2 pixel blocks and give one value per
        # pixel of each block: no wide features at full resolution.
        x = ops.concatenate([ops.cast(x, "float32"), space_to_depth(warped)], axis=-1)
        crude = depth_to_space(self.crude_head(x))
        mask = depth_to_space(self.mask_head(x))
        return {"image": mask * crude + (1.0 - mask) * warped, "crude": crude, "mask": mask,
                "warped": warped}

    def _with_maps(self, x, size, source_kp, target_kp):
        """`x` with the gaussian maps of `k'` and `k` appended if it is at `gaussian_size`."""
        if size != self.gaussian_size:
            return x
        maps = [ops.cast(self.gaussian_maps(kp), x.dtype) for kp in (target_kp, source_kp)]
        return ops.concatenate([x] + maps, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, num_keypoints=self.num_keypoints,
                      filters=list(self.filters), gaussian_size=self.gaussian_size,
                      gaussian_inv_std=self.gaussian_inv_std, warp_inv_std=self.warp_inv_std,
                      warp_background=self.warp_background, norm=self.norm,
                      initial_crude_share=self.initial_crude_share)
        return config


def space_to_depth(images):
    """`[B, 2h, 2w, C]` -> `[B, h, w, 4C]`: each 2x2 block's pixels as channels, row-major
    (`tf.nn.space_to_depth`'s order)."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    x = ops.reshape(images, (-1, height // 2, 2, width // 2, 2, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height // 2, width // 2, 4 * channels))


def depth_to_space(features):
    """The inverse of `space_to_depth`: `[B, h, w, 4C]` -> `[B, 2h, 2w, C]`."""
    height, width, channels = features.shape[1], features.shape[2], features.shape[3] // 4
    x = ops.reshape(features, (-1, height, width, 2, 2, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, 2 * height, 2 * width, channels))


def build_light_translator(config, **kwargs) -> LightTranslator:
    """The light T from `config.image_size` and `config.stage1.light_*` (the gaussian maps and
    the warp take the masked T's `gaussian_*` and `warp_*` fields)."""
    s1 = config.stage1
    return LightTranslator(
        image_size=config.image_size, num_keypoints=config.num_keypoints,
        filters=tuple(s1.light_filters), gaussian_size=s1.gaussian_size,
        gaussian_inv_std=s1.gaussian_inv_std, warp_inv_std=s1.warp_inv_std,
        warp_background=s1.warp_background, norm=s1.light_norm,
        initial_crude_share=s1.light_initial_crude_share, **kwargs)
