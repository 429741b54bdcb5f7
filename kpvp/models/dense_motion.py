"""Dense motion from keypoints and their Jacobians (Siarohin et al., 2019, first-order motion).

Each keypoint k carries a local affine map from the target (driving) frame to the source frame,
`z -> k_s + J_s J_t^-1 (z - k_t)` (first order Taylor expansion about the keypoint); the
background keeps `z -> z`. `DenseMotion`, a small hourglass, looks at the source warped by each
of these K + 1 maps and at the keypoints' gaussian maps (target minus source), and predicts
K + 1 soft masks (softmax over them) that mix the maps into one dense flow, and an occlusion
map in [0, 1] (1: the warped source is visible there; 0: the generator must inpaint).

Coordinates are kpvp's: (x, y) in [-1, 1], pixel centres as `kpvp.ops.keypoints.pixel_centers`.
A flow is where each output pixel comes from in the source, as `kpvp.ops.warping` samples it.
"""
import keras
from keras import ops

from kpvp.models import layers
from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping

# Determinants closer to 0 than this are pushed away from it before a Jacobian is inverted.
MIN_DETERMINANT = 1e-3


def invert_2x2(matrices):
    """Inverses of `[..., 2, 2]` matrices (determinants kept at least `MIN_DETERMINANT` away
    from 0, with their sign)."""
    m = ops.cast(matrices, "float32")
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    sign = ops.where(det < 0, -1.0, 1.0)
    det = sign * ops.maximum(ops.abs(det), MIN_DETERMINANT)
    rows = [ops.stack([d, -b], axis=-1), ops.stack([-c, a], axis=-1)]
    return ops.stack(rows, axis=-2) / det[..., None, None]


def relative_jacobians(source_jacobians, target_jacobians):
    """`J_s J_t^-1` `[B, K, 2, 2]`: the linear part of each keypoint's target -> source map."""
    return ops.matmul(ops.cast(source_jacobians, "float32"), invert_2x2(target_jacobians))


def sparse_motions(source_kp, target_kp, jacobians, size):
    """The K + 1 candidate flows `[B, K + 1, size, size, 2]`: the identity (background) first,
    then per keypoint `z -> k_s + J (z - k_t)` with `jacobians` `J` `[B, K, 2, 2]`."""
    source_kp = ops.cast(source_kp, "float32")
    target_kp = ops.cast(target_kp, "float32")
    grid = warping.pixel_grid(size)
    offsets = grid[None, None] - target_kp[:, :, None, None, :]  # [B, K, h, w, 2]
    local = ops.einsum("bkij,bkhwj->bkhwi", ops.cast(jacobians, "float32"), offsets)
    motions = local + source_kp[:, :, None, None, :]
    background = ops.zeros_like(motions[:, :1]) + grid[None, None]
    return ops.concatenate([background, motions], axis=1)


def combine_motions(masks, motions):
    """The dense flow `[B, h, w, 2]`: `masks` `[B, h, w, K + 1]` (summing to 1 per pixel)
    weighing the candidate flows `motions` `[B, K + 1, h, w, 2]`."""
    return ops.einsum("bhwk,bkhwc->bhwc", ops.cast(masks, "float32"), motions)


