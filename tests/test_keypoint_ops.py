"""kpvp.ops.keypoints: the coordinate convention, soft-argmax, gaussian maps, transforms."""
import math

import numpy as np
import pytest

from kpvp.data import augment
from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping


def np_(x):
    return np.asarray(x)


def centre(index, size):
    """The pixel-corner convention written out: centre of pixel `index` of `size`."""
    return (2 * index + 1) / size - 1


# === pixel_centers ===

def test_pixel_centers_follow_the_corner_convention():
    np.testing.assert_allclose(np_(kp_ops.pixel_centers(2)), [-0.5, 0.5])
    np.testing.assert_allclose(np_(kp_ops.pixel_centers(4)), [-0.75, -0.25, 0.25, 0.75])
    centres = np_(kp_ops.pixel_centers(128))
    assert centres[0] == pytest.approx(-1 + 1 / 128) and centres[-1] == pytest.approx(1 - 1 / 128)
    # The four 128-map pixels inside 32-map pixel k average to its centre: the maps line up.
    fine = np_(kp_ops.pixel_centers(128)).reshape(32, 4).mean(axis=1)
    np.testing.assert_allclose(fine, np_(kp_ops.pixel_centers(32)), atol=1e-6)
    with pytest.raises(ValueError, match="size"):
        kp_ops.pixel_centers(0)


# === soft-argmax ===

@pytest.mark.parametrize("mode", ["joint", "marginal"])
@pytest.mark.parametrize("height,width", [(8, 8), (6, 10), (16, 5)])
def test_sharp_peak_gives_that_pixels_centre(mode, height, width):
    positions = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1),
                 (height // 2, width // 3)]
    heatmaps = np.zeros((1, height, width, len(positions)), np.float32)
    for k, (row, col) in enumerate(positions):
        # The marginal mode averages logits over a row first, so the peak must beat W x 20.
        heatmaps[0, row, col, k] = 1e4
    keypoints = np_(kp_ops.spatial_softmax_keypoints(heatmaps, mode=mode))
    expected = [[centre(col, width), centre(row, height)] for row, col in positions]
    np.testing.assert_allclose(keypoints[0], expected, atol=1e-5)


def test_uniform_heatmap_gives_the_image_centre():
    keypoints = np_(kp_ops.spatial_softmax_keypoints(np.zeros((2, 7, 12, 3), np.float32)))
    np.testing.assert_allclose(keypoints, np.zeros((2, 3, 2)), atol=1e-6)


def test_joint_and_marginal_modes_match_their_formulas():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 6, 3)).astype(np.float32) * 3
    xs, ys = np_(kp_ops.pixel_centers(6)), np_(kp_ops.pixel_centers(5))

    def softmax(v, axis):
        e = np.exp(v - v.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    joint = softmax(logits.reshape(2, 30, 3), axis=1).reshape(2, 5, 6, 3)
    expected_joint = np.stack([np.einsum("bhwk,w->bk", joint, xs),
                               np.einsum("bhwk,h->bk", joint, ys)], axis=-1)
    np.testing.assert_allclose(np_(kp_ops.spatial_softmax_keypoints(logits, "joint")),
                               expected_joint, atol=1e-5)
    np.testing.assert_allclose(np_(kp_ops.spatial_softmax(logits, "joint")), joint, atol=1e-6)

    p_x = softmax(logits.mean(axis=1), axis=1)  # [B, W, K]: columns, rows averaged
    p_y = softmax(logits.mean(axis=2), axis=1)  # [B, H, K]
    expected_marginal = np.stack([np.einsum("bwk,w->bk", p_x, xs),
                                  np.einsum("bhk,h->bk", p_y, ys)], axis=-1)
    np.testing.assert_allclose(np_(kp_ops.spatial_softmax_keypoints(logits, "marginal")),
                               expected_marginal, atol=1e-5)
    # The two really differ on non-separable logits.
    assert np.abs(expected_joint - expected_marginal).max() > 1e-3


def test_probability_maps_sum_to_one_and_give_the_keypoints():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 9, 7, 4)).astype(np.float32)
    for mode in kp_ops.SOFTMAX_MODES:
        maps = np_(kp_ops.spatial_softmax(logits, mode))
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), np.ones((3, 4)), atol=1e-5)
        np.testing.assert_allclose(np_(kp_ops.expected_keypoints(maps)),
                                   np_(kp_ops.spatial_softmax_keypoints(logits, mode)),
                                   atol=1e-6)


