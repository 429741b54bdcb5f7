"""Frame metrics of reconstructions against targets: SSIM, PSNR, L1 where the frame changed.

Inputs are images `[..., H, W, C]` (a batch `[N, H, W, 3]`, a video `[T, H, W, 3]` or videos
`[B, T, H, W, 3]`); every frame gets its own value. Two encodings are accepted, told apart by
dtype, and may be mixed (uint8 targets against float predictions):
  * uint8 in [0, 255] (files, data readers);
  * floating point in [-1, 1] (network outputs). Float inputs are NOT read as [0, 1]: a
    float image in [0, 1] must be rescaled to [-1, 1] first. Values outside [-1, 1] are
    clipped, as they would be when the frame is saved as uint8.
Both are mapped to [0, 1] and measured with `max_val = 1` (`tf.image.ssim`, `tf.image.psnr`),
so a uint8 frame and its exact float counterpart give the same numbers.

SSIM uses the standard 11x11 gaussian window (sigma 1.5, k1 0.01, k2 0.03), averaged over the
colour channels; images smaller than 11 pixels on a side use a window as large as the image.
PSNR of identical frames is +inf (MSE 0); pass `max_psnr` to cap it so that a dataset mean
stays finite (`UINT8_MAX_PSNR`, what kpvp's reports use, counts an exact copy as one grey
level off everywhere). As Minderer et al. (2019) note, frame-wise similarity says little about the
quality of long stochastic predictions; these metrics are meant for reconstructions
(stage 1: `T(s, Q(s), Q(v))` against `v`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import tensorflow as tf

SSIM_FILTER_SIZE = 11
# PSNR of frames one uint8 grey level apart everywhere (48.13 dB): the reports' cap for exact
# copies, which a still frame or a shut mask produce.
UINT8_MAX_PSNR = 20.0 * math.log10(255.0)


def to_unit_range(images, name: str = "images") -> tf.Tensor:
    """uint8 `[..., H, W, C]` in [0, 255] or float in [-1, 1] -> float32 in [0, 1]."""
    x = tf.convert_to_tensor(images)
    if x.shape.rank is None or x.shape.rank < 3:
        raise ValueError(f"{name} must have shape [..., H, W, C], got {x.shape}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (NHWC), got shape {x.shape}")
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    if x.dtype.is_floating:
        return tf.clip_by_value((tf.cast(x, tf.float32) + 1.0) / 2.0, 0.0, 1.0)
    raise ValueError(f"{name} must be uint8 in [0, 255] or float in [-1, 1], got {x.dtype}")


def _pair(predictions, targets) -> tuple[tf.Tensor, tf.Tensor]:
    p = to_unit_range(predictions, "predictions")
    t = to_unit_range(targets, "targets")
    if p.shape != t.shape:
        raise ValueError(f"predictions and targets must have the same shape, got {p.shape} "
                         f"and {t.shape}")
    return p, t


def ssim(predictions, targets) -> tf.Tensor:
    """SSIM per frame: `[..., H, W, C]` x 2 -> float32 `[...]`, 1 for identical frames."""
    p, t = _pair(predictions, targets)
    size = min(SSIM_FILTER_SIZE, p.shape[-3], p.shape[-2])
    return tf.image.ssim(p, t, max_val=1.0, filter_size=size)


def psnr(predictions, targets, max_psnr: float | None = None) -> tf.Tensor:
    """PSNR (dB) per frame: `[..., H, W, C]` x 2 -> float32 `[...]`; inf or `max_psnr` if equal."""
    p, t = _pair(predictions, targets)
    values = tf.image.psnr(p, t, max_val=1.0)
    if max_psnr is not None:
        values = tf.minimum(values, max_psnr)
    return values


# === Streaming accumulators ===


class _MeanFrameMetric(keras.metrics.Metric):
    """Mean of a per-frame metric over every frame seen since the last `reset_state()`."""

    def __init__(self, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        # float64 sums: a data set of ~1e6 frames stays exact to far below the printed digits.
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                       name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64",
                                       name="count")

    def _per_frame(self, y_true, y_pred) -> tf.Tensor:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds frames: `y_true` (targets), `y_pred` `[..., H, W, C]`; `sample_weight` `[...]`."""
        values = tf.cast(self._per_frame(y_true, y_pred), tf.float64)
        if sample_weight is None:
            weights = tf.ones_like(values)
        else:
            weights = tf.broadcast_to(tf.cast(sample_weight, tf.float64), tf.shape(values))
        self.total.assign_add(tf.reduce_sum(values * weights))
        self.count.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="kpvp")
class MeanSSIM(_MeanFrameMetric):
    """Streaming mean SSIM over frames (see the module docstring for the input encodings)."""

    def __init__(self, name: str = "ssim", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _per_frame(self, y_true, y_pred):
        return ssim(y_pred, y_true)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="kpvp")