def resize(images, size):
    """Bilinear (half-pixel) resize of `[B, h, w, C]` to `size x size`; a no-op at that size."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    return ops.image.resize(images, (size, size), interpolation="bilinear", antialias=True)


@keras.saving.register_keras_serializable(package="kpvp")
class DenseMotion(keras.layers.Layer):
    """`(source [B, S, S, 3], k_s, k_t [B, K, 2], J [B, K, 2, 2])` -> dict of
    `flow` `[B, m, m, 2]` (source coordinates per pixel), `occlusion` `[B, m, m, 1]` in [0, 1],
    `masks` `[B, m, m, K + 1]` (background first), at `m = size`.

    Args:
      num_keypoints: K.
      size: the resolution the motion is computed at (the source is resized to it).
      filters: the hourglass's widths, one per level (the first at `size`).
      kp_inv_std: `inv_std` of the keypoints' gaussian maps (`kpvp.ops.keypoints`).
      norm, use_bias, momentum, epsilon: the conv blocks' (`layers.ConvBlock`).
    """

    def __init__(self, num_keypoints, size, filters=(32, 64, 128), kp_inv_std=7.0,
                 norm="batch", use_bias=None, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.num_keypoints = int(num_keypoints)
        self.size = int(size)
        self.filters = tuple(int(f) for f in filters)
        self.kp_inv_std = float(kp_inv_std)
        self.norm = norm
        self.use_bias = use_bias
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if self.num_keypoints < 1 or not self.filters or self.kp_inv_std <= 0:
            raise ValueError(
                "DenseMotion: num_keypoints must be >= 1, filters non-empty and kp_inv_std > 0, "
                f"got {num_keypoints}, {filters}, {kp_inv_std}")
        if self.size % 2 ** (len(self.filters) - 1):
            raise ValueError(f"DenseMotion: size ({self.size}) must be divisible by "
                             f"2 ** (len(filters) - 1) for filters={self.filters}")

        def block(width, kernel_size=3, strides=1, name=None):
            return layers.ConvBlock(width, kernel_size, strides, norm=norm, use_bias=use_bias,
                                    momentum=self.momentum, epsilon=self.epsilon, name=name)

        f = self.filters
        self.down = [block(f[0], 7, name="down0")] + [
            block(width, strides=2, name=f"down{i}") for i, width in enumerate(f[1:], start=1)]
        self.up = [block(width, name=f"up{i}") for i, width in enumerate(f[:-1])]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        self.mask_head = keras.layers.Conv2D(self.num_keypoints + 1, 7, padding="same",
                                             dtype="float32", name="mask_head")
        self.occlusion_head = keras.layers.Conv2D(1, 7, padding="same", activation="sigmoid",
                                                  dtype="float32", name="occlusion_head")

    def call(self, source, source_kp, target_kp, jacobians, training=None):
        size, k = self.size, self.num_keypoints
        small = resize(ops.cast(source, "float32"), size)
        heat = (kp_ops.gaussian_maps(target_kp, size, self.kp_inv_std)
                - kp_ops.gaussian_maps(source_kp, size, self.kp_inv_std))
        heat = ops.concatenate([ops.zeros_like(heat[..., :1]), heat], axis=-1)
        motions = sparse_motions(source_kp, target_kp, jacobians, size)  # [B, K+1, h, w, 2]
        # The source seen through each candidate flow, batched as B * (K + 1) images.
        coords = ops.reshape(motions, (-1, size, size, 2))
        repeated = ops.repeat(small, k + 1, axis=0)
        deformed = ops.reshape(warping.bilinear_sample(repeated, coords),
                               (-1, k + 1, size, size, 3))
        deformed = ops.reshape(ops.transpose(deformed, (0, 2, 3, 1, 4)),
                               (-1, size, size, 3 * (k + 1)))
        x = ops.concatenate([heat, deformed], axis=-1)
        skips = []
        for layer in self.down:
            x = layer(x, training=training)
            skips.append(x)
        for level in reversed(range(len(self.up))):
            x = self.up[level](self.upsample(x), training=training)
            x = ops.concatenate([x, skips[level]], axis=-1)
        masks = ops.softmax(self.mask_head(x), axis=-1)
        return {"flow": combine_motions(masks, motions), "occlusion": self.occlusion_head(x),
                "masks": masks}

    def get_config(self):
        config = super().get_config()
        config.update(num_keypoints=self.num_keypoints, size=self.size, filters=list(self.filters),
                      kp_inv_std=self.kp_inv_std, norm=self.norm, use_bias=self.use_bias,
                      momentum=self.momentum, epsilon=self.epsilon)
        return config
