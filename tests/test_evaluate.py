"""kpvp.evaluation and the `kpvp.evaluate` app: metric selection, the action-recognition
numbers on a constructed case, report formatting, FVD between two folders of videos."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kpvp import configs
from kpvp.data import video_io
from kpvp.evaluation import action, fvd, run, trained_run
from kpvp.evaluation import keypoints as eval_keypoints
from kpvp.evaluation import reconstruction
from kpvp.models import keypoint_detector
from kpvp.ops import images as image_ops
from kpvp.evaluation import report as eval_report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parse_metrics():
    assert run.parse_metrics("all") == run.METRICS
    assert run.METRICS == ("fvd", "action", "keypoints", "ssim", "transfer")
    assert run.parse_metrics("fvd, ssim") == ("fvd", "ssim")
    with pytest.raises(ValueError, match="unknown.*'psnr'"):
        run.parse_metrics("fvd,psnr")


@pytest.mark.parametrize("batches", [0, 1])
def test_untrained_baseline_uses_re_estimated_batch_norm_like_the_export(batches):
    """The untrained Qs of the keypoint baseline get their batch-norm statistics re-estimated
    on train frames exactly when the trained Q's were (`bn_recalibration_batches`)."""
    config = configs.get_config("synthetic", "tiny")
    config.stage1.bn_recalibration_batches = batches
    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    detector = keypoint_detector.build_detector(config)
    images = image_ops.model_input(frames, config.image_size)
    in_training = detector(images, training=True).numpy()
    eval_keypoints._recalibrate_like_export(detector, frames, config, batch=8)
    gap = np.abs(detector(images, training=False).numpy() - in_training).max()
    if batches:
        assert gap < 2e-3  # inference now computes what training computed on these frames
    else:
        assert gap > 1e-3  # untouched: still the initial statistics


def test_other_classes_never_returns_the_true_class():
    labels = np.arange(400) % 4
    other = trained_run.other_classes(labels, 4, seed=0)
    assert np.all(other != labels) and set(other) == {0, 1, 2, 3}
    np.testing.assert_array_equal(trained_run.other_classes(labels * 0, 1, seed=0), labels * 0)


def _moving(classes, rng, seq_len, num_classes, k=3):
    """Keypoint sequences `[N, seq_len, k, 2]` whose keypoints all move in the direction of
    their class (class c: angle 2 pi c / C) from random starting poses."""
    classes = np.asarray(classes)
    angle = 2 * np.pi * classes / num_classes
    step = 0.04 * np.stack([np.cos(angle), np.sin(angle)], -1)  # [N, 2]
    start = rng.uniform(-0.4, 0.4, (len(classes), 1, k, 2))
    t = np.arange(seq_len)[None, :, None, None]
    return (start + t * step[:, None, None, :]).astype(np.float32)


class _ConstructedRun:
    """A `TrainedRun` stand-in whose videos' motions (keypoints) and I3D features say their
    class outright: generated videos 0-7 move in their condition's direction, 8-15 in the next
    class's; under a random other condition every video follows that condition."""

    def __init__(self, config):
        self.config, self.num_videos, self.seed = config, 0, 0
        c, n = config.num_classes, 16
        rng = np.random.default_rng(0)
        seq_len = int(config.data.seq_len)
        self.train_labels = np.arange(8 * c) % c
        self.test_labels = np.arange(n) % c
        self.shuffled_labels = trained_run.other_classes(self.test_labels, c, seed=0)
        drawn = np.where(np.arange(n) < 8, self.test_labels, (self.test_labels + 1) % c)
        self.tracks = {
            "train": [{"keypoints": kp, "label": int(y)} for kp, y in zip(
                _moving(self.train_labels, rng, seq_len, c), self.train_labels)],
            "test": [{"keypoints": kp, "label": int(y)} for kp, y in zip(
                _moving(self.test_labels, rng, seq_len, c), self.test_labels)]}
        self.generated_keypoints = {False: _moving(drawn, rng, seq_len, c),
                                    True: _moving(self.shuffled_labels, rng, seq_len, c)}
        eye = np.eye(c, dtype=np.float32)
        self.i3d_features = {"train": eye[self.train_labels], "real": eye[self.test_labels],
                             "generated": eye[drawn], "shuffled": eye[self.shuffled_labels]}
        conditions = np.repeat(np.arange(c), n)
        self.motion = {"keypoints": _moving(conditions, rng, seq_len, c), "labels": conditions,
                       "videos": np.tile(np.arange(n), c)}

    def pseudo_labels(self, split):
        return self.tracks[split]

    def test_videos(self):
        return {"labels": self.test_labels}

    def train_videos(self):
        return {"labels": self.train_labels, "frames": None}

    def generated(self, shuffled=False):
        labels = self.shuffled_labels if shuffled else self.test_labels
        return {"keypoints": self.generated_keypoints[shuffled], "labels": labels,
                "frames": None}

    def motion_samples(self):
        return self.motion

    def features(self, name, frames_fn):
        return self.i3d_features[name]

    def cached_features(self, name, videos_fn):
        return self.i3d_features[name]


