"""How far keypoints move, per class: Q's pseudo-labels, the true joints and M's sequences.

Prints one table row per class, in pixels of the run's image size, over the fixed-length
sequences stage 2 evaluates on (`config.data.seq_len` frames from the start of each video):

* `joints`: mean distance of the ground-truth joints from their first-frame position (what the
  action moves; data sets with joints only);
* `labels`: the same for Q's keypoints (the pseudo-labels M learns from), and their `jitter`,
  the mean `|k_t - (k_t-1 + k_t+1) / 2|` (0 for keypoints moving at a constant speed);
* `hold`: the reconstruction error (mean |k_0 - k_t| per coordinate) of a motion generator that
  repeats the first keypoints, i.e. one that has learned nothing of the motion; `smooth`: that
  of the pseudo-labels smoothed over time (gaussian, sigma 2 frames), about the part of them that
  no smooth trajectory reproduces. A trained M's `recon` belongs between the two;
* with a trained M (`stage2/motion_generator.keras`): `posterior` and `prior`, the same distance
  for M's decoding of each sequence's posterior mean and for a sample from z ~ N(0, I) (seed
  0), M's reconstruction error `recon` (mean |k~ - k| per coordinate), and the posterior's mean
  `|mu|` and standard deviation `sd` (|mu| near 0 with sd near 1: the posterior has collapsed
  onto the prior and M continues every first pose the same way)::

    python tools/motion_stats.py --workdir=runs/demo [--split=train]

The data set and its settings come from the run's `config.json` (and `--config.x=...`), as in
`kpvp.evaluate`; the pseudo-labels are the run's own (written first if missing).
"""
import os

import keras
import numpy as np
from absl import app, flags

import kpvp.models  # noqa: F401  (registers the networks for `load_model`)
from kpvp import cli
from kpvp.data import pseudo_labels
from kpvp.data.tracks import fixed_length_sequences, joint_tracks
from kpvp.rundir import RunDir

FLAGS = flags.FLAGS


def define_flags():
    """The tool's own flags (`--workdir` and `--config.x` come from `kpvp.cli`). Defined only
    when run as a script, so that importing the module defines no global flags."""
    cli.define_flags()
    flags.DEFINE_string("split", "train", "train | test.")


def displacement(sequences, first=None) -> np.ndarray:
    """Mean distance of each sequence's keypoints from `first` (default: its frame 0) over the
    frames after it: `[N, T, K, 2]` (and `[N, K, 2]`) -> `[N]`, in input units."""
    sequences = np.asarray(sequences, np.float32)
    if first is None:
        first, sequences = sequences[:, 0], sequences[:, 1:]
    return np.linalg.norm(sequences - np.asarray(first)[:, None], axis=-1).mean(axis=(1, 2))


def mean_abs_difference(a, b) -> np.ndarray:
    """Mean `|a - b|` per sequence over frames and coordinates: `[N, T, K, 2]` (either may
    broadcast) -> `[N]`."""
    return np.abs(a - b).mean(axis=(1, 2, 3))


def jitter(sequences) -> np.ndarray:
    """Mean `|k_t - (k_t-1 + k_t+1) / 2|` per sequence over frames and coordinates:
    `[N, T, K, 2]` (T >= 3) -> `[N]`, in input units."""
    s = np.asarray(sequences, np.float32)
    if s.ndim != 4 or s.shape[1] < 3:
        raise ValueError(f"jitter needs sequences [N, T >= 3, K, 2], got shape {s.shape}")
    return mean_abs_difference(s[:, 1:-1], (s[:, :-2] + s[:, 2:]) / 2)


def smooth(sequences, sigma: float = 2.0) -> np.ndarray:
    """Each keypoint track smoothed over time by a gaussian of `sigma` frames, truncated at
    3 sigma and renormalised at the ends (a still keypoint stays put): `[N, T, K, 2]` ->
    the same shape."""
    s = np.asarray(sequences, np.float32)
    steps = np.arange(s.shape[1])
    weights = np.exp(-0.5 * ((steps[:, None] - steps[None]) / sigma) ** 2)
    weights[np.abs(steps[:, None] - steps[None]) > 3 * sigma] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("ts,nskc->ntkc", weights, s).astype(np.float32)


