"""Keypoint quality: linear regression from learned keypoints to ground-truth joints.

The protocol of Thewlis et al. (2017) as used by Struct-VRNN (Minderer et al. 2019, Sec. 5.2):
learned keypoints are not expected to coincide with human-labelled joints, so a linear map
(with a bias) from the flattened keypoints of a frame to its joints is fitted by least
squares on TRAIN frames, and the error of its predictions is measured on TEST frames.
The error is the mean Euclidean distance between predicted and true joints.

Normalisation. Keypoints and joints use the project's [-1, 1] pixel-corner convention,
in which an image side spans 2 units. The *normalised* error is the distance in those
units divided by 2, i.e. a fraction of the image side (0.01 = 1 % of the side; for a
non-square image each axis is measured as a fraction of its own side). The *pixel* error
converts each axis to pixels first, `dx_px = dx * W / 2` and `dy_px = dy * H / 2`, then takes
the distance; for a square image of side S it is the normalised error times S.

Invisible joints (`visible == False`) are left out both of the fit (each joint has its own
least-squares problem over the frames where it is visible) and of the error.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from kpvp.data.datasets import PENN_JOINTS



def _points(array, name: str) -> np.ndarray:
    """Checks a `[..., P, 2]` point array and returns it as float64 `[N, P, 2]`."""
    a = np.asarray(array)
    if a.ndim < 3 or a.shape[-1] != 2:
        raise ValueError(f"{name} must have shape [..., P, 2] with (x, y) in [-1, 1], "
                         f"got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64).reshape(-1, a.shape[-2], 2)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _visibility(visible, joints: np.ndarray, name: str) -> np.ndarray:
    """Returns a bool `[N, J]` mask (all True when `visible` is None)."""
    if visible is None:
        return np.ones(joints.shape[:2], dtype=bool)
    v = np.asarray(visible)
    if v.dtype != bool:
        raise ValueError(f"{name} must be a bool array, got dtype {v.dtype}")
    if v.size != joints.shape[0] * joints.shape[1] or v.shape[-1] != joints.shape[1]:
        raise ValueError(f"{name} must have shape [..., J] matching the joints "
                         f"(N={joints.shape[0]}, J={joints.shape[1]}), got shape {v.shape}")
    return v.reshape(joints.shape[:2])


def _image_hw(image_size) -> tuple[float, float]:
    if np.isscalar(image_size):
        return float(image_size), float(image_size)
    h, w = image_size
    return float(h), float(w)


class KeypointRegressor:
    """A linear map with bias from learned keypoints `[..., K, 2]` to joints `[..., J, 2]`.

    `coef` is `[J, 2K, 2]` (one `2K x 2` matrix per joint, rows follow the flattened
    keypoints `x_1, y_1, x_2, y_2, ...`) and `intercept` is `[J, 2]`.
    """

    def __init__(self, coef, intercept):
        coef = np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        if coef.ndim != 3 or coef.shape[2] != 2 or coef.shape[1] % 2:
            raise ValueError(f"coef must have shape [J, 2K, 2], got {coef.shape}")
        if intercept.shape != (coef.shape[0], 2):
            raise ValueError(f"intercept must have shape [J, 2] = {(coef.shape[0], 2)}, "
                             f"got {intercept.shape}")
        self.coef = coef
        self.intercept = intercept

    @property
    def num_keypoints(self) -> int:
        return self.coef.shape[1] // 2

    @property
    def num_joints(self) -> int:
        return self.coef.shape[0]

    def predict(self, kp) -> np.ndarray:
        """Keypoints `[..., K, 2]` -> predicted joints float32 `[..., J, 2]`."""
        a = np.asarray(kp)
        if a.ndim < 2 or a.shape[-2:] != (self.num_keypoints, 2):
            raise ValueError(f"kp must have shape [..., {self.num_keypoints}, 2], got {a.shape}")
        x = a.astype(np.float64).reshape(-1, 2 * self.num_keypoints)
        pred = np.einsum("nf,jfc->njc", x, self.coef) + self.intercept
        return pred.reshape(a.shape[:-2] + (self.num_joints, 2)).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        """Writes `coef` and `intercept` to an `.npz` file."""
        np.savez(path, coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KeypointRegressor":
        """Reads a regressor written by `save`."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"keypoint regressor file not found: {path}")
        with np.load(path, allow_pickle=False) as f:
            return cls(f["coef"], f["intercept"])