def test_action_accuracies_on_a_constructed_case(monkeypatch):
    """Accuracies worked out by hand: a classifier (or a report) that scores the wrong labels
    misses them."""
    config = configs.get_config("synthetic", "tiny")
    config.data.seq_len = 8
    monkeypatch.setattr(action.data_tracks, "joint_tracks", lambda *args: None)
    result = action.evaluate_action(_ConstructedRun(config))
    for name in ("keypoint_classifier", "i3d_linear_probe"):
        r = result[name]
        assert r["real"] == 1.0, name
        assert r["generated"] == 0.5, name  # half the videos move as the next class
        # Under a random other condition: never the true class, always the condition.
        assert r["generated_unconditional"] == 0.0, name
        assert r["generated_follows_random_condition"] == 1.0, name
    motion = result["keypoint_classifier"]["motion_samples"]
    assert motion["follows_condition"] == 1.0 and motion["own_class"] == 1.0
    assert motion["other_follows_first_frame"] == 0.0
    assert (motion["num_own"], motion["num_other"]) == (16, 48)
    assert result["chance"] == 0.25 and "real_ground_truth_joints" not in result[
        "keypoint_classifier"]


def test_per_class_changed_l1_on_a_constructed_case():
    # Frame 0 black; frames 1.. a 200-grey square. Class "half" predicts a 100-grey square
    # (half the copy's error there), class "exact" predicts the video itself; "blank" has
    # no video. Pixels outside the square never changed and do not count.
    real = np.zeros((3, 4, 8, 8, 3), np.uint8)
    real[:, 1:, 2:5, 2:5] = 200
    predicted = real.copy()
    predicted[:2, 1:, 2:5, 2:5] = 100
    predicted[:2, 1:, 0, 0] = 255  # wrong on an unchanged pixel: not counted
    result = reconstruction.per_class_changed_l1(predicted, real, np.array([2, 2, 0]),
                                                 ("exact", "blank", "half"))
    assert list(result) == ["exact", "half"]
    assert result["half"]["num_videos"] == 2 and result["exact"]["num_videos"] == 1
    assert result["half"]["static_baseline"] == pytest.approx(200 / 255, rel=1e-5)
    assert result["half"]["transfer"] == pytest.approx(100 / 255, rel=1e-5)
    assert result["exact"]["transfer"] == 0
    assert result["exact"]["static_baseline"] == pytest.approx(200 / 255, rel=1e-5)


