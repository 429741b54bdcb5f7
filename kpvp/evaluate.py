"""Evaluates a trained run as in the paper (Sec. 4) and writes a JSON + Markdown report.

    python -m kpvp.evaluate --workdir=runs/demo --metric=all
    python -m kpvp.evaluate --workdir=runs/demo --metric=fvd,ssim
    python -m kpvp.evaluate --metric=fvd --real=DIR_OR_FILE --generated=DIR_OR_FILE

Metrics (`--metric`, comma-separated, or `all`):

* `fvd`: FVD (I3D Kinetics-400, Unterthiner et al.) of videos generated from the first frame and
  class of every test video against the real test videos, with two references: real train
  videos vs. the same real test videos (what other real videos of these actions score with this
  many videos; not a floor, since generated videos share the test videos' first frames, and
  with them their appearance, which train videos do not) and the input image repeated (a model
  that does not move).
* `action`: action recognition (paper Table 2) with classifiers trained on real training
  videos: a keypoint-sequence classifier on Q's keypoints, and a linear probe on I3D features of
  the videos. Real test videos give the ceiling; generated videos are scored with the class
  condition set to the true class, and with a random other class as condition (the analogue of
  the paper's model without class condition: only k0 carries class information then).
* `keypoints`: a linear regressor from Q's keypoints to ground-truth joints fitted on train
  frames, error on test frames (Thewlis et al. / Minderer et al.), beside the same regression on
  untrained Qs of `config.eval.untrained_seeds` seeds, whose spread shows how large a
  difference is meaningful: only for data sets with joints.
* `ssim`: SSIM / PSNR of stage-1 reconstructions T(s, Q(s), Q(v)) against the targets v on
  fixed test pairs, beside the trivial prediction v_hat = s, and the L1 error on the pixels
  where s and v differ (where the full-frame numbers hardly see a small moving object), with
  T's mean mask.

`--real`/`--generated` compute FVD between any two sets of videos (files or folders) without a
trained model.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging

from kpvp import cli, run_info
from kpvp.data import pseudo_labels

METRICS = ("fvd", "action", "keypoints", "ssim", "transfer")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def define_flags():
    """The app's flags (defined only when run as `python -m kpvp.evaluate`, so that importing
    this module as a library, as `kpvp.train --stage=all` does, defines none)."""
    flags.DEFINE_string("metric", "all", f"Comma-separated subset of {METRICS}, or 'all'.")
    flags.DEFINE_integer("num_videos", None, "Test videos to use (default: config.eval.num_videos, "
                         "0 = all).")
    flags.DEFINE_integer("seed", 0, "Seed of the generated videos' z.")
    flags.DEFINE_string("real", None, "FVD between folders/files: the real videos.")
    flags.DEFINE_string("generated", None, "FVD between folders/files: the generated videos.")
    flags.DEFINE_integer("num_frames", 32, "FVD between folders: frames per video, the first ones "
                         "(cut; shorter videos are an error unless --pad). The paper's protocol "
                         "compares 32 predicted frames.")
    flags.DEFINE_bool("pad", False, "FVD between folders: pad short videos by repeating the last "
                      "frame instead of failing.")


FLAGS = flags.FLAGS


def parse_metrics(text: str) -> tuple[str, ...]:
    names = METRICS if text == "all" else tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"--metric: unknown {unknown or text!r}; expected 'all' or a "
                         f"comma-separated subset of {METRICS}")
    return names


# === Shared pieces ===
class _Run:
    """Lazily loaded pieces of a trained run, shared by the metrics."""

    def __init__(self, config, workdir: str, num_videos: int, seed: int):
        self.config = config
        self.workdir = workdir
        self.num_videos = num_videos
        self.seed = seed
        self._cache = {}

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def generator(self):
        from kpvp.generation import VideoGenerator

        return self._once("generator", lambda: VideoGenerator.from_workdir(
            self.workdir, self.config.class_names))

    @property
    def stage1(self):
        from kpvp.generation import VideoGenerator

        return self._once("stage1", lambda: VideoGenerator.from_workdir(
            self.workdir, self.config.class_names, stage1_only=True))

    @property
    def i3d(self):
        from kpvp.metrics import fvd

        return self._once("i3d", lambda: fvd.I3DFeatureExtractor(
            batch_size=self.config.eval.batch_size))

    def videos(self, split: str, limit: int | None) -> dict:
        """`split` videos at the evaluation length: frames `[N,T,S,S,3]`, labels, ids."""
        def load():
            from kpvp.data import pipelines

            frames, labels, ids = [], [], []
            for element in pipelines.eval_videos(self.config, split).as_numpy_iterator():
                frames.append(element["frames"])
                labels.append(int(element["label"]))
                ids.append(element["id"].decode())
                if limit and len(frames) >= limit:
                    break
            if len(frames) < 2:
                raise ValueError(f"The {self.config.dataset} {split} split has {len(frames)} "
                                 "readable video(s); evaluation needs at least 2")
            return {"frames": np.stack(frames), "labels": np.array(labels, np.int32), "ids": ids}

        return self._once(("videos", split, limit), load)

    def features(self, name: str, frames_fn) -> np.ndarray:
        """I3D features of a named video set (its FVD clips, `fvd_clips`), computed once."""
        return self._once(("i3d", name), lambda: self.i3d.extract(
            fvd_clips(frames_fn(), self.config), progress=True, desc=f"I3D {name}")[0])

    def train_videos(self) -> dict:
        return self.videos("train", int(self.config.eval.num_train_videos) or None)

    def test_videos(self) -> dict:
        return self.videos("test", self.num_videos or None)

    def generated(self, shuffled: bool = False) -> dict:
        """Videos generated from the first frame of every test video, class = its label
        (or, with `shuffled`, a random other class)."""
        def make():
            real = self.test_videos()
            labels = real["labels"]
            if shuffled:
                labels = other_classes(labels, self.config.num_classes, self.seed)
            batch = max(1, int(self.config.eval.batch_size))
            videos, keypoints = [], []
            for start in range(0, len(labels), batch):
                out = self.generator.generate(real["frames"][start:start + batch, 0],
                                              labels[start:start + batch],
                                              seed=self.seed + start)
                videos.append(out["video"])
                keypoints.append(out["keypoints"])
            return {"frames": np.concatenate(videos), "keypoints": np.concatenate(keypoints),
                    "labels": labels}

        return self._once(("generated", shuffled), make)

    def motion_samples(self) -> dict:
        """M's keypoint sequences (no rendering) from the first frame of every test video,
        `config.eval.motion_samples` per video and per class condition (`sample_motions`)."""
        def make():
            generator = self.generator
            x0 = generator.preprocess(self.test_videos()["frames"][:, 0])
            k0 = generator.detector(x0, training=False)
            return sample_motions(generator.motion_generator, k0, self.config.num_classes,
                                  int(self.config.eval.motion_samples), self.seed)

        return self._once("motion_samples", make)

    def pseudo_labels(self, split: str) -> list[dict]:
        from kpvp import stages

        return self._once(("pseudo", split),
                          lambda: stages.pseudo_label(self.config, self.workdir, split))


def sample_motions(motion_generator, k0, num_classes: int, samples: int, seed: int) -> dict:
    """M's sequences from each first pose `k0 [N, K, 2]` under every class condition,
    `samples` (at least 1) per pose and class: `keypoints [N * C * S, T + 1, K, 2]` (k0
    first), `labels`, the class each was conditioned on, and `videos`, the index of the pose
    each started from."""
    k0 = np.asarray(k0, np.float32)
    sequences, labels = [], []
    for label in range(max(1, num_classes)):
        condition = np.full(len(k0), label, np.int32)
        for sample in range(max(1, int(samples))):
            future = motion_generator.sample(k0, condition, seed=seed + 1000 * label + sample)
            sequences.append(np.concatenate([k0[:, None], np.asarray(future)], axis=1))
            labels.append(condition)
    return {"keypoints": np.concatenate(sequences).astype(np.float32),
            "labels": np.concatenate(labels),
            "videos": np.tile(np.arange(len(k0)), len(labels))}


def other_classes(labels, num_classes: int, seed: int) -> np.ndarray:
    """For each label a uniformly drawn different class (labels unchanged if one class)."""
    labels = np.asarray(labels, np.int32)
    if num_classes < 2:
        return labels
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, num_classes, size=labels.shape)
    return ((labels + shift) % num_classes).astype(np.int32)


PERCEPTUAL_NOTES = {
    "vgg19": "VGG19 ImageNet features, as in the paper",
    "i3d2d": ("the deflated I3D's Kinetics-400 features (offline fallback): trained against I3D "
              "features, so this FVD is not independent of the training loss and is not "
              "comparable with the paper's"),
    "random": "a VGG19 with random weights (not the paper's loss)",
}


def fvd_clips(videos: np.ndarray, config) -> np.ndarray:
    """The frames FVD compares, `[N, T, ...] -> [N, fvd_num_frames, ...]`: frames 1 to
    `config.eval.fvd_num_frames` of an evaluation clip, i.e. the predicted frames of a generated
    video (x0 excluded, as in the authors' evaluation) or the real frames at the same stride."""
    n = int(config.eval.fvd_num_frames)
    if videos.shape[1] < n + 1:
        raise ValueError(f"FVD compares frames 1..{n} (config.eval.fvd_num_frames={n}) but the "
                         f"videos have {videos.shape[1]} frames, x0 included "
                         "(config.eval.fvd_num_frames < config.data.eval_num_frames)")
    return videos[:, 1:n + 1]


# === Metrics ===
def evaluate_fvd(run: _Run) -> dict:
    """FVD of generated test videos, with the real-train reference and the static baseline."""
    from kpvp.metrics import fvd

    n_frames = int(run.config.eval.fvd_num_frames)
    test = run.test_videos()["frames"]
    static = np.repeat(test[:, :1], n_frames, axis=1)
    stats = {
        "real": run.features("real", lambda: run.test_videos()["frames"]),
        "generated": run.features("generated", lambda: run.generated()["frames"]),
        # Real train vs real test, with as many videos as the test set.
        "train": run.features("train", lambda: run.train_videos()["frames"])[:len(test)],
        "static": run.i3d.extract(static, progress=True, desc="I3D static")[0],
    }
    if len(stats["train"]) < len(test):
        logging.warning("FVD's real-train reference uses %d train videos for %d test videos",
                        len(stats["train"]), len(test))
    result = {
        "fvd": fvd.fvd_from_features(stats["real"], stats["generated"]),
        "fvd_real_train_vs_test": fvd.fvd_from_features(stats["real"], stats["train"]),
        "fvd_static_baseline": fvd.fvd_from_features(stats["real"], stats["static"]),
        "num_videos": int(len(test)), "num_train_videos": int(len(stats["train"])),
        "num_frames": n_frames, "frames": f"1-{n_frames} (x0 excluded)",
        "resolution": int(run.config.image_size),
        "perceptual_network": run_info.read_run_info(run.workdir).get("perceptual_network"),
    }
    print(f"FVD {result['fvd']:.1f} (real train vs test {result['fvd_real_train_vs_test']:.1f}, "
          f"static input {result['fvd_static_baseline']:.1f}) on {len(test)} videos of "
          f"{n_frames} frames at {run.config.image_size}x{run.config.image_size} -> 224x224")
    return result


def fixed_length_sequences(tracks: list[dict], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint tracks `{keypoints [T_i, K, 2], label}` sampled like stage 2's evaluation
    batches (start 0, stride from the length): `[N, seq_len, K, 2]` and labels `[N]`."""
    from kpvp.data import pipelines

    seqs = [pipelines.temporal_sample(p["keypoints"], seq_len, 0).numpy() for p in tracks]
    return np.stack(seqs).astype(np.float32), np.array([p["label"] for p in tracks], np.int32)


def joint_tracks(config, split: str, limit: int = 0) -> list[dict] | None:
    """The ground-truth joints of the readable videos of `split` (the first `limit`, 0 for
    all) as tracks `{keypoints [T, J, 2], label}`, or None for a data set without joints."""
    from kpvp.data import readers

    source = readers.open_source(config, split)
    if not source.has_joints:
        return None
    tracks = []
    for element in readers.iter_valid(source):
        tracks.append({"keypoints": np.asarray(element["joints"], np.float32),
                       "label": int(element["label"])})
        if limit and len(tracks) == limit:
            break
    return tracks


def _joint_sequences(config, seq_len: int, num_test: int) -> dict | None:
    """Ground-truth joint sequences `{"train": (x, y), "test": (x, y)}`, or None."""
    out = {}
    for split, limit in (("train", 0), ("test", num_test)):
        tracks = joint_tracks(config, split, limit)
        if tracks is None:
            return None
        out[split] = fixed_length_sequences(tracks, seq_len)
    return out


def evaluate_action(run: _Run) -> dict:
    """Action-recognition accuracy of real and generated test videos (paper Table 2)."""
    from kpvp.metrics import action_recognition as ar

    config = run.config
    if config.num_classes < 2:
        return {"skipped": f"{config.dataset} has a single class"}
    seq_len = int(config.data.seq_len)
    train_x, train_y = fixed_length_sequences(run.pseudo_labels("train"), seq_len)
    test_pseudo = run.pseudo_labels("test")[:run.num_videos or None]
    test_x, test_y = fixed_length_sequences(test_pseudo, seq_len)
    generated = run.generated()
    shuffled = run.generated(shuffled=True)
    motion_only = bool(config.eval.classifier_motion_only)
    classifier = ar.train_sequence_classifier(train_x, train_y, config.num_classes,
                                              seed=run.seed, motion_only=motion_only)
    keypoint_report = ar.action_recognition_report(
        classifier, (test_x, test_y), (generated["keypoints"], generated["labels"]),
        (shuffled["keypoints"], run.test_videos()["labels"]))
    keypoint_report["generated_follows_random_condition"] = ar.accuracy(
        classifier, shuffled["keypoints"], shuffled["labels"])
    # The first frame alone tells part of the class (a pose, a view): the classifier on each
    # test video's first keypoints held still is what ignoring the condition can score.
    held = np.repeat(test_x[:, :1], seq_len, axis=1)
    keypoint_report["first_frame_held"] = ar.accuracy(classifier, held, test_y)
    # Many more generated sequences than videos (M only, every class from every first frame):
    # whether M follows its condition, without the noise of a few rendered videos.
    motion = run.motion_samples()
    own = run.test_videos()["labels"][motion["videos"]]
    keypoint_report["motion_samples"] = ar.condition_report(
        ar.predict_labels(classifier, motion["keypoints"]), motion["labels"], own)
    joints = _joint_sequences(config, seq_len, run.num_videos)
    if joints is not None:
        # The same classifier on the ground-truth joints: what the actions allow; the gap
        # to `real` is what Q's keypoints lose.
        joint_classifier = ar.train_sequence_classifier(*joints["train"], config.num_classes,
                                                        seed=run.seed, motion_only=motion_only)
        keypoint_report["real_ground_truth_joints"] = ar.accuracy(joint_classifier,
                                                                  *joints["test"])

    train = run.train_videos()
    probe = ar.fit_linear_probe(run.features("train", lambda: train["frames"]), train["labels"],
                                config.num_classes, seed=run.seed)
    features = {"real": run.features("real", lambda: run.test_videos()["frames"]),
                "generated": run.features("generated", lambda: generated["frames"]),
                "shuffled": run.features("shuffled", lambda: shuffled["frames"])}
    video_report = ar.action_recognition_report(
        probe, (features["real"], run.test_videos()["labels"]),
        (features["generated"], generated["labels"]),
        (features["shuffled"], run.test_videos()["labels"]))
    video_report["generated_follows_random_condition"] = probe.accuracy(
        features["shuffled"], shuffled["labels"])
    keypoint_report["motion_only"] = motion_only
    result = {"keypoint_classifier": keypoint_report, "i3d_linear_probe": video_report,
              "num_train_videos": int(len(train_y)),
              "num_probe_train_videos": int(len(train["labels"])),
              "chance": 1.0 / config.num_classes}
    for name, rep in (("keypoint classifier", keypoint_report), ("I3D probe", video_report)):
        print(f"Action recognition ({name}): real {rep['real']:.3f}, generated "
              f"{rep['generated']:.3f}, random condition {rep['generated_unconditional']:.3f} "
              f"(chance {1.0 / config.num_classes:.3f})")
    m = keypoint_report["motion_samples"]
    print(f"Keypoint classifier: {m['num_own'] + m['num_other']} sequences of M follow their "
          f"class condition {m['follows_condition']:.3f} (own class {m['own_class']:.3f}, "
          f"another class {m['other_follows_condition']:.3f}); first frame held still "
          f"{keypoint_report['first_frame_held']:.3f}"
          + (f"; on ground-truth joints of real test videos "
             f"{keypoint_report['real_ground_truth_joints']:.3f}"
             if "real_ground_truth_joints" in keypoint_report else ""))
    return _jsonable(result)


def evaluate_keypoints(run: _Run) -> dict:
    """Linear regression from Q's keypoints to ground-truth joints; trained Q vs untrained Qs
    of `config.eval.untrained_seeds` seeds (the baseline's spread)."""
    import keras

    from kpvp.data import readers
    from kpvp.metrics import keypoint_regression as kr
    from kpvp.models import keypoint_detector

    config = run.config
    if not readers.open_source(config, "test").has_joints:
        return {"skipped": f"{config.dataset} has no ground-truth joints"}
    data = {split: _frames_with_joints(config, split, run.num_videos if split == "test" else 0)
            for split in ("train", "test")}

    def regression_error(detector):
        kp = {split: _detect(detector, d["frames"], image_size=config.image_size)
              for split, d in data.items()}
        errors = kr.keypoint_regression_error(
            kp["train"], data["train"]["joints"], kp["test"], data["test"]["joints"],
            visible_train=data["train"]["visible"], visible_test=data["test"]["visible"],
            image_size=config.image_size)
        errors.pop("regressor", None)
        return errors

    result = {"image_size": int(config.image_size),
              "trained": regression_error(run.stage1.detector)}
    untrained = []
    for i in range(max(int(config.eval.untrained_seeds), 1)):
        keras.utils.set_random_seed(config.seed + i)
        untrained.append(regression_error(keypoint_detector.from_config(config)))
    spread = [u["mean_error"] for u in untrained]
    result["untrained"] = untrained[0]
    result["untrained_seeds"] = {"mean_errors": spread, "min": min(spread), "max": max(spread),
                                 "mean": float(np.mean(spread))}
    result["trained_beats_every_untrained"] = bool(result["trained"]["mean_error"] < min(spread))
    result["num_train_frames"] = int(len(data["train"]["frames"]))
    result["num_test_frames"] = int(len(data["test"]["frames"]))
    print(f"Keypoints -> joints regression error (fraction of image size): trained Q "
          f"{result['trained']['mean_error']:.4f}, untrained Q {min(spread):.4f}-"
          f"{max(spread):.4f} over {len(spread)} seeds ({result['num_test_frames']} test frames)")
    return _jsonable(result)


def _frames_with_joints(config, split: str, limit: int, frames_per_video: int = 8) -> dict:
    """Evenly spaced frames of each video with their joints (eval resolution)."""
    from kpvp.data import pipelines

    frames, joints, visible = [], [], []
    for count, element in enumerate(pipelines.eval_videos(config, split).as_numpy_iterator()):
        if limit and count >= limit:
            break
        idx = np.linspace(0, len(element["frames"]) - 1, frames_per_video).round().astype(int)
        frames.append(element["frames"][idx])
        joints.append(element["joints"][idx])
        visible.append(element["visible"][idx])
    return {"frames": np.concatenate(frames), "joints": np.concatenate(joints),
            "visible": np.concatenate(visible)}


def _detect(detector, frames: np.ndarray, batch: int = 64, image_size=None) -> np.ndarray:
    """Q's keypoints of uint8 frames, taken to Q as pseudo-labelling takes them."""
    return pseudo_labels.detect_video(detector, frames, image_size, batch)


def evaluate_ssim(run: _Run) -> dict:
    """SSIM/PSNR/L1 of stage-1 reconstructions on fixed test pairs, and of v_hat = s."""
    from kpvp.data import pipelines
    from kpvp.metrics import frame_metrics

    detector, translator = run.stage1.detector, run.stage1.translator
    result = frame_metrics.reconstruction_metrics(
        pipelines.stage1_dataset(run.config, split="test"), lambda batch: translator(
            [batch["source"], detector(batch["source"]), detector(batch["target"])]))
    rec, base = result["reconstruction"], result["copy_source_baseline"]
    print(f"Stage-1 reconstruction: SSIM {rec['ssim']:.4f}, PSNR {rec['psnr']:.2f} dB, L1 where "
          f"the frame changed {rec['changed_l1']:.4f} (copying the source frame: SSIM "
          f"{base['ssim']:.4f}, PSNR {base['psnr']:.2f} dB, L1 {base['changed_l1']:.4f}) on "
          f"{rec['num_frames']} test pairs; mean mask {result['mean_mask']:.3f}, crude image "
          f"L1 where changed {result['crude_changed_l1']:.4f}")
    return _jsonable(result)


def evaluate_transfer(run: _Run) -> dict:
    """Video reconstruction by motion transfer: every test video drives its own first frame.

    Q's keypoints in each frame move the first frame through T (`VideoGenerator.transfer`,
    relative motion); frames 1.. are compared with the real ones, next to the first frame
    repeated (what a translator that ignores the keypoints would give). Needs stage 1 only.
    """
    from kpvp.metrics import frame_metrics

    real = run.test_videos()["frames"]
    transferred = np.stack([run.stage1.transfer(video[0], video)["video"] for video in real])
    static = np.repeat(real[:, :1], real.shape[1], axis=1)
    future = real[:, 1:]
    future_unit = frame_metrics.to_unit_range(future)

    def scores(videos):
        videos = videos[:, 1:]
        # A frame equal to the real one (a still moment copied by the static baseline) counts
        # as one grey level off everywhere (48.1 dB), not as +inf.
        result = frame_metrics.frame_metrics([(videos, future)],
                                             max_psnr=frame_metrics.UINT8_MAX_PSNR)
        result["l1"] = float(np.mean(np.abs(frame_metrics.to_unit_range(videos) - future_unit)))
        result["changed_l1"] = frame_metrics.changed_region_l1(
            [(videos, future, static[:, 1:])])["l1"]
        return result

    result = {"transfer": scores(transferred), "static_baseline": scores(static),
              "num_videos": int(len(real)), "num_frames": int(real.shape[1])}
    t, b = result["transfer"], result["static_baseline"]
    print(f"Motion transfer, each test video driving its own first frame: L1 {t['l1']:.4f}, "
          f"L1 where the video changed {t['changed_l1']:.4f}, SSIM {t['ssim']:.4f}, PSNR "
          f"{t['psnr']:.2f} dB (first frame repeated: L1 {b['l1']:.4f}, {b['changed_l1']:.4f}, "
          f"SSIM {b['ssim']:.4f}, PSNR {b['psnr']:.2f} dB) on {len(real)} videos of "
          f"{real.shape[1]} frames")
    return _jsonable(result)


EVALUATORS = {"fvd": evaluate_fvd, "action": evaluate_action, "keypoints": evaluate_keypoints,
              "ssim": evaluate_ssim, "transfer": evaluate_transfer}


# === Report ===
def run_evaluation(config, workdir: str, metrics=METRICS, num_videos: int | None = None,
                   seed: int = 0) -> dict:
    """Runs `metrics` on the trained run in `workdir`; writes report.json and report.md there."""
    num_videos = int(config.eval.num_videos if num_videos is None else num_videos)
    run = _Run(config, workdir, num_videos, seed)
    report = _read_report(workdir)
    report.update(dataset=config.dataset, variant=config.variant, seed=seed,
                  image_size=int(config.image_size), num_keypoints=int(config.num_keypoints))
    results = report.setdefault("metrics", {})
    for name in metrics:
        start = time.time()
        logging.info("Evaluating %s", name)
        results[name] = EVALUATORS[name](run)
        results[name]["seconds"] = round(time.time() - start, 1)
        _write_report(workdir, report)
    return report


def _read_report(workdir: str) -> dict:
    path = os.path.join(workdir, REPORT_JSON)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def _write_report(workdir: str, report: dict) -> None:
    with open(os.path.join(workdir, REPORT_JSON), "w", encoding="utf-8") as f:
        json.dump(_jsonable(report), f, indent=2)
    with open(os.path.join(workdir, REPORT_MD), "w", encoding="utf-8") as f:
        f.write(format_markdown(report))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _fmt(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_markdown(report: dict) -> str:
    """The report as Markdown tables (what `report.md` holds)."""
    m = report.get("metrics", {})
    lines = [f"# kpvp evaluation: {report.get('dataset')} ({report.get('variant')})", "",
             f"Image size {report.get('image_size')}, K = {report.get('num_keypoints')}, "
             f"seed {report.get('seed')}.", ""]
    if "fvd" in m:
        f = m["fvd"]
        lines += ["## FVD (lower is better)", "",
                  "| videos compared with real test videos | FVD |", "|---|---|",
                  f"| generated (kpvp) | {_fmt(f['fvd'], 1)} |",
                  f"| real train videos (other videos of the actions) | "
                  f"{_fmt(f['fvd_real_train_vs_test'], 1)} |",
                  f"| input image repeated (static baseline) | {_fmt(f['fvd_static_baseline'], 1)} |",
                  "", f"{f['num_videos']} test videos; frames {f.get('frames', f['num_frames'])} "
                  "of each clip (the predicted frames against the real frames at the same "
                  f"stride), {f['resolution']}x{f['resolution']} upsampled to 224x224 for I3D."]
        network = f.get("perceptual_network")
        if network:
            note = PERCEPTUAL_NOTES.get(network, network)
            lines += [f"Stage 1 was trained against {note}."]
        lines += [""]
    if "action" in m and "skipped" not in m["action"]:
        a = m["action"]
        lines += ["## Action recognition (accuracy, higher is better)", "",
                  "| classifier | real test videos | generated | generated, random class "
                  "condition (vs true class) | generated follows random condition |",
                  "|---|---|---|---|---|"]
        for key, label in (("keypoint_classifier", "keypoint-sequence classifier"),
                           ("i3d_linear_probe", "linear probe on I3D features")):
            r = a[key]
            lines.append(f"| {label} | {_fmt(r['real'])} | {_fmt(r['generated'])} | "
                         f"{_fmt(r.get('generated_unconditional'))} | "
                         f"{_fmt(r.get('generated_follows_random_condition'))} |")
        lines += ["", f"Chance {_fmt(a['chance'])}. The keypoint classifier is trained on Q's "
                  f"keypoints of {a['num_train_videos']} real training videos"
                  + (" and sees only how they move from the first frame"
                     if a["keypoint_classifier"].get("motion_only") else "")
                  + f", the probe on I3D features of {a['num_probe_train_videos']}.", ""]
        k = a["keypoint_classifier"]
        if "motion_samples" in k:
            ms = k["motion_samples"]
            lines += [f"Keypoint sequences sampled by M (no rendering) from every test video's "
                      f"first frame with every class condition "
                      f"({ms['num_own'] + ms['num_other']} sequences), classified as their "
                      f"condition: {_fmt(ms['follows_condition'])} (chance "
                      f"{_fmt(a['chance'])}, also for an M that ignores the class); under the "
                      f"video's own class {_fmt(ms['own_class'])} (the first frame held still: "
                      f"{_fmt(k.get('first_frame_held'))}); under another class "
                      f"{_fmt(ms['other_follows_condition'])}, classified as the first frame's "
                      f"class instead {_fmt(ms['other_follows_first_frame'])}.", ""]
        if "real_ground_truth_joints" in k:
            lines += [f"The same classifier trained and tested on the ground-truth joints of "
                      f"the real videos (what the actions allow; the gap to the real test "
                      f"videos is what Q's keypoints lose): "
                      f"{_fmt(k['real_ground_truth_joints'])}.", ""]
    if "keypoints" in m and "skipped" not in m["keypoints"]:
        k = m["keypoints"]
        lines += ["## Keypoints -> ground-truth joints (linear regression, test error)", "",
                  "| detector | mean error (fraction of image side) | mean error (pixels) |",
                  "|---|---|---|",
                  f"| trained Q | {_fmt(k['trained']['mean_error'], 4)} | "
                  f"{_fmt(k['trained']['mean_error_px'], 2)} |",
                  f"| untrained Q | {_fmt(k['untrained']['mean_error'], 4)} | "
                  f"{_fmt(k['untrained']['mean_error_px'], 2)} |", ""]
        seeds = k.get("untrained_seeds")
        if seeds and len(seeds["mean_errors"]) > 1:
            verdict = ("beats every one of them" if k["trained_beats_every_untrained"] else
                       "does not beat all of them: no evidence of learned keypoints")
            lines += [f"Untrained Q over {len(seeds['mean_errors'])} seeds: "
                      f"{_fmt(seeds['min'], 4)}-{_fmt(seeds['max'], 4)} (mean "
                      f"{_fmt(seeds['mean'], 4)}); the trained Q {verdict}.", ""]
        lines += [f"{k['num_train_frames']} train / {k['num_test_frames']} test frames.", ""]
    if "ssim" in m:
        from kpvp.metrics import frame_metrics

        s = m["ssim"]
        rows = [(name, s[key]) for name, key in (("T(s, Q(s), Q(v))", "reconstruction"),
                                                  ("the source frame s", "copy_source_baseline"))]
        lines += ["## Stage-1 reconstruction of test pairs", "",
                  "| prediction of the target frame | SSIM | PSNR (dB) | L1 where s and v differ |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {_fmt(r['ssim'], 4)} | {_fmt(r['psnr'], 2)} | "
                  f"{_fmt(r.get('changed_l1'), 4)} |" for name, r in rows]
        if "crude_changed_l1" in s:
            lines.append(f"| T's crude image before the blend | | | "
                         f"{_fmt(s['crude_changed_l1'], 4)} |")
        lines += ["", f"{s['reconstruction']['num_frames']} test pairs. L1 in [0, 1] units over "
                  f"the pixels where source and target differ by more than "
                  f"{frame_metrics.CHANGED_THRESHOLD:g} "
                  f"({_fmt(100 * s.get('changed_fraction', float('nan')), 1)} % of the pixels), "
                  f"where copying the source makes its whole error; T's mean mask "
                  f"{_fmt(s.get('mean_mask'), 3)}.", ""]
    if "transfer" in m:
        t = m["transfer"]
        rows = (("motion transfer from the video itself", t["transfer"]),
                ("the first frame repeated", t["static_baseline"]))
        lines += ["## Video reconstruction by motion transfer", "",
                  "| frames 1.. of each test video predicted by | L1 | L1 where the video "
                  "changed | SSIM | PSNR (dB) |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {_fmt(r['l1'], 4)} | {_fmt(r['changed_l1'], 4)} | "
                  f"{_fmt(r['ssim'], 4)} | {_fmt(r['psnr'], 2)} |" for name, r in rows]
        lines += ["", f"{t['num_videos']} test videos of {t['num_frames']} frames; each drives "
                  f"its own first frame through Q and T (relative keypoint motion). L1 in [0, 1] "
                  f"units; \"where the video changed\": pixels that differ from the first "
                  f"frame.", ""]
    skipped = [f"- {name}: {r['skipped']}" for name, r in m.items() if "skipped" in r]
    if skipped:
        lines += ["## Not applicable", ""] + skipped + [""]
    return "\n".join(lines)


def format_summary(report: dict) -> str:
    return f"Report written to {REPORT_MD}:\n\n" + format_markdown(report)


# === FVD between two sets of videos ===
def fvd_between(real: str, generated: str, num_frames: int = 32, pad: bool = False,
                batch_size: int = 8) -> dict:
    """FVD between the videos of two files/folders, cut (or padded) to `num_frames` frames."""
    from kpvp.metrics import fvd

    sets = {name: load_video_set(path, num_frames, pad, name)
            for name, path in (("--real", real), ("--generated", generated))}
    value = fvd.compute_fvd(sets["--real"], sets["--generated"], batch_size=batch_size)
    return {"fvd": value, "num_real": len(sets["--real"]),
            "num_generated": len(sets["--generated"]), "num_frames": num_frames}


def load_video_set(path: str, num_frames: int, pad: bool, name: str = "videos") -> np.ndarray:
    """uint8 `[N, num_frames, H, W, 3]` from a video file or a folder of them (equal sizes)."""
    from kpvp.data import readers, video_io

    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file or folder {path!r}")
    videos, problems = [], []
    for entry in readers.video_entries(path) if os.path.isdir(path) else [path]:
        try:
            videos.append(video_io.read_video(entry))
        except video_io.CorruptVideoError as e:
            logging.warning("Skipping unreadable video %s: %s", entry, e.reason)
            problems.append(entry)
    if len(videos) < 2:
        raise ValueError(f"{name}: FVD needs at least 2 videos; {path!r} has {len(videos)}"
                         + (f" readable ({len(problems)} unreadable)" if problems else ""))
    out = []
    for i, v in enumerate(videos):
        if len(v) < num_frames:
            if not pad:
                raise ValueError(f"{name}: video {i} of {path!r} has {len(v)} frames < "
                                 f"--num_frames={num_frames} (use --pad to repeat its last frame)")
            v = np.concatenate([v, np.repeat(v[-1:], num_frames - len(v), axis=0)])
        out.append(v[:num_frames])
    shapes = {v.shape for v in out}
    if len(shapes) > 1:
        raise ValueError(f"{name}: videos of {path!r} differ in size {sorted(shapes)}")
    return np.stack(out)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.real or FLAGS.generated:
        if not (FLAGS.real and FLAGS.generated):
            raise app.UsageError("--real and --generated go together")
        result = fvd_between(FLAGS.real, FLAGS.generated, FLAGS.num_frames, FLAGS.pad)
        print(json.dumps(result))
        return
    metrics = parse_metrics(FLAGS.metric)
    if not os.path.exists(os.path.join(FLAGS.workdir, cli.CONFIG_FILE)):
        raise app.UsageError(f"--workdir={FLAGS.workdir!r} holds no trained run "
                             f"({cli.CONFIG_FILE} missing)")
    config = cli.resolve_config(FLAGS.workdir)
    report = run_evaluation(config, FLAGS.workdir, metrics, FLAGS.num_videos, FLAGS.seed)
    print(format_summary(report))


if __name__ == "__main__":
    define_flags()
    app.run(main)
