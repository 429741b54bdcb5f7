"""Keypoint-to-joint linear regression: recovery, noise level, masks, hand-computed errors."""
import numpy as np
import pytest

from kpvp.data.datasets import PENN_JOINTS
from kpvp.metrics import keypoint_regression as kr


def _affine_data(rng, n, k=5, j=4):
    kp = rng.uniform(-1, 1, size=(n, k, 2))
    a = rng.normal(size=(2 * k, 2 * j)) * 0.3
    b = rng.normal(size=(2 * j,)) * 0.1
    joints = (kp.reshape(n, -1) @ a + b).reshape(n, j, 2)
    return kp, joints, a, b


def test_affine_joints_are_recovered_exactly():
    rng = np.random.default_rng(0)
    kp, joints, a, b = _affine_data(rng, 600)
    result = kr.keypoint_regression_error(kp[:400], joints[:400], kp[400:], joints[400:])
    assert result["mean_error"] < 1e-5
    assert result["train_mean_error"] < 1e-5
    reg = result["regressor"]
    # Coefficients of joint j are the columns 2j, 2j+1 of the generating matrix.
    np.testing.assert_allclose(reg.coef, a.reshape(10, 4, 2).transpose(1, 0, 2), atol=1e-4)
    np.testing.assert_allclose(reg.intercept, b.reshape(4, 2), atol=1e-4)


def test_permuted_noisy_keypoints_give_the_noise_level():
    rng = np.random.default_rng(1)
    n, k, sigma = 3000, 8, 0.02
    kp = rng.uniform(-0.8, 0.8, size=(n, k, 2))
    perm = np.array([5, 2, 7, 0])
    joints = kp[:, perm] + rng.normal(scale=sigma, size=(n, 4, 2))
    result = kr.keypoint_regression_error(kp[:2000], joints[:2000], kp[2000:], joints[2000:])
    # The distance of 2D isotropic Gaussian noise is Rayleigh with mean sigma * sqrt(pi / 2);
    # the normalised error halves it (an image side is 2 units).
    expected = sigma * np.sqrt(np.pi / 2) / 2
    assert result["mean_error"] == pytest.approx(expected, rel=0.05)
    assert result["mean_error_px"] == pytest.approx(expected * 128, rel=0.05)
    coef = result["regressor"].coef  # [J, 2K, 2]
    for j, src in enumerate(perm):
        np.testing.assert_allclose(coef[j, 2 * src:2 * src + 2], np.eye(2), atol=0.02)


def test_random_keypoints_are_much_worse_than_informative_ones():
    rng = np.random.default_rng(2)
    n = 1000
    joints = rng.uniform(-0.9, 0.9, size=(n, 13, 2))
    informative = joints[:, [0, 3, 5, 7, 9, 11, 1, 2, 4, 6, 8, 10, 12]] * 0.5 + 0.1
    informative = informative + rng.normal(scale=0.01, size=informative.shape)
    informative = np.concatenate([informative, rng.uniform(-1, 1, (n, 7, 2))], axis=1)
    random_kp = rng.uniform(-1, 1, size=(n, 20, 2))
    good = kr.keypoint_regression_error(informative[:700], joints[:700],
                                        informative[700:], joints[700:])
    bad = kr.keypoint_regression_error(random_kp[:700], joints[:700],
                                       random_kp[700:], joints[700:])
    assert good["mean_error"] < 0.2 * bad["mean_error"]
    # Random keypoints cannot beat predicting the mean joint: about the mean distance of a
    # uniform point on [-0.9, 0.9]^2 from the centre, ~0.69 units, i.e. ~0.34 normalised.
    assert bad["mean_error"] > 0.25
    assert list(good["per_joint"]) == list(PENN_JOINTS)


def test_visibility_mask_excludes_joints_from_fit_and_error():
    rng = np.random.default_rng(3)
    kp, joints, _, _ = _affine_data(rng, 500)
    visible = rng.uniform(size=joints.shape[:2]) > 0.3
    garbage = np.where(visible[..., None], joints, 50.0)
    result = kr.keypoint_regression_error(kp[:300], garbage[:300], kp[300:], garbage[300:],
                                          visible_train=visible[:300],
                                          visible_test=visible[300:])
    assert result["mean_error"] < 1e-5
    assert result["num_points"] == int(visible[300:].sum())
    # Without the masks the garbage wrecks both the fit and the error.
    unmasked = kr.keypoint_regression_error(kp[:300], garbage[:300], kp[300:], garbage[300:])
    assert unmasked["mean_error"] > 1.0


