"""Keypoint tracks as stage 2 and its evaluation see them: ground-truth joints of a data set,
and fixed-length sequences cut from tracks (Q's pseudo-labels or joints).

A track is `{"keypoints": float32 [T, K, 2], "label": int}` (the pseudo-label store's entries
are tracks too).
"""
from __future__ import annotations

import numpy as np

from kpvp.data import pipelines, readers


def fixed_length_sequences(tracks: list[dict], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint tracks `{keypoints [T_i, K, 2], label}` sampled like stage 2's evaluation
    batches (start 0, stride from the length): `[N, seq_len, K, 2]` and labels `[N]`."""
    seqs = [pipelines.temporal_sample(p["keypoints"], seq_len, 0).numpy() for p in tracks]
    return np.stack(seqs).astype(np.float32), np.array([p["label"] for p in tracks], np.int32)


def joint_tracks(config, split: str, limit: int = 0) -> list[dict] | None:
    """The ground-truth joints of the readable videos of `split` (the first `limit`, 0 for
    all) as tracks `{keypoints [T, J, 2], label}`, or None for a data set without joints."""
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
