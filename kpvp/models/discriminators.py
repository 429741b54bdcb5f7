"""Discriminators: D_im on images (stage 1) and D_seq on keypoint sequences (stage 2).

Both return raw logits (no sigmoid); `kpvp.losses` applies the sigmoid cross-entropy (averaged
over every logit, so also over D_im's patch map).
"""
import keras
from keras import ops

from kpvp.models import layers
from kpvp.models.lstm import LSTM


HEADS = ("patch", "dense")
# The constructor arguments added with the authors' head, as the models saved before it were
# built (their .keras configs lack these keys).
LEGACY_ARGUMENTS = dict(head="dense", pad=0)


@keras.saving.register_keras_serializable(package="kpvp")
class ImageDiscriminator(keras.Model):
    """D_im: images `[B, H, W, 3]` in [-1, 1] -> real/fake logits.

    `len(filters)` stride-2 convolutions (64 .. 2048 at 128x128), LeakyReLU(0.01), no
    normalisation, each after an explicit zero padding of `pad` pixels per side (the authors'
    1, before a 'same' conv: 128 -> 65 -> 34 -> 18 -> 10 -> 6 -> 4), then a head:
      * "patch" (the authors'): zero padding of `pad`, a conv3x3 without bias to one channel,
        a patch logit map `[B, h, w, 1]` (6x6 at 128x128 with `pad=1`); the losses average
        the sigmoid cross-entropy over it;
      * "dense" (ours): a dense layer on the flattened features, one global logit `[B, 1]`.
    H and W must be static.

    Args:
      filters: width of each stride-2 conv.
      kernel_size: conv kernel size (4; 5 is the other common choice).
      negative_slope: LeakyReLU slope.
      head: "patch" (the authors') or "dense" (ours).
      pad: zero padding before each conv (the authors' 1; 0: only the conv's 'same' padding).
    """

    def __init__(self, filters=(64, 128, 256, 512, 1024, 2048), kernel_size=4,
                 negative_slope=0.01, head="patch", pad=1, **kwargs):
        super().__init__(**kwargs)
        if len(filters) < 1:
            raise ValueError(f"ImageDiscriminator: filters must be non-empty, got {filters}")
        if head not in HEADS or int(pad) < 0:
            raise ValueError(f"ImageDiscriminator: head must be one of {HEADS} and pad >= 0, "
                             f"got {head!r}, {pad}")
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.negative_slope = float(negative_slope)
        self.head = head
        self.pad = int(pad)
        self.convs = [
            layers.ConvBlock(width, self.kernel_size, strides=2, norm="none",
                             activation="leaky_relu", negative_slope=self.negative_slope,
                             name=f"conv{i}")
            for i, width in enumerate(self.filters)
        ]
        self.padding = keras.layers.ZeroPadding2D(self.pad, name="pad") if self.pad else None
        if head == "patch":
            self.logit = keras.layers.Conv2D(1, 3, padding="same", use_bias=False,
                                             dtype="float32", name="logit")
        else:
            self.flatten = keras.layers.Flatten(name="flatten")
            self.logit = keras.layers.Dense(1, dtype="float32", name="logit")

    def call(self, images, training=None):
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(
                f"ImageDiscriminator: images must be [B, H, W, 3] with static H, W, got {shape}")
        x = images
        for conv in self.convs:
            x = conv(self._pad(x), training=training)
        if self.head == "patch":
            return self.logit(self._pad(x))
        return self.logit(self.flatten(x))

    def _pad(self, x):
        return x if self.padding is None else self.padding(x)

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters), kernel_size=self.kernel_size,
                      negative_slope=self.negative_slope, head=self.head, pad=self.pad)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{**LEGACY_ARGUMENTS, **config})


def build_image_discriminator(config, **kwargs) -> ImageDiscriminator:
    """D_im as a run's config describes it (`config.stage1.discriminator_*`)."""
    s1 = config.stage1
    kwargs.setdefault("name", "image_discriminator")
    return ImageDiscriminator(filters=tuple(s1.discriminator_filters),
                              head=s1.discriminator_head, pad=s1.discriminator_pad, **kwargs)


