"""tf.data pipelines: pair offsets, joints follow the frames, determinism, stage-2 sampling."""
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs
from kpvp.data import pipelines


class FakeSource(list):
    """A list of data elements with the attributes of a reader's source."""
    name = "fake"
    class_names = ("a", "b", "c")

    def __init__(self, elements, has_joints):
        super().__init__(elements)
        self.has_joints = has_joints
        self.skipped = []


def _config(size=32, batch=4):
    c = configs.get_config("synthetic", "tiny")
    c.image_size = size
    c.stage1.batch_size = batch
    c.stage2.batch_size = batch
    c.data.num_parallel_calls = 2
    return c


def _gray_videos(lengths, height=24, width=40, step=5, video_step=0):
    """Video i, frame t is uniformly gray at level 3 + video_step * i + step * t: the level
    survives any geometric augmentation and tells which frame (and video) it was."""
    elements = []
    for i, length in enumerate(lengths):
        levels = (3 + video_step * i + step * np.arange(length)).astype(np.uint8)
        frames = np.broadcast_to(levels[:, None, None, None], (length, height, width, 3)).copy()
        elements.append({"frames": frames, "label": i % 3, "id": f"gray/{i}"})
    return FakeSource(elements, has_joints=False)


def _blob_videos(num, length, height=48, width=64, seed=0):
    """Videos of one bright square blob moving at random; joint 0 = the blob centre, the
    other 12 joints parked on the blob too (every joint has to land on it)."""
    rng = np.random.default_rng(seed)
    elements = []
    for i in range(num):
        frames = np.full((length, height, width, 3), 20, np.uint8)
        joints = np.zeros((length, 13, 2), np.float32)
        for t in range(length):
            top, left = rng.integers(12, height - 16), rng.integers(12, width - 16)
            frames[t, top:top + 4, left:left + 4] = 240
            joints[t] = [(2 * left + 4) / width - 1, (2 * top + 4) / height - 1]
        elements.append({"frames": frames, "label": 0, "id": f"blob/{i}", "joints": joints,
                         "visible": np.ones((length, 13), bool)})
    return FakeSource(elements, has_joints=True)


def _gray_level(images):
    """Gray level (0..255) of uniform frames [..., S, S, 3] in [-1, 1]."""
    return np.round((np.asarray(images).mean(axis=(-3, -2, -1)) + 1.0) * 127.5).astype(int)


def _frame_index(images):
    """Frame index of `_gray_videos` frames with the default step 5 and video_step 0."""
    return (_gray_level(images) - 3) // 5


def _take(ds, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds.take(n)]


# === Stage 1 ===

def test_stage1_pair_offsets_stay_in_the_configured_range():
    c = _config()
    c.data.pil_filters = False  # keep the gray level, which encodes the frame index
    lengths = [30, 40, 25, 60]
    for batch in _take(pipelines.stage1_dataset(c, source=_gray_videos(lengths), seed=1), 10):
        source, target = _frame_index(batch["source"]), _frame_index(batch["target"])
        offsets = target - source
        assert np.all((offsets >= c.data.pair_offset_min) & (offsets <= c.data.pair_offset_max))
        assert source.min() >= 0 and target.max() < max(lengths)
        # The augmented gray frames stay uniform: the geometry did not invent content.
        assert np.ptp(batch["source"], axis=(1, 2, 3)).max() < 1e-3


def _video_and_frame(images):
    """(video, frame) of `_gray_videos(..., step=1, video_step=48)` frames."""
    level = _gray_level(images) - 3
    return level // 48, level % 48


def test_configs_full_follow_the_authors_and_tiny_keeps_our_sampling():
    for dataset in ("synthetic", "penn"):
        full = configs.get_config(dataset, "full").data
        assert (full.pair_wrap, full.zoom_max, full.fill_mode) == (True, 1.0, "CONSTANT")
        assert (full.seq_about_centroid, full.seq_clip) == (False, False)
        tiny = configs.get_config(dataset, "tiny").data
        assert (tiny.pair_wrap, tiny.zoom_max, tiny.fill_mode) == (False, 1.1, "REFLECT")
        assert (tiny.seq_about_centroid, tiny.seq_clip) == (True, True)