def test_never_visible_joint_reports_nan_and_is_skipped_in_the_mean():
    pred = np.zeros((3, 2, 2))
    joints = np.zeros((3, 2, 2))
    joints[:, 0, 0] = 0.2
    visible = np.array([[True, False]] * 3)
    out = kr.joint_errors(pred, joints, visible, image_size=100)
    assert out["per_joint_error"][0] == pytest.approx(0.1)
    assert np.isnan(out["per_joint_error"][1])
    assert out["mean_error"] == pytest.approx(0.1)
    assert out["mean_error_px"] == pytest.approx(10.0)


def test_hand_computed_two_point_errors():
    pred = np.array([[[0.0, 0.0], [0.5, 0.5]]])
    true = np.array([[[0.1, 0.0], [0.5, -0.1]]])
    # Distances 0.1 and 0.6 units -> 0.05 and 0.3 of the image side.
    out = kr.joint_errors(pred, true, image_size=128, joint_names=["a", "b"])
    assert out["mean_error"] == pytest.approx(0.175)
    assert out["per_joint"] == {"a": pytest.approx(0.05), "b": pytest.approx(0.3)}
    assert out["mean_error_px"] == pytest.approx((6.4 + 38.4) / 2)
    # Non-square (H, W) = (64, 128): dx 0.1 -> 6.4 px, dy 0.6 -> 19.2 px.
    out = kr.joint_errors(pred, true, image_size=(64, 128))
    assert out["per_joint_error_px"] == pytest.approx([6.4, 19.2])
    assert out["image_size"] == (64, 128)


def test_one_pixel_offset_is_one_pixel_of_error():
    w = 64
    cols = np.arange(w)
    centres = (2 * cols + 1) / w - 1  # pixel-centre x of each column
    pred = np.stack([centres[:-1], np.zeros(w - 1)], -1)[:, None, :]
    true = np.stack([centres[1:], np.zeros(w - 1)], -1)[:, None, :]
    out = kr.joint_errors(pred, true, image_size=w)
    assert out["mean_error_px"] == pytest.approx(1.0)
    assert out["mean_error"] == pytest.approx(1.0 / w)


def test_video_shaped_inputs_and_save_reload(tmp_path):
    rng = np.random.default_rng(4)
    kp, joints, _, _ = _affine_data(rng, 6 * 20)
    kp_v, joints_v = kp.reshape(6, 20, 5, 2), joints.reshape(6, 20, 4, 2)
    reg = kr.fit_keypoint_regressor(kp_v, joints_v)
    pred = reg.predict(kp_v)
    assert pred.shape == (6, 20, 4, 2) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, joints_v, atol=1e-4)
    path = tmp_path / "reg.npz"
    reg.save(path)
    np.testing.assert_array_equal(kr.KeypointRegressor.load(path).predict(kp_v), pred)


def test_bad_inputs_name_the_argument(tmp_path):
    kp = np.zeros((10, 5, 2))
    joints = np.zeros((10, 4, 2))
    with pytest.raises(ValueError, match="kp_train"):
        kr.fit_keypoint_regressor(np.zeros((10, 5, 3)), joints)
    with pytest.raises(ValueError, match="same number of frames"):
        kr.fit_keypoint_regressor(kp, joints[:5])
    with pytest.raises(ValueError, match="visible"):
        kr.fit_keypoint_regressor(kp, joints, visible=np.ones((10, 3), bool))
    with pytest.raises(ValueError, match="visible"):
        kr.fit_keypoint_regressor(kp, joints, visible=np.ones((10, 4)))
    reg = kr.fit_keypoint_regressor(kp, joints)
    with pytest.raises(ValueError, match=r"kp must have shape \[\.\.\., 5, 2\]"):
        reg.predict(np.zeros((3, 6, 2)))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        kr.KeypointRegressor.load(tmp_path / "missing.npz")
