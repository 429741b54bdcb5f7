"""Data augmentation as TensorFlow ops: stage-1 image pairs and stage-2 keypoint sequences.

Everything here is a pure TensorFlow function that runs inside a `tf.data` map (graph mode) and
draws its randomness from stateless ops keyed by an explicit `seed` (an int tensor of shape
[2]), so a parallel pipeline gives the same numbers for the same seed whatever the thread order.

Stage 1 (Q + T training pairs; the authors' release, see PAPER_NOTES.md):
  * Geometric, identical for both frames of a pair and for their joints: horizontal flip,
    rotation by U[-rotate_degrees, rotate_degrees] about the image centre, resize of the short
    side to `output_size` times a zoom U[1, zoom_max], random crop to `output_size` x
    `output_size`. The four steps are composed into ONE projective transform and applied with a
    single bilinear resampling (`tf.raw_ops.ImageProjectiveTransformV3`), which saves time and
    avoids blurring the frame once per step. The authors' release has no zoom (zoom_max = 1)
    and rotates with PIL, which paints the corners the rotation brings in black: fill_mode
    "CONSTANT" (zero). Ours, used by the tiny config: zoom_max 1.1 and fill_mode "REFLECT",
    which continues the background instead of painting a static pattern the keypoint detector
    could lock onto.
  * Photometric: one of the ten PIL filters of the authors' release, chosen uniformly per pair,
    the same filter and factor on both frames (a pair differs only by the motion the translator
    has to explain; the contrast and sharpness filters still look at each frame's own mean and
    blur, exactly as PIL does on each image). The six `ImageFilter` kernels reproduce PIL's
    border rule (the outer 1 (3x3) or 2 (5x5) pixel rows and columns are copied unchanged); the
    four `ImageEnhance` ones blend with PIL's degenerate images and round those degenerate
    images to integers as PIL does. Outputs are kept in float (no final rounding), so after
    rounding they match Pillow up to 1 level (PIL truncates its blends and works in float32).

Stage 2 (motion generator M training sequences): rotation by U[-15, 15] degrees, flip x and
scaling by U[0.7, 1.2], one draw per sequence, applied to every frame. The authors' release
(data/sequence_dataloader.py) rotates, flips and scales in that order about the image centre
(0, 0) and does not clip. Ours, used by the tiny config (`about_centroid`, `clip`): flip first,
then rotate and scale about the centroid of the flipped FIRST frame's keypoints, so the figure
keeps its place in the frame, and clip to [-1, 1], where the detector's keypoints always lie.
The flip mirrors about the image's vertical axis (x -> -x, what mirroring the video would do).

Coordinates follow the project convention: keypoints and joints are (x, y) in [-1, 1] with
(-1, -1) the top-left CORNER of the top-left pixel. The geometric transform is a forward 3x3
pixel matrix, the canonical geometry of `kpvp.ops.keypoints` (continuous pixel coordinates
u = (x + 1) / 2 * W, pixel column i spans [i, i + 1]; `keypoint_ops.transform_keypoints` moves
the joints by it); TF's projective transform addresses pixel centres by integer index, i.e.
index = u - 0.5.
Angles: positive = CLOCKWISE as seen on screen, the project's convention of
`kpvp.ops.keypoints.rotate_keypoints` (the matrix [[cos, -sin], [sin, cos]] in y-down
coordinates); the random angles are symmetric, so only the tests see the direction.
"""
import math

import tensorflow as tf

from kpvp.ops import images as image_ops
from kpvp.ops import keypoints as keypoint_ops

# Names in the order of the authors' release; `pil_filter_by_index` uses this order.
PIL_FILTERS = ("DETAIL", "EDGE_ENHANCE", "SMOOTH", "SMOOTH_MORE", "EDGE_ENHANCE_MORE", "BLUR",
               "SHARPNESS", "BRIGHTNESS", "COLOR", "CONTRAST")