def test_markdown_report_shows_every_number():
    report = {"dataset": "synthetic", "variant": "tiny", "image_size": 64, "num_keypoints": 12,
              "seed": 0, "metrics": {
                  "fvd": {"fvd": 321.5, "fvd_real_train_vs_test": 100.25,
                          "fvd_static_baseline": 654.75, "num_videos": 16, "num_frames": 16,
                          "frames": "1-16 (x0 excluded)", "resolution": 64,
                          "perceptual_network": "i3d2d"},
                  "ssim": {"reconstruction": {"ssim": 0.91234, "psnr": 25.5, "num_frames": 64,
                                              "changed_l1": 0.04321},
                           "copy_source_baseline": {"ssim": 0.8, "psnr": 21.25,
                                                    "num_frames": 64, "changed_l1": 0.2468},
                           "changed_fraction": 0.0375, "mean_mask": 0.125,
                           "crude_changed_l1": 0.13579},
                  "action": {"chance": 0.25, "num_train_videos": 96, "num_probe_train_videos": 48,
                             "keypoint_classifier": {
                                 "real": 0.375, "generated": 0.3125,
                                 "generated_unconditional": 0.1875,
                                 "generated_follows_random_condition": 0.4375,
                                 "first_frame_held": 0.8125,
                                 "motion_samples": {"follows_condition": 0.2656,
                                                    "own_class": 0.5469,
                                                    "other_follows_condition": 0.1719,
                                                    "other_follows_first_frame": 0.4844,
                                                    "num_own": 64, "num_other": 192},
                                 "real_ground_truth_joints": 0.9375, "motion_only": True},
                             "i3d_linear_probe": {
                                 "real": 1.0, "generated": 0.5625,
                                 "generated_unconditional": 0.0625,
                                 "generated_follows_random_condition": 0.6875}},
                  "keypoints": {"skipped": "no joints"},
                  "transfer": {"transfer": {"l1": 0.01234, "changed_l1": 0.09876, "ssim": 0.8765,
                                            "psnr": 27.125, "num_frames": 128},
                               "static_baseline": {"l1": 0.02346, "changed_l1": 0.2345,
                                                   "ssim": 0.8123, "psnr": 23.5,
                                                   "num_frames": 128},
                               "num_videos": 4, "num_frames": 33,
                               "per_class": {"wave": {"transfer": 0.0625, "static_baseline": 0.25,
                                                      "num_videos": 3}}}}}
    text = eval_report.format_markdown(report)
    for expected in ("0.0123", "0.0988", "0.8765", "27.12", "0.0235", "0.2345", "0.8123", "23.50",
                     "4 test videos of 33 frames", "| wave | 3 | 0.0625 | 0.2500 | 0.250 |"):
        assert expected in text
    assert "frames 1-16 (x0 excluded)" in text
    assert "trained against I3D features, so this FVD is not independent" in text
    report["metrics"]["fvd"]["perceptual_network"] = "vgg19"
    assert "VGG19 ImageNet features, as in the paper" in eval_report.format_markdown(report)
    for expected in ("321.5", "100.2", "654.8", "0.9123", "25.50", "21.25", "no joints",
                     "0.0432", "0.2468", "3.8 %", "mask 0.125", "0.1358", "0.375", "0.312", "0.188",
                     "0.438", "(256 sequences)", "condition: 0.266", "own class 0.547",
                     "held still: 0.812", "how they move from the first frame",
                     "another class 0.172", "instead 0.484", "0.938", "0.562", "0.062", "0.688"):
        assert expected in text


def test_fvd_clips_are_the_predicted_frames_without_x0():
    config = configs.get_config("penn", "full")
    assert config.eval.fvd_num_frames == 32 and config.data.eval_num_frames == 33
    clip = np.arange(33)[None, :, None]  # frame t holds t: x0, then the 32 predictions
    np.testing.assert_array_equal(trained_run.fvd_clips(clip, config)[0, :, 0], np.arange(1, 33))
    with pytest.raises(ValueError, match="frames 1..32"):
        trained_run.fvd_clips(clip[:, :32], config)


def write_set(folder, videos):
    os.makedirs(folder, exist_ok=True)
    for i, v in enumerate(videos):
        video_io.write_video(os.path.join(folder, f"{i:02d}.png"), v)  # lossless strips