@keras.saving.register_keras_serializable(package="kpvp")
class SequenceDiscriminator(keras.Model):
    """D_seq: keypoint sequences `[B, T, K, 2]` (+ class `a`) -> one logit per sequence `[B, 1]`.

    Each step's K keypoints are flattened to 2K numbers (all x, then all y); with
    `num_classes > 0` the one-hot class `a` `[B, C]` (or integer labels `[B]`) is
    concatenated to every step (ours: paper eq. 5 and the authors' D_seq have no class). A
    stack of `num_layers` LSTMs of `units` reads the sequence and a dense layer turns the last
    hidden state into the logit. T may vary between calls. The logit is linear: the authors'
    tf.contrib layer has its default ReLU there, which would keep D(x) >= 0.5 for every input.

    `call(keypoints)` when unconditional, `call([keypoints, labels])` when conditional.

    Args:
      units: LSTM width (the authors' 1024).
      num_classes: C; 0 for an unconditional discriminator (the authors' D_seq).
      num_layers: number of stacked LSTMs (the authors' 2).
    """

    def __init__(self, units=1024, num_classes=0, num_layers=1, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1 or int(num_layers) < 1 or int(num_classes) < 0:
            raise ValueError(
                "SequenceDiscriminator: units and num_layers must be >= 1 and num_classes "
                f">= 0, got {units}, {num_layers}, {num_classes}")
        self.units = int(units)
        self.num_classes = int(num_classes)
        self.num_layers = int(num_layers)
        self.lstms = [
            LSTM(self.units, return_sequences=i < self.num_layers - 1,
                     name=f"lstm{i}")
            for i in range(self.num_layers)
        ]
        self.logit = keras.layers.Dense(1, dtype="float32", name="logit")

    def _split_inputs(self, inputs):
        if self.num_classes:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError(
                    "SequenceDiscriminator with num_classes > 0 expects [keypoints, labels], "
                    f"got {type(inputs).__name__}")
            return inputs
        if isinstance(inputs, (list, tuple)):
            raise ValueError("SequenceDiscriminator with num_classes=0 expects the keypoints "
                             "tensor [B, T, K, 2] alone, got a list")
        return inputs, None

    def call(self, inputs, training=None):
        keypoints, labels = self._split_inputs(inputs)
        if len(keypoints.shape) != 4 or keypoints.shape[-1] != 2:
            raise ValueError("SequenceDiscriminator: keypoints must be [B, T, K, 2], got "
                             f"shape {tuple(keypoints.shape)}")
        # Concatenating the x and y planes avoids a reshape that would need a static T.
        x = ops.concatenate([keypoints[..., 0], keypoints[..., 1]], axis=-1)  # [B, T, 2K]
        if labels is not None:
            x = ops.concatenate([x, self._per_step(self._one_hot(labels), x)], axis=-1)
        for lstm in self.lstms:
            x = lstm(x, training=training)
        return self.logit(x)

    def _one_hot(self, labels):
        if len(labels.shape) == 1:
            return ops.one_hot(ops.cast(labels, "int32"), self.num_classes)
        if len(labels.shape) != 2 or labels.shape[-1] != self.num_classes:
            raise ValueError(
                f"SequenceDiscriminator: labels must be one-hot [B, {self.num_classes}] or "
                f"integer [B], got shape {tuple(labels.shape)}")
        return labels

    @staticmethod
    def _per_step(one_hot, steps):
        """Repeats `[B, C]` over the T steps of `steps` `[B, T, D]` -> `[B, T, C]`."""
        ones = ops.ones_like(steps[:, :, :1])
        return ones * ops.cast(one_hot, ones.dtype)[:, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_classes=self.num_classes,
                      num_layers=self.num_layers)
        return config
