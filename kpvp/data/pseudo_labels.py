"""Pseudo-labels for stage 2: the stage-1 detector Q's keypoints on every frame of every video.

The paper trains the motion generator M on `k_0:T` detected by Q in real videos (Sec. 2,
"Learning the motion generator with pseudo-labeled data"). Labelling a data set takes a while,
so the store is written one file per video and resumes where it stopped:

    out_dir/
      index.json        detector_id, status ("in_progress" | "complete"), counts, video list
      <video id>.npz    keypoints float32 [T, K, 2], label int, id str, detector_id str

`detector_id` names the detector that produced the labels (in a run directory, a hash of the
exported Q: `kpvp.rundir.RunDir.detector_id`); labels from another detector are never mixed in:
a run with a different `detector_id` clears the directory and starts over, and
`load_pseudo_labels` can insist on the id it expects. `label_run` does all this for the
`pseudo_labels/<split>/` store of a run directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import keras
import numpy as np
import tensorflow as tf
import tqdm
from absl import logging

import kpvp.models  # noqa: F401  (registers the networks for `load_model`)
from kpvp import rundir
from kpvp.data import readers
from kpvp.ops import images as image_ops

INDEX_FILE = "index.json"
FORMAT_VERSION = 1


def label_run(config, workdir, split: str, out_dir: str | None = None) -> list[dict]:
    """Q's keypoints for every video of `split` in the run directory `workdir` (a path or a
    `RunDir`): written once, reused while the exported Q is unchanged, redone when it changes.
    `out_dir`: store them there instead of the run's `pseudo_labels/<split>`."""
    run = rundir.RunDir(workdir)
    ident = run.detector_id
    detector = keras.models.load_model(run.exported("detector"))
    out_dir = out_dir or run.pseudo_labels(split)
    summary = label_videos(detector, readers.open_source(config, split), out_dir, ident,
                           image_size=config.image_size)
    logging.info("Pseudo-labels (%s): %s", split, summary)
    return load_pseudo_labels(out_dir, ident)


