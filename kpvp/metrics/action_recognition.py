"""Action-recognition accuracy of generated videos (the paper's Table 2).

Kim et al. (2019) judge the plausibility of generated motion by classifying generated Penn
Action videos with an action classifier trained on REAL videos: the accuracy on the real
test videos is the ceiling, and the accuracy on videos generated with (and without) the
class condition `a` shows how recognisable the generated actions are (paper: 68.89 % with,
63.33 % without the condition). The paper used a two-stream CNN; this module offers two
classifiers that are cheap to train on a CPU:
  * `KeypointSequenceClassifier`: a small temporal ConvNet over keypoint sequences
    `[B, T, K, 2]` (learned keypoints from Q, or ground-truth joints), as Struct-VRNN
    (Minderer et al. 2019, Sec. 5.5) classifies actions from keypoints;
  * `LinearProbe`: softmax regression on fixed per-video feature vectors (e.g. I3D logits
    or pooled features of the videos, computed elsewhere).
Both are judged by `accuracy`, and `action_recognition_report` puts the numbers side by side.
"""
from __future__ import annotations

import os

import keras
import numpy as np
import scipy.optimize
import tensorflow as tf
from keras import ops

# === Layers ===


@keras.saving.register_keras_serializable(package="kpvp")
class KeypointSequenceNormalization(keras.layers.Layer):
    """Translation- and scale-invariant per-frame features of a keypoint sequence.

    Input: keypoints `[B, T, K, 2]` (x, y in [-1, 1]). Output: `[B, T, 2K + 2]`, per frame
    the keypoints centred on that frame's mean keypoint (the pose, 2K values) followed by
    the displacement of that mean since the first frame (the global motion, 2 values), all
    divided by the sequence's scale: the RMS distance of the centred keypoints from their
    centre over the whole sequence, floored at `min_scale` (a collapsed keypoint set would
    otherwise divide by ~0). Centring per frame alone would erase a figure moving as a
    whole, hence the separate motion term; one scale per sequence (not per frame) keeps a
    figure growing or shrinking over time (e.g. squats) visible.

    With `motion_only` the centred pose of the first frame is subtracted from every frame's,
    so only how the keypoints move is left: a sequence that holds its first pose gives zeros,
    whatever that pose (a classifier on it cannot tell the action from the first frame alone).
    """

    def __init__(self, min_scale: float = 1e-2, motion_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.min_scale = min_scale
        self.motion_only = bool(motion_only)

    def call(self, keypoints):
        centre = ops.mean(keypoints, axis=2, keepdims=True)  # [B, T, 1, 2]
        pose = keypoints - centre
        scale = ops.sqrt(ops.mean(ops.square(pose), axis=(1, 2, 3), keepdims=True))
        scale = ops.maximum(scale, self.min_scale)
        motion = (centre - centre[:, :1]) / scale
        if self.motion_only:
            pose = pose - pose[:, :1]
        pose = pose / scale
        batch, time = ops.shape(keypoints)[0], ops.shape(keypoints)[1]
        # The static K keeps the feature size known to the dense layer that follows.
        k = keypoints.shape[2]
        pose = ops.reshape(pose, (batch, time, -1 if k is None else 2 * k))
        motion = ops.reshape(motion, (batch, time, 2))
        return ops.concatenate([pose, motion], axis=-1)

    def compute_output_shape(self, input_shape):
        k = input_shape[2]
        return (input_shape[0], input_shape[1], None if k is None else 2 * k + 2)

    def get_config(self):
        return {**super().get_config(), "min_scale": self.min_scale,
                "motion_only": self.motion_only}


# === Models ===


@keras.saving.register_keras_serializable(package="kpvp")
class KeypointSequenceClassifier(keras.Model):
    """Action classifier of keypoint sequences: `[B, T, K, 2]` -> class logits `[B, C]`.

    `KeypointSequenceNormalization`, a per-frame dense embedding, `num_conv_layers` temporal
    convolutions (kernel `kernel_size`, ReLU), then mean and max pooling over time (so any
    T >= 1 works) and a linear layer to `num_classes` logits. All weights and dropout are
    seeded from `seed`. `motion_only` classifies how the keypoints move from the first frame,
    not the poses (see `KeypointSequenceNormalization`).
    """

    def __init__(self, num_classes: int, filters: int = 64, kernel_size: int = 5,
                 num_conv_layers: int = 2, dropout: float = 0.2, min_scale: float = 1e-2,
                 motion_only: bool = False, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.filters = filters
        self.kernel_size = kernel_size
        self.num_conv_layers = num_conv_layers
        self.dropout = dropout
        self.min_scale = min_scale
        self.motion_only = bool(motion_only)
        self.seed = seed

        def init(i):
            return keras.initializers.GlorotUniform(seed=seed * 1000 + i)

        self.normalize = KeypointSequenceNormalization(min_scale, self.motion_only,
                                                       name="normalize")
        self.embed = keras.layers.Dense(filters, activation="relu", kernel_initializer=init(0),
                                        name="embed")
        self.convs = [
            keras.layers.Conv1D(filters, kernel_size, padding="same", activation="relu",
                                kernel_initializer=init(1 + i), name=f"conv_{i}")
            for i in range(num_conv_layers)]
        self.mean_pool = keras.layers.GlobalAveragePooling1D(name="mean_pool")
        self.max_pool = keras.layers.GlobalMaxPooling1D(name="max_pool")
        self.drop = keras.layers.Dropout(dropout, seed=seed, name="dropout")
        self.logits = keras.layers.Dense(num_classes, kernel_initializer=init(999),
                                         name="logits")

    def call(self, keypoints, training=False):
        h = self.embed(self.normalize(keypoints))
        for conv in self.convs:
            h = conv(h)
        h = ops.concatenate([self.mean_pool(h), self.max_pool(h)], axis=-1)
        return self.logits(self.drop(h, training=training))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "filters": self.filters, "kernel_size": self.kernel_size,
                "num_conv_layers": self.num_conv_layers, "dropout": self.dropout,
                "min_scale": self.min_scale, "motion_only": self.motion_only,
                "seed": self.seed}


def _check_labels(labels, n: int, num_classes: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape [N] = [{n}], got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _check_sequences(sequences, name: str = "sequences") -> np.ndarray:
    x = np.asarray(sequences)
    if x.ndim != 4 or x.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [N, T, K, 2] (keypoints, x/y in [-1, 1]), "
                         f"got {x.shape}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def train_sequence_classifier(sequences, labels, num_classes: int, epochs: int = 40,
                              seed: int = 0, batch_size: int = 32,
                              learning_rate: float = 3e-3, verbose: int = 0,
                              **model_kwargs) -> KeypointSequenceClassifier:
    """Trains a `KeypointSequenceClassifier` on real keypoint sequences.

    Args:
      sequences: float `[N, T, K, 2]` keypoint sequences (x, y in [-1, 1]).
      labels: int `[N]` action classes in `[0, num_classes)`.
      num_classes: number of action classes C.
      epochs: passes over the data (Adam, cross-entropy on logits).
      seed: seeds weights, dropout and the per-epoch shuffling: same seed, same model.
      batch_size, learning_rate, verbose: training settings (`verbose` as in `fit`).
      **model_kwargs: further `KeypointSequenceClassifier` arguments (filters, ...).
    Returns:
      The trained model (compiled; its outputs are logits `[B, C]`).
    """
    x = _check_sequences(sequences)
    y = _check_labels(labels, x.shape[0], num_classes)
    model = KeypointSequenceClassifier(num_classes, seed=seed, **model_kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # XLA compilation takes longer than the whole training of so small a network.
        jit_compile=False)
    data = (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(x.shape[0], seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size))
    model.fit(data, epochs=epochs, verbose=verbose, shuffle=False)
    return model


# === Linear probe ===


class LinearProbe:
    """Softmax regression on fixed feature vectors: features `[N, D]` -> classes `[N]`.

    Features are standardised with the training mean and standard deviation (`mean`,
    `scale`, both `[D]`) before the linear map `weights` `[D, C]`, `bias` `[C]`.
    """

    def __init__(self, weights, bias, mean, scale):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        d, c = self.weights.shape
        if self.bias.shape != (c,) or self.mean.shape != (d,) or self.scale.shape != (d,):
            raise ValueError(f"LinearProbe expects weights [D, C], bias [C], mean [D], "
                             f"scale [D]; got {self.weights.shape}, {self.bias.shape}, "
                             f"{self.mean.shape}, {self.scale.shape}")

    @property
    def num_classes(self) -> int:
        return self.weights.shape[1]

    def _features(self, features) -> np.ndarray:
        f = np.asarray(features, dtype=np.float64)
        f = f.reshape(f.shape[0], -1) if f.ndim > 1 else f[None]
        if f.shape[1] != self.weights.shape[0]:
            raise ValueError(f"features must have {self.weights.shape[0]} values per example, "
                             f"got shape {np.shape(features)}")
        return (f - self.mean) / self.scale

    def logits(self, features) -> np.ndarray:
        """`[N, D]` -> float64 logits `[N, C]`."""
        return self._features(features) @ self.weights + self.bias

    def predict_proba(self, features) -> np.ndarray:
        """`[N, D]` -> class probabilities `[N, C]` (a stable softmax)."""
        z = self.logits(features)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, features) -> np.ndarray:
        """`[N, D]` -> predicted class ids int64 `[N]`."""
        return np.argmax(self.logits(features), axis=1)

    def accuracy(self, features, labels) -> float:
        """Fraction of `[N]` labels predicted correctly."""
        return accuracy(self, features, labels)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the probe to an `.npz` file."""
        np.savez(path, weights=self.weights, bias=self.bias, mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LinearProbe":
        """Reads a probe written by `save`."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"linear probe file not found: {path}")
        with np.load(path, allow_pickle=False) as f:
            return cls(f["weights"], f["bias"], f["mean"], f["scale"])