def test_soft_argmax_inverts_gaussian_maps():
    # log of a gaussian map is a quadratic logit; its softmax is a discretised gaussian whose
    # mean is the keypoint (sub-pixel), at different resolutions alike. (Keypoints stay
    # 4 sigma inside the border, where the map is cut off.)
    keypoints = np.array([[[0.1234, -0.3], [-0.5, 0.45], [0.0, 0.0]]], np.float32)
    for size in (32, 48):
        maps = np_(kp_ops.gaussian_maps(keypoints, size, inv_std=6.0))
        recovered = np_(kp_ops.spatial_softmax_keypoints(np.log(np.maximum(maps, 1e-38))))
        np.testing.assert_allclose(recovered, keypoints, atol=1e-4)


def test_soft_argmax_rejects_bad_input():
    with pytest.raises(ValueError, match="heatmaps"):
        kp_ops.spatial_softmax_keypoints(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="mode"):
        kp_ops.spatial_softmax_keypoints(np.zeros((1, 4, 4, 3), np.float32), mode="hard")
    for temperature in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            kp_ops.spatial_softmax(np.zeros((1, 4, 4, 3), np.float32), temperature=temperature)


@pytest.mark.parametrize("mode", ["joint", "marginal"])
def test_temperature_divides_the_logits_and_sharpens_towards_the_argmax(mode):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np_(kp_ops.spatial_softmax(logits, mode, temperature=0.25)),
                               np_(kp_ops.spatial_softmax(4 * logits, mode)), atol=1e-6)
    # Nearly flat logits (a fresh detector) give the centre at temperature 1; a low temperature
    # moves the keypoint to the largest logit, so the keypoint follows the image.
    flat = 0.002 * logits
    peak = np.zeros((2, 8, 8, 3), np.float32)
    peak[:, 1, 6] = 1.0
    centre = np_(kp_ops.spatial_softmax_keypoints(flat + 0.05 * peak, mode))
    sharp = np_(kp_ops.spatial_softmax_keypoints(flat + 0.05 * peak, mode, temperature=1e-4))
    assert np.abs(centre).max() < 0.05
    expected = np.array([13 / 8 - 1, 3 / 8 - 1], np.float32)  # pixel (row 1, col 6) centre
    np.testing.assert_allclose(sharp, np.broadcast_to(expected, sharp.shape), atol=0.02)


# === gaussian maps ===

def test_gaussian_map_peaks_at_its_keypoint_with_hand_computed_values():
    size, inv_std = 16, 4.0
    # Keypoint exactly at the centre of pixel (row 3, col 10).
    keypoint = [centre(10, size), centre(3, size)]
    maps = np_(kp_ops.gaussian_maps(np.array([[keypoint]], np.float32), size, inv_std))
    assert maps.shape == (1, size, size, 1)
    assert np.unravel_index(maps[0, :, :, 0].argmax(), (size, size)) == (3, 10)
    assert maps[0, 3, 10, 0] == pytest.approx(1.0)
    # Pixel (row 5, col 7): dx = -3 px, dy = 2 px, one pixel = 2 / 16 in [-1, 1] units.
    d2 = (3 * 2 / size) ** 2 + (2 * 2 / size) ** 2
    assert maps[0, 5, 7, 0] == pytest.approx(math.exp(-d2 * inv_std ** 2), rel=1e-5)