def test_stage1_wrapped_pairs_follow_the_authors_rule():
    # Authors: source uniform over all T frames, target = (source + randint(8, 11)) mod T.
    c = _config(batch=8)
    c.data.pair_wrap = True
    c.data.pil_filters = False
    lengths = [12, 20, 15, 30]
    source = _gray_videos(lengths, 32, 32, step=1, video_step=48)
    sources, targets, videos = [], [], []
    for batch in _take(pipelines.stage1_dataset(c, source=source, seed=4), 40):
        video, s = _video_and_frame(batch["source"])
        video_t, t = _video_and_frame(batch["target"])
        np.testing.assert_array_equal(video, video_t)
        sources.append(s), targets.append(t), videos.append(video)
    s, t, video = map(np.concatenate, (sources, targets, videos))
    length = np.asarray(lengths)[video]
    offset = (t - s) % length
    assert offset.min() == 8 and offset.max() == 11  # both ends of randint(8, 11)
    assert np.all(t < length)
    wrapped = t < s
    assert wrapped.any() and np.all(s[wrapped] + offset[wrapped] >= length[wrapped])
    assert np.all(s[~wrapped] + offset[~wrapped] < length[~wrapped])
    assert np.any(s == length - 1)  # the last frame is a source too
    assert set(s[video == 0]) == set(range(12))


def test_stage1_tiny_pairs_follow_our_non_wrapping_rule():
    # The tiny config's pairs are exactly those of the rule it had before pair_wrap: the offset
    # d shortened to T - 1, the source among the frames with a target d frames later.
    c = _config(batch=5)
    c.data.pil_filters = False
    lengths = [30, 40, 3, 45, 12]
    source = _gray_videos(lengths, 32, 32, step=1, video_step=48)
    rng = np.random.default_rng(6)
    expected = []
    for _ in range(4):
        for v in rng.permutation(len(lengths)):
            d = min(int(rng.integers(8, 12)), lengths[v] - 1)
            start = int(rng.integers(0, lengths[v] - d))
            expected.append((v, start, start + d))
    got = []
    for batch in _take(pipelines.stage1_dataset(c, source=source, seed=6), 4):
        video, s = _video_and_frame(batch["source"])
        t = _video_and_frame(batch["target"])[1]
        got += list(zip(video.tolist(), s.tolist(), t.tolist()))
    assert got == expected


def test_stage1_short_videos_pair_their_first_and_last_frames():
    c = _config()
    c.data.pil_filters = False
    batch = _take(pipelines.stage1_dataset(c, source=_gray_videos([3, 3, 1, 3])), 1)[0]
    pairs = sorted(zip(_frame_index(batch["source"]), _frame_index(batch["target"])))
    assert pairs == [(0, 0), (0, 2), (0, 2), (0, 2)]