def fit_linear_probe(features, labels, num_classes: int, l2: float = 1e-3, seed: int = 0,
                     max_iter: int = 1000) -> LinearProbe:
    """Fits a softmax-regression `LinearProbe` on fixed features.

    Minimises `mean_n CE(softmax(W^T f_n + b), y_n) + l2 * ||W||^2` (bias not penalised) over
    standardised features with L-BFGS in float64, from zero. With `l2 > 0` the objective is
    strictly convex, so the result is unique and deterministic; `seed` is accepted for a
    signature like `train_sequence_classifier` and does not change it.

    Args:
      features: `[N, D]` (or `[N, ...]`, flattened) feature vectors, e.g. I3D logits.
      labels: int `[N]` in `[0, num_classes)`.
      num_classes: C.
      l2: weight of the L2 penalty (> 0 keeps separable data from driving W to infinity).
      seed: see above.
      max_iter: L-BFGS iteration limit.
    """
    del seed  # the convex problem started from zero has no randomness to seed
    f = np.asarray(features, dtype=np.float64)
    if f.ndim < 2 or f.shape[0] == 0:
        raise ValueError(f"features must have shape [N, D] with N >= 1, got {f.shape}")
    f = f.reshape(f.shape[0], -1)
    if not np.all(np.isfinite(f)):
        raise ValueError("features contains NaN or infinite values")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    y = _check_labels(labels, f.shape[0], num_classes)
    mean = f.mean(axis=0)
    scale = f.std(axis=0)
    # A constant feature carries nothing; dividing by 1 leaves it at zero after centring.
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = (f - mean) / scale
    n, d = x.shape
    onehot = np.eye(num_classes)[y]

    def loss_and_grad(theta):
        w = theta[:d * num_classes].reshape(d, num_classes)
        b = theta[d * num_classes:]
        z = x @ w + b
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1, keepdims=True))
        log_p = z - log_norm
        loss = -np.sum(onehot * log_p) / n + l2 * np.sum(w * w)
        dz = (np.exp(log_p) - onehot) / n
        grad_w = x.T @ dz + 2.0 * l2 * w
        return loss, np.concatenate([grad_w.ravel(), dz.sum(axis=0)])

    theta0 = np.zeros(d * num_classes + num_classes)
    res = scipy.optimize.minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": max_iter, "gtol": 1e-8})
    w = res.x[:d * num_classes].reshape(d, num_classes)
    return LinearProbe(w, res.x[d * num_classes:], mean, scale)


