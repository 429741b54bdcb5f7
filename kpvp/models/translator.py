"""The masked image translator T: source image + source/target keypoints -> target image.

Architecture (the authors' widths at a 128x128 input, `filters=(64, 128, 256)`):
  * image encoder of the source `s` (run once per source image; Q's encoder layout with its
    own weights): conv7x7 + conv3x3 at full resolution, then a stride-2 conv3x3 + conv3x3 per
    level, down to `gaussian_size` (32x32x128 at 128; widths `encoder_filters`, by default
    half of `filters`; the code's encoder goes on to a 16x16x256 level it never uses);
  * the features are concatenated with the gaussian maps of the source keypoints and of the
    target keypoints rendered at `gaussian_size` (32x32xK each);
  * a decoder up to full resolution, one of two layouts:
      - "plain" (the authors' code): no skip connections; four conv3x3 per level (two at full
        resolution) at widths 256 -> 128 -> 64, a bilinear 2x upsampling between levels;
      - "unet" (ours): a U-Net at `gaussian_size` (two conv3x3, `bottleneck_depth` stride-2
        convs down, and back up with skip connections), all `filters[-1]` wide, then per
        remaining width a bilinear 2x upsampling + two conv3x3;
    (the 2x upsampling is Keras's half-pixel bilinear resize; the code's TF1 `resize_images`
    samples without the half-pixel offset);
  * two heads at full resolution, conv3x3 each: the crude image `v_crude` (3 channels, linear
    as the authors' or tanh, ours) and a 1-channel sigmoid mask.
The output is paper eq. 3, `v_hat = m * s + (1 - m) * v_crude` (`masked_blend`), with `m` the
sigmoid head (`mask_weighs="source"`, the paper and the authors' code) or `1 -` the sigmoid
head (`"crude"`, ours: the head gives the share of `v_crude`; the same model with the head's
sign flipped).

`warp=True` (not in the paper; experiments/README.md, "The warping translator") blends with the
source moved by the keypoints instead, `v_hat = m * W(s; k, k') + (1 - m) * v_crude`
(`kpvp.ops.warping.keypoint_warp`); the networks are the same.
"""
import math

import keras
from keras import ops

from kpvp.models import first_order, layers, light_translator
from kpvp.ops import warping

DECODERS = ("plain", "unet")
CRUDE_ACTIVATIONS = ("linear", "tanh")
MASK_WEIGHS = ("source", "crude")
# The constructor arguments added with the authors' layout, as the models saved before it
# were built (their .keras configs lack these keys).
LEGACY_ARGUMENTS = dict(decoder_layout="unet", crude_activation="tanh", mask_weighs="crude",
                        use_bias=False, bn_momentum=0.99, bn_epsilon=1e-3,
                        initial_crude_share=0.5)


def masked_blend(mask, crude, source):
    """Output of T, paper eq. 3: `v_hat = m * s + (1 - m) * v_crude`.

    `mask` `m` `[B, H, W, 1]` in [0, 1] (1 = keep the source pixel), `crude` `v_crude` and
    `source` `s` `[B, H, W, 3]` -> `[B, H, W, 3]`.
    """
    return mask * source + (1.0 - mask) * crude