def test_stage1_each_epoch_visits_every_video_once():
    c = _config(batch=5)
    c.data.pil_filters = False
    source = _gray_videos([30, 40, 20, 45, 35], 32, 32, step=1, video_step=48)
    epochs = _take(pipelines.stage1_dataset(c, source=source), 3)
    orders = []
    for batch in epochs:
        videos = (_gray_level(batch["source"]) - 3) // 48
        np.testing.assert_array_equal(videos, (_gray_level(batch["target"]) - 3) // 48)
        assert sorted(videos) == [0, 1, 2, 3, 4]
        orders.append(tuple(videos))
    assert len(set(orders)) > 1  # reshuffled between epochs


def test_stage1_joints_land_on_the_blob_in_both_augmented_frames():
    c = _config(size=32, batch=8)
    c.data.pil_filters = False
    for batch in _take(pipelines.stage1_dataset(c, source=_blob_videos(6, 14), seed=3), 2):
        for key in ("source", "target"):
            images = batch[key].mean(-1)
            joints = batch[key + "_joints"]
            assert joints.shape == (8, 13, 2)
            np.testing.assert_allclose(joints, joints[:, :1].repeat(13, 1), atol=1e-6)
            for image, joint in zip(images, joints[:, 0]):
                # Bilinear sampling of a 4-px square zoomed by at most 1.1 * 32 / 48: the
                # brightest output pixel is within 1.5 px of the transformed centre.
                row, col = np.unravel_index(np.argmax(image), image.shape)
                centre = (np.array([col, row]) + 0.5) / 16 - 1
                assert np.abs(centre - joint).max() < 1.5 / 16


def test_stage1_batch_structure_and_value_ranges():
    c = _config(size=32, batch=4)
    batch = _take(pipelines.stage1_dataset(c, source=_blob_videos(3, 12)), 1)[0]
    assert set(batch) == {"source", "target", "source_joints", "target_joints",
                          "source_visible", "target_visible"}
    for key in ("source", "target"):
        assert batch[key].shape == (4, 32, 32, 3) and batch[key].dtype == np.float32
        assert -1.0 <= batch[key].min() and batch[key].max() <= 1.0
        assert batch[key].std() > 0.05
    assert batch["source_visible"].dtype == bool
    no_joints = _take(pipelines.stage1_dataset(c, source=_gray_videos([12, 12])), 1)[0]
    assert set(no_joints) == {"source", "target"}


def test_stage1_is_reproducible_from_the_seed_when_deterministic():
    c = _config(size=32, batch=4)
    c.data.deterministic = True
    source = _blob_videos(5, 16)
    first = _take(pipelines.stage1_dataset(c, source=source, seed=7), 3)
    again = _take(pipelines.stage1_dataset(c, source=source, seed=7), 3)
    other = _take(pipelines.stage1_dataset(c, source=source, seed=8), 3)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(np.abs(a["source"] - b["source"]).max() > 0.1 for a, b in zip(first, other))


def test_stage1_test_split_has_fixed_unaugmented_pairs():
    c = _config(size=32, batch=3)
    source = _gray_videos([30, 5, 1], height=32, width=48)
    ds = pipelines.stage1_dataset(c, split="test", source=source)
    batches = _take(ds, 100)
    assert _take(ds, 100)[0]["source"].tobytes() == batches[0]["source"].tobytes()
    source_index = np.concatenate([_frame_index(b["source"]) for b in batches])
    target_index = np.concatenate([_frame_index(b["target"]) for b in batches])
    middle = (c.data.pair_offset_min + c.data.pair_offset_max) // 2
    # 30 frames: 4 evenly spread pairs at the middle offset; 5 frames: (0, 4); 1 frame: (0, 0).
    last = 30 - 1 - middle
    expected_sources = list(np.linspace(0, last, 4).round().astype(int)) + [0, 0]
    assert list(source_index) == expected_sources
    assert list(target_index - source_index) == [middle] * 4 + [4, 0]
    assert [b["source"].shape[0] for b in batches] == [3, 3]


def test_stage1_rejects_bad_input():
    c = _config()
    with pytest.raises(ValueError, match="split"):
        pipelines.stage1_dataset(c, split="val", source=_gray_videos([5]))
    bad = FakeSource([{"frames": np.zeros((4, 8, 8), np.uint8), "id": "x"}], has_joints=False)
    with pytest.raises(ValueError, match=r"'frames' must be uint8 \[T, H, W, 3\]"):
        pipelines.stage1_dataset(c, source=bad)
    with pytest.raises(ValueError, match="no usable videos"):
        pipelines.stage1_dataset(c, source=FakeSource([], has_joints=False))


# === Stage 2 ===

def _index_tracks(lengths, num_keypoints=3):
    """Keypoint tracks whose x coordinate is 0.01 * frame index (y = keypoint number / 10)."""
    sequences = []
    for i, length in enumerate(lengths):
        t = np.arange(length, dtype=np.float32)
        kp = np.zeros((length, num_keypoints, 2), np.float32)
        kp[..., 0] = 0.01 * t[:, None] - 0.5
        kp[..., 1] = np.arange(num_keypoints) / 10
        sequences.append({"keypoints": kp, "label": i})
    return sequences


def _recover_index(keypoints):
    return np.round((keypoints[..., 0, 0] + 0.5) / 0.01).astype(int)


def test_stage2_eval_samples_with_floor_stride_from_the_start():
    c = _config(batch=4)
    batches = _take(pipelines.stage2_dataset(_index_tracks([100, 66, 40]), c, training=False), 9)
    keypoints = np.concatenate([b["keypoints"] for b in batches])
    assert keypoints.shape == (3, 33, 3, 2)
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), [0, 1, 2])
    for sequence, stride in zip(keypoints, [3, 2, 1]):
        np.testing.assert_array_equal(_recover_index(sequence), stride * np.arange(33))


