"""Keypoint tensor math: soft-argmax, gaussian maps and geometric keypoint transforms.

Coordinate convention (used everywhere in kpvp):
  keypoints are float32 `[..., K, 2]` in the order `(x, y)`, x to the right, y down, both in
  [-1, 1]. (-1, -1) is the top-left CORNER of the top-left pixel and (1, 1) the bottom-right
  corner of the bottom-right pixel, so the centre of pixel column `i` of a width-W map is
  `x = (2 * i + 1) / W - 1` (rows/y/H alike). Maps of different resolutions (128x128
  heatmaps, 32x32 gaussian maps) therefore describe the same point with the same numbers.

(The authors' code uses `linspace(-1, 1, W)`, i.e. pixel CENTRES at -1 and 1; the two differ
by at most half a pixel. The corner convention is what makes 128x128 and 32x32 maps agree.)

Geometry: one canonical form, the forward 3x3 PIXEL MATRIX `P` acting on continuous pixel
coordinates `u = (x + 1) / 2 * W`, `v = (y + 1) / 2 * H` (column i spans [i, i + 1]) of the
input frame and giving those of the output frame (`keypoints_to_pixels`, `pixels_to_keypoints`,
`transform_keypoints`). It is the only form that handles non-square frames and a change of
size: the stage-1 augmentation (`kpvp.data.augment.geometric_matrix`) and the centre crop +
resize (`kpvp.ops.images.resize_crop_matrix`) are pixel matrices. The other two forms act on
[-1, 1] units of one square frame and are pixel matrices seen through the normalisation
`N = [[W/2, 0, W/2], [0, H/2, H/2], [0, 0, 1]]` (`unit_to_pixel_matrix`):
  * keypoint transforms (`flip_keypoints_x`, `rotate_keypoints`, `scale_keypoints`): the unit
    map `A` with `P = N A N^-1` (e.g. flip: `A = diag(-1, 1, 1)`, the pixel flip u -> W - u);
  * 2x3 unit maps (`kpvp.ops.warping.affine_matrices`, the equivariance loss): the same `A`
    with its last row `[0, 0, 1]` dropped.
tests/test_keypoint_ops.py checks that the three agree.

All functions use `keras.ops`, so they run on symbolic Keras tensors as well as eager ones.
"""
import numbers

from keras import ops

SOFTMAX_MODES = ("joint", "marginal")


