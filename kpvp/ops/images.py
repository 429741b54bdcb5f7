"""The one road from video pixels to the networks: model range and centre crop + resize.

Every path that feeds Q (the stage-1 pipelines, the readers, pseudo-labelling, evaluation,
generation, `predict` and the SavedModel) turns uint8 frames into network input with these
functions, so one video gives Q the same pixels whichever road it takes:

* model range: uint8 `v` <-> float32 `v / 127.5 - 1` in [-1, 1]. Back to uint8 rounds half to
  even and clips to [0, 255] (`to_uint8`), the one rounding rule of the project.
* crop + resize (`resize_crop`): the centre square of the frame is cut out first (side = the
  short side; the long side loses equal margins, the odd pixel at the bottom/right), then only
  that square is resized to S x S (bilinear, antialiased when shrinking: the triangle filter of
  PIL's BILINEAR) and rounded to uint8 (the data sets are cached as uint8, so every road
  quantises at the same place). Cropping first means the resize never reads the margins: a
  4096 x 1024 image costs a 1024 x 1024 resize, not a 4096 x 1024 one. A square frame already
  at the target size is returned unchanged.
* short-side resize (`resize_short_side`): the whole frame with its short side scaled to S,
  for the training pipelines, whose augmentation then crops at random.

The functions are TensorFlow ops: they take numpy arrays or tensors, run eagerly or inside a
`tf.function`/`tf.data` map, and return tensors. When H and W are static the crop is
`crop_geometry` (Python ints); when they are known only at run time (the SavedModel's
`[B, H, W, 3]` signature, `tf.data` maps over videos of any size) the same arithmetic runs on
tensors; tests/test_images.py checks that both give the same geometry and the same pixels.
The resize of a point rather than a pixel is `resize_crop_matrix` (a pixel matrix, the
canonical geometry of `kpvp.ops.keypoints`); `resize_with_keypoints` moves frames and their
keypoints together.
"""
import tensorflow as tf

from kpvp.ops import keypoints as keypoint_ops


# === Model range ===

def to_model_range(images) -> tf.Tensor:
    """uint8 (or float 0..255) `[...]` -> float32 `[...]` in [-1, 1]: `v / 127.5 - 1`."""
    # DivNoNan rather than `/`: Grappler turns a division by a constant into a multiplication
    # by its reciprocal, which can differ in the last bit from the eager division.
    return tf.math.divide_no_nan(tf.cast(images, tf.float32), 127.5) - 1.0


def round_to_uint8(pixels) -> tf.Tensor:
    """float `[...]` on the 0..255 scale -> uint8: rounded half to even, clipped to [0, 255]."""
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(pixels, tf.float32)), 0.0, 255.0),
                   tf.uint8)


def to_uint8(images) -> tf.Tensor:
    """float `[...]` in [-1, 1] -> uint8 `[...]`: `round((x + 1) * 127.5)`, clipped."""
    return round_to_uint8((tf.cast(images, tf.float32) + 1.0) * 127.5)


# === Centre crop and resize ===

def crop_geometry(height: int, width: int):
    """`(top, left, side)` of `resize_crop`'s crop: the centre `side x side` square of a
    `height x width` frame, `side = min(height, width)` (the long side loses equal margins,
    the odd pixel at the bottom/right)."""
    if min(height, width) < 1:
        raise ValueError(f"sizes must be >= 1, got height={height}, width={width}")
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def _crop_geometry_tensors(height, width):
    """`crop_geometry` on int32 scalar tensors (run-time shapes)."""
    side = tf.minimum(height, width)
    return (height - side) // 2, (width - side) // 2, side


def short_side_geometry(height: int, width: int, size: int):
    """`(new_height, new_width)` of `resize_short_side`: the short side scaled to `size`, the
    long one rounded (half to even, at least `size`)."""
    if min(height, width, size) < 1:
        raise ValueError(f"sizes must be >= 1, got height={height}, width={width}, size={size}")
    scale = size / min(height, width)
    new_h = size if height <= width else max(size, int(round(height * scale)))
    new_w = size if width <= height else max(size, int(round(width * scale)))
    return new_h, new_w


def _static_hw(frames):
    height, width = frames.shape[1], frames.shape[2]
    return (height, width) if height is not None and width is not None else None


def _check_frames(frames):
    frames = tf.convert_to_tensor(frames)
    if frames.shape.rank != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3], got shape {tuple(frames.shape)}")
    return frames


def resize_short_side(frames, size: int) -> tf.Tensor:
    """uint8 `[N, H, W, 3]` -> uint8 `[N, H', W', 3]` with min(H', W') == size (aspect kept).

    Bilinear, antialiased when shrinking; unchanged when the short side is already `size`.
    Needs a static H and W (see `resize_crop` for run-time shapes).
    """
    frames = _check_frames(frames)
    hw = _static_hw(frames)
    if hw is None:
        raise ValueError("resize_short_side needs a static height and width; use resize_crop")
    new_h, new_w = short_side_geometry(hw[0], hw[1], int(size))
    if (new_h, new_w) == hw:
        return tf.cast(frames, tf.uint8)
    return round_to_uint8(tf.image.resize(frames, (new_h, new_w), antialias=True))