# === Evaluation ===


def predict_labels(classifier, inputs, batch_size: int = 256) -> np.ndarray:
    """Class ids `[N]` from a `LinearProbe` (features) or a Keras classifier (logits)."""
    if isinstance(classifier, LinearProbe):
        return classifier.predict(inputs)
    if isinstance(classifier, keras.Model):
        x = np.asarray(inputs, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0,), np.int64)
        logits = classifier.predict(x, batch_size=batch_size, verbose=0)
        return np.argmax(logits, axis=-1)
    raise TypeError(f"classifier must be a LinearProbe or a keras.Model, got "
                    f"{type(classifier).__name__}")


def _num_classes(classifier) -> int:
    if isinstance(classifier, LinearProbe):
        return classifier.num_classes
    if hasattr(classifier, "num_classes"):
        return int(classifier.num_classes)
    return int(classifier.outputs[0].shape[-1])


def accuracy(classifier, inputs, labels) -> float:
    """Fraction of `labels` `[N]` that `classifier` predicts from `inputs` `[N, ...]`."""
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(inputs):
        raise ValueError(f"labels must have shape [N] = [{len(inputs)}], got {y.shape}")
    if len(y) == 0:
        raise ValueError("accuracy needs at least one example; inputs is empty")
    return float(np.mean(predict_labels(classifier, inputs) == y))