def label_videos(detector, source, out_dir: str, detector_id: str, batch_size: int = 32,
                 image_size: int | None = None) -> dict:
    """Runs Q over every frame of every video in `source` and stores `k_0:T` per video.

    Args:
      detector: Q, a callable `float32 [B, S, S, 3] in [-1, 1] -> keypoints [B, K, 2]` (a dict
        output with a `keypoints` entry is accepted too).
      source: an iterable of data elements (`frames` uint8 `[T, H, W, 3]`, `label` int, `id` str),
        e.g. `kpvp.data.readers.open_source(config, "train")`. Videos it cannot decode are
        counted from its `skipped` attribute if it has one.
      out_dir: where the `.npz` files and `index.json` go (created if needed).
      detector_id: a non-empty string naming `detector` (its weights).
      batch_size: frames per detector call.
      image_size: S, the detector's input size; frames of another size take the one road to
        the networks, `kpvp.ops.images.model_input` (the centre square cut out, then resized
        to S x S). None: `detector.image_size` if it has one, else frames keep their size.
    Returns:
      dict(written, already_done, skipped, total, num_frames, out_dir, detector_id): `written`
      videos labelled now, `already_done` kept from an earlier run with the same detector_id,
      `skipped` corrupt or malformed videos, `num_frames` frames labelled now.
    """
    if not isinstance(detector_id, str) or not detector_id:
        raise ValueError(f"detector_id must be a non-empty string, got {detector_id!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if image_size is None:
        image_size = getattr(detector, "image_size", None)
    os.makedirs(out_dir, exist_ok=True)

    index = _read_index(out_dir)
    if index is not None and index.get("detector_id") != detector_id:
        logging.warning(
            "Pseudo-labels in %s were made by detector %r, not %r: deleting them and starting "
            "over.", out_dir, index.get("detector_id"), detector_id)
        _clear(out_dir)
        index = None
    elif index is not None:
        logging.info("Resuming pseudo-labels in %s (detector %r, status %s)", out_dir,
                     detector_id, index.get("status"))
    index = {"format_version": FORMAT_VERSION, "detector_id": detector_id,
             "status": "in_progress", "image_size": image_size}
    _write_index(out_dir, index)

    detect = _make_detect_fn(detector, image_size)
    videos, own_skipped, seen = [], [], set()
    written = already_done = num_frames = 0
    total = len(source) if hasattr(source, "__len__") else None
    with tqdm.tqdm(total=total, desc="pseudo-labels", unit="video") as progress:
        for element in source:
            progress.update(1)
            video_id = str(element.get("id", ""))
            if not video_id:
                own_skipped.append({"id": "", "reason": "element has no id"})
                continue
            if video_id in seen:
                raise ValueError(f"source yields the video id {video_id!r} twice; ids must be "
                                 "unique to name the pseudo-label files")
            seen.add(video_id)
            filename = _filename(video_id)
            path = os.path.join(out_dir, filename)
            entry = {"id": video_id, "file": filename, "label": int(element.get("label", 0))}
            stored = _stored_detector_id(path)
            if stored == detector_id:
                already_done += 1
                entry["num_frames"] = _stored_num_frames(path)
                videos.append(entry)
                continue
            frames = element.get("frames")
            problem = _frames_problem(frames)
            if problem:
                logging.warning("Skipping video %r: %s", video_id, problem)
                own_skipped.append({"id": video_id, "reason": problem})
                continue
            keypoints = _detect_video(detect, frames, int(batch_size))
            if not np.all(np.isfinite(keypoints)):
                raise FloatingPointError(
                    f"detector {detector_id!r} gave non-finite keypoints on video {video_id!r}")
            _write_npz(path, keypoints=keypoints, label=np.int64(entry["label"]),
                       id=np.str_(video_id), detector_id=np.str_(detector_id))
            entry["num_frames"] = int(keypoints.shape[0])
            videos.append(entry)
            written += 1
            num_frames += int(keypoints.shape[0])

    skipped = _source_skipped(source) + own_skipped
    summary = {"written": written, "already_done": already_done, "skipped": len(skipped),
               "total": written + already_done, "num_frames": num_frames, "out_dir": out_dir,
               "detector_id": detector_id}
    index.update(status="complete", videos=videos, skipped=skipped,
                 counts={k: summary[k] for k in ("written", "already_done", "skipped", "total")})
    _write_index(out_dir, index)
    logging.info("Pseudo-labels in %s: %d written, %d kept from before, %d skipped",
                 out_dir, written, already_done, len(skipped))
    return summary


def load_pseudo_labels(out_dir: str, expected_detector_id: str | None = None,
                       allow_incomplete: bool = False) -> list[dict]:
    """Reads a store written by `label_videos`.

    Args:
      out_dir: the store's directory.
      expected_detector_id: if given, the store must have been made by this detector.
      allow_incomplete: also read a store whose labelling run was interrupted (the videos
        finished so far); by default that is an error.
    Returns:
      list (in source order) of dict(keypoints float32 `[T, K, 2]`, label int, id str).
    """
    index = _read_index(out_dir) if os.path.isdir(out_dir) else None
    if index is None:
        raise FileNotFoundError(
            f"No pseudo-labels in {out_dir!r} (expected {INDEX_FILE} there): label the training "
            "videos with the stage-1 detector first (kpvp.data.pseudo_labels.label_videos, run "
            "by `python -m kpvp.train --stage=2`)")
    made_by = index.get("detector_id")
    if expected_detector_id is not None and made_by != expected_detector_id:
        raise ValueError(
            f"Pseudo-labels in {out_dir!r} were made by detector {made_by!r}, expected "
            f"{expected_detector_id!r}: relabel with label_videos(..., detector_id="
            f"{expected_detector_id!r})")
    if index.get("status") == "complete":
        files = [v["file"] for v in index["videos"]]
    elif allow_incomplete:
        files = sorted(f for f in os.listdir(out_dir)
                       if f.endswith(".npz") and rundir.TEMPORARY_MARK not in f)
    else:
        raise RuntimeError(
            f"Pseudo-labelling of {out_dir!r} did not finish (status {index.get('status')!r}): "
            "run label_videos again with the same detector_id to complete it")
    sequences = []
    for filename in files:
        path = os.path.join(out_dir, filename)
        try:
            with np.load(path) as data:
                if str(data["detector_id"]) != made_by:
                    raise ValueError(f"made by detector {str(data['detector_id'])!r}, the index "
                                     f"says {made_by!r}")
                keypoints = np.asarray(data["keypoints"], dtype=np.float32)
                sequences.append({"keypoints": keypoints, "label": int(data["label"]),
                                  "id": str(data["id"])})
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"Bad pseudo-label file {path!r}: {e}") from e
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(f"Bad pseudo-label file {path!r}: keypoints must be [T, K, 2], "
                             f"got {keypoints.shape}")
    return sequences