def test_stage2_training_uses_a_random_start_and_the_same_stride():
    c = _config(batch=4)
    c.data.seq_rotate_degrees = 0.0
    c.data.seq_scale_min = c.data.seq_scale_max = 1.0
    c.data.flip = False
    ds = pipelines.stage2_dataset(_index_tracks([100, 100, 100, 100]), c, seed=2)
    starts = []
    for batch in _take(ds, 6):
        for sequence in batch["keypoints"]:
            index = _recover_index(sequence)
            np.testing.assert_array_equal(np.diff(index), 3)
            starts.append(index[0])
    # Authors: 100 frames, stride 3, start in [0, 100 - 33 * 3] = [0, 1].
    assert set(starts) == {0, 1}
    assert [int(pipelines.max_start(n, 33)) for n in (33, 40, 65, 66, 100, 20, 17, 10)] == \
        [0, 7, 32, 0, 1, 3, 0, 0]


def test_stage2_short_tracks_take_17_frames_at_half_speed():
    # Authors: T < 33 gives frames start .. start + 16 with the half steps in between:
    # out[2i] = kp[start + i], out[2i + 1] = (kp[start + i] + kp[start + i + 1]) / 2.
    c = _config(batch=4)
    rng = np.random.default_rng(2)
    track = rng.uniform(-0.8, 0.8, (20, 3, 2)).astype(np.float32)
    expected = np.empty((33, 3, 2), np.float32)
    expected[0::2] = track[:17]
    expected[1::2] = (track[:16] + track[1:17]) / 2
    out = pipelines.temporal_sample(track, 33, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-7)
    batch = _take(pipelines.stage2_dataset([{"keypoints": track, "label": 1}], c,
                                           training=False), 1)[0]
    np.testing.assert_allclose(batch["keypoints"][0], expected, atol=1e-7)
    # Training draws the start in [0, 20 - 17]; the frame index stays readable at half speed.
    c.data.seq_rotate_degrees = 0.0
    c.data.seq_scale_min = c.data.seq_scale_max = 1.0
    c.data.flip = False
    starts = set()
    for batch in _take(pipelines.stage2_dataset(_index_tracks([20] * 4), c, seed=1), 6):
        for sequence in batch["keypoints"]:
            index = (sequence[:, 0, 0] + 0.5) / 0.01
            starts.add(int(round(index[0])))
            np.testing.assert_allclose(index, index[0] + 0.5 * np.arange(33), atol=1e-3)
    assert starts == {0, 1, 2, 3}


def test_stage2_tracks_shorter_than_17_frames_repeat_their_last_frame():
    # Where the authors' loader fails, the half-speed positions past the end are clamped.
    track = np.zeros((10, 2, 2), np.float32)
    track[:, 0, 0] = np.arange(10) / 10
    out = pipelines.temporal_sample(track, 33, 0).numpy()
    np.testing.assert_allclose(out[:19, 0, 0], np.arange(19) / 20, atol=1e-6)
    np.testing.assert_array_equal(out[18:], np.repeat(track[-1:], 15, 0))
    still = pipelines.temporal_sample(track[:1], 33, 0).numpy()
    np.testing.assert_array_equal(still, np.repeat(track[:1], 33, 0))


def test_stage2_training_augments_each_sequence_with_one_similarity():
    c = _config(batch=8)
    rng = np.random.default_rng(1)
    base = rng.uniform(-0.2, 0.2, (40, 4, 2)).astype(np.float32)
    sequences = [{"keypoints": base, "label": i} for i in range(8)]
    batch = _take(pipelines.stage2_dataset(sequences, c, seed=5), 1)[0]
    assert batch["keypoints"].dtype == np.float32 and batch["label"].dtype == np.int32
    # stride floor(40 / 33) = 1, start 0..7: the original frames start .. start + 32.
    assert sorted(batch["label"]) == list(range(8))  # one epoch = every sequence once
    scales = []
    for sequence in batch["keypoints"]:
        distance = np.linalg.norm(sequence[:, 0] - sequence[:, 1], axis=-1)
        starts = [s for s in range(8)
                  if np.allclose(distance / np.linalg.norm(base[s:s + 33, 0] - base[s:s + 33, 1],
                                                           axis=-1),
                                 distance[0] / np.linalg.norm(base[s, 0] - base[s, 1]),
                                 rtol=1e-4)]
        assert starts, "no start frame makes the sequence a similarity of the original"
        scales.append(distance[0] / np.linalg.norm(base[starts[0], 0] - base[starts[0], 1]))
    assert 0.7 - 1e-4 <= min(scales) and max(scales) <= 1.2 + 1e-4
    assert max(scales) - min(scales) > 0.05