def condition_report(pred, conditions, own_labels) -> dict:
    """How generated sequences follow their class condition against their first frame.

    Args:
      pred: classes `[N]` a classifier predicts for generated sequences.
      conditions: the class `[N]` each sequence was generated under.
      own_labels: the class `[N]` of the real video whose first frame each started from.
    Returns:
      dict of the fractions of sequences classified as
      `follows_condition`: their condition, over all sequences;
      `own_class`: the video's class, among those generated under it (paper Table 2);
      `other_follows_condition` / `other_follows_first_frame`: their condition / the video's
      class, among those generated under another class (NaN when there are none);
    and the counts `num_own`, `num_other`. A first frame can tell much of the class by
    itself (a pose, a view), so a generator that ignores its condition scores high on
    `own_class` and `other_follows_first_frame`, the same on both, and exactly 1 / C on
    `follows_condition` when every class condition is sampled equally often.
    """
    pred, cond, own = (np.asarray(a).reshape(-1) for a in (pred, conditions, own_labels))
    if not len(pred) == len(cond) == len(own) or len(pred) == 0:
        raise ValueError(f"pred, conditions and own_labels must be non-empty and of one length, "
                         f"got {len(pred)}, {len(cond)}, {len(own)}")
    mine = cond == own

    def frac(hits, rows):
        return float(np.mean(hits[rows])) if rows.any() else float("nan")

    return {"follows_condition": float(np.mean(pred == cond)),
            "own_class": frac(pred == own, mine),
            "other_follows_condition": frac(pred == cond, ~mine),
            "other_follows_first_frame": frac(pred == own, ~mine),
            "num_own": int(mine.sum()), "num_other": int((~mine).sum())}


def _per_class(pred: np.ndarray, y: np.ndarray, num_classes: int) -> list[float]:
    out = []
    for c in range(num_classes):
        rows = y == c
        out.append(float(np.mean(pred[rows] == c)) if rows.any() else float("nan"))
    return out


def action_recognition_report(classifier, real_test, generated,
                              generated_unconditional=None) -> dict:
    """Table-2 style accuracies of one classifier trained on real videos.

    Args:
      classifier: a `LinearProbe` or a trained Keras classifier (e.g. from
        `train_sequence_classifier`).
      real_test: `(inputs, labels)` of real test videos (the ceiling).
      generated: `(inputs, labels)` of videos generated with the class condition; labels
        are the classes `a` they were generated for.
      generated_unconditional: optional `(inputs, labels)` of videos generated without the
        condition; labels are the classes of the videos whose first frames were used.
      Inputs are keypoint sequences `[N, T, K, 2]` or feature vectors `[N, D]`, whichever
      the classifier takes.
    Returns:
      dict with accuracies in [0, 1] (`real`, `generated`, and `generated_unconditional`
      when given), the matching `num_*` counts, `num_classes`, `chance` (1 / C) and
      `per_class` ({same keys: list of C accuracies, NaN for a class with no example}).
    """
    num_classes = _num_classes(classifier)
    parts = {"real": real_test, "generated": generated}
    if generated_unconditional is not None:
        parts["generated_unconditional"] = generated_unconditional
    report = {"num_classes": num_classes, "chance": 1.0 / num_classes, "per_class": {}}
    for key, pair in parts.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{key} must be an (inputs, labels) pair")
        inputs, labels = pair
        y = _check_labels(labels, len(inputs), num_classes, f"{key} labels")
        if len(y) == 0:
            raise ValueError(f"{key} has no examples")
        pred = predict_labels(classifier, inputs)
        report[key] = float(np.mean(pred == y))
        report[f"num_{key}"] = int(len(y))
        report["per_class"][key] = _per_class(pred, y, num_classes)
    return report
