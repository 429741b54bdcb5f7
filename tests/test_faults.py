"""Runs that survive faults: atomic writes of every run file, and stage 2 refusing a stale Q.

(The NaN guard's weight check is in tests/test_training.py; a real training process killed
with SIGKILL and resumed is tests/test_kill_resume.py.)
"""
import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import cli, configs, rundir, run_info, stages
from kpvp.data import pseudo_labels, video_io
from kpvp.evaluation import report as eval_report
from kpvp.models import KeypointDetector
from kpvp.rundir import RunDir


class DiskFull(OSError):
    """The injected failure: the writer dies after writing part of the file."""


def _listing(directory):
    return sorted(os.listdir(directory))


def _contents(directory):
    out = {}
    for name in _listing(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[name] = f.read()
    return out


# === The helper ===
def test_atomic_write_keeps_the_old_file_when_the_writer_dies_midway(tmp_path):
    target = tmp_path / "config.json"
    rundir.write_json(target, {"step": 1})
    with pytest.raises(DiskFull):
        with rundir.atomic_write(target) as f:
            f.write('{"step": 2, "trunc')
            f.flush()
            # The partial content is on disk, under another name than the target.
            assert _listing(tmp_path) != ["config.json"]
            raise DiskFull("no space left")
    assert _listing(tmp_path) == ["config.json"]  # no partial file left behind
    assert json.loads(target.read_text()) == {"step": 1}
    rundir.write_json(target, {"step": 3})
    assert json.loads(target.read_text()) == {"step": 3} and _listing(tmp_path) == ["config.json"]


def test_atomic_path_keeps_the_extension_that_path_based_writers_need(tmp_path):
    with rundir.atomic_path(tmp_path / "detector.keras") as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(tmp_path)
        assert os.path.basename(tmp).startswith(".")  # hidden from globs of the outputs
        with open(tmp, "wb") as f:
            f.write(b"x")
    assert _listing(tmp_path) == ["detector.keras"]
    with pytest.raises(ValueError, match="whole files"):
        with rundir.atomic_write(tmp_path / "log.txt", "a"):
            pass


# === Every file a run writes goes through it ===
def _failing_json_dump(value, f, **kwargs):
    f.write(json.dumps(value)[:10])
    raise DiskFull("no space left")


def _tiny_config():
    c = configs.get_config("synthetic", "tiny")
    return c


JSON_WRITERS = {
    "config.json": lambda w: cli.save_config(_tiny_config(), w),
    "run_info.json": lambda w: run_info.update_run_info(w, note="x"),
    "report.json + report.md": lambda w: eval_report.write_report(
        w, {"dataset": "synthetic", "variant": "tiny", "metrics": {}}),
    "pseudo-label index": lambda w: pseudo_labels._write_index(w, {"status": "complete"}),
}


@pytest.mark.parametrize("name", sorted(JSON_WRITERS))
def test_run_json_files_survive_a_crash_during_the_write(tmp_path, monkeypatch, name):
    workdir = str(tmp_path)
    JSON_WRITERS[name](workdir)
    before = _contents(workdir)
    assert before
    monkeypatch.setattr(json, "dump", _failing_json_dump)
    with pytest.raises(DiskFull):
        JSON_WRITERS[name](workdir)
    assert _contents(workdir) == before


def test_a_video_writer_dying_midway_leaves_the_previous_sample(tmp_path, monkeypatch):
    path = str(tmp_path / "walk_0.gif")
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    video_io.write_video(path, frames)
    before = _contents(tmp_path)

    def partial_gif(target, frames, fps):
        with open(target, "wb") as f:
            f.write(b"GIF89a\x08\x00")
        raise DiskFull("no space left")

    monkeypatch.setattr(video_io, "_write_gif", partial_gif)
    with pytest.raises(DiskFull):
        video_io.write_video(path, frames + 1)
    assert _contents(tmp_path) == before
    assert video_io.read_video(path).shape == (3, 8, 8, 3)


def test_a_pseudo_label_file_is_never_left_half_written(tmp_path, monkeypatch):
    path = str(tmp_path / "video.npz")
    pseudo_labels._write_npz(path, keypoints=np.zeros((2, 3, 2), np.float32))
    before = _contents(tmp_path)

    def partial_savez(f, **arrays):
        f.write(b"PK\x03\x04")
        raise DiskFull("no space left")

    monkeypatch.setattr(np, "savez", partial_savez)
    with pytest.raises(DiskFull):
        pseudo_labels._write_npz(path, keypoints=np.ones((2, 3, 2), np.float32))
    assert _contents(tmp_path) == before


def _tiny_detector(seed, size=32):
    keras.utils.set_random_seed(seed)
    detector = KeypointDetector(num_keypoints=3, filters=(4, 4, 4, 4))
    detector(np.zeros((1, size, size, 3), np.float32))
    return detector


def _exporting_trainer(seed):
    # export_stage1 saves `trainer.detector` and `trainer.translator`; a second Q stands in
    # for T (only the file matters here).
    return types.SimpleNamespace(detector=_tiny_detector(seed), translator=_tiny_detector(seed))


def test_a_keras_export_dying_midway_leaves_the_previous_export_loadable(tmp_path):
    workdir = str(tmp_path)
    stages.export_stage1(_exporting_trainer(0), workdir, step=3)
    stage1 = RunDir(workdir).stage(1).path
    before = _contents(stage1)
    assert set(before) == {"detector.keras", "translator.keras", "export_info.json"}

    trainer = _exporting_trainer(1)
    real_save = trainer.detector.save

    def dying_save(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        with open(path, "r+b") as f:  # a zip cut off before its central directory
            f.truncate(100)
        raise DiskFull("no space left")

    trainer.detector.save = dying_save
    with pytest.raises(DiskFull):
        stages.export_stage1(trainer, workdir, step=5)
    assert _contents(stage1) == before
    model = keras.models.load_model(RunDir(workdir).exported("detector"))
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 3, 2)


# === Stage 2 labels with the Q that the newest stage-1 checkpoint names ===
def _stage1_checkpoint(workdir, step):
    directory = RunDir(workdir).checkpoints(1)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), directory, 5)
    manager.save(checkpoint_number=step)