# Factor ranges of the four ImageEnhance filters (authors' release).
ENHANCE_RANGES = {
    "SHARPNESS": (0.0, 5.0),
    "BRIGHTNESS": (0.7, 2.0),
    "COLOR": (0.0, 5.0),
    "CONTRAST": (0.7, 3.0),
}
# PIL ImageFilter built-in kernels: (size, scale, offset, weights row by row).
_KERNELS = {
    "DETAIL": (3, 6, 0, (0, -1, 0, -1, 10, -1, 0, -1, 0)),
    "EDGE_ENHANCE": (3, 2, 0, (-1, -1, -1, -1, 10, -1, -1, -1, -1)),
    "EDGE_ENHANCE_MORE": (3, 1, 0, (-1, -1, -1, -1, 9, -1, -1, -1, -1)),
    "SMOOTH": (3, 13, 0, (1, 1, 1, 1, 5, 1, 1, 1, 1)),
    "SMOOTH_MORE": (5, 100, 0, (1, 1, 1, 1, 1, 1, 5, 5, 5, 1, 1, 5, 44, 5, 1,
                                1, 5, 5, 5, 1, 1, 1, 1, 1, 1)),
    "BLUR": (5, 16, 0, (1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1,
                        1, 0, 0, 0, 1, 1, 1, 1, 1, 1)),
}
# PIL's RGB -> 'L' weights (ITU-R 601-2 luma, 299/587/114) in its 16-bit fixed point.
_LUMA_FIXED = (19595.0, 38470.0, 7471.0)


# === Seeds ===

def split_seed(seed, num: int):
    """Splits a stateless seed `[2]` into `num` independent seeds `[num, 2]` (int64)."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.random.experimental.stateless_split(seed, num=num)


# === Geometry ===

def _translation(tx, ty):
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return tf.stack([tf.stack([one, zero, tx]), tf.stack([zero, one, ty]),
                     tf.stack([zero, zero, one])])


def geometric_matrix(input_height, input_width, output_size: int, angle, flip, zoom, crop_x,
                     crop_y):
    """Forward 3x3 matrix of flip -> rotate -> resize -> crop, in continuous pixel coordinates.

    Maps a point (u, v, 1) of the input frame (pixel column i spans [i, i + 1]) to the output
    `output_size` x `output_size` crop. Steps, in this order (the authors' release rotates,
    resizes, crops, then flips: the same distribution, as angles and crops are symmetric):
      flip: u -> W - u when `flip` is true;
      rotate by `angle` radians (clockwise on screen) about the frame centre;
      scale by s = output_size * zoom / min(H, W), so the short side becomes
        output_size * zoom (zoom >= 1);
      crop: shift by -crop_x * (s W - output_size), -crop_y * (s H - output_size), crop_x and
        crop_y in [0, 1] (0.5 = centre crop).
    All arguments are scalars (tensors or numbers); returns float32 [3, 3].
    """
    h = tf.cast(input_height, tf.float32)
    w = tf.cast(input_width, tf.float32)
    angle = tf.cast(angle, tf.float32)
    zoom = tf.cast(zoom, tf.float32)
    size = tf.cast(output_size, tf.float32)
    one, zero = tf.ones_like(h), tf.zeros_like(h)

    sign = tf.where(tf.cast(flip, tf.bool), -one, one)
    flip_m = tf.stack([tf.stack([sign, zero, (one - sign) / 2.0 * w]),
                       tf.stack([zero, one, zero]), tf.stack([zero, zero, one])])
    cos, sin = tf.cos(angle), tf.sin(angle)
    rot = tf.stack([tf.stack([cos, -sin, zero]), tf.stack([sin, cos, zero]),
                    tf.stack([zero, zero, one])])
    rotate_m = _translation(w / 2.0, h / 2.0) @ rot @ _translation(-w / 2.0, -h / 2.0)
    s = size * zoom / tf.minimum(h, w)
    scale_m = tf.stack([tf.stack([s, zero, zero]), tf.stack([zero, s, zero]),
                        tf.stack([zero, zero, one])])
    crop_m = _translation(-tf.cast(crop_x, tf.float32) * (s * w - size),
                          -tf.cast(crop_y, tf.float32) * (s * h - size))
    return crop_m @ scale_m @ rotate_m @ flip_m


def warp_images(images, matrix, output_size: int, fill_mode: str = "CONSTANT"):
    """Resamples `images` [N, H, W, C] (float) by the forward pixel matrix `matrix` [3, 3].

    Bilinear, one resampling for the whole flip/rotate/resize/crop chain. Pixels from outside
    the frame: `fill_mode` "CONSTANT" (black, as PIL's rotate) or "REFLECT". Returns float32
    [N, output_size, output_size, C].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    # The op wants output -> input in pixel-centre index coordinates (index = u - 0.5).
    to_centres = _translation(tf.constant(-0.5), tf.constant(-0.5))
    from_centres = _translation(tf.constant(0.5), tf.constant(0.5))
    inverse = to_centres @ tf.linalg.inv(tf.cast(matrix, tf.float32)) @ from_centres
    inverse = inverse / inverse[2, 2]
    transform = tf.reshape(inverse, [9])[:8][tf.newaxis]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transform,
        output_shape=tf.constant([output_size, output_size], tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode=fill_mode)
    channels = images.shape[-1]
    return tf.ensure_shape(out, [None, output_size, output_size, channels])


def sample_geometric(seed, input_height, input_width, output_size: int,
                     rotate_degrees: float = 10.0, flip: bool = True,
                     zoom_max: float = 1.0):
    """Draws one random flip/rotate/zoom/crop and returns its forward matrix float32 [3, 3]."""
    u = tf.random.stateless_uniform([5], seed=seed)
    angle = (2.0 * u[0] - 1.0) * (rotate_degrees * math.pi / 180.0)
    do_flip = tf.logical_and(tf.constant(bool(flip)), u[1] < 0.5)
    zoom = 1.0 + u[2] * (zoom_max - 1.0)
    return geometric_matrix(input_height, input_width, output_size, angle, do_flip, zoom,
                            u[3], u[4])


# === PIL filters ===

def _luma(images):
    """PIL's RGB -> 'L' conversion, rounded as PIL does: [..., 3] -> [..., 1] (0..255 floats)."""
    weights = tf.constant(_LUMA_FIXED, tf.float32)
    return tf.floor(tf.reduce_sum(images * weights, axis=-1, keepdims=True) / 65536.0 + 0.5)


def kernel_filter(images, name: str):
    """One of PIL's built-in `ImageFilter` kernels on `images` [N, H, W, 3] (float, 0..255).

    `name` is one of DETAIL, EDGE_ENHANCE, EDGE_ENHANCE_MORE, SMOOTH, SMOOTH_MORE, BLUR.
    Like PIL, the outer (size // 2) rows and columns are copied from the input unfiltered.
    Returns float32 [N, H, W, 3], clipped to [0, 255], not rounded.
    """
    if name not in _KERNELS:
        raise ValueError(f"kernel_filter: unknown name {name!r}; expected one of "
                         f"{', '.join(_KERNELS)}")
    size, scale, offset, weights = _KERNELS[name]
    images = tf.convert_to_tensor(images, tf.float32)
    kernel = tf.constant(weights, tf.float32) / float(scale)
    kernel = tf.tile(tf.reshape(kernel, [size, size, 1, 1]), [1, 1, images.shape[-1], 1])
    inner = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "VALID") + float(offset)
    r = size // 2
    pads = [[0, 0], [r, r], [r, r], [0, 0]]
    inner = tf.pad(inner, pads)
    mask = tf.pad(tf.ones_like(inner[:, r:-r, r:-r, :1]), pads)
    return tf.clip_by_value(mask * inner + (1.0 - mask) * images, 0.0, 255.0)