def test_stage2_is_reproducible_from_the_seed():
    c = _config(batch=4)
    c.data.deterministic = True
    sequences = _index_tracks([50, 70, 90])
    a = _take(pipelines.stage2_dataset(sequences, c, seed=3), 3)
    b = _take(pipelines.stage2_dataset(sequences, c, seed=3), 3)
    d = _take(pipelines.stage2_dataset(sequences, c, seed=4), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["keypoints"], y["keypoints"])
    assert any(np.abs(x["keypoints"] - y["keypoints"]).max() > 1e-3 for x, y in zip(a, d))


def test_stage2_rejects_bad_sequences():
    c = _config()
    with pytest.raises(ValueError, match="non-empty list"):
        pipelines.stage2_dataset([], c)
    with pytest.raises(ValueError, match=r"sequences\[0\]\['keypoints'\] must be \[T, K, 2\]"):
        pipelines.stage2_dataset([{"keypoints": np.zeros((5, 3)), "label": 0}], c)
    mixed = [{"keypoints": np.zeros((5, 3, 2)), "label": 0},
             {"keypoints": np.zeros((5, 4, 2)), "label": 0}]
    with pytest.raises(ValueError, match="K=4"):
        pipelines.stage2_dataset(mixed, c)


# === Evaluation videos ===

def test_eval_videos_fixed_length_and_centre_crop():
    c = _config(size=32)
    c.data.eval_num_frames = 8
    source = _blob_videos(2, 5, height=64, width=96)
    source[1]["frames"] = np.concatenate([source[1]["frames"]] * 4)  # 20 frames
    source[1]["joints"] = np.concatenate([source[1]["joints"]] * 4)
    source[1]["visible"] = np.concatenate([source[1]["visible"]] * 4)
    videos = [{k: v.numpy() for k, v in e.items()} for e in pipelines.eval_videos(c, source=source)]
    assert [v["id"] for v in videos] == [b"blob/0", b"blob/1"]
    short, long = videos
    assert short["frames"].shape == (8, 32, 32, 3) and short["frames"].dtype == np.uint8
    # 5 frames < 8: the first frames at half speed, 0 1 1 2 2 3 3 4 (frames and joints).
    order = [0, 1, 1, 2, 2, 3, 3, 4]
    for i, j in enumerate(order):
        np.testing.assert_array_equal(short["frames"][i], short["frames"][order.index(j)])
    assert not np.array_equal(short["frames"][0], short["frames"][1])
    # 20 frames: stride floor(20 / 8) = 2, frames 0, 2, ..., 14; frame 10 is frame 0 again.
    np.testing.assert_array_equal(long["frames"][5], long["frames"][0])
    assert not np.array_equal(long["frames"][1], long["frames"][0])
    # 64x96 -> 32x48 (pixel u = (x + 1) * 24) -> centre columns 8..40: x' = (u - 8) / 16 - 1.
    joints = source[0]["joints"][order, 0]
    expected = np.stack([((joints[:, 0] + 1) * 24 - 8) / 16 - 1, joints[:, 1]], -1)
    np.testing.assert_allclose(short["joints"][:, 0], expected, atol=1e-6)
    for frame, joint in zip(short["frames"].mean(-1), short["joints"][:, 0]):
        if np.abs(joint).max() < 0.9:
            row, col = np.unravel_index(np.argmax(frame), frame.shape)
            assert np.abs((np.array([col, row]) + 0.5) / 16 - 1 - joint).max() <= 1.0 / 16


