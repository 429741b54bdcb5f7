"""Pseudo-label store: Q's keypoints per video, resumable, tied to one detector."""
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kpvp.data import pseudo_labels
from kpvp.data.readers import VideoFolder
from kpvp.ops import images as image_ops

SIZE, FRAMES, SQUARE = 32, 5, 6


class CentroidDetector:
    """Stands in for Q: one keypoint at the brightness centroid (pixel-corner convention).

    Counts the frames it sees in a variable, so the count survives `tf.function`.
    """

    def __init__(self):
        self.frames_seen = tf.Variable(0, dtype=tf.int64)
        self.input_sizes = []

    def __call__(self, images, training=False):
        self.frames_seen.assign_add(tf.cast(tf.shape(images)[0], tf.int64))
        self.input_sizes.append(tuple(images.shape[1:3]))
        weights = tf.reduce_mean(images + 1.0, axis=-1)  # [B, H, W], 0 on black
        h, w = images.shape[1], images.shape[2]
        xs = (2.0 * tf.range(w, dtype=tf.float32) + 1.0) / w - 1.0
        ys = (2.0 * tf.range(h, dtype=tf.float32) + 1.0) / h - 1.0
        total = tf.reduce_sum(weights, axis=[1, 2])
        x = tf.reduce_sum(weights * xs[None, None, :], axis=[1, 2]) / total
        y = tf.reduce_sum(weights * ys[:, None][None], axis=[1, 2]) / total
        return tf.stack([x, y], axis=-1)[:, None, :]  # [B, 1, 2]


def _square_video(index):
    """A white square moving right (and down for odd videos); returns frames and its centres."""
    frames = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    centres = np.zeros((FRAMES, 1, 2), np.float32)
    for t in range(FRAMES):
        left, top = 2 + 4 * t, 3 + (3 * t if index % 2 else 0) + index
        frames[t, top:top + SQUARE, left:left + SQUARE] = 255
        # Square's centre in [-1, 1] with (-1, -1) the top-left pixel corner.
        centres[t, 0] = [2 * (left + SQUARE / 2) / SIZE - 1, 2 * (top + SQUARE / 2) / SIZE - 1]
    return frames, centres


class ListSource:
    """A data source over prepared elements; `fail_after` simulates a killed run."""

    def __init__(self, elements, fail_after=None):
        self.elements, self.fail_after, self.skipped = elements, fail_after, []

    def __len__(self):
        return len(self.elements)

    def __iter__(self):
        for i, element in enumerate(self.elements):
            if self.fail_after is not None and i == self.fail_after:
                raise KeyboardInterrupt("simulated interruption")
            yield element


def _elements(n):
    out = []
    for i in range(n):
        frames, _ = _square_video(i)
        out.append({"frames": frames, "label": i % 3, "id": f"clip/{i:03d}"})
    return out


def test_labels_hold_the_detections_of_every_frame(tmp_path):
    detector = CentroidDetector()
    summary = pseudo_labels.label_videos(detector, ListSource(_elements(4)), str(tmp_path),
                                         "q-step-100", batch_size=3, image_size=16)
    assert summary["written"] == 4 and summary["already_done"] == 0
    assert summary["skipped"] == 0 and summary["num_frames"] == 4 * FRAMES
    assert int(detector.frames_seen.numpy()) == 4 * FRAMES
    assert set(detector.input_sizes) == {(16, 16)}  # resized to the detector's input size

    sequences = pseudo_labels.load_pseudo_labels(str(tmp_path), "q-step-100")
    assert [s["id"] for s in sequences] == [f"clip/{i:03d}" for i in range(4)]
    assert [s["label"] for s in sequences] == [0, 1, 2, 0]
    for i, seq in enumerate(sequences):
        _, centres = _square_video(i)
        assert seq["keypoints"].dtype == np.float32 and seq["keypoints"].shape == (FRAMES, 1, 2)
        # Keypoints land on the square in every frame, through the resize to 16x16.
        np.testing.assert_allclose(seq["keypoints"], centres, atol=0.02)
    # One file per video, named safely although the ids hold '/'.
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".npz"))
    assert len(files) == 4 and not any("/" in f for f in files)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["detector_id"] == "q-step-100" and index["status"] == "complete"


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    elements = _elements(5)
    first = CentroidDetector()
    with pytest.raises(KeyboardInterrupt):
        pseudo_labels.label_videos(first, ListSource(elements, fail_after=3), str(tmp_path),
                                   "q-a")
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 3
    with pytest.raises(RuntimeError, match="did not finish"):
        pseudo_labels.load_pseudo_labels(str(tmp_path))
    assert len(pseudo_labels.load_pseudo_labels(str(tmp_path), allow_incomplete=True)) == 3

    second = CentroidDetector()
    summary = pseudo_labels.label_videos(second, ListSource(elements), str(tmp_path), "q-a")
    assert (summary["written"], summary["already_done"], summary["total"]) == (2, 3, 5)
    assert int(second.frames_seen.numpy()) == 2 * FRAMES  # only the missing videos ran
    sequences = pseudo_labels.load_pseudo_labels(str(tmp_path), "q-a")
    assert [s["id"] for s in sequences] == [e["id"] for e in elements]

    third = CentroidDetector()
    summary = pseudo_labels.label_videos(third, ListSource(elements), str(tmp_path), "q-a")
    assert (summary["written"], summary["already_done"]) == (0, 5)
    assert int(third.frames_seen.numpy()) == 0