def pixel_centers(size):
    """Coordinates of the pixel centres of a map `size` pixels wide, `[size]` float32.

    `(2 * i + 1) / size - 1` for `i = 0..size-1`: e.g. size 2 gives [-0.5, 0.5].
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"pixel_centers: size must be >= 1, got {size}")
    return (2.0 * ops.arange(size, dtype="float32") + 1.0) / size - 1.0


def _check_heatmaps(heatmaps, name="heatmaps"):
    if len(heatmaps.shape) != 4:
        raise ValueError(f"{name} must be [B, H, W, K], got shape {tuple(heatmaps.shape)}")
    height, width = heatmaps.shape[1], heatmaps.shape[2]
    if height is None or width is None:
        raise ValueError(f"{name} needs a static height and width, got {tuple(heatmaps.shape)}")


def _check_keypoints(keypoints, name="keypoints"):
    if len(keypoints.shape) < 2 or keypoints.shape[-1] != 2:
        raise ValueError(f"{name} must be [..., K, 2] (x, y), got shape {tuple(keypoints.shape)}")


def spatial_softmax(heatmaps, mode="joint", temperature=1.0):
    """Heatmap logits `Q(v)` -> probability maps `l`, `[B, H, W, K] -> [B, H, W, K]` float32.

    Each channel of the result sums to 1 over (H, W). The logits are divided by `temperature`
    first (1: the paper's eq. 1; below 1 sharpens the maps, see `SpatialSoftmax`).
      * `"joint"` (paper eq. 1): `l^n = softmax over all H*W pixels of Q(v)^n`.
      * `"marginal"` (the authors' code, IMM style): `p(y) = softmax over H of the logits
        averaged over W`, `p(x) = softmax over W of the logits averaged over H`, and
        `l = p(y) p(x)^T` (the product of the two marginals). Its expectation is the same as
        taking the two 1-D expectations separately, which is what the code computes.
    Computed in float32 whatever the input dtype (mixed-precision safe).
    """
    _check_heatmaps(heatmaps)
    if mode not in SOFTMAX_MODES:
        raise ValueError(f"spatial_softmax: mode must be one of {SOFTMAX_MODES}, got {mode!r}")
    if not float(temperature) > 0:
        raise ValueError(f"spatial_softmax: temperature must be > 0, got {temperature}")
    heatmaps = ops.cast(heatmaps, "float32") / float(temperature)
    height, width, channels = heatmaps.shape[1], heatmaps.shape[2], heatmaps.shape[3]
    if mode == "joint":
        flat = ops.reshape(heatmaps, (-1, height * width, channels))
        return ops.reshape(ops.softmax(flat, axis=1), (-1, height, width, channels))
    p_y = ops.softmax(ops.mean(heatmaps, axis=2), axis=1)  # [B, H, K]
    p_x = ops.softmax(ops.mean(heatmaps, axis=1), axis=1)  # [B, W, K]
    return p_y[:, :, None, :] * p_x[:, None, :, :]


def expected_keypoints(maps):
    """Expected pixel-centre coordinates of probability maps, `[B, H, W, K] -> [B, K, 2]`.

    `k^n = sum_u u * l^n_u` (paper eq. 1) with `u` the pixel centres of this module's
    convention; `maps` should sum to 1 per channel (see `spatial_softmax`).
    """
    _check_heatmaps(maps, "maps")
    maps = ops.cast(maps, "float32")
    height, width = maps.shape[1], maps.shape[2]
    p_x = ops.sum(maps, axis=1)  # [B, W, K]
    p_y = ops.sum(maps, axis=2)  # [B, H, K]
    x = ops.sum(p_x * pixel_centers(width)[None, :, None], axis=1)
    y = ops.sum(p_y * pixel_centers(height)[None, :, None], axis=1)
    return ops.stack([x, y], axis=-1)


def spatial_softmax_keypoints(heatmaps, mode="joint", temperature=1.0):
    """Soft-argmax: heatmap logits `[B, H, W, K]` -> keypoints `k_hat` `[B, K, 2]` float32.

    The expectation of the spatial softmax (`spatial_softmax` then `expected_keypoints`);
    `mode` is `"joint"` (paper eq. 1, default) or `"marginal"` (authors' code).
    """
    return expected_keypoints(spatial_softmax(heatmaps, mode=mode, temperature=temperature))


def gaussian_maps(keypoints, size, inv_std):
    """Gaussian maps `d_hat` of keypoints, `[B, K, 2] -> [B, h, w, K]` float32 (paper eq. 2).

    `d^n_u = exp(-|u - k^n|^2 * inv_std^2)` with `u` the pixel centres of an `h x w` map
    (`size` is an int for square maps or `(h, w)`), distances in [-1, 1] units. Unnormalised:
    the peak value is 1 at the keypoint (the authors' `exp(-d^2 * 14.3^2)`, i.e. the paper's
    eq. 2 up to its constant factor with `sigma = 1 / (sqrt(2) * inv_std)`).
    """
    g_x, g_y = gaussian_factors(keypoints, size, inv_std)
    maps = g_y[:, :, :, None] * g_x[:, :, None, :]  # [B, K, h, w]
    return ops.transpose(maps, (0, 2, 3, 1))


def gaussian_factors(keypoints, size, inv_std):
    """The two 1-D factors of `gaussian_maps`: `(g_x [B, K, w], g_y [B, K, h])` float32 with
    `d^n_(x, y) = g_x[n, x] g_y[n, y]`, since exp(-(dx^2 + dy^2) c) = exp(-dx^2 c) exp(-dy^2 c).
    """
    _check_keypoints(keypoints)
    if len(keypoints.shape) != 3:
        raise ValueError(f"keypoints must be [B, K, 2], got shape {tuple(keypoints.shape)}")
    if isinstance(size, numbers.Integral):
        height, width = int(size), int(size)
    else:
        height, width = (int(s) for s in size)
    keypoints = ops.cast(keypoints, "float32")
    inv_var = float(inv_std) ** 2
    dx = pixel_centers(width)[None, None, :] - keypoints[:, :, 0:1]  # [B, K, w]
    dy = pixel_centers(height)[None, None, :] - keypoints[:, :, 1:2]  # [B, K, h]
    return ops.exp(-ops.square(dx) * inv_var), ops.exp(-ops.square(dy) * inv_var)


def flip_keypoints_x(keypoints, permutation=None):
    """Keypoints of the horizontally mirrored image, `[..., K, 2] -> [..., K, 2]`.

    Mirroring maps pixel column `i` to `W - 1 - i`, i.e. `x -> -x` exactly in this
    convention. `permutation` (length-K sequence, optional) reorders the K axis afterwards,
    e.g. to swap left and right joints of a skeleton: `out[..., j, :] = flipped[..., p[j], :]`.
    """
    _check_keypoints(keypoints)
    flipped = ops.stack([-keypoints[..., 0], keypoints[..., 1]], axis=-1)
    if permutation is not None:
        permutation = [int(p) for p in permutation]
        if sorted(permutation) != list(range(keypoints.shape[-2])):
            raise ValueError(
                f"permutation must be a permutation of range({keypoints.shape[-2]}), "
                f"got {permutation}")
        flipped = ops.take(flipped, permutation, axis=-2)
    return flipped


def rotate_keypoints(keypoints, angle_rad, center=0.0):
    """Rotates keypoints by `angle_rad` about `center`, `[..., K, 2] -> [..., K, 2]`.

    `(x, y) -> c + R (k - c)` with `R = [[cos, -sin], [sin, cos]]` applied in image
    coordinates (x right, y down), so a POSITIVE angle turns CLOCKWISE on screen.
    `angle_rad`: scalar or tensor broadcastable to `keypoints[..., 0]` (e.g. `[B, 1]` for
    `[B, K, 2]`); `center`: scalar or broadcastable to `keypoints`. The rotation is in
    normalised coordinates, i.e. a rigid rotation of the picture for square images.
    """
    _check_keypoints(keypoints)
    keypoints = ops.convert_to_tensor(keypoints)
    dtype = keypoints.dtype
    angle = ops.cast(angle_rad, dtype)
    center = ops.cast(center, dtype)
    shifted = keypoints - center
    x, y = shifted[..., 0], shifted[..., 1]
    cos, sin = ops.cos(angle), ops.sin(angle)
    rotated = ops.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)
    return rotated + center


def scale_keypoints(keypoints, scale, center=0.0):
    """Scales keypoints about `center`: `c + scale * (k - c)`, `[..., K, 2] -> [..., K, 2]`.

    `scale`: scalar, or broadcastable to `keypoints` (`[B, 1, 1]` per example, `[..., 2]`
    for separate x / y factors); `center`: scalar or broadcastable to `keypoints`.
    """
    _check_keypoints(keypoints)
    keypoints = ops.convert_to_tensor(keypoints)
    dtype = keypoints.dtype
    center = ops.cast(center, dtype)
    return center + ops.cast(scale, dtype) * (keypoints - center)


# === Pixel coordinates and pixel matrices ===

def _height_width(size):
    """`(height, width)` from an int (square) or a `(height, width)` pair."""
    if isinstance(size, numbers.Integral):
        return size, size
    height, width = size
    return height, width


def keypoints_to_pixels(keypoints, size):
    """Keypoints `[..., 2]` -> continuous pixel coordinates `[..., 2]` float32 of a frame of
    `size` (int or `(height, width)`, ints or scalar tensors): `u = (x + 1) / 2 * W`, so
    column i spans [i, i + 1] and its centre is `u = i + 0.5`."""
    height, width = _height_width(size)
    keypoints = ops.cast(keypoints, "float32")
    scale = ops.stack([ops.cast(width, "float32"), ops.cast(height, "float32")])
    return (keypoints + 1.0) / 2.0 * scale


def pixels_to_keypoints(pixels, size):
    """Inverse of `keypoints_to_pixels`: continuous pixel coordinates `[..., 2]` of a frame of
    `size` (int or `(height, width)`) -> keypoints `[..., 2]` float32 in this convention."""
    height, width = _height_width(size)
    pixels = ops.cast(pixels, "float32")
    scale = ops.stack([ops.cast(width, "float32"), ops.cast(height, "float32")])
    return pixels / scale * 2.0 - 1.0


def pixel_indices_to_keypoints(xy, size):
    """Pixel INDICES `[..., 2]` (x = i at the centre of column i, as annotations such as Penn
    Action's joints are given) -> keypoints `[..., 2]`: `(2 * i + 1) / W - 1`, same for y."""
    return pixels_to_keypoints(ops.cast(xy, "float32") + 0.5, size)


def transform_keypoints(keypoints, matrix, input_size, output_size):
    """Moves keypoints `[..., K, 2]` of an `input_size` frame by the forward pixel `matrix`
    `[3, 3]` (the module docstring's canonical form) into an `output_size` frame.

    Sizes are ints (square) or `(height, width)`. Points that leave the output frame keep
    their out-of-range value.
    """
    keypoints = ops.convert_to_tensor(keypoints, "float32")
    _check_keypoints(keypoints)
    pixels = keypoints_to_pixels(keypoints, input_size)
    matrix = ops.cast(matrix, "float32")
    moved = ops.matmul(pixels, ops.transpose(matrix[:2, :2])) + matrix[:2, 2]
    return pixels_to_keypoints(moved, output_size)


def unit_to_pixel_matrix(unit_map, size):
    """A map of [-1, 1] units (`[2, 3]` or `[3, 3]`) -> the pixel matrix `N A N^-1` `[3, 3]`
    that moves the same points in pixel coordinates of a frame of `size`."""
    height, width = (float(v) for v in _height_width(size))
    unit_map = ops.cast(unit_map, "float32")
    if tuple(unit_map.shape) == (2, 3):
        unit_map = ops.concatenate([unit_map, ops.convert_to_tensor([[0.0, 0.0, 1.0]])], 0)
    norm = ops.convert_to_tensor([[width / 2, 0.0, width / 2], [0.0, height / 2, height / 2],
                                  [0.0, 0.0, 1.0]])
    inverse = ops.convert_to_tensor([[2 / width, 0.0, -1.0], [0.0, 2 / height, -1.0],
                                     [0.0, 0.0, 1.0]])
    return ops.matmul(ops.matmul(norm, unit_map), inverse)
