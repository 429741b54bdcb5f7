"""FVD (I3D Kinetics-400, Unterthiner et al.) of a trained run's generated test videos, with
its two references, and FVD between any two sets of videos on disk."""
from __future__ import annotations

import os

import numpy as np
from absl import logging

from kpvp import errors, run_info
from kpvp.data import readers, video_io
from kpvp.evaluation.trained_run import TrainedRun
from kpvp.metrics import fvd as fvd_metric


def evaluate_fvd(run: TrainedRun) -> dict:
    """FVD of generated test videos, with the real-train reference and the static baseline."""
    n_frames = int(run.config.eval.fvd_num_frames)
    test = run.test_videos()["frames"]
    static = np.repeat(test[:, :1], n_frames, axis=1)
    # The real sets' features are cached in the run directory: re-evaluating reads them.
    stats = {
        "real": run.cached_features("real", run.test_videos),
        "generated": run.features("generated", lambda: run.generated()["frames"]),
        # Real train vs real test, with as many videos as the test set.
        "train": run.cached_features("train", run.train_videos)[:len(test)],
        "static": run.i3d.extract(static, progress=True, desc="I3D static")[0],
    }
    if len(stats["train"]) < len(test):
        logging.warning("FVD's real-train reference uses %d train videos for %d test videos",
                        len(stats["train"]), len(test))
    result = {
        "fvd": fvd_metric.fvd_from_features(stats["real"], stats["generated"]),
        "fvd_real_train_vs_test": fvd_metric.fvd_from_features(stats["real"], stats["train"]),
        "fvd_static_baseline": fvd_metric.fvd_from_features(stats["real"], stats["static"]),
        "num_videos": int(len(test)), "num_train_videos": int(len(stats["train"])),
        "num_frames": n_frames, "frames": f"1-{n_frames} (x0 excluded)",
        "resolution": int(run.config.image_size),
        "perceptual_network": run_info.read_run_info(run.workdir).get("perceptual_network"),
    }
    print(f"FVD {result['fvd']:.1f} (real train vs test {result['fvd_real_train_vs_test']:.1f}, "
          f"static input {result['fvd_static_baseline']:.1f}) on {len(test)} videos of "
          f"{n_frames} frames at {run.config.image_size}x{run.config.image_size} -> 224x224")
    return result


# === FVD between two sets of videos ===
def fvd_between(real: str, generated: str, num_frames: int = 32, pad: bool = False,
                batch_size: int = 8) -> dict:
    """FVD between the videos of two files/folders, cut (or padded) to `num_frames` frames."""
    sets = {name: load_video_set(path, num_frames, pad, name)
            for name, path in (("--real", real), ("--generated", generated))}
    value = fvd_metric.compute_fvd(sets["--real"], sets["--generated"], batch_size=batch_size)
    return {"fvd": value, "num_real": len(sets["--real"]),
            "num_generated": len(sets["--generated"]), "num_frames": num_frames}


def load_video_set(path: str, num_frames: int, pad: bool, name: str = "videos") -> np.ndarray:
    """uint8 `[N, num_frames, H, W, 3]` from a video file or a folder of them (equal sizes)."""
    if not os.path.exists(path):
        raise errors.InputNotFound(f"{name}: no such file or folder {path!r}")
    videos, problems = [], []
    for entry in readers.video_entries(path) if os.path.isdir(path) else [path]:
        try:
            videos.append(video_io.read_video(entry))
        except video_io.CorruptVideoError as e:
            logging.warning("Skipping unreadable video %s: %s", entry, e.reason)
            problems.append(entry)
    if len(videos) < 2:
        raise errors.InvalidInput(f"{name}: FVD needs at least 2 videos; {path!r} has {len(videos)}"
                         + (f" readable ({len(problems)} unreadable)" if problems else ""))
    out = []
    for i, v in enumerate(videos):
        if len(v) < num_frames:
            if not pad:
                raise errors.InvalidInput(f"{name}: video {i} of {path!r} has {len(v)} frames < "
                                 f"--num_frames={num_frames} (use --pad to repeat its last frame)")
            v = np.concatenate([v, np.repeat(v[-1:], num_frames - len(v), axis=0)])
        out.append(v[:num_frames])
    shapes = {v.shape for v in out}
    if len(shapes) > 1:
        raise errors.InvalidInput(f"{name}: videos of {path!r} differ in size {sorted(shapes)}")
    return np.stack(out)
