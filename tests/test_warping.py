"""kpvp.ops.warping: bilinear sampling and the keypoint-driven warp of the source image."""
import numpy as np
import pytest
import tensorflow as tf

from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping


def np_(x):
    return np.asarray(x)


def grid(size):
    centres = np_(kp_ops.pixel_centers(size))
    gx, gy = np.meshgrid(centres, centres)
    return np.stack([gx, gy], axis=-1)[None].astype(np.float32)


def test_sampling_at_the_pixel_centres_returns_the_image():
    images = np.random.default_rng(0).random((2, 6, 6, 3), np.float32)
    out = warping.bilinear_sample(images, np.repeat(grid(6), 2, axis=0))
    np.testing.assert_allclose(np_(out), images, atol=1e-6)


def test_sampling_between_pixels_interpolates_and_clamps_at_the_border():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)  # value = 4 * row + col
    # Centre of column c is x = (2c + 1) / 4 - 1; row r likewise.
    def at(col, row):
        return [(2 * col + 1) / 4 - 1, (2 * row + 1) / 4 - 1]
    coords = np.array([[[at(0.5, 0), at(1, 2.25), at(-3, 1), at(1, 9)]]], np.float32)
    out = np_(warping.bilinear_sample(image, coords))[0, 0, :, 0]
    # Halfway between columns 0 and 1 of row 0; a quarter below row 2; beyond the left edge
    # (column 0 of row 1); beyond the bottom (row 3 of column 1).
    np.testing.assert_allclose(out, [0.5, 4 * 2.25 + 1, 4, 13], atol=1e-5)


def test_sampling_is_differentiable_in_the_coordinates():
    image = tf.constant(np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1))
    coords = tf.Variable([[[[-0.5, -0.5]]]])  # the centre of pixel (col 0.5, row 0.5)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(warping.bilinear_sample(image, coords))
    grad = tape.gradient(value, coords).numpy().ravel()
    # d value / d x = 1 per column * 2 columns per unit of x; d value / d y = 4 * 2.
    np.testing.assert_allclose(grad, [2.0, 8.0], rtol=1e-5)