# === Detection ===
def _make_detect_fn(detector, image_size):
    """`uint8 [B, H, W, 3] -> float32 [B, K, 2]`, one graph per frame size (static shapes)."""
    graphs = {}

    def build(height, width):
        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8)])
        def detect(frames):
            images = (image_ops.to_model_range(frames) if image_size is None
                      else image_ops.model_input(frames, image_size))
            out = detector(images, training=False)
            if isinstance(out, dict):
                out = out["keypoints"]
            return tf.cast(out, tf.float32)
        return detect

    def detect(frames):
        key = tuple(frames.shape[1:3])
        if key not in graphs:
            graphs[key] = build(*key)
        return graphs[key](frames)
    return detect


def detect_video(detector, frames, image_size: int | None = None,
                 batch_size: int = 32) -> np.ndarray:
    """Q's keypoints of every frame, `uint8 [T, H, W, 3]` -> `float32 [T, K, 2]`, the frames
    taken to Q as in `label_videos` (`kpvp.ops.images.model_input` at `image_size`; None:
    `detector.image_size` if it has one, else the frames keep their size)."""
    if image_size is None:
        image_size = getattr(detector, "image_size", None)
    return _detect_video(_make_detect_fn(detector, image_size), np.asarray(frames),
                         int(batch_size))


def _detect_video(detect, frames, batch_size) -> np.ndarray:
    """`uint8 [T, H, W, 3]` -> keypoints `float32 [T, K, 2]`, `batch_size` frames per call."""
    chunks = [detect(tf.constant(frames[i:i + batch_size])).numpy()
              for i in range(0, len(frames), batch_size)]
    keypoints = np.concatenate(chunks, axis=0)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"detector must return keypoints [B, K, 2], got {keypoints.shape[1:]} "
                         "per batch")
    return keypoints


def _frames_problem(frames) -> str | None:
    """Why `frames` is not a usable video, or None."""
    if frames is None:
        return "no frames"
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        return f"frames must be uint8, got {frames.dtype}"
    if frames.ndim != 4 or frames.shape[-1] != 3:
        return f"frames must have shape [T, H, W, 3], got {frames.shape}"
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        return f"empty video (shape {frames.shape})"
    return None


def _source_skipped(source) -> list:
    """The source's unreadable videos: `skipped` holds `(path, reason)` pairs (kpvp readers)."""
    out = []
    for item in getattr(source, "skipped", None) or ():
        if isinstance(item, (tuple, list)) and len(item) == 2:
            out.append({"id": str(item[0]), "reason": str(item[1])})
        else:
            out.append({"id": str(item), "reason": "unreadable (reported by the data source)"})
    return out


# === Files ===
def _filename(video_id: str) -> str:
    """A safe, unique file name for `video_id` (ids may hold '/' or other characters)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", video_id)
    if safe != video_id or safe.startswith("."):
        safe = f"{safe.lstrip('.')}-{hashlib.sha1(video_id.encode('utf-8')).hexdigest()[:8]}"
    return safe + ".npz"


def _write_npz(path, **arrays):
    # Written under a temporary name then renamed, so an interrupted run never leaves a
    # half-written file that a resumed run would take for a finished video.
    with rundir.atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _stored_detector_id(path) -> str | None:
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as data:
            return str(data["detector_id"])
    except (OSError, KeyError, ValueError):
        return None


def _stored_num_frames(path) -> int:
    with np.load(path) as data:
        return int(data["keypoints"].shape[0])


def _read_index(out_dir) -> dict | None:
    path = os.path.join(out_dir, INDEX_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Unreadable pseudo-label index {path!r}: {e}") from e


def _write_index(out_dir, index):
    rundir.write_json(os.path.join(out_dir, INDEX_FILE), index, indent=1)


def _clear(out_dir):
    """Removes the store's own files (pseudo-label `.npz` files and the index) from `out_dir`."""
    for name in os.listdir(out_dir):
        # Earlier versions' temporaries ended in ".tmp"; rundir's hold its TEMPORARY_MARK.
        if (name.endswith((".npz", ".npz.tmp")) or name in (INDEX_FILE, INDEX_FILE + ".tmp")
                or rundir.TEMPORARY_MARK in name):
            os.remove(os.path.join(out_dir, name))