def _blend(degenerate, images, factor):
    """PIL `Image.blend(degenerate, image, factor)` without the final truncation."""
    return tf.clip_by_value(degenerate + factor * (images - degenerate), 0.0, 255.0)


def enhance(images, name: str, factor):
    """One of PIL's `ImageEnhance` filters on `images` [N, H, W, 3] (float, 0..255).

    `name`: SHARPNESS (blend with the SMOOTH-filtered image), BRIGHTNESS (with black), COLOR
    (with the grayscale image), CONTRAST (with the image's mean gray level, one per image).
    `factor` is a scalar; 1 returns the input. Returns float32 [N, H, W, 3] clipped to [0, 255].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    factor = tf.cast(factor, tf.float32)
    if name == "SHARPNESS":
        degenerate = tf.floor(kernel_filter(images, "SMOOTH") + 0.5)
    elif name == "BRIGHTNESS":
        degenerate = tf.zeros_like(images)
    elif name == "COLOR":
        degenerate = tf.broadcast_to(_luma(images), tf.shape(images))
    elif name == "CONTRAST":
        mean = tf.reduce_mean(_luma(images), axis=[1, 2, 3], keepdims=True)
        degenerate = tf.broadcast_to(tf.floor(mean + 0.5), tf.shape(images))
    else:
        raise ValueError(f"enhance: unknown name {name!r}; expected one of "
                         f"{', '.join(ENHANCE_RANGES)}")
    return _blend(degenerate, images, factor)


def pil_filter(images, name: str, factor=1.0):
    """Applies the PIL filter `name` (see `PIL_FILTERS`); `factor` is used by the enhancers."""
    if name in _KERNELS:
        return kernel_filter(images, name)
    return enhance(images, name, factor)


def pil_filter_by_index(images, index, factor):
    """Graph-friendly `pil_filter` with the filter chosen by an int tensor `index` in [0, 10)."""
    branches = [lambda name=name: pil_filter(images, name, factor) for name in PIL_FILTERS]
    out = tf.switch_case(tf.cast(index, tf.int32), branches)
    return tf.ensure_shape(out, images.shape)


def sample_photometric(seed):
    """Draws (filter index int32 in [0, 10), factor float32 in that filter's range)."""
    u = tf.random.stateless_uniform([2], seed=seed)
    index = tf.minimum(tf.cast(u[0] * len(PIL_FILTERS), tf.int32), len(PIL_FILTERS) - 1)
    low = tf.constant([ENHANCE_RANGES.get(n, (1.0, 1.0))[0] for n in PIL_FILTERS], tf.float32)
    high = tf.constant([ENHANCE_RANGES.get(n, (1.0, 1.0))[1] for n in PIL_FILTERS], tf.float32)
    factor = tf.gather(low, index) + u[1] * (tf.gather(high, index) - tf.gather(low, index))
    return index, factor


# === Stage 1: a pair of frames ===

def augment_pair(frames, seed, output_size: int, joints=None, rotate_degrees: float = 10.0,
                 flip: bool = True, pil_filters: bool = True,
                 zoom_max: float = 1.0, fill_mode: str = "CONSTANT"):
    """Augments a stage-1 pair (source s, target v) identically.

    Args:
      frames: [2, H, W, 3] uint8 (or float 0..255): the source and target frames.
      seed: int [2] stateless seed.
      output_size: S, the side of the square output.
      joints: optional float32 [2, J, 2] in [-1, 1] of the input frames.
      rotate_degrees, flip, pil_filters, zoom_max, fill_mode: see the module docstring.
    Returns:
      `(images, joints)`: images float32 [2, S, S, 3] in [-1, 1]; joints float32 [2, J, 2] in
      the output crop's coordinates (None when not given).
    """
    frames = tf.convert_to_tensor(frames)
    shape = tf.shape(frames)
    seeds = split_seed(seed, 2)
    matrix = sample_geometric(seeds[0], shape[1], shape[2], output_size, rotate_degrees, flip,
                              zoom_max)
    images = warp_images(tf.cast(frames, tf.float32), matrix, output_size, fill_mode)
    images = tf.clip_by_value(images, 0.0, 255.0)
    if pil_filters:
        index, factor = sample_photometric(seeds[1])
        images = pil_filter_by_index(images, index, factor)
    if joints is not None:
        joints = keypoint_ops.transform_keypoints(joints, matrix, (shape[1], shape[2]),
                                                  output_size)
    return image_ops.to_model_range(images), joints


# === Stage 2: keypoint sequences ===

def transform_keypoint_sequence(keypoints, angle, flip, scale, about_centroid: bool = False,
                                clip: bool = False):
    """Rotates, flips and scales a keypoint sequence, as in the module docstring.

    Args:
      keypoints: float32 [T, K, 2], (x, y) in [-1, 1].
      angle: scalar radians (clockwise on screen).
      flip: scalar bool, mirror x -> -x.
      scale: scalar factor.
      about_centroid: False (authors): rotate, flip, then scale about the image centre (0, 0).
        True (ours): flip first, then rotate and scale about the centroid of the flipped frame 0.
      clip: clip the result to [-1, 1] (ours; the authors do not).
    Returns float32 [T, K, 2].
    """
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    flip = tf.cast(flip, tf.bool)
    if about_centroid:
        keypoints = tf.where(flip, keypoint_ops.flip_keypoints_x(keypoints), keypoints)
        centre = tf.reduce_mean(keypoints[0], axis=0)
        moved = keypoint_ops.rotate_keypoints(keypoints, angle, center=centre)
        moved = keypoint_ops.scale_keypoints(moved, scale, center=centre)
    else:
        moved = keypoint_ops.rotate_keypoints(keypoints, angle)
        moved = tf.where(flip, keypoint_ops.flip_keypoints_x(moved), moved)
        moved = keypoint_ops.scale_keypoints(moved, scale)
    return tf.clip_by_value(moved, -1.0, 1.0) if clip else moved


def augment_keypoint_sequence(keypoints, seed, rotate_degrees: float = 15.0,
                              scale_range=(0.7, 1.2), flip: bool = True,
                              about_centroid: bool = False, clip: bool = False):
    """Stage-2 augmentation with one random draw per sequence: [T, K, 2] -> [T, K, 2]."""
    u = tf.random.stateless_uniform([3], seed=seed)
    angle = (2.0 * u[0] - 1.0) * (rotate_degrees * math.pi / 180.0)
    do_flip = tf.logical_and(tf.constant(bool(flip)), u[1] < 0.5)
    low, high = scale_range
    scale = low + u[2] * (high - low)
    return transform_keypoint_sequence(keypoints, angle, do_flip, scale, about_centroid, clip)