def center_crop(frames, size: int) -> tf.Tensor:
    """The centre `size x size` square of `[N, H, W, C]` (H, W >= size) -> `[N, S, S, C]`.

    The long side loses equal margins, the odd pixel at the bottom/right.
    """
    frames = tf.convert_to_tensor(frames)
    shape = tf.shape(frames)
    top, left = (shape[1] - size) // 2, (shape[2] - size) // 2
    cropped = frames[:, top:top + size, left:left + size, :]
    return tf.ensure_shape(cropped, [frames.shape[0], size, size, frames.shape[-1]])


def _resize_square(square, size: int) -> tf.Tensor:
    """`[N, C, C, 3]` -> uint8 `[N, S, S, 3]`: bilinear, antialiased when shrinking, rounded."""
    return round_to_uint8(tf.image.resize(square, (size, size), antialias=True))


def resize_crop(frames, size: int) -> tf.Tensor:
    """uint8 `[N, H, W, 3]` of any size -> uint8 `[N, S, S, 3]`: the centre square
    (`crop_geometry`) cut out first, then only that square resized to S x S (S = `size`), so
    the resize never reads (or allocates for) the margins. H and W may be known only at run
    time (then the geometry is computed in the graph, with the same result)."""
    frames = _check_frames(frames)
    size = int(size)
    hw = _static_hw(frames)
    if hw is not None:
        top, left, side = crop_geometry(*hw)
        square = tf.cast(frames[:, top:top + side, left:left + side, :], tf.uint8)
        return square if side == size else _resize_square(square, size)
    frames = tf.ensure_shape(frames, [None, None, None, 3], name="frames_must_be_N_H_W_3")
    shape = tf.shape(frames)
    top, left, side = _crop_geometry_tensors(shape[1], shape[2])
    square = tf.cast(frames[:, top:top + side, left:left + side, :], tf.uint8)
    # No resize when the square is already S x S, as in the static case.
    out = tf.cond(tf.equal(side, size), lambda: square, lambda: _resize_square(square, size))
    return tf.ensure_shape(out, [frames.shape[0], size, size, 3])


def model_input(frames, size: int) -> tf.Tensor:
    """uint8 `[N, H, W, 3]` of any size -> float32 `[N, S, S, 3]` in [-1, 1]: what Q, T and
    the SavedModel take (`to_model_range(resize_crop(frames, size))`)."""
    return to_model_range(resize_crop(frames, size))


def resize_crop_matrix(height, width, size: int, crop: bool = True) -> tf.Tensor:
    """Forward 3x3 pixel matrix of `resize_crop` (`resize_short_side` without `crop`).

    Maps continuous pixel coordinates of the `height x width` input (column i spans
    [i, i + 1]) to those of the output: the crop shifts by (-left, -top), the resize maps the
    square (or, without `crop`, the frame) onto the output corner to corner. Ints or int32
    scalar tensors -> float32 `[3, 3]`; with `kpvp.ops.keypoints.transform_keypoints` it moves
    keypoints along with the pixels.
    """
    static = isinstance(height, int) and isinstance(width, int)
    if crop:
        top, left, side = (crop_geometry(height, width) if static
                           else _crop_geometry_tensors(height, width))
        sx = sy = tf.cast(size, tf.float32) / tf.cast(side, tf.float32)
        shift_x, shift_y = -sx * tf.cast(left, tf.float32), -sy * tf.cast(top, tf.float32)
    elif static:
        new_h, new_w = short_side_geometry(height, width, int(size))
        sx = tf.cast(new_w, tf.float32) / tf.cast(width, tf.float32)
        sy = tf.cast(new_h, tf.float32) / tf.cast(height, tf.float32)
        shift_x = shift_y = tf.zeros_like(sx)
    else:
        raise ValueError("resize_crop_matrix: crop=False needs int height and width")
    zero, one = tf.zeros_like(sx), tf.ones_like(sx)
    return tf.stack([tf.stack([sx, zero, shift_x]),
                     tf.stack([zero, sy, shift_y]),
                     tf.stack([zero, zero, one])])


def resize_with_keypoints(frames, size: int, keypoints=None, crop: bool = True):
    """`resize_crop` (or, without `crop`, `resize_short_side`) of uint8 `[N, H, W, 3]`, with
    keypoints `[N, K, 2]` of the input frames (optional) moved to the output's coordinates.

    Returns `(frames, keypoints)` tensors (keypoints None when not given); points cropped
    away end up outside [-1, 1].
    """
    frames = _check_frames(frames)
    hw = _static_hw(frames) or (tf.shape(frames)[1], tf.shape(frames)[2])
    out = (resize_crop if crop else resize_short_side)(frames, size)
    if keypoints is None:
        return out, None
    matrix = resize_crop_matrix(hw[0], hw[1], size, crop)
    out_hw = _static_hw(out) or (tf.shape(out)[1], tf.shape(out)[2])
    return out, keypoint_ops.transform_keypoints(keypoints, matrix, hw, out_hw)