@keras.saving.register_keras_serializable(package="kpvp")
class MaskedTranslator(layers.SourceTranslatorMixin, keras.Model):
    """T: `[source_image s, source_kp k, target_kp k']` -> dict of `[B, H, W, C]` tensors.

    `call([source_image, source_kp, target_kp])` with `source_image` `[B, H, W, 3]` in
    [-1, 1] (H = W = `image_size`) and keypoints `[B, K, 2]` returns a dict:
      * `"image"`: `v_hat` `[B, H, W, 3]`, the blend of the crude image and the source;
      * `"crude"`: `v_crude` `[B, H, W, 3]` (in [-1, 1] with the tanh head);
      * `"mask"`: `1 - m` `[B, H, W, 1]` in [0, 1], the share of `v_crude` in `v_hat` (1 where
        `v_crude` is used, 0 where the source is kept), whatever `mask_weighs` is;
      * with `warp=True` also `"warped"`: `W(s; k, k')` `[B, H, W, 3]`, what the blend takes
        where `"mask"` is 0.
    All outputs are float32. To render many targets from one source, run
    `encode_source` once and `decode` per target (batch sizes must match: repeat the
    features along the batch axis).

    Args:
      image_size: H = W of the images.
      num_keypoints: K.
      filters: decoder widths from full resolution down to `gaussian_size`; needs
        `image_size == gaussian_size * 2 ** (len(filters) - 1)`.
      gaussian_size: resolution of the gaussian maps and of the decoder's first level.
      gaussian_inv_std: `inv_std` of the gaussian maps, `exp(-d^2 * inv_std^2)`.
      encoder_filters: source encoder widths per level (default: half of `filters`).
      bottleneck_depth: stride-2 levels of the U-Net below `gaussian_size` ("unet" only).
      norm: "batch" (the authors'), "instance" or "none", in every conv block.
      decoder_layout: "plain" (the authors') or "unet" (ours), see the module docstring.
      crude_activation: "linear" (the authors') or "tanh" (ours) on the crude image head.
      mask_weighs: what the sigmoid head's output weighs in eq. 3: "source" (the authors')
        or "crude" (ours).
      use_bias: a bias in every conv block even before a normalisation (the authors').
      bn_momentum, bn_epsilon: batch norm settings (the authors' tf.contrib: 0.999, 1e-5).
      initial_crude_share: the share of `v_crude` in `v_hat` at initialisation, in (0, 1),
        set through the mask head's bias (0.5: a zero bias, the authors').
      warp: blend with the source warped from `k` to `k'` instead of the source (not in the
        paper).
      warp_inv_std, warp_background: the warp's keypoint reach and still-background weight
        (`kpvp.ops.warping.keypoint_flow`).
    """

    def __init__(self, image_size, num_keypoints, filters=(64, 128, 256), gaussian_size=32,
                 gaussian_inv_std=14.3, encoder_filters=None, bottleneck_depth=2,
                 norm="batch", warp=False, warp_inv_std=10.0, warp_background=0.01,
                 decoder_layout="plain", crude_activation="linear", mask_weighs="source",
                 use_bias=True, bn_momentum=0.999, bn_epsilon=1e-5, initial_crude_share=0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.num_keypoints = int(num_keypoints)
        self.filters = tuple(int(f) for f in filters)
        self.gaussian_size = int(gaussian_size)
        self.gaussian_inv_std = float(gaussian_inv_std)
        if encoder_filters is None:
            encoder_filters = [max(f // 2, 1) for f in self.filters]
        self.encoder_filters = tuple(int(f) for f in encoder_filters)
        self.bottleneck_depth = int(bottleneck_depth)
        self.norm = norm
        self.warp = bool(warp)
        self.warp_inv_std = float(warp_inv_std)
        self.warp_background = float(warp_background)
        self.decoder_layout = decoder_layout
        self.crude_activation = crude_activation
        self.mask_weighs = mask_weighs
        self.use_bias = bool(use_bias)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.initial_crude_share = float(initial_crude_share)
        self._check_arguments()

        def block(width, kernel_size=3, strides=1, name=None):
            # use_bias None: a bias only where there is no normalisation (ours).
            return layers.ConvBlock(width, kernel_size, strides, norm=norm,
                                    use_bias=self.use_bias or None, momentum=self.bn_momentum,
                                    epsilon=self.bn_epsilon, name=name)

        ef, top = self.encoder_filters, self.filters[-1]
        self.encoder = [block(ef[0], 7, name="enc0_0"), block(ef[0], name="enc0_1")]
        for i, width in enumerate(ef[1:], start=1):
            self.encoder += [block(width, strides=2, name=f"enc{i}_0"),
                             block(width, name=f"enc{i}_1")]
        self.gaussian_maps = layers.GaussianMaps(self.gaussian_size, self.gaussian_inv_std,
                                                 name="gaussian_maps")
        if decoder_layout == "plain":
            # self.decoder[i]: the convs at resolution 1 / 2**i, four (two at full resolution).
            self.decoder = [
                [block(width, name=f"dec{i}_{j}") for j in range(2 if i == 0 else 4)]
                for i, width in enumerate(self.filters)
            ]
        else:
            self.unet_in = [block(top, name="unet_in_0"), block(top, name="unet_in_1")]
            self.unet_down = [block(top, strides=2, name=f"unet_down{d}")
                              for d in range(self.bottleneck_depth)]
            self.unet_up = [block(top, name=f"unet_up{d}")
                            for d in range(self.bottleneck_depth)]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        if decoder_layout == "unet":
            self.decoder = [
                [block(width, name=f"dec{i}_0"), block(width, name=f"dec{i}_1")]
                for i, width in enumerate(self.filters[:-1])
            ]
        # float32 heads: the outputs are compared with images and blended in float32.
        self.crude_head = keras.layers.Conv2D(3, 3, padding="same", activation=crude_activation,
                                              dtype="float32", name="crude_head")
        crude_logit = math.log(self.initial_crude_share / (1.0 - self.initial_crude_share))
        head_bias = -crude_logit if mask_weighs == "source" else crude_logit
        self.mask_head = keras.layers.Conv2D(
            1, 3, padding="same", activation="sigmoid", dtype="float32", name="mask_head",
            bias_initializer=keras.initializers.Constant(head_bias))

    def _check_arguments(self):
        if self.image_size != self.gaussian_size * 2 ** (len(self.filters) - 1):
            raise ValueError(
                f"MaskedTranslator: image_size ({self.image_size}) must equal gaussian_size "
                f"({self.gaussian_size}) * 2 ** (len(filters) - 1) for filters={self.filters}")
        if len(self.encoder_filters) != len(self.filters):
            raise ValueError(
                f"MaskedTranslator: encoder_filters {self.encoder_filters} must have one width "
                f"per level like filters {self.filters}")
        if self.bottleneck_depth < 0 or self.gaussian_size % 2 ** self.bottleneck_depth:
            raise ValueError(
                f"MaskedTranslator: gaussian_size ({self.gaussian_size}) must be divisible by "
                f"2 ** bottleneck_depth ({self.bottleneck_depth})")
        for name, value, allowed in (("decoder_layout", self.decoder_layout, DECODERS),
                                     ("crude_activation", self.crude_activation,
                                      CRUDE_ACTIVATIONS),
                                     ("mask_weighs", self.mask_weighs, MASK_WEIGHS)):
            if value not in allowed:
                raise ValueError(f"MaskedTranslator: {name} must be one of {allowed}, "
                                 f"got {value!r}")
        if self.norm not in layers.NORMS:
            raise ValueError(f"MaskedTranslator: norm must be one of {layers.NORMS}, "
                             f"got {self.norm!r}")
        if self.warp_inv_std <= 0 or self.warp_background <= 0:
            raise ValueError(
                "MaskedTranslator: warp_inv_std and warp_background must be > 0, got "
                f"{self.warp_inv_std}, {self.warp_background}")
        if not 0.0 < self.initial_crude_share < 1.0:
            raise ValueError("MaskedTranslator: initial_crude_share must be in (0, 1), got "
                             f"{self.initial_crude_share}")
        if self.num_keypoints < 1 or self.gaussian_inv_std <= 0:
            raise ValueError(
                "MaskedTranslator: num_keypoints must be >= 1 and gaussian_inv_std > 0, got "
                f"{self.num_keypoints}, {self.gaussian_inv_std}")

    def decode(self, source_features, source_image, source_kp, target_kp, training=None):
        """The rest of T: encoded source, `s`, `k`, `k'` -> dict(image, crude, mask).

        `source_features` `[B, g, g, C]` from `encode_source`; shapes as in `call`.
        """
        self._check_inputs(source_image, source_kp, target_kp)
        x = ops.concatenate([source_features, self.gaussian_maps(source_kp),
                             self.gaussian_maps(target_kp)], axis=-1)
        if self.decoder_layout == "plain":
            x = self._plain_decoder(x, training)
        else:
            x = self._unet_decoder(x, training)
        crude = self.crude_head(x)
        head = self.mask_head(x)
        share_of_crude = 1.0 - head if self.mask_weighs == "source" else head
        outputs = {"crude": crude, "mask": share_of_crude}
        base = ops.cast(source_image, "float32")
        if self.warp:
            base = outputs["warped"] = warping.keypoint_warp(
                base, source_kp, target_kp, self.warp_inv_std, self.warp_background)
        if self.mask_weighs == "source":
            outputs["image"] = masked_blend(head, crude, base)
        else:
            # Eq. 3 with m = 1 - head, written out so as not to round 1 - (1 - head).
            outputs["image"] = head * crude + (1.0 - head) * base
        return outputs

    def _plain_decoder(self, x, training):
        for level in reversed(range(len(self.filters))):
            for layer in self.decoder[level]:
                x = layer(x, training=training)
            if level:
                x = self.upsample(x)
        return x

    def _unet_decoder(self, x, training):
        for layer in self.unet_in:
            x = layer(x, training=training)
        skips = []
        for layer in self.unet_down:
            skips.append(x)
            x = layer(x, training=training)
        for level in reversed(range(self.bottleneck_depth)):
            x = ops.concatenate([self.upsample(x), skips[level]], axis=-1)
            x = self.unet_up[level](x, training=training)
        for level in reversed(range(len(self.decoder))):
            x = self.upsample(x)
            for layer in self.decoder[level]:
                x = layer(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, num_keypoints=self.num_keypoints,
                      filters=list(self.filters), gaussian_size=self.gaussian_size,
                      gaussian_inv_std=self.gaussian_inv_std,
                      encoder_filters=list(self.encoder_filters),
                      bottleneck_depth=self.bottleneck_depth, norm=self.norm, warp=self.warp,
                      warp_inv_std=self.warp_inv_std, warp_background=self.warp_background,
                      decoder_layout=self.decoder_layout,
                      crude_activation=self.crude_activation, mask_weighs=self.mask_weighs,
                      use_bias=self.use_bias, bn_momentum=self.bn_momentum,
                      bn_epsilon=self.bn_epsilon,
                      initial_crude_share=self.initial_crude_share)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{**LEGACY_ARGUMENTS, **config})


def build_masked_translator(config, **kwargs) -> MaskedTranslator:
    """The masked T of paper eq. 3 from `config.image_size` and `config.stage1.*`."""
    s1 = config.stage1
    return MaskedTranslator(image_size=config.image_size, num_keypoints=config.num_keypoints,
                            filters=tuple(s1.translator_filters),
                            gaussian_size=s1.gaussian_size,
                            gaussian_inv_std=s1.gaussian_inv_std, norm=s1.norm,
                            warp=s1.translator_warp, warp_inv_std=s1.warp_inv_std,
                            warp_background=s1.warp_background,
                            decoder_layout=s1.translator_decoder,
                            crude_activation=s1.translator_crude_activation,
                            mask_weighs=s1.translator_mask_weighs, use_bias=s1.conv_bias,
                            bn_momentum=s1.bn_momentum, bn_epsilon=s1.bn_epsilon,
                            initial_crude_share=s1.translator_initial_crude_share, **kwargs)


# `config.stage1.translator` -> a builder `(config, **kwargs) -> keras.Model` with T's interface.
# "first_order": Siarohin et al.'s dense motion + occlusion generator (kpvp/models/first_order.py).
# "light": the warped source plus a small correction U-Net, for serving (light_translator.py).
TRANSLATORS = {"masked": build_masked_translator,
               "first_order": first_order.build_first_order_translator,
               "light": light_translator.build_light_translator}


def build_translator(config, **kwargs) -> keras.Model:
    """T as a run's config describes it (`config.stage1.translator`, `config.stage1.*`)."""
    name = config.stage1.get("translator", "masked")
    if name not in TRANSLATORS:
        raise ValueError(f"config.stage1.translator must be one of {sorted(TRANSLATORS)}, "
                         f"got {name!r}")
    kwargs.setdefault("name", "translator")
    return TRANSLATORS[name](config, **kwargs)