def motion_stats(sequences, labels, num_classes: int, pixels: float, motion_generator=None,
                 joints=None, joint_labels=None) -> list[dict]:
    """The table's rows: one dict per class present, values in pixels (`pixels` per unit).

    `sequences` `[N, T+1, K, 2]` with `labels` `[N]`; `joints` `[M, T+1, J, 2]` with
    `joint_labels` `[M]` (optional); `motion_generator` a `MotionCVAE` (optional).
    """
    x, y = np.asarray(sequences, np.float32), np.asarray(labels)
    columns = {"labels": displacement(x), "jitter": jitter(x),
               "hold": mean_abs_difference(x[:, :1], x[:, 1:]),
               "smooth": mean_abs_difference(smooth(x)[:, 1:], x[:, 1:])}
    if motion_generator is not None:
        mu, log_var = (np.asarray(v) for v in motion_generator.encode(x[:, 1:], x[:, 0], y))
        steps = x.shape[1] - 1
        posterior = np.asarray(motion_generator.decode(mu, x[:, 0], y, num_steps=steps))
        prior = np.asarray(motion_generator.sample(x[:, 0], y, seed=0, num_steps=steps))
        columns.update(posterior=displacement(posterior, x[:, 0]),
                       prior=displacement(prior, x[:, 0]),
                       recon=mean_abs_difference(posterior, x[:, 1:]),
                       abs_mu=np.abs(mu).mean(axis=1),
                       sd=np.exp(0.5 * log_var).mean(axis=1))
    rows = []
    for label in range(num_classes):
        mask = y == label
        if not mask.any():
            continue
        row = {"class": label, "videos": int(mask.sum())}
        if joints is not None:
            jmask = np.asarray(joint_labels) == label
            row["joints"] = float(displacement(np.asarray(joints)[jmask]).mean() * pixels)
        for name, values in columns.items():
            scale = 1.0 if name in ("abs_mu", "sd") else pixels
            row[name] = float(values[mask].mean() * scale)
        rows.append(row)
    return rows


def format_table(rows, class_names) -> str:
    names = [k for k in rows[0] if k not in ("class", "videos")]
    header = ["class", "videos"] + [n.replace("abs_mu", "|mu|") for n in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        label = row["class"]
        name = class_names[label] if label < len(class_names) else str(label)
        lines.append("| " + " | ".join([name, str(row["videos"])]
                                       + [f"{row[n]:.2f}" for n in names]) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    config = cli.resolve_config(FLAGS.workdir)
    seq_len = int(config.data.seq_len)
    tracks = pseudo_labels.label_run(config, FLAGS.workdir, FLAGS.split)
    if not tracks:
        raise ValueError(f"no pseudo-labels for split {FLAGS.split!r} in {FLAGS.workdir!r}")
    x, y = fixed_length_sequences(tracks, seq_len)
    joints = joint_tracks(config, FLAGS.split)
    joint_seqs = joint_labels = None
    if joints:
        joint_seqs, joint_labels = fixed_length_sequences(joints, seq_len)
    path = RunDir(FLAGS.workdir).exported("motion_generator")
    motion_generator = keras.models.load_model(path) if os.path.exists(path) else None
    rows = motion_stats(x, y, max(1, int(config.num_classes)), config.image_size / 2.0,
                        motion_generator, joint_seqs, joint_labels)
    print(f"Keypoint motion on {len(x)} {FLAGS.split} videos of {seq_len} frames "
          f"(pixels at {config.image_size}x{config.image_size}; |mu| and sd in z units)"
          + ("" if motion_generator else "; no trained M in the run"))
    print(format_table(rows, list(config.class_names)))


if __name__ == "__main__":
    define_flags()
    app.run(main)
