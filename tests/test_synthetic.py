"""The synthetic data set: determinism, sizes, and that joints and labels mean what they say."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from kpvp import configs
from kpvp.data import synthetic
from kpvp.data.synthetic import SyntheticVideos

JUMPING_JACKS, SQUAT, ARM_WAVE, WALK = range(4)
HEAD, L_SHOULDER, R_SHOULDER = 0, 1, 2
L_WRIST, R_WRIST, L_HIP, R_HIP = 5, 6, 7, 8


def _hip_centre(joints):
    return (joints[:, L_HIP] + joints[:, R_HIP]) / 2


def _body_size(joints):
    """Median distance head - hip centre, a scale that does not change with the action."""
    return np.median(np.linalg.norm(joints[:, HEAD] - _hip_centre(joints), axis=-1))


def _videos(split, num, label=None, image_size=64, num_frames=24, seed=0):
    data = SyntheticVideos(split, num, image_size=image_size, num_frames=num_frames, seed=seed)
    return [data[i] for i in range(num) if label is None or data.label(i) == label]


def test_element_format():
    element = SyntheticVideos("train", 3, image_size=64, num_frames=7, seed=0)[2]
    assert element["frames"].dtype == np.uint8 and element["frames"].shape == (7, 64, 64, 3)
    assert element["joints"].dtype == np.float32 and element["joints"].shape == (7, 13, 2)
    assert element["visible"].dtype == bool and element["visible"].shape == (7, 13)
    assert isinstance(element["label"], int) and 0 <= element["label"] < 4
    assert element["id"] == "synthetic/train/000002"
    # Not a flat image: the figure and background give many distinct colours.
    assert len(np.unique(element["frames"][0].reshape(-1, 3), axis=0)) > 50
    np.testing.assert_array_equal(element["visible"],
                                  np.all(np.abs(element["joints"]) <= 1.0, axis=-1))


def test_dataset_attributes():
    data = SyntheticVideos("test", 5)
    assert data.name == "synthetic"
    assert data.class_names == ("jumping_jacks", "squat", "arm_wave", "walk")
    assert SyntheticVideos.CLASS_NAMES == data.class_names
    assert data.has_joints is True
    assert data.skipped == []
    assert len(data) == 5


def test_same_seed_and_index_give_identical_bytes_in_any_order():
    data = SyntheticVideos("train", 6, image_size=64, num_frames=8, seed=3)
    forward = [data[i] for i in range(6)]
    again = SyntheticVideos("train", 6, image_size=64, num_frames=8, seed=3)
    backward = {i: again[i] for i in (5, 3, 1, 4, 0, 2)}
    for i, a in enumerate(forward):
        b = backward[i]
        assert a["frames"].tobytes() == b["frames"].tobytes()
        assert a["joints"].tobytes() == b["joints"].tobytes()
        assert (a["label"], a["id"]) == (b["label"], b["id"])
    # A larger data set holds the same first videos.
    bigger = SyntheticVideos("train", 20, image_size=64, num_frames=8, seed=3)
    assert bigger[4]["frames"].tobytes() == forward[4]["frames"].tobytes()
    assert list(iter(data))[5]["frames"].tobytes() == forward[5]["frames"].tobytes()
    assert data[-1]["frames"].tobytes() == forward[5]["frames"].tobytes()


def test_different_seeds_splits_and_indices_differ():
    def video(split, index, seed):
        return SyntheticVideos(split, 4, image_size=64, num_frames=4, seed=seed)[index]

    base = video("train", 0, 0)
    for other in (video("train", 0, 1), video("test", 0, 0), video("train", 1, 0)):
        assert np.abs(base["frames"].astype(int) - other["frames"]).mean() > 5
        assert not np.allclose(base["joints"], other["joints"], atol=1e-2)


def test_videos_of_one_class_differ():
    clips = _videos("train", 12, label=SQUAT, num_frames=32)
    assert len(clips) == 3
    # Hip height over time, in body sizes: phase, cycle length and depth vary per video.
    curves = [_hip_centre(c["joints"])[:, 1] / _body_size(c["joints"]) for c in clips]
    curves = [c - c.mean() for c in curves]
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(curves[a] - curves[b]).mean() > 0.02
    assert np.abs(clips[0]["frames"].astype(int) - clips[1]["frames"]).mean() > 5


def test_open_source_split_sizes():
    config = configs.get_config("synthetic", "tiny")
    train = synthetic.open_source(config, "train")
    test = synthetic.open_source(config, "test")
    assert len(train) == config.data.synthetic_num_train == 96
    assert len(test) == config.data.synthetic_num_test == 16
    element = test[0]
    assert element["frames"].shape == (config.data.synthetic_num_frames, 64, 64, 3)
    assert element["id"] == "synthetic/test/000000"
    with pytest.raises(ValueError, match="valid"):
        synthetic.open_source(config, "valid")


def test_labels_in_range_and_every_class_in_eight_videos():
    for split, seed in (("train", 0), ("test", 0), ("train", 5)):
        data = SyntheticVideos(split, 8, image_size=64, num_frames=2, seed=seed)
        labels = [data.label(i) for i in range(8)]
        assert sorted(labels) == [0, 0, 1, 1, 2, 2, 3, 3]
        assert [data[i]["label"] for i in range(0, 8, 3)] == labels[0::3]
    labels = [SyntheticVideos("train", 40, seed=0).label(i) for i in range(40)]
    assert labels[:4] != labels[4:8] or labels[4:8] != labels[8:12]  # shuffled per block


def test_renderer_uses_the_pixel_corner_convention():
    # A disc or a limb drawn at a keypoint has its centre of mass at that keypoint, without bias.
    size = 128
    ss = synthetic._supersampling(size)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:size, :size] + 0.5  # pixel centres in corner coordinates
    errors = []
    for _ in range(20):
        centre = rng.uniform(8, size - 8, 2)
        for shape in ("disc", "limb"):
            canvas = Image.new("L", (size * ss, size * ss), 0)
            painter = synthetic._Painter(ImageDraw.Draw(canvas), ss, scale=1.0, mask=True)
            if shape == "disc":
                painter.disc(centre, 2.5, 255)
            else:
                painter.limb(centre - [3.0, 1.0], centre + [3.0, 1.0], 1.5, 1.5, 255)
            image = np.asarray(canvas.reduce(ss), np.float64)
            found = np.array([(xs * image).sum(), (ys * image).sum()]) / image.sum()
            errors.append(found - centre)
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.3  # rounding to the supersampled grid only
    assert np.abs(errors.mean(axis=0)).max() < 0.08


def test_joints_land_on_the_drawn_figure():
    size = 64
    data = SyntheticVideos("train", 8, image_size=size, num_frames=6, seed=2)
    on_body, differs, total = 0, 0, 0
    for i in range(len(data)):
        element = data.render_with_layers(i)
        frames, background = element["frames"].astype(int), element["background"].astype(int)
        coverage = element["coverage"]
        # Where the figure is absent the frame is exactly the background.
        empty = coverage == 0
        assert np.array_equal(frames[empty], np.broadcast_to(background, frames.shape)[empty])
        pixels = np.floor((element["joints"] + 1) / 2 * size).astype(int)
        for t, j in zip(*np.nonzero(element["visible"])):
            x, y = pixels[t, j]
            total += 1
            on_body += coverage[t, y, x] > 0.5
            differs += np.abs(frames[t, y, x] - background[y, x]).sum() > 40
    assert total > 8 * 6 * 10
    assert on_body / total > 0.97
    assert differs / total > 0.9
    # Points away from the joints are mostly background: the figure is not the whole frame.
    assert coverage.mean() < 0.3


def _motion_features(joints):
    """Per-video features `[F]`: pose spread over time and root motion, in body sizes."""
    size = _body_size(joints)
    root = _hip_centre(joints)
    rel = (joints - root[:, None]) / size
    return np.concatenate([rel.std(axis=0).ravel(), rel.mean(axis=0).ravel(),
                           root.std(axis=0) / size,
                           np.abs(np.diff(root, axis=0)).mean(axis=0) / size])


def test_classes_are_distinguishable_from_joints_alone():
    train = SyntheticVideos("train", 40, image_size=64, num_frames=32, seed=0)
    test = SyntheticVideos("test", 24, image_size=64, num_frames=32, seed=0)
    x_train = np.stack([_motion_features(e["joints"]) for e in train])
    y_train = np.array([e["label"] for e in train])
    x_test = np.stack([_motion_features(e["joints"]) for e in test])
    y_test = np.array([e["label"] for e in test])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    centroids = np.stack([((x_train - mean) / std)[y_train == c].mean(0) for c in range(4)])
    dist = np.linalg.norm(((x_test - mean) / std)[:, None] - centroids[None], axis=-1)
    accuracy = np.mean(dist.argmin(1) == y_test)
    assert accuracy >= 0.8, accuracy  # chance is 0.25


def test_walk_moves_horizontally_more_than_squat():
    def horizontal_travel(label):
        clips = _videos("train", 16, label=label, num_frames=32)
        return np.mean([np.ptp(_hip_centre(c["joints"])[:, 0]) / _body_size(c["joints"])
                        for c in clips])

    walk, squat = horizontal_travel(WALK), horizontal_travel(SQUAT)
    assert walk > 0.3
    assert walk > 5 * squat


def test_squat_moves_the_hips_down_and_up():
    for clip in _videos("train", 12, label=SQUAT, num_frames=32):
        joints = clip["joints"]
        hip_y = _hip_centre(joints)[:, 1] / _body_size(joints)
        assert np.ptp(hip_y) > 0.2
        ankle_y = joints[:, 11:13, 1] / _body_size(joints)
        assert np.ptp(ankle_y, axis=0).max() < 0.05  # feet stay on the ground


def test_jumping_jacks_move_wrists_up_and_down():
    clips = _videos("train", 12, label=JUMPING_JACKS, num_frames=32)
    assert len(clips) == 3
    for clip in clips:
        joints = clip["joints"]
        for wrist in (L_WRIST, R_WRIST):
            # y grows downwards: above the head at the top of the jump, below the hips at rest.
            assert (joints[:, wrist, 1] < joints[:, HEAD, 1]).any()
            hips_y = _hip_centre(joints)[:, 1]
            assert (joints[:, wrist, 1] > hips_y - 0.1 * _body_size(joints)).any()
            assert np.ptp(joints[:, wrist, 1]) > 1.2 * _body_size(joints)
    # Squats move the wrists much less.
    for clip in _videos("train", 12, label=SQUAT, num_frames=32):
        assert np.ptp(clip["joints"][:, L_WRIST, 1]) < 1.0 * _body_size(clip["joints"])


def test_left_joints_are_on_the_image_right_when_facing_the_camera():
    for clip in _videos("train", 8, label=JUMPING_JACKS, num_frames=8):
        joints = clip["joints"]
        assert (joints[:, L_SHOULDER, 0] > joints[:, R_SHOULDER, 0]).all()
        assert (joints[:, L_HIP, 0] > joints[:, R_HIP, 0]).all()


@pytest.mark.parametrize("size", [64, 128])
def test_image_sizes(size):
    element = SyntheticVideos("train", 2, image_size=size, num_frames=3, seed=1)[1]
    assert element["frames"].shape == (3, size, size, 3)


def test_a_video_is_the_same_scene_at_every_size():
    small = SyntheticVideos("train", 2, image_size=64, num_frames=4, seed=1)[1]
    large = SyntheticVideos("train", 2, image_size=128, num_frames=4, seed=1)[1]
    np.testing.assert_allclose(small["joints"], large["joints"], atol=1e-5)
    assert small["label"] == large["label"]
    shrunk = large["frames"].reshape(4, 64, 2, 64, 2, 3).astype(float).mean(axis=(2, 4))
    assert np.abs(shrunk - small["frames"]).mean() < 6


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="split.*'validation'"):
        SyntheticVideos("validation", 4)
    data = SyntheticVideos("train", 4, image_size=64, num_frames=2)
    with pytest.raises(IndexError, match="index 4"):
        data[4]
    with pytest.raises(IndexError, match="index -5"):
        data[-5]
    with pytest.raises(TypeError, match="index"):
        data[1.5]
    with pytest.raises(ValueError, match="num_videos"):
        SyntheticVideos("train", -1)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticVideos("train", 4, image_size=0)
    with pytest.raises(ValueError, match="num_frames"):
        SyntheticVideos("train", 4, num_frames=0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticVideos("train", 4, seed=-1)