def test_no_motion_leaves_the_image_unchanged():
    rng = np.random.default_rng(1)
    images = rng.random((2, 8, 8, 3), np.float32)
    kp = rng.uniform(-0.8, 0.8, (2, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(np_(warping.keypoint_warp(images, kp, kp, 10.0, 0.01)), images,
                               atol=1e-6)


def test_the_flow_is_the_weighted_mean_of_the_keypoint_shifts():
    """The module docstring's formula in numpy, keypoint by keypoint, on a 6 x 6 grid."""
    rng = np.random.default_rng(5)
    source_kp = rng.uniform(-1, 1, (2, 3, 2)).astype(np.float32)
    target_kp = rng.uniform(-1, 1, (2, 3, 2)).astype(np.float32)
    inv_std, background, size = 2.0, 0.3, 6
    centres = (2 * np.arange(size) + 1) / size - 1
    grid = np.stack(np.meshgrid(centres, centres), axis=-1)  # [h, w, (x, y)]
    expected = np.empty((2, size, size, 2))
    for b in range(2):
        g = np.exp(-np.sum((grid[:, :, None] - target_kp[b]) ** 2, -1) * inv_std ** 2)
        weights = g / (g.sum(-1, keepdims=True) + background)  # [h, w, K]
        expected[b] = grid + weights @ (source_kp[b] - target_kp[b])
    flow = np_(warping.keypoint_flow(source_kp, target_kp, size, inv_std, background))
    np.testing.assert_allclose(flow, expected, atol=1e-5)


def test_keypoints_moving_together_move_the_image_with_them():
    """All keypoints one pixel further left in the target: every pixel moves one pixel left."""
    rng = np.random.default_rng(2)
    images = rng.random((1, 8, 8, 3), np.float32)
    source_kp = rng.uniform(-0.5, 0.5, (1, 4, 2)).astype(np.float32)
    target_kp = source_kp - np.array([2 / 8, 0], np.float32)
    # A wide reach and a negligible background: the flow is the keypoints' common shift.
    out = np_(warping.keypoint_warp(images, source_kp, target_kp, 0.01, 1e-6))
    np.testing.assert_allclose(out[:, :, :-1], images[:, :, 1:], atol=1e-5)
    np.testing.assert_allclose(out[:, :, -1], images[:, :, -1], atol=1e-5)  # border repeated


def test_a_moving_blob_lands_on_its_target_and_the_still_background_stays():
    """One keypoint on a bright square moves 4 px right and 2 px down; far pixels stay put."""
    size = 32
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, 8:12, 8:12] = 1.0  # rows 8-11, columns 8-11: centre at pixel 10 - 0.5
    image[0, 28:, 28:] = 0.5  # a background mark far away
    centre = (2 * 9.5 + 1) / size - 1
    source_kp = np.array([[[centre, centre]]], np.float32)
    target_kp = source_kp + np.array([4, 2], np.float32) * 2 / size
    out = np_(warping.keypoint_warp(image, source_kp, target_kp, 4.0, 0.001))[0, ..., 0]
    np.testing.assert_allclose(out[10:14, 12:16], 1.0, atol=0.01)  # the square, moved
    np.testing.assert_allclose(out[28:, 28:], 0.5, atol=1e-3)  # the mark, still
    rows, cols = np.nonzero(out > 0.5)
    assert rows.mean() == pytest.approx(11.5, abs=0.3) and cols.mean() == pytest.approx(
        13.5, abs=0.3)


def test_the_warp_passes_gradients_to_both_keypoint_sets():
    image = tf.constant(np.random.default_rng(3).random((1, 16, 16, 3), np.float32))
    source_kp = tf.Variable([[[0.1, -0.2], [-0.4, 0.3]]])
    target_kp = tf.Variable([[[0.2, -0.1], [-0.3, 0.2]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(warping.keypoint_warp(image, source_kp, target_kp, 5.0,
                                                           0.1) - 0.5))
    grads = tape.gradient(loss, [source_kp, target_kp])
    assert all(g is not None and np.abs(g.numpy()).min() > 0 for g in grads)


def test_bad_arguments_are_named():
    images = np.zeros((1, 8, 8, 3), np.float32)
    kp = np.zeros((1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="background"):
        warping.keypoint_warp(images, kp, kp, 10.0, 0.0)
    with pytest.raises(ValueError, match="square"):
        warping.keypoint_warp(np.zeros((1, 8, 6, 3), np.float32), kp, kp, 10.0, 0.01)
    with pytest.raises(ValueError, match="coords"):
        warping.bilinear_sample(images, np.zeros((1, 8, 8, 3), np.float32))


def test_affine_matrices_rotate_scale_and_shift_points():
    # A quarter turn scaled by 2 then shifted: (x, y) -> 2 (-y, x) + (0.1, -0.2).
    a = warping.affine_matrices([np.pi / 2], [2.0], [[0.1, -0.2]])
    points = np.array([[[0.25, 0.0], [0.0, 0.25], [0.0, 0.0]]], np.float32)
    expected = [[[0.1, 0.3], [-0.4, -0.2], [0.1, -0.2]]]
    np.testing.assert_allclose(np_(warping.apply_affine(points, a)), expected, atol=1e-6)


def test_affine_warp_shows_at_u_what_the_image_has_at_a_of_u():
    size = 32
    identity = warping.affine_matrices([0.0], [1.0], [[0.0, 0.0]])
    image = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(np_(warping.affine_warp(image, identity)), image, atol=1e-5)
    # A bright pixel at p: through A it shows at the pixel u whose A(u) is p.
    a = warping.affine_matrices([np.radians(30.0)], [0.9], [[0.15, -0.1]])
    image = np.zeros((1, size, size, 1), np.float32)
    row, col = 10, 21
    image[0, row, col] = 1.0
    p = np_(kp_ops.pixel_centers(size))[[col, row]]
    warped = np_(warping.affine_warp(image, a))[0, ..., 0]
    i, j = np.unravel_index(warped.argmax(), warped.shape)
    u = np_(kp_ops.pixel_centers(size))[[j, i]].reshape(1, 1, 2)
    assert np.abs(np_(warping.apply_affine(u, a))[0, 0] - p).max() < 2.0 / size


def test_affine_warp_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        warping.affine_warp(np.zeros((1, 8, 6, 3), np.float32),
                            warping.affine_matrices([0.0], [1.0], [[0.0, 0.0]]))
