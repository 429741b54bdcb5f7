"""The pieces of a trained run that the metrics share, loaded once: the networks, the test and
train videos at the evaluation length, generated videos, M's sampled motions, pseudo-labels and
I3D features."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from absl import logging

from kpvp import rundir
from kpvp.data import pipelines, pseudo_labels
from kpvp.generation import VideoGenerator
from kpvp.metrics import fvd


class TrainedRun:
    """Lazily loaded pieces of the trained run in `workdir`, shared by the metrics.

    `num_videos`: test videos to use (0 for all); `seed`: seed of the generated videos' z.
    """

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
    def generator(self) -> VideoGenerator:
        return self._once("generator", lambda: VideoGenerator.from_workdir(
            self.workdir, self.config.class_names))

    @property
    def stage1(self) -> VideoGenerator:
        return self._once("stage1", lambda: VideoGenerator.from_workdir(
            self.workdir, self.config.class_names, stage1_only=True))

    @property
    def i3d(self) -> fvd.I3DFeatureExtractor:
        return self._once("i3d", lambda: fvd.I3DFeatureExtractor(
            batch_size=self.config.eval.batch_size))

    def videos(self, split: str, limit: int | None) -> dict:
        """`split` videos at the evaluation length: frames `[N,T,S,S,3]`, labels, ids."""
        def load():
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

    def cached_features(self, name: str, videos_fn) -> np.ndarray:
        """`features` of a real video set (`videos_fn()`: a dict with `frames` and `ids`),
        read from the run's FVD feature cache when an earlier evaluation stored them under the
        same key (`fvd_cache_key`), else computed and stored there."""
        def load_or_compute():
            videos = videos_fn()
            clips = fvd_clips(videos["frames"], self.config)
            key = fvd_cache_key(name, videos["ids"], clips, self.config, self.i3d.weights_sha256)
            path = rundir.RunDir(self.workdir).fvd_features(name, key["digest"])
            if os.path.exists(path):
                with np.load(path) as stored:
                    if str(stored["key"]) == key["text"]:
                        logging.info("I3D %s features read from %s", name, path)
                        return stored["features"]
            features = self.i3d.extract(clips, progress=True, desc=f"I3D {name}")[0]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with rundir.atomic_write(path, "wb") as f:
                np.savez(f, features=features, key=np.array(key["text"]))
            return features

        return self._once(("i3d", name), load_or_compute)

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
        """Q's keypoints on the videos of `split` (the run's store, labelled first if needed)."""
        return self._once(("pseudo", split),
                          lambda: pseudo_labels.label_run(self.config, self.workdir, split))


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


def fvd_cache_key(name: str, ids, clips: np.ndarray, config, i3d_sha256: str) -> dict:
    """What determines the I3D features of a real video set: its name, the clips' ids and
    content (shape and SHA-256 of the uint8 frames), the FVD protocol (frames compared,
    I3D input side, endpoint) and the I3D weights' SHA-256.

    Returns dict(text = the key as canonical JSON, digest = its short SHA-256, for the name)."""
    clips = np.ascontiguousarray(clips)
    key = {"set": name, "ids": [str(i) for i in ids], "shape": list(clips.shape),
           "dtype": str(clips.dtype), "frames_sha256": hashlib.sha256(clips.data).hexdigest(),
           "fvd_num_frames": int(config.eval.fvd_num_frames), "frames": "1..n (x0 excluded)",
           "i3d_size": fvd.I3D_SIZE, "endpoint": "Logits", "i3d_sha256": i3d_sha256}
    text = json.dumps(key, sort_keys=True)
    return {"text": text, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


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