def test_load_video_set_cuts_pads_and_names_problems(tmp_path):
    rng = np.random.default_rng(0)
    write_set(tmp_path / "a", [rng.integers(0, 256, (n, 16, 16, 3), np.uint8) for n in (12, 9)])
    with pytest.raises(ValueError, match="9 frames < --num_frames=10"):
        fvd.load_video_set(str(tmp_path / "a"), 10, pad=False, name="--real")
    videos = fvd.load_video_set(str(tmp_path / "a"), 10, pad=True)
    assert videos.shape == (2, 10, 16, 16, 3)
    np.testing.assert_array_equal(videos[1, 9], videos[1, 8])  # padded with the last frame
    write_set(tmp_path / "one", [rng.integers(0, 256, (10, 16, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="at least 2 videos"):
        fvd.load_video_set(str(tmp_path / "one"), 10, pad=False, name="--generated")
    with pytest.raises(FileNotFoundError, match="--real: no such file"):
        fvd.load_video_set(str(tmp_path / "missing"), 10, pad=False, name="--real")


@pytest.mark.slow
def test_fvd_between_folders_cli_is_zero_on_itself_and_grows_with_a_shift(tmp_path, i3d_arrays):
    """The pytorch-fid convention for videos: `--real=DIR --generated=DIR`."""
    rng = np.random.default_rng(1)
    base = [np.clip(rng.normal(128, 40, (10, 32, 32, 3)), 0, 255).astype(np.uint8)
            for _ in range(4)]
    write_set(tmp_path / "real", base)
    write_set(tmp_path / "same", base)
    write_set(tmp_path / "shifted", [np.clip(v.astype(int) + 80, 0, 255).astype(np.uint8)
                                     for v in base])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)

    def fvd(generated):
        result = subprocess.run(
            [sys.executable, "-m", "kpvp.evaluate", "--metric=fvd", f"--real={tmp_path / 'real'}",
             f"--generated={tmp_path / generated}", "--num_frames=10"],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["num_real"] == out["num_generated"] == 4 and out["num_frames"] == 10
        return out["fvd"]

    same, shifted = fvd("same"), fvd("shifted")
    assert abs(same) < 1e-3
    assert shifted > 1.0


@pytest.mark.slow
def test_evaluate_cli_runs_every_metric_on_a_tiny_run(tmp_path, i3d_arrays):
    """`python -m kpvp.evaluate --metric=all` end to end on an (untrained) tiny run."""
    from kpvp import cli
    from helpers.tiny_run import save_tiny_run

    config = save_tiny_run(tmp_path)
    cli.save_config(config, str(tmp_path))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "kpvp.evaluate", f"--workdir={tmp_path}", "--metric=all",
         "--num_videos=4", "--config.eval.num_train_videos=4", "--config.eval.fvd_num_frames=9",
         "--config.data.synthetic_num_train=8", "--config.data.synthetic_num_test=4",
         "--config.eval.untrained_seeds=2", "--config.eval.motion_samples=2"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    metrics = report["metrics"]
    assert set(metrics) == {"fvd", "action", "keypoints", "ssim", "transfer"}
    fvd = metrics["fvd"]
    assert fvd["num_videos"] == 4 and fvd["num_frames"] == 9
    assert fvd["frames"] == "1-9 (x0 excluded)"
    assert fvd["fvd"] >= 0 and fvd["fvd_static_baseline"] >= 0
    # Scored against the true classes and against the other classes they were generated under,
    # the same predictions cannot be right for both (the numbers themselves are checked on a
    # constructed case in test_action_accuracies_on_a_constructed_case).
    for name in ("keypoint_classifier", "i3d_linear_probe"):
        r = metrics["action"][name]
        assert r["num_real"] == r["num_generated"] == 4
        assert r["generated_unconditional"] + r["generated_follows_random_condition"] <= 1
    keypoint_action = metrics["action"]["keypoint_classifier"]
    # M's sequences: 4 first frames x 4 classes x 2 samples, each labelled with its condition.
    motion = keypoint_action["motion_samples"]
    assert (motion["num_own"], motion["num_other"]) == (4 * 2, 4 * 3 * 2)
    assert 0 <= motion["follows_condition"] <= 1 and 0 <= motion["own_class"] <= 1
    assert 0 <= keypoint_action["first_frame_held"] <= 1
    # The synthetic actions are separable from their joints even with 8 training videos.
    assert keypoint_action["real_ground_truth_joints"] >= 0.5
    keypoints = metrics["keypoints"]
    assert 0 < keypoints["trained"]["mean_error"] < 1
    # The untrained baseline is a spread over seeds, and the verdict follows from the numbers.
    spread = keypoints["untrained_seeds"]["mean_errors"]
    assert len(spread) == 2 and spread[0] == keypoints["untrained"]["mean_error"]
    assert spread[0] != spread[1]
    assert keypoints["trained_beats_every_untrained"] == (
        keypoints["trained"]["mean_error"] < min(spread))
    ssim = metrics["ssim"]
    for key in ("reconstruction", "copy_source_baseline"):
        assert -1 <= ssim[key]["ssim"] <= 1 and ssim[key]["num_frames"] > 0
    # Where the frame changed, copying the source is wrong by more than the 0.05 threshold.
    assert ssim["copy_source_baseline"]["changed_l1"] > 0.05
    assert 0 < ssim["changed_fraction"] < 1 and 0 <= ssim["mean_mask"] <= 1
    assert 0 < ssim["crude_changed_l1"] <= 1
    transfer = metrics["transfer"]
    assert transfer["num_videos"] == 4
    for key in ("transfer", "static_baseline"):
        assert 0 < transfer[key]["l1"] < 1 and 0 < transfer[key]["changed_l1"] < 1
        assert transfer[key]["num_frames"] == 4 * (transfer["num_frames"] - 1)
    assert transfer["static_baseline"]["changed_l1"] > 0.05
    # Each class's numbers pool a subset of the changed pixels: the whole lies among them.
    per_class = transfer["per_class"]
    assert set(per_class) <= set(configs.get_config("synthetic", "tiny").class_names)
    assert sum(r["num_videos"] for r in per_class.values()) == 4
    for key in ("transfer", "static_baseline"):
        values = [r[key] for r in per_class.values()]
        assert min(values) - 1e-6 <= transfer[key]["changed_l1"] <= max(values) + 1e-6
    markdown = (tmp_path / "report.md").read_text()
    assert f"{fvd['fvd']:.1f}" in markdown
    assert "FVD" in proc.stdout and "SSIM" in proc.stdout
    assert "Untrained Q over 2 seeds" in markdown
