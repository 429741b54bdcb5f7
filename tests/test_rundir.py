"""kpvp.rundir: the paths of a run directory, and the detector identity behind pseudo-labels."""
import json
import os

import keras
import numpy as np
import pytest

from kpvp import configs, rundir
from kpvp.data import pseudo_labels, readers
from kpvp.models import KeypointDetector
from kpvp.rundir import RunDir, StageDir


def test_paths_of_a_run_directory(tmp_path):
    run = RunDir(tmp_path / "w")
    root = str(tmp_path / "w")
    assert os.fspath(run) == root and not os.path.exists(root)  # nothing made until asked
    assert run.config_file == os.path.join(root, "config.json")
    assert run.run_info_file == os.path.join(root, "run_info.json")
    assert (run.report_json, run.report_md) == (os.path.join(root, "report.json"),
                                                os.path.join(root, "report.md"))
    assert run.samples == os.path.join(root, "samples")
    assert run.stage(1).checkpoints == os.path.join(root, "stage1", "checkpoints")
    assert run.stage(2).logs == os.path.join(root, "stage2", "logs")
    assert run.checkpoints(2) == os.path.join(root, "stage2", "checkpoints")
    assert StageDir(run.stage(1).path).checkpoints == run.checkpoints(1)
    assert run.exported("detector") == os.path.join(root, "stage1", "detector.keras")
    assert run.exported("translator") == os.path.join(root, "stage1", "translator.keras")
    assert run.exported("motion_generator") == os.path.join(root, "stage2",
                                                            "motion_generator.keras")
    assert run.pseudo_labels("test") == os.path.join(root, "pseudo_labels", "test")
    assert RunDir(run).path == root
    assert not run.has_config()
    run.makedirs()
    with open(run.config_file, "w", encoding="utf-8") as f:
        f.write("{}")
    assert run.has_config()
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        run.stage(3)
    with pytest.raises(ValueError, match="unknown exported network 'critic'"):
        run.exported("critic")


def _tiny_detector(seed, size=32):
    keras.utils.set_random_seed(seed)
    detector = KeypointDetector(num_keypoints=3, filters=(4, 4, 4, 4), softmax_temperature=0.1)
    detector(np.zeros((1, size, size, 3), np.float32))
    return detector


def _counts(run, split):
    with open(os.path.join(run.pseudo_labels(split), "index.json"), encoding="utf-8") as f:
        return json.load(f)["counts"]


def test_detector_identity_follows_the_exported_detector_and_relabels(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(FileNotFoundError, match="No trained stage 1"):
        run.detector_id  # pylint: disable=pointless-statement
    config = configs.get_config("synthetic", "tiny")
    config.image_size = 32
    config.data.synthetic_num_train = 3
    os.makedirs(run.stage(1).path)
    first = _tiny_detector(0)
    first.save(run.exported("detector"))
    ident = run.detector_id
    labels = pseudo_labels.label_run(config, run, "train")
    assert len(labels) == 3 and _counts(run, "train")["written"] == 3

    # The same Q exported again (a new file, a new save date): same id, labels kept.
    first.save(run.exported("detector"))
    assert run.detector_id == ident
    again = pseudo_labels.label_run(config, run, "train")
    assert _counts(run, "train") == {"written": 0, "already_done": 3, "skipped": 0, "total": 3}
    for a, b in zip(labels, again):
        np.testing.assert_array_equal(a["keypoints"], b["keypoints"])

    # Another Q: another id, and every video is labelled again with its keypoints.
    second = _tiny_detector(1)
    second.save(run.exported("detector"))
    assert run.detector_id != ident
    relabelled = pseudo_labels.label_run(config, str(tmp_path), "train")
    assert _counts(run, "train")["written"] == 3
    with pytest.raises(ValueError, match="made by detector"):
        pseudo_labels.load_pseudo_labels(run.pseudo_labels("train"), ident)
    video = relabelled[0]
    frames = next(iter(_train_frames(config)))
    expected = second(frames[:4].astype(np.float32) / 127.5 - 1.0, training=False).numpy()
    np.testing.assert_allclose(video["keypoints"][:4], expected, atol=1e-5)
    assert not np.allclose(video["keypoints"], labels[0]["keypoints"])


def _train_frames(config):
    for element in readers.open_source(config, "train"):
        yield element["frames"]


def test_read_json_gives_the_object_or_empty_for_a_missing_file(tmp_path):
    path = tmp_path / "info.json"
    assert rundir.read_json(path) == {}
    rundir.write_json(path, {"step": 3, "names": ["a"]})
    assert rundir.read_json(path) == {"step": 3, "names": ["a"]}
