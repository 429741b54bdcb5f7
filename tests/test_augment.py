"""Augmentation ops: geometry moves pixels and joints together, PIL filters equal Pillow."""
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageFilter

from kpvp.data import augment
from kpvp.ops import keypoints as kp_ops


def _pixel_centre(index, size):
    """Keypoint coordinate of the centre of pixel `index` on an axis of `size` pixels."""
    return (2 * index + 1) / size - 1


def _blob(height, width, centre_xy, sigma=1.5):
    """A gaussian blob image [H, W] (float, peak 255) centred at pixel coordinates (u, v)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    d2 = (u - centre_xy[0]) ** 2 + (v - centre_xy[1]) ** 2
    return 255.0 * np.exp(-d2 / (2 * sigma**2))


def _centroid_xy(image):
    """Intensity-weighted centroid of an [H, W] image in keypoint coordinates (x, y)."""
    h, w = image.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    total = image.sum()
    return np.array([(u * image).sum() / total / w * 2 - 1, (v * image).sum() / total / h * 2 - 1])


# === Geometry ===

def test_flip_moves_pixel_and_joint_to_the_mirror_column():
    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, 2, 1] = 200.0
    matrix = augment.geometric_matrix(8, 8, 8, angle=0.0, flip=True, zoom=1.0, crop_x=0.5,
                                      crop_y=0.5)
    out = augment.warp_images(image, matrix, 8).numpy()[0, ..., 0]
    expected = np.zeros((8, 8), np.float32)
    expected[2, 6] = 200.0
    np.testing.assert_allclose(out, expected, atol=1e-3)
    joint = [[_pixel_centre(1, 8), _pixel_centre(2, 8)]]
    moved = kp_ops.transform_keypoints(joint, matrix, 8, 8).numpy()
    np.testing.assert_allclose(moved, [[_pixel_centre(6, 8), _pixel_centre(2, 8)]], atol=1e-6)


def test_quarter_turn_sends_a_pixel_right_of_centre_to_below_it():
    # Positive angles turn clockwise on screen (y down): right of centre -> below centre.
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 7] = 1.0
    matrix = augment.geometric_matrix(9, 9, 9, math.pi / 2, False, 1.0, 0.5, 0.5)
    out = augment.warp_images(image, matrix, 9).numpy()[0, ..., 0]
    assert np.argwhere(out > 0.5).tolist() == [[7, 4]]
    assert out.sum() == pytest.approx(1.0, abs=1e-4)


def test_rotation_by_30_degrees_matches_the_hand_computed_place():
    # Blob 10 px right of the centre of a 33x33 frame, rotated 30 deg clockwise:
    # hand-computed (u, v) = (16.5 + 10 cos 30, 16.5 + 10 sin 30) = (25.160, 21.5).
    size = 33
    image = _blob(size, size, (26.5, 16.5))[None, ..., None]
    matrix = augment.geometric_matrix(size, size, size, math.radians(30), False, 1.0, 0.5, 0.5)
    out = augment.warp_images(image, matrix, size).numpy()[0, ..., 0]
    expected = np.array([25.160254 / size * 2 - 1, 21.5 / size * 2 - 1])
    np.testing.assert_allclose(_centroid_xy(out), expected, atol=0.02)  # 0.33 px
    joint = kp_ops.transform_keypoints([[26.5 / size * 2 - 1, 0.0]], matrix, size, size)
    np.testing.assert_allclose(joint.numpy()[0], expected, atol=1e-5)


def test_zoom_and_crop_keep_a_joint_on_its_blob():
    # Non-square 40x60 frame, zoom 1.1 (short side 40 -> 44 at output 40), crop at (0.3, 0.9).
    image = _blob(40, 60, (40.0, 12.0), sigma=1.2)[None, ..., None]
    matrix = augment.geometric_matrix(40, 60, 40, 0.0, False, 1.1, 0.3, 0.9)
    out = augment.warp_images(image, matrix, 40).numpy()[0, ..., 0]
    joint = kp_ops.transform_keypoints([[40.0 / 60 * 2 - 1, 12.0 / 40 * 2 - 1]], matrix,
                                       (40, 60), 40).numpy()[0]
    # By hand: s = 1.1, u = 40 * 1.1 - 0.3 * (66 - 40) = 36.2, v = 12 * 1.1 - 0.9 * 4 = 9.6.
    np.testing.assert_allclose(joint, [36.2 / 20 - 1, 9.6 / 20 - 1], atol=1e-5)
    np.testing.assert_allclose(_centroid_xy(out), joint, atol=0.03)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_augment_pair_transforms_both_frames_and_joints_identically(seed):
    # Frame 0 has a blob at joint A, frame 1 at joint B; after a random flip/rotation/zoom/crop
    # each blob is where its transformed joint says, and a frame repeated twice stays equal.
    h, w = 48, 64
    points = np.array([[20.0, 30.0], [40.0, 16.0]])
    frames = np.stack([np.repeat(_blob(h, w, p, sigma=2.0)[..., None], 3, -1) for p in points])
    joints = np.stack([[[p[0] / w * 2 - 1, p[1] / h * 2 - 1]] for p in points]).astype(np.float32)
    images, moved = augment.augment_pair(
        np.round(frames).astype(np.uint8), [seed, 7], 32, joints=joints, rotate_degrees=10.0,
        flip=True, pil_filters=False)
    images = (images.numpy() + 1.0) * 127.5
    for i in range(2):
        np.testing.assert_allclose(_centroid_xy(images[i, ..., 0]), moved.numpy()[i, 0],
                                   atol=0.05)  # under 1 output pixel of 32
    same, _ = augment.augment_pair(np.repeat(frames[:1], 2, 0), [seed, 7], 32)
    np.testing.assert_array_equal(same.numpy()[0], same.numpy()[1])


def test_default_geometry_has_no_zoom_and_the_zoom_option_enlarges():
    # Authors: the short side (40) becomes the output side (32) exactly; ours zooms up to 1.1.
    scales, zoomed = [], []
    for i in range(40):
        for out, zoom_max in ((scales, 1.0), (zoomed, 1.1)):
            matrix = augment.sample_geometric([5, i], 40, 60, 32, zoom_max=zoom_max).numpy()
            out.append(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    np.testing.assert_allclose(scales, 32 / 40, rtol=1e-5)
    assert 0.8 - 1e-5 <= min(zoomed) and max(zoomed) <= 0.88 + 1e-5
    assert max(zoomed) - min(zoomed) > 0.04


def test_rotation_fills_black_corners_by_default_and_reflects_on_request():
    # A uniform frame turned by 10 deg: PIL's rotate (authors) paints the corners black.
    image = np.full((1, 32, 32, 1), 200.0, np.float32)
    matrix = augment.geometric_matrix(32, 32, 32, math.radians(10), False, 1.0, 0.5, 0.5)
    black = augment.warp_images(image, matrix, 32).numpy()[0, ..., 0]
    assert black[0, 0] < 1.0 and black[-1, -1] < 1.0
    assert black[16, 16] == pytest.approx(200.0, abs=1e-3)
    reflected = augment.warp_images(image, matrix, 32, fill_mode="REFLECT").numpy()
    np.testing.assert_allclose(reflected, 200.0, atol=1e-3)
    pair, _ = augment.augment_pair(np.full((2, 32, 48, 3), 200, np.uint8), [0, 1], 32,
                                   rotate_degrees=0.0, pil_filters=False)
    np.testing.assert_allclose(pair, 200 / 127.5 - 1, atol=1e-5)  # no rotation: no corners


def test_augment_pair_is_deterministic_per_seed_and_varies_across_seeds():
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    a, _ = augment.augment_pair(frames, [3, 9], 32)
    b, _ = augment.augment_pair(frames, [3, 9], 32)
    c, _ = augment.augment_pair(frames, [3, 10], 32)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy() - c.numpy()).max() > 0.1
    assert a.numpy().min() >= -1.0 and a.numpy().max() <= 1.0


def test_flip_of_a_real_clip_equals_its_mirrored_upstream_copy(shared_fixtures):
    # actions/train/00000027 is the exact horizontal mirror of 00000026 (fixtures README).
    def first_frame(name):
        strip = np.asarray(Image.open(shared_fixtures / "actions" / "train" / name))[..., :3]
        return strip[:, :64].astype(np.float32)

    matrix = augment.geometric_matrix(64, 64, 64, 0.0, True, 1.0, 0.5, 0.5)
    flipped = augment.warp_images(first_frame("00000026.jpg")[None], matrix, 64).numpy()[0]
    np.testing.assert_allclose(flipped, first_frame("00000027.jpg"), atol=1e-3)


# === PIL filters ===

@pytest.fixture(scope="module")
def random_image():
    return np.random.default_rng(5).integers(0, 256, (37, 45, 3), dtype=np.uint8)


def _pillow(image, name, factor):
    pil = Image.fromarray(image)
    if name in ("SHARPNESS", "BRIGHTNESS", "COLOR", "CONTRAST"):
        return np.asarray(getattr(ImageEnhance, name.capitalize())(pil).enhance(factor))
    return np.asarray(pil.filter(getattr(ImageFilter, name)))


@pytest.mark.parametrize("name,factor", [
    ("DETAIL", 1.0), ("EDGE_ENHANCE", 1.0), ("SMOOTH", 1.0), ("SMOOTH_MORE", 1.0),
    ("EDGE_ENHANCE_MORE", 1.0), ("BLUR", 1.0),
    ("SHARPNESS", 0.0), ("SHARPNESS", 0.6), ("SHARPNESS", 3.3), ("SHARPNESS", 5.0),
    ("BRIGHTNESS", 0.7), ("BRIGHTNESS", 1.45), ("BRIGHTNESS", 2.0),
    ("COLOR", 0.0), ("COLOR", 0.4), ("COLOR", 2.7), ("COLOR", 5.0),
    ("CONTRAST", 0.7), ("CONTRAST", 1.9), ("CONTRAST", 3.0),
])
def test_pil_filter_matches_pillow(random_image, name, factor):
    ours = augment.pil_filter(random_image[None].astype(np.float32), name, factor).numpy()[0]
    reference = _pillow(random_image, name, factor).astype(np.float64)
    # Pillow truncates its blends and rounds its kernels in float32: at most 1 level apart,
    # borders included (the kernels copy PIL's unfiltered border).
    difference = np.abs(np.floor(ours + 0.5) - reference)
    assert difference.max() <= 1.0
    assert difference.mean() < 0.6
    if name in ("SMOOTH_MORE", "BLUR"):
        np.testing.assert_array_equal(np.floor(ours[:2] + 0.5), random_image[:2])


def test_filters_change_the_image_in_their_own_way(random_image):
    x = random_image[None].astype(np.float32)
    smooth = augment.pil_filter(x, "BLUR").numpy()
    sharp = augment.pil_filter(x, "EDGE_ENHANCE_MORE").numpy()
    interior = (slice(None), slice(2, -2), slice(2, -2))
    assert smooth[interior].std() < 0.6 * x[interior].std() < sharp[interior].std()
    gray = augment.pil_filter(x, "COLOR", 0.0).numpy()[0]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_filter_chosen_by_index_in_graph_equals_the_named_filter(random_image):
    x = tf.constant(random_image[None].astype(np.float32))
    by_index = tf.function(augment.pil_filter_by_index)
    for index, name in enumerate(augment.PIL_FILTERS):
        np.testing.assert_allclose(by_index(x, tf.constant(index), tf.constant(1.8)).numpy(),
                                   augment.pil_filter(x, name, 1.8).numpy(), atol=1e-4)


def test_photometric_draws_cover_all_filters_within_their_ranges():
    seen = {}
    draw = tf.function(augment.sample_photometric)
    for i in range(300):
        index, factor = draw(tf.constant([1, i], tf.int64))
        seen.setdefault(augment.PIL_FILTERS[int(index)], []).append(float(factor))
    assert set(seen) == set(augment.PIL_FILTERS)
    for name, (low, high) in augment.ENHANCE_RANGES.items():
        assert low <= min(seen[name]) and max(seen[name]) <= high
        assert max(seen[name]) - min(seen[name]) > 0.5 * (high - low)


def test_unknown_filter_name_is_rejected():
    with pytest.raises(ValueError, match="SHARPEN"):
        augment.pil_filter(np.zeros((1, 8, 8, 3), np.float32), "SHARPEN")


# === Stage-2 keypoint sequences ===

def test_keypoint_sequence_transform_about_the_image_centre_hand_computed():
    # Authors' order about (0, 0): rotate 30 deg clockwise (on screen, y down), flip x, scale.
    # (0.5, 0) -> (0.5 cos 30, 0.5 sin 30) = (0.43301, 0.25) -> flip (-0.43301, 0.25) -> * 0.8.
    keypoints = np.array([[[0.5, 0.0], [0.0, -0.5]]], np.float32)
    out = augment.transform_keypoint_sequence(keypoints, math.radians(30), True, 0.8).numpy()
    # (0, -0.5) -> (0.5 sin 30, -0.5 cos 30) = (0.25, -0.43301) -> (-0.25, -0.43301) -> * 0.8.
    expected = 0.8 * np.array([[[-0.4330127, 0.25], [-0.25, -0.4330127]]])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # No flip: the rotation alone, about the centre.
    out = augment.transform_keypoint_sequence(keypoints[:, :1], math.radians(30), False,
                                              1.0).numpy()
    np.testing.assert_allclose(out, [[[0.4330127, 0.25]]], atol=1e-6)


def test_keypoint_sequence_transform_does_not_clip_by_default():
    # Authors: a keypoint at 0.95 scaled by 1.2 about the centre leaves the frame (1.14).
    keypoints = np.array([[[0.95, -0.5]]], np.float32)
    out = augment.transform_keypoint_sequence(keypoints, 0.0, False, 1.2).numpy()
    np.testing.assert_allclose(out, [[[1.14, -0.6]]], atol=1e-6)


def test_keypoint_sequence_transform_about_the_centroid_hand_computed():
    # Two frames; frame-0 centroid (0.2, 0.1). Flip first: frame 0 -> (-0.1, 0.1), (-0.3, 0.1),
    # centroid (-0.2, 0.1). Then 90 deg clockwise (dx, dy) -> (-dy, dx), scale 0.5.
    keypoints = np.array([[[0.1, 0.1], [0.3, 0.1]], [[0.1, 0.5], [0.3, 0.1]]], np.float32)
    out = augment.transform_keypoint_sequence(keypoints, math.pi / 2, True, 0.5,
                                              about_centroid=True, clip=True).numpy()
    expected = np.array([[[-0.2, 0.15], [-0.2, 0.05]], [[-0.4, 0.15], [-0.2, 0.05]]])
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_keypoint_sequence_transform_clips_to_the_frame():
    # Centroid 0.475: 0.475 +- 1.2 * 0.475 = 1.045 (clipped to 1) and -0.095.
    keypoints = np.array([[[0.0, 0.0], [0.95, 0.0]]], np.float32)
    out = augment.transform_keypoint_sequence(keypoints, 0.0, False, 1.2, about_centroid=True,
                                              clip=True).numpy()
    np.testing.assert_allclose(out, [[[-0.095, 0.0], [1.0, 0.0]]], atol=1e-6)


def test_random_keypoint_augmentation_is_one_similarity_per_sequence():
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(-0.3, 0.3, (6, 5, 2)).astype(np.float32)
    pairwise = np.linalg.norm(keypoints[:, :, None] - keypoints[:, None], axis=-1)
    scales, norms = [], []
    for i in range(20):
        out = augment.augment_keypoint_sequence(keypoints, [4, i], about_centroid=True).numpy()
        ratio = np.linalg.norm(out[:, :, None] - out[:, None], axis=-1)[pairwise > 0] / \
            pairwise[pairwise > 0]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)  # same scale on every frame
        scales.append(ratio[0])
        centroid = out[0].mean(0)
        # The frame-0 centroid stays, up to the mirror.
        np.testing.assert_allclose(np.abs(centroid), np.abs(keypoints[0].mean(0)), atol=1e-5)
        # About the image centre (default): each point's distance from (0, 0) scales alike.
        out = augment.augment_keypoint_sequence(keypoints, [4, i]).numpy()
        norms.append(np.linalg.norm(out, axis=-1) / np.linalg.norm(keypoints, axis=-1))
        np.testing.assert_allclose(norms[-1], norms[-1][0, 0], rtol=1e-4)
    assert 0.7 <= min(scales) and max(scales) <= 1.2 and max(scales) - min(scales) > 0.2
    # The same draw gives the same scale about either origin.
    np.testing.assert_allclose([n[0, 0] for n in norms], scales, rtol=1e-4)
    again = augment.augment_keypoint_sequence(keypoints, [4, 0]).numpy()
    np.testing.assert_array_equal(again, augment.augment_keypoint_sequence(keypoints, [4, 0]))