def test_eval_frame_indices_follow_the_authors_stride_and_short_video_rule():
    # Penn-like 100 frames, 33 per clip: gap 3, so x0 = frame 0 and predictions 3, 6, ..., 96.
    np.testing.assert_array_equal(pipelines.eval_frame_indices(100, 33), 3 * np.arange(33))
    # 20 frames < 33: frames 0..16 at half speed (the authors repeat each future frame twice).
    np.testing.assert_array_equal(pipelines.eval_frame_indices(20, 33),
                                  [0] + [i for i in range(1, 17) for _ in (0, 1)])
    # 10 frames: the same rule, held at the last frame.
    assert pipelines.eval_frame_indices(10, 33).numpy().max() == 9
    # The clip covers the frames M learned from (`temporal_sample` at start 0).
    track = np.arange(70, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    sampled = pipelines.temporal_sample(track, 33, 0).numpy()[:, 0, 0]
    np.testing.assert_array_equal(sampled, pipelines.eval_frame_indices(70, 33))


def test_eval_videos_without_joints_and_repeatable_order():
    c = _config(size=32)
    source = _gray_videos([40, 3], height=32, width=32)
    ds = pipelines.eval_videos(c, source=source, num_frames=6)
    first = [{k: v.numpy() for k, v in e.items()} for e in ds]
    again = [{k: v.numpy() for k, v in e.items()} for e in ds]
    assert set(first[0]) == {"frames", "label", "id"}
    assert [e["label"] for e in first] == [0, 1]
    # 40 frames: stride 6; 3 frames: half speed, then the last frame held.
    np.testing.assert_array_equal(_frame_index(first[0]["frames"] / 127.5 - 1),
                                  [0, 6, 12, 18, 24, 30])
    np.testing.assert_array_equal(_frame_index(first[1]["frames"] / 127.5 - 1),
                                  [0, 1, 1, 2, 2, 2])
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["frames"], b["frames"])


def test_num_parallel_calls_minus_one_means_autotune():
    c = _config()
    c.data.num_parallel_calls = -1
    assert pipelines._parallel_calls(c) == tf.data.AUTOTUNE
    c.data.num_parallel_calls = 3
    assert pipelines._parallel_calls(c) == 3


# === The built-in synthetic data set ===

def _edge_ratio(images, joints, visible):
    """Mean image gradient in 7x6 windows at the visible joints over the overall mean."""
    size = images.shape[1]
    gradient = np.abs(np.diff(images, axis=2)).sum(-1)  # [B, S, S - 1]
    on_joints = []
    for grad, points, seen in zip(gradient, joints, visible):
        for x, y in points[seen & (np.abs(points) < 0.9).all(-1)]:
            col, row = int((x + 1) * size / 2), int((y + 1) * size / 2)
            on_joints.append(grad[max(row - 3, 0):row + 4, max(col - 3, 0):col + 3].mean())
    return np.mean(on_joints) / gradient.mean()


def test_stage1_on_synthetic_decodes_once_and_joints_follow_the_figure(monkeypatch):
    c = _config(size=64, batch=8)
    c.data.synthetic_num_train = 3
    c.data.synthetic_num_frames = 14
    c.seed = 11
    opened = []
    real_open = pipelines._open_source

    def counting_open(*args, **kwargs):
        opened.append(args)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(pipelines, "_open_source", counting_open)
    pipelines.clear_cache()
    try:
        first = _take(pipelines.stage1_dataset(c, seed=0), 1)[0]
        c.stage1.batch_size = 2  # batch size does not change the decoded videos
        second = _take(pipelines.stage1_dataset(c, seed=0), 1)[0]
    finally:
        pipelines.clear_cache()
    assert len(opened) == 1
    np.testing.assert_array_equal(first["source"][:2], second["source"])
    assert first["source_joints"].shape == (8, 13, 2)
    # The limbs' edges make the image busier around the joints than on average (the
    # background is smooth); the same joints mirrored in x miss the figure half the time.
    for key in ("source", "target"):
        images, joints, visible = (first[key], first[key + "_joints"],
                                   first[key + "_visible"])
        ratio = _edge_ratio(images, joints, visible)
        assert ratio > 3.0
        assert _edge_ratio(images, joints * [-1, 1], visible) < ratio - 1.0
