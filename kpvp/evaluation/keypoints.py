"""Keypoint quality: a linear regressor from Q's keypoints to ground-truth joints, fitted on
train frames, its error on test frames (Thewlis et al. / Minderer et al.), beside the same
regression on untrained Qs of several seeds (whose spread shows what difference is meaningful).
Only for data sets with joints."""
from __future__ import annotations

import keras
import numpy as np

from kpvp.data import pipelines, pseudo_labels, readers
from kpvp.evaluation import report
from kpvp.evaluation.trained_run import TrainedRun
from kpvp.metrics import keypoint_regression as kr
from kpvp.models import keypoint_detector
from kpvp.ops import images as image_ops
from kpvp.trainers import loop


def evaluate_keypoints(run: TrainedRun) -> dict:
    """Linear regression from Q's keypoints to ground-truth joints; trained Q vs untrained Qs
    of `config.eval.untrained_seeds` seeds (the baseline's spread)."""
    config = run.config
    if not readers.open_source(config, "test").has_joints:
        return {"skipped": f"{config.dataset} has no ground-truth joints"}
    data = {split: _frames_with_joints(config, split, run.num_videos if split == "test" else 0)
            for split in ("train", "test")}

    def regression_error(detector):
        kp = {split: detect(detector, d["frames"], config.image_size)
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
        detector = keypoint_detector.build_detector(config)
        _recalibrate_like_export(detector, data["train"]["frames"], config)
        untrained.append(regression_error(detector))
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
    return report.jsonable(result)


def _recalibrate_like_export(detector, frames: np.ndarray, config, batch: int = 8) -> None:
    """An untrained Q's batch-norm statistics re-estimated on train frames, as the trained Q's
    were before export (`stage1.bn_recalibration_batches`): otherwise the baseline would
    compute with the initial (0, 1) statistics the trained Q never uses."""
    num_batches = min(int(config.stage1.bn_recalibration_batches), len(frames) // batch)
    layers = loop.batch_norm_layers(detector)
    if num_batches <= 0 or not layers:
        return
    batches = (image_ops.model_input(frames[i * batch:(i + 1) * batch], config.image_size)
               for i in range(num_batches))
    loop.recalibrate_batch_norm(layers, lambda images: detector(images, training=True), batches)


def _frames_with_joints(config, split: str, limit: int, frames_per_video: int = 8) -> dict:
    """Evenly spaced frames of each video with their joints (eval resolution)."""
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


def detect(detector, frames: np.ndarray, image_size: int, batch: int = 64) -> np.ndarray:
    """Q's keypoints `[N, K, 2]` of uint8 frames, taken to Q as pseudo-labelling takes them."""
    return pseudo_labels.detect_video(detector, frames, image_size, batch)
