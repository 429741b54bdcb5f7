"""Moving the source image's pixels with its keypoints: a keypoint-driven backward warp.

Not in the paper. T there redraws the target from encoded source features and keypoint maps
alone; `MaskedTranslator(warp=True)` blends its crude image with this warp of the source
instead of the source itself (experiments/README.md, "The warping translator").

The flow follows Siarohin et al.'s Monkey-Net: each pixel `u` of the target frame moves with the
target keypoints near it and the background stays still,

    u -> u + sum_k w_k(u) (k_k - k'_k),    w_k(u) = g_k(u) / (sum_j g_j(u) + background),

with `g_k(u) = exp(-|u - k'_k|^2 inv_std^2)` the gaussian map of target keypoint k (a softmax
over the keypoints' log-gaussians and `log(background)` for the still background),

and the warped image samples the source at the moved position (bilinear, the border pixels
repeated beyond the edges). Coordinates follow `kpvp.ops.keypoints`: `(x, y)` in [-1, 1],
corners at +-1. Everything is differentiable in the keypoints, so Q learns through the warp.

The affine maps at the end (`affine_matrices`, `apply_affine`, `affine_warp`) move whole images
for the equivariance loss on Q (`kpvp.losses.equivariance_loss`).
"""
from keras import ops

from kpvp.ops import keypoints as kp_ops


def bilinear_sample(images, coords):
    """Samples `images` `[B, H, W, C]` at `coords` `[B, h, w, 2]` (x, y) -> `[B, h, w, C]`.

    Bilinear interpolation between pixel centres; outside the image the nearest border pixel
    is used. Differentiable in `images` and `coords`.
    """
    if len(images.shape) != 4 or images.shape[1] is None or images.shape[2] is None:
        raise ValueError(f"images must be [B, H, W, C] with a static H and W, got shape "
                         f"{tuple(images.shape)}")
    if len(coords.shape) != 4 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be [B, h, w, 2] (x, y), got shape {tuple(coords.shape)}")
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    out_h, out_w = coords.shape[1], coords.shape[2]
    images = ops.cast(images, "float32")
    coords = ops.cast(coords, "float32")
    # Pixel-index coordinates: the centre of column i is at i.
    x = (coords[..., 0] + 1.0) * (width / 2.0) - 0.5
    y = (coords[..., 1] + 1.0) * (height / 2.0) - 0.5
    x0, y0 = ops.floor(x), ops.floor(y)
    wx, wy = x - x0, y - y0

    def clipped(value, size):
        return ops.cast(ops.clip(value, 0, size - 1), "int32")

    left, right = clipped(x0, width), clipped(x0 + 1.0, width)
    top, bottom = clipped(y0, height) * width, clipped(y0 + 1.0, height) * width
    # One gather of whole pixels (all channels) for the four corners: far faster on a CPU
    # than a gather per corner and channel.
    corners = ops.stack([top + left, top + right, bottom + left, bottom + right], axis=-1)
    batch = ops.shape(images)[0]
    offsets = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1, 1))
    values = ops.take(ops.reshape(images, (-1, channels)),
                      ops.reshape(corners + offsets, (-1,)), axis=0)
    values = ops.reshape(values, (-1, out_h, out_w, 4, channels))
    wx, wy = wx[..., None], wy[..., None]
    top = (1.0 - wx) * values[..., 0, :] + wx * values[..., 1, :]
    bottom = (1.0 - wx) * values[..., 2, :] + wx * values[..., 3, :]
    return (1.0 - wy) * top + wy * bottom