def test_stage2_refuses_a_detector_older_than_the_newest_stage1_checkpoint(tmp_path):
    workdir = str(tmp_path)
    stages.export_stage1(_exporting_trainer(0), workdir, step=5)
    stages.check_stage1_export(workdir)  # no checkpoint: Q came from elsewhere, accepted
    _stage1_checkpoint(workdir, 5)
    stages.check_stage1_export(workdir)
    with open(RunDir(workdir).stage1_export_info, encoding="utf-8") as f:
        assert json.load(f) == {"checkpoint_step": 5, "detector_id": RunDir(workdir).detector_id}

    _stage1_checkpoint(workdir, 8)  # stage 1 trained on (and was killed before its export)
    with pytest.raises(stages.StaleExportError, match=r"step 5 .*step 8.*--export_only"):
        stages.check_stage1_export(workdir)
    config = _tiny_config()
    with pytest.raises(stages.StaleExportError):  # before any video is labelled
        stages.run_stage2(config, workdir, tf.distribute.get_strategy())
    assert not os.path.exists(RunDir(workdir).pseudo_labels("train"))

    stages.export_stage1(_exporting_trainer(0), workdir, step=8)
    stages.check_stage1_export(workdir)

    # A detector.keras that is not the one the record names (copied in, or a crash between
    # the export and its record) is refused as well.
    _tiny_detector(7).save(RunDir(workdir).exported("detector"))
    with pytest.raises(stages.StaleExportError, match="a Q other than step 8's"):
        stages.check_stage1_export(workdir)
    os.remove(RunDir(workdir).stage1_export_info)
    with pytest.raises(stages.StaleExportError, match="an unknown step"):
        stages.check_stage1_export(workdir)