def fit_keypoint_regressor(kp_train, joints_train, visible=None,
                           ridge: float = 1e-3) -> KeypointRegressor:
    """Fits joints `[..., J, 2]` from keypoints `[..., K, 2]` by ridge least squares.

    Per joint j, minimises over the frames where it is visible
    `sum_n ||joints[n, j] - flat(kp[n]) @ W_j - b_j||^2 + ridge * ||W_j||^2`
    (a sum, not a mean, so the ridge term matters less the more frames there are; the bias
    is not penalised). The ridge keeps the solve well-posed when keypoints are collinear or
    a joint is visible in fewer frames than there are features.

    Args:
      kp_train: learned keypoints `[..., K, 2]` (e.g. `[N, K, 2]` or `[V, T, K, 2]`).
      joints_train: ground-truth joints `[..., J, 2]` with the same leading shape.
      visible: optional bool `[..., J]`; False entries are left out of the fit.
      ridge: the L2 weight (>= 0).
    Returns:
      A `KeypointRegressor`. A joint that is never visible in the train frames gets zero
      weights and a zero bias (it predicts the image centre).
    """
    kp = _points(kp_train, "kp_train")
    joints = _points(joints_train, "joints_train")
    if kp.shape[0] != joints.shape[0]:
        raise ValueError(f"kp_train and joints_train must have the same number of frames, "
                         f"got {kp.shape[0]} and {joints.shape[0]}")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    vis = _visibility(visible, joints, "visible")
    x = kp.reshape(kp.shape[0], -1)
    num_features = x.shape[1]
    coef = np.zeros((joints.shape[1], num_features, 2))
    intercept = np.zeros((joints.shape[1], 2))
    for j in range(joints.shape[1]):
        rows = vis[:, j]
        if not rows.any():
            continue
        xj, yj = x[rows], joints[rows, j]
        # Centring takes the unpenalised bias out of the solve and improves conditioning.
        x_mean, y_mean = xj.mean(axis=0), yj.mean(axis=0)
        xc, yc = xj - x_mean, yj - y_mean
        gram = xc.T @ xc + ridge * np.eye(num_features)
        # lstsq rather than solve: with ridge = 0 a rank-deficient gram still gets the
        # minimum-norm solution instead of an error.
        w = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
        coef[j] = w
        intercept[j] = y_mean - x_mean @ w
    return KeypointRegressor(coef, intercept)


def joint_errors(pred, joints, visible=None, image_size=128,
                 joint_names: Sequence[str] | None = None) -> dict:
    """Euclidean errors of predicted joints `[..., J, 2]` against true joints `[..., J, 2]`.

    Args:
      pred, joints: `[..., J, 2]` in [-1, 1] (same shape).
      visible: optional bool `[..., J]`; only visible joints count.
      image_size: int side S, or `(H, W)`, for the pixel errors.
      joint_names: J names for `per_joint`; the Penn Action names when J == 13 and not given.
    Returns:
      dict with
        `mean_error`: mean over visible (frame, joint) pairs of the distance as a fraction
          of the image side (distance in [-1, 1] units / 2);
        `mean_error_px`: the same in pixels at `image_size`;
        `per_joint_error`, `per_joint_error_px`: lists of J means (NaN for a joint never
          visible);
        `per_joint`: {name: normalised error};
        `num_points`: number of visible (frame, joint) pairs;
        `image_size`: `(H, W)` used for the pixel errors.
    """
    p = _points(pred, "pred")
    t = _points(joints, "joints")
    if p.shape != t.shape:
        raise ValueError(f"pred and joints must have the same shape, got {np.shape(pred)} "
                         f"and {np.shape(joints)}")
    vis = _visibility(visible, t, "visible")
    h, w = _image_hw(image_size)
    d = p - t
    dist = np.sqrt(np.sum(np.square(d), axis=-1)) / 2.0
    dist_px = np.sqrt(np.square(d[..., 0] * w / 2.0) + np.square(d[..., 1] * h / 2.0))
    num_joints = t.shape[1]
    if joint_names is None:
        joint_names = (PENN_JOINTS if num_joints == len(PENN_JOINTS)
                       else tuple(f"joint_{j}" for j in range(num_joints)))
    if len(joint_names) != num_joints:
        raise ValueError(f"joint_names must have {num_joints} names, got {len(joint_names)}")
    counts = vis.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(vis, dist, 0.0).sum(axis=0) / counts
        per_joint_px = np.where(vis, dist_px, 0.0).sum(axis=0) / counts
    num_points = int(vis.sum())
    if num_points == 0:
        raise ValueError("visible marks no joint as visible; there is nothing to evaluate")
    return {
        "mean_error": float(dist[vis].mean()),
        "mean_error_px": float(dist_px[vis].mean()),
        "per_joint_error": [float(e) for e in per_joint],
        "per_joint_error_px": [float(e) for e in per_joint_px],
        "per_joint": {n: float(e) for n, e in zip(joint_names, per_joint)},
        "num_points": num_points,
        "image_size": (int(h), int(w)),
    }


def keypoint_regression_error(kp_train, joints_train, kp_test, joints_test,
                              visible_train=None, visible_test=None, ridge: float = 1e-3,
                              image_size=128,
                              joint_names: Sequence[str] | None = None) -> dict:
    """Fits on train frames, reports the joint errors on test frames.

    Args:
      kp_train, kp_test: learned keypoints `[..., K, 2]` of the train / test frames.
      joints_train, joints_test: ground-truth joints `[..., J, 2]` with matching leading shape.
      visible_train, visible_test: optional bool `[..., J]` masks.
      ridge: see `fit_keypoint_regressor`.
      image_size: int or `(H, W)` for the pixel errors.
      joint_names: see `joint_errors`.
    Returns:
      The `joint_errors` dict of the test frames, plus `train_mean_error` (normalised error
      on the train frames, to spot under- or over-fitting) and `regressor`.
    """
    regressor = fit_keypoint_regressor(kp_train, joints_train, visible_train, ridge)
    test_kp = np.asarray(kp_test)
    if test_kp.ndim < 2 or test_kp.shape[-2] != regressor.num_keypoints:
        raise ValueError(f"kp_test must have shape [..., {regressor.num_keypoints}, 2] like "
                         f"kp_train, got {test_kp.shape}")
    result = joint_errors(regressor.predict(kp_test), joints_test, visible_test, image_size,
                          joint_names)
    train = joint_errors(regressor.predict(kp_train), joints_train, visible_train, image_size,
                         joint_names)
    result["train_mean_error"] = train["mean_error"]
    result["regressor"] = regressor
    return result