def keypoint_flow(source_kp, target_kp, size, inv_std, background):
    """Where each target pixel comes from in the source: `[B, size, size, 2]` (x, y).

    `source_kp` `k`, `target_kp` `k'`: `[B, K, 2]`. `inv_std` sets the reach of each keypoint
    (as in `kp_ops.gaussian_maps`); `background` (> 0) is the weight of the still background
    against a keypoint's peak weight 1.
    """
    if background <= 0 or inv_std <= 0:
        raise ValueError(f"keypoint_flow: background and inv_std must be > 0, got "
                         f"{background}, {inv_std}")
    source_kp = ops.cast(source_kp, "float32")
    target_kp = ops.cast(target_kp, "float32")
    # g_k(u) = g_y[k, y] g_x[k, x] is separable, so the sums over k are [h, K] x [K, w] matmuls
    # and the [B, h, w, K] maps are never formed.
    g_x, g_y = kp_ops.gaussian_factors(target_kp, size, inv_std)  # [B, K, w], [B, K, h]
    shift = source_kp - target_kp  # [B, K, 2]
    # Rows [g_y, g_y shift_x, g_y shift_y] -> total weight and the two weighted shifts.
    rows = ops.concatenate([g_y, g_y * shift[:, :, 0:1], g_y * shift[:, :, 1:2]], axis=-1)
    sums = ops.matmul(ops.transpose(rows, (0, 2, 1)), g_x)  # [B, 3h, w]
    total, shift_x, shift_y = ops.split(sums, 3, axis=1)
    flow = ops.stack([shift_x, shift_y], axis=-1) / (total[..., None] + background)
    return pixel_grid(size)[None] + flow


def pixel_grid(size):
    """The (x, y) centres of a `size x size` image's pixels: `[size, size, 2]`."""
    centres = kp_ops.pixel_centers(size)
    grid_x, grid_y = ops.meshgrid(centres, centres)  # [h, w] each, x along columns
    return ops.stack([grid_x, grid_y], axis=-1)


def keypoint_warp(images, source_kp, target_kp, inv_std, background):
    """The source `images` `[B, H, W, C]` moved from `source_kp` to `target_kp` (`[B, K, 2]`).

    Returns `[B, H, W, C]` float32: pixel `u` takes the source's value at `keypoint_flow(u)`.
    """
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"keypoint_warp: images must be square, got {tuple(images.shape)}")
    coords = keypoint_flow(source_kp, target_kp, images.shape[1], inv_std, background)
    return bilinear_sample(images, coords)


# === Affine maps (the equivariance loss) ===
def affine_matrices(angle, scale, shift):
    """Affine maps `A` `[B, 2, 3]` of `[-1, 1]` coordinates, `A(u) = A[:, :, :2] u + A[:, :, 2]`:
    a rotation by `angle` `[B]` (radians), an isotropic `scale` `[B]` about the image centre,
    then a `shift` `[B, 2]` (x, y)."""
    angle, scale = ops.cast(angle, "float32"), ops.cast(scale, "float32")
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    linear = ops.stack([ops.stack([cos, -sin], -1), ops.stack([sin, cos], -1)], axis=1)
    return ops.concatenate([linear, ops.cast(shift, "float32")[:, :, None]], axis=-1)


def apply_affine(points, matrices):
    """`A(p)` for points `[B, K, 2]` (x, y) and maps `[B, 2, 3]` -> `[B, K, 2]`."""
    points = ops.cast(points, "float32")
    return ops.einsum("bkc,bdc->bkd", points, matrices[:, :, :2]) + matrices[:, None, :, 2]


def affine_warp(images, matrices):
    """`images` `[B, H, W, C]` seen through `A` `[B, 2, 3]`: output pixel `u` takes the input's
    value at `A(u)` (bilinear, border pixels repeated). So a point at `u` in the output shows
    what was at `A(u)` in the input -> `[B, H, W, C]` float32."""
    if len(images.shape) != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"affine_warp: images must be square [B, H, W, C], got "
                         f"{tuple(images.shape)}")
    size = images.shape[1]
    grid = ops.reshape(pixel_grid(size), (1, size * size, 2))
    grid = ops.repeat(grid, ops.shape(matrices)[0], axis=0)
    coords = ops.reshape(apply_affine(grid, matrices), (-1, size, size, 2))
    return bilinear_sample(images, coords)