def test_gaussian_maps_non_square_and_several_keypoints():
    keypoints = np.array([[[-1.0, -1.0], [0.5, 0.25]], [[0.0, 0.0], [1.0, 1.0]]], np.float32)
    maps = np_(kp_ops.gaussian_maps(keypoints, (4, 8), inv_std=1.5))
    assert maps.shape == (2, 4, 8, 2)
    ys, xs = np_(kp_ops.pixel_centers(4)), np_(kp_ops.pixel_centers(8))
    for b in range(2):
        for k in range(2):
            x, y = keypoints[b, k]
            expected = np.exp(-((xs[None] - x) ** 2 + (ys[:, None] - y) ** 2) * 1.5 ** 2)
            np.testing.assert_allclose(maps[b, :, :, k], expected, rtol=1e-5)


def test_gaussian_maps_reject_bad_keypoints():
    with pytest.raises(ValueError, match="keypoints"):
        kp_ops.gaussian_maps(np.zeros((1, 3, 3), np.float32), 8, 1.0)
    with pytest.raises(ValueError, match="keypoints"):
        kp_ops.gaussian_maps(np.zeros((3, 2), np.float32), 8, 1.0)


# === transforms ===

def test_flip_mirrors_pixel_columns_and_is_an_involution():
    width = 10
    # Pixel column 2 goes to column 7 under a horizontal mirror.
    keypoints = np.array([[[centre(2, width), 0.3]]], np.float32)
    flipped = np_(kp_ops.flip_keypoints_x(keypoints))
    np.testing.assert_allclose(flipped, [[[centre(width - 1 - 2, width), 0.3]]], atol=1e-6)
    rng = np.random.default_rng(2)
    many = rng.uniform(-1, 1, (2, 3, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(np_(kp_ops.flip_keypoints_x(kp_ops.flip_keypoints_x(many))),
                                  many)


def test_flip_with_permutation_swaps_keypoints():
    keypoints = np.array([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]], np.float32)
    flipped = np_(kp_ops.flip_keypoints_x(keypoints, permutation=[0, 2, 1]))
    np.testing.assert_allclose(flipped, [[[-0.1, 0.2], [-0.5, 0.6], [-0.3, 0.4]]])
    with pytest.raises(ValueError, match="permutation"):
        kp_ops.flip_keypoints_x(keypoints, permutation=[0, 0, 1])


def test_rotate_hand_computed_values():
    keypoints = np.array([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]], np.float32)
    # +90 degrees is clockwise on screen (y down): right -> down, down -> left.
    rotated = np_(kp_ops.rotate_keypoints(keypoints, math.pi / 2))
    np.testing.assert_allclose(rotated, [[[0.0, 1.0], [-1.0, 0.0], [-0.5, 0.5]]], atol=1e-6)
    # 30 degrees about (0.5, -0.5).
    a = math.radians(30)
    rotated = np_(kp_ops.rotate_keypoints(keypoints[:, :1], a, center=[0.5, -0.5]))
    dx, dy = 0.5, 0.5
    expected = [0.5 + math.cos(a) * dx - math.sin(a) * dy,
                -0.5 + math.sin(a) * dx + math.cos(a) * dy]
    np.testing.assert_allclose(rotated[0, 0], expected, atol=1e-6)
    # The centre is fixed, distances to it are kept, a full turn is the identity.
    np.testing.assert_allclose(
        np_(kp_ops.rotate_keypoints(np.array([[0.2, -0.7]], np.float32), 1.0,
                                    center=[0.2, -0.7])), [[0.2, -0.7]], atol=1e-6)
    np.testing.assert_allclose(np_(kp_ops.rotate_keypoints(keypoints, 2 * math.pi)),
                               keypoints, atol=1e-6)


def test_rotate_per_example_angles():
    keypoints = np.tile(np.array([[[1.0, 0.0]]], np.float32), (2, 1, 1))
    rotated = np_(kp_ops.rotate_keypoints(keypoints, np.array([[0.0], [math.pi]], np.float32)))
    np.testing.assert_allclose(rotated, [[[1.0, 0.0]], [[-1.0, 0.0]]], atol=1e-6)