def test_another_detector_starts_over_and_loading_checks_the_id(tmp_path, caplog):
    elements = _elements(3)
    pseudo_labels.label_videos(CentroidDetector(), ListSource(elements), str(tmp_path), "q-old")
    with caplog.at_level(logging.WARNING):
        summary = pseudo_labels.label_videos(CentroidDetector(), ListSource(elements[:2]),
                                             str(tmp_path), "q-new")
    assert (summary["written"], summary["already_done"]) == (2, 0)
    assert "q-old" in caplog.text and "starting over" in caplog.text
    # The old detector's third video is gone, not mixed in.
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 2
    assert len(pseudo_labels.load_pseudo_labels(str(tmp_path), "q-new")) == 2
    with pytest.raises(ValueError, match="q-new.*q-old"):
        pseudo_labels.load_pseudo_labels(str(tmp_path), expected_detector_id="q-old")


def _write_strip(path, frames):
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(path)


def test_corrupt_and_malformed_videos_are_skipped_and_counted(tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    for i in range(2):
        _write_strip(root / "train" / f"clip{i}.png", _square_video(i)[0])
    (root / "train" / "broken.gif").write_bytes(b"GIF89a this is not a gif")
    source = VideoFolder(str(root), "train")
    out = tmp_path / "labels"
    summary = pseudo_labels.label_videos(CentroidDetector(), source, str(out), "q")
    assert (summary["written"], summary["skipped"]) == (2, 1)
    index = json.loads((out / "index.json").read_text())
    assert len(index["skipped"]) == 1 and "broken.gif" in index["skipped"][0]["id"]
    sequences = pseudo_labels.load_pseudo_labels(str(out), "q")
    assert sorted(s["id"] for s in sequences) == ["train/clip0", "train/clip1"]
    np.testing.assert_allclose(sequences[0]["keypoints"], _square_video(0)[1], atol=0.02)

    bad = _elements(3)
    bad[1] = dict(bad[1], frames=bad[1]["frames"].astype(np.float32))
    summary = pseudo_labels.label_videos(CentroidDetector(), ListSource(bad),
                                         str(tmp_path / "other"), "q")
    assert (summary["written"], summary["skipped"]) == (2, 1)
    index = json.loads((tmp_path / "other" / "index.json").read_text())
    assert "uint8" in index["skipped"][0]["reason"]


def test_bad_arguments_and_missing_store_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pseudo_labels.load_pseudo_labels(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="detector_id"):
        pseudo_labels.label_videos(CentroidDetector(), ListSource([]), str(tmp_path), "")
    duplicated = _elements(2)
    duplicated[1]["id"] = duplicated[0]["id"]
    with pytest.raises(ValueError, match="twice"):
        pseudo_labels.label_videos(CentroidDetector(), ListSource(duplicated), str(tmp_path),
                                   "q")


def test_with_the_keypoint_detector_on_synthetic_videos(tmp_path):
    from kpvp.data.synthetic import SyntheticVideos
    from kpvp.models.keypoint_detector import KeypointDetector

    detector = KeypointDetector(num_keypoints=4, filters=(8, 8, 8))
    source = SyntheticVideos("train", num_videos=2, image_size=64, num_frames=5, seed=0)
    summary = pseudo_labels.label_videos(detector, source, str(tmp_path), "tiny-q",
                                         batch_size=4, image_size=32)
    assert summary["written"] == 2
    sequences = pseudo_labels.load_pseudo_labels(str(tmp_path), "tiny-q")
    for element, seq in zip(source, sequences):
        assert seq["id"] == element["id"] and seq["label"] == element["label"]
        images = image_ops.model_input(element["frames"], 32)  # the pipelines' road to Q
        np.testing.assert_allclose(seq["keypoints"], detector(images, training=False),
                                   atol=1e-5)

    # The loaded store is what the stage-2 pipeline takes.
    from kpvp import configs
    from kpvp.data import pipelines

    config = configs.get_config("synthetic", "tiny")
    batch = next(iter(pipelines.stage2_dataset(sequences, config, training=False)))
    assert batch["keypoints"].shape == (2, config.data.seq_len, 4, 2)
    np.testing.assert_allclose(batch["keypoints"][:, 0], [s["keypoints"][0] for s in sequences],
                               atol=1e-6)