class MeanPSNR(_MeanFrameMetric):
    """Streaming mean PSNR in dB over frames; identical frames count as `max_psnr` (or inf)."""

    def __init__(self, name: str = "psnr", max_psnr: float | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.max_psnr = max_psnr

    def _per_frame(self, y_true, y_pred):
        return psnr(y_pred, y_true, self.max_psnr)

    def get_config(self):
        return {"name": self.name, "max_psnr": self.max_psnr, "dtype": self.dtype}


def frame_metrics(pairs: Iterable, max_psnr: float | None = None) -> dict:
    """Mean SSIM and PSNR over a data set streamed as `(predictions, targets)` batches.

    Args:
      pairs: iterable of `(predictions, targets)`, each `[..., H, W, C]` (any batch shapes,
        uint8 or [-1, 1] float).
      max_psnr: optional cap on the per-frame PSNR (dB).
    Returns:
      `{"ssim": mean SSIM, "psnr": mean PSNR in dB, "num_frames": frames seen}`.
    """
    mean_ssim, mean_psnr = MeanSSIM(), MeanPSNR(max_psnr=max_psnr)
    for predictions, targets in pairs:
        mean_ssim.update_state(targets, predictions)
        mean_psnr.update_state(targets, predictions)
    num_frames = int(mean_ssim.count.numpy())
    if num_frames == 0:
        raise ValueError("pairs yielded no frames")
    return {"ssim": float(mean_ssim.result()), "psnr": float(mean_psnr.result()),
            "num_frames": num_frames}


# A pixel "changed" between source and target when some channel moved by more than this, in
# [0, 1] units (`changed_region_l1`).
CHANGED_THRESHOLD = 0.05


def changed_region_l1(triples: Iterable, threshold: float = CHANGED_THRESHOLD) -> dict:
    """Mean absolute error on the pixels that differ between source and target frames.

    Where the moving object covers a few percent of the frame, full-frame SSIM / PSNR hardly
    tell a prediction that redraws it from one that copies the source frame; this error does:
    copying the source scores the full change there, a perfect prediction 0.

    Args:
      triples: iterable of `(predictions, targets, sources)` batches, `[..., H, W, C]` each
        (uint8 or [-1, 1] float, as above).
      threshold: a pixel counts as changed when some channel of target and source differs by
        more than this, in [0, 1] units.
    Returns:
      `{"l1": mean |prediction - target| over changed pixels and channels, in [0, 1] units
      (nan when no pixel changed), "changed_fraction": share of the pixels that changed,
      "num_frames": frames seen}`.
    """
    total, changed, pixels, frames = 0.0, 0.0, 0, 0
    for predictions, targets, sources in triples:
        p, t = _pair(predictions, targets)
        s, _ = _pair(sources, targets)
        moved = tf.cast(tf.reduce_max(tf.abs(t - s), axis=-1) > threshold, tf.float32)
        total += float(tf.reduce_sum(tf.reduce_mean(tf.abs(p - t), axis=-1) * moved))
        changed += float(tf.reduce_sum(moved))
        pixels += int(tf.size(moved))
        frames += int(tf.size(moved)) // (p.shape[-3] * p.shape[-2])
    if frames == 0:
        raise ValueError("triples yielded no frames")
    return {"l1": total / changed if changed else float("nan"),
            "changed_fraction": changed / pixels, "num_frames": frames}


def reconstruction_metrics(batches: Iterable, translate,
                           max_psnr: float | None = UINT8_MAX_PSNR) -> dict:
    """Stage-1 reconstruction of `{"source", "target"}` batches by `translate(batch)`.

    `translate` returns T's outputs (a dict with `"image"` and `"mask"`). Returns
    `{"reconstruction": ..., "copy_source_baseline": ...}`, each `frame_metrics` plus
    `"changed_l1"` (`changed_region_l1`), for T's images and for copying the source, and the
    share of changed pixels `"changed_fraction"` and T's mean mask `"mean_mask"`; PSNR is
    capped at `max_psnr` (a pair whose target equals its source would otherwise give the copy
    baseline +inf). When the
    outputs have T's crude image (`"crude"`, before the blend with the source), also its L1
    where the frame changed, `"crude_changed_l1"`: what T draws where its mask is shut.
    """
    recon, copy, crude, masks = [], [], [], []
    for batch in batches:
        source, target = batch["source"], batch["target"]
        outputs = translate(batch)
        recon.append((outputs["image"], target, source))
        copy.append((source, target, source))
        if "crude" in outputs:
            crude.append((outputs["crude"], target, source))
        masks.append(float(tf.reduce_mean(outputs["mask"])))
    result = {}
    for name, triples in (("reconstruction", recon), ("copy_source_baseline", copy)):
        result[name] = frame_metrics(((p, t) for p, t, _ in triples), max_psnr=max_psnr)
        changed = changed_region_l1(triples)
        result[name]["changed_l1"] = changed["l1"]
    result["changed_fraction"] = changed["changed_fraction"]
    result["mean_mask"] = sum(masks) / len(masks)
    if crude:
        result["crude_changed_l1"] = changed_region_l1(crude)["l1"]
    return result