def test_scale_hand_computed_values():
    keypoints = np.array([[[0.5, -0.25], [-1.0, 1.0]]], np.float32)
    np.testing.assert_allclose(np_(kp_ops.scale_keypoints(keypoints, 0.5)),
                               [[[0.25, -0.125], [-0.5, 0.5]]])
    np.testing.assert_allclose(np_(kp_ops.scale_keypoints(keypoints, 2.0, center=[0.5, 0.0])),
                               [[[0.5, -0.5], [-2.5, 2.0]]])
    np.testing.assert_allclose(np_(kp_ops.scale_keypoints(keypoints, [1.0, 3.0])),
                               [[[0.5, -0.75], [-1.0, 3.0]]])
    with pytest.raises(ValueError, match="keypoints"):
        kp_ops.scale_keypoints(np.zeros((2, 3), np.float32), 2.0)


# === Geometry conventions: pixel matrices (canonical), unit maps, keypoint transforms ===

def test_pixel_coordinates_round_trip_and_pixel_indices_are_centres():
    points = np.array([[-1.0, -1.0], [1.0, 1.0], [0.25, -0.5]], np.float32)
    pixels = np.asarray(kp_ops.keypoints_to_pixels(points, (40, 60)))
    np.testing.assert_allclose(pixels, [[0, 0], [60, 40], [37.5, 10]], atol=1e-5)
    np.testing.assert_allclose(kp_ops.pixels_to_keypoints(pixels, (40, 60)), points, atol=1e-6)
    np.testing.assert_allclose(kp_ops.pixel_indices_to_keypoints([[0, 0], [59, 39]], (40, 60)),
                               [[kp_ops.pixel_centers(60)[0], kp_ops.pixel_centers(40)[0]],
                                [kp_ops.pixel_centers(60)[-1], kp_ops.pixel_centers(40)[-1]]],
                               atol=1e-6)


def test_the_three_geometry_conventions_agree():
    """Keypoint transforms and 2x3 unit maps are pixel matrices seen through N (the module
    docstring): the augmentation's pixel matrix, the unit map and the keypoint transform move
    the same points to the same places."""
    size, angle = 24, 0.4
    points = np.random.default_rng(3).uniform(-0.9, 0.9, (2, 5, 2)).astype(np.float32)

    def by_pixels(matrix):
        return np.asarray(kp_ops.transform_keypoints(points, matrix, size, size))

    # Rotation: keypoint transform == unit map == the augmentation's pixel matrix.
    unit = warping.affine_matrices([angle], [1.0], [[0.0, 0.0]])[0]
    rotated = np.asarray(kp_ops.rotate_keypoints(points, angle))
    np.testing.assert_allclose(np.asarray(warping.apply_affine(points, np.stack([unit] * 2))),
                               rotated, atol=1e-5)
    np.testing.assert_allclose(by_pixels(kp_ops.unit_to_pixel_matrix(unit, size)), rotated,
                               atol=1e-5)
    pixel_rotation = augment.geometric_matrix(size, size, size, angle, False, 1.0, 0.5, 0.5)
    np.testing.assert_allclose(by_pixels(pixel_rotation), rotated, atol=1e-5)
    # Flip: x -> -x is the pixel flip u -> W - u.
    flipped = np.asarray(kp_ops.flip_keypoints_x(points))
    pixel_flip = augment.geometric_matrix(size, size, size, 0.0, True, 1.0, 0.5, 0.5)
    np.testing.assert_allclose(by_pixels(pixel_flip), flipped, atol=1e-5)
    np.testing.assert_allclose(
        by_pixels(kp_ops.unit_to_pixel_matrix(np.diag([-1.0, 1.0, 1.0]), size)), flipped,
        atol=1e-5)
    # Scale and shift: a unit map with a translation, on a non-square frame too.
    unit = warping.affine_matrices([0.0], [0.8], [[0.1, -0.2]])[0]
    expected = np.asarray(kp_ops.scale_keypoints(points, 0.8)) + [0.1, -0.2]
    matrix = kp_ops.unit_to_pixel_matrix(unit, (20, 30))
    np.testing.assert_allclose(
        np.asarray(kp_ops.transform_keypoints(points, matrix, (20, 30), (20, 30))), expected,
        atol=1e-5)
