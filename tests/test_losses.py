"""kpvp.losses against values computed by hand."""
import math

import keras
import numpy as np
import pytest

from kpvp import losses
from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping


def value(x):
    return float(np.asarray(x))


def test_l1_loss_is_the_mean_absolute_error():
    target = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    prediction = np.array([[0.0, -2.0], [1.0, 3.0]], np.float32)
    assert value(losses.l1_loss(target, prediction)) == pytest.approx((1 + 0 + 0.5 + 3) / 4)
    with pytest.raises(ValueError, match="shape"):
        losses.l1_loss(target, prediction[:1])


def test_perceptual_loss_averages_per_layer_l1():
    real = [np.zeros((1, 2, 2, 1), np.float32), np.ones((1, 1, 1, 3), np.float32)]
    fake = [np.full((1, 2, 2, 1), 0.5, np.float32),
            np.array([[[[1.0, 4.0, -2.0]]]], np.float32)]
    # Layer 1: mean |0 - 0.5| = 0.5. Layer 2: mean(0, 3, 3) = 2. Equal weights: (0.5 + 2) / 2.
    assert value(losses.perceptual_loss(real, fake)) == pytest.approx(1.25)
    assert value(losses.perceptual_loss(real, fake, weights=[2.0, 0.1])) == pytest.approx(
        2.0 * 0.5 + 0.1 * 2.0)
    assert value(losses.perceptual_loss(real, real)) == 0.0
    with pytest.raises(ValueError, match="weights"):
        losses.perceptual_loss(real, fake, weights=[1.0])
    with pytest.raises(ValueError, match="same length"):
        losses.perceptual_loss(real, fake[:1])


def test_discriminator_loss_is_binary_cross_entropy():
    real_logits = np.array([[2.0], [-1.0]], np.float32)
    fake_logits = np.array([[0.5], [-3.0], [0.0]], np.float32)
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    real_term = -(math.log(sigmoid(2.0)) + math.log(sigmoid(-1.0))) / 2
    fake_term = -(math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))
                  + math.log(1 - sigmoid(0.0))) / 3
    assert value(losses.discriminator_loss(real_logits, fake_logits)) == pytest.approx(
        real_term + fake_term, rel=1e-6)
    # Logit 0 means D = 1/2 on both sides: 2 log 2.
    zeros = np.zeros((4, 1), np.float32)
    assert value(losses.discriminator_loss(zeros, zeros)) == pytest.approx(2 * math.log(2))


def test_generator_loss_is_non_saturating_and_stable():
    fake_logits = np.array([[1.0], [-2.0]], np.float32)
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0))) / 2  # -log D
    assert value(losses.generator_adversarial_loss(fake_logits)) == pytest.approx(expected,
                                                                                  rel=1e-6)
    # A confident discriminator (logit -100) still gives a finite, large loss (no log(0)).
    assert value(losses.generator_adversarial_loss(np.array([[-100.0]], np.float32))) == (
        pytest.approx(100.0, rel=1e-6))


def test_kl_divergence_hand_values():
    mu = np.array([[0.0, 0.0], [1.0, -2.0]], np.float32)
    log_var = np.array([[0.0, 0.0], [math.log(4.0), 0.0]], np.float32)
    # Example 1 is N(0, I): KL 0. Example 2: 0.5 * [(4 + 1 - 1 - ln 4) + (1 + 4 - 1 - 0)].
    second = 0.5 * ((4 + 1 - 1 - math.log(4)) + (1 + 4 - 1))
    assert value(losses.kl_divergence(mu, log_var)) == pytest.approx(second / 2, rel=1e-6)
    assert value(losses.kl_divergence(mu[:1], log_var[:1])) == 0.0
    with pytest.raises(ValueError, match="mu and log_var"):
        losses.kl_divergence(mu, log_var[:, :1])


def test_losses_accept_bfloat16_and_return_float32():
    logits = keras.ops.cast(np.array([[0.25], [-0.5]], np.float32), "bfloat16")
    loss = losses.generator_adversarial_loss(logits)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"


def test_temporal_separation_loss_hand_values():
    # Two keypoints, two frames: k0 moves by (0.2, 0), k1 stays. d = |0.2|^2 / 4 = 0.01, and
    # exp(-0.01 / (2 * 0.1^2)) = exp(-0.5) for both ordered pairs.
    kp = np.array([[[[0.0, 0.0], [0.5, 0.5]], [[0.2, 0.0], [0.5, 0.5]]]], np.float32)
    assert float(losses.temporal_separation_loss(kp, 0.1)) == pytest.approx(math.exp(-0.5),
                                                                              rel=1e-5)
    # Moving alike, whatever their offsets: 1 (all keypoints do one keypoint's work).
    together = np.array([[[[0.0, 0.0], [0.5, -0.3], [-0.4, 0.1]]]], np.float32)
    together = np.concatenate([together, together + [0.3, -0.1]], axis=1)
    assert float(losses.temporal_separation_loss(together, 0.1)) == pytest.approx(1.0)
    # Very different motions: about 0. The batch mean: half of each.
    apart = np.array([[[[0.0, 0.0], [0.0, 0.0]], [[0.9, 0.0], [-0.9, 0.0]]]], np.float32)
    assert float(losses.temporal_separation_loss(apart, 0.1)) < 1e-6
    both = np.concatenate([kp, apart])
    assert float(losses.temporal_separation_loss(both, 0.1)) == pytest.approx(
        0.5 * math.exp(-0.5), rel=1e-5)


def test_motion_coverage_loss_hand_values():
    source = np.zeros((1, 64, 64, 3), np.float32)
    target = source.copy()
    # Motion in one 2x2 cell of the 32x32 grid: rows/columns 20-21, cell (10, 10), whose
    # centre is at (10.5 / 16 - 1) = -0.34375 in [-1, 1] units on both axes.
    target[:, 20:22, 20:22] = 1.0
    centre = -0.34375
    sigma = 0.1

    def loss(source_kp, target_kp):
        return float(losses.motion_coverage_loss(
            source, target, np.array([source_kp], np.float32), np.array([target_kp], np.float32),
            sigma))

    # One keypoint per frame at distances d_s and d_t from the moving cell:
    # (1 - exp(-d_s^2 / 2 sigma^2)) (1 - exp(-d_t^2 / 2 sigma^2)).
    d_s, d_t = 0.1, 0.2
    expected = ((1 - math.exp(-d_s ** 2 / (2 * sigma ** 2)))
                * (1 - math.exp(-d_t ** 2 / (2 * sigma ** 2))))
    assert loss([[centre + d_s, centre]], [[centre, centre - d_t]]) == pytest.approx(
        expected, rel=1e-4)
    assert loss([[centre, centre]], [[0.9, 0.9]]) == pytest.approx(0.0, abs=1e-6)
    assert loss([[0.9, 0.9]], [[-0.9, 0.9]]) == pytest.approx(1.0, abs=1e-6)
    # A still pair counts 0, and the batch mean averages the pairs.
    two = float(losses.motion_coverage_loss(
        np.concatenate([source, source]), np.concatenate([target, source]),
        np.full((2, 1, 2), 0.9, np.float32), np.full((2, 1, 2), 0.9, np.float32), sigma))
    assert two == pytest.approx(0.5, abs=1e-6)


def test_motion_coverage_loss_pulls_keypoints_onto_what_moves():
    import tensorflow as tf

    # A still background with one square, on the right, that moves down by a quarter of the image.
    source = np.zeros((1, 64, 64, 3), np.float32)
    target = source.copy()
    source[:, 8:16, 44:52] = 1.0
    target[:, 24:32, 44:52] = 1.0
    moving = np.array([0.5, -0.375], np.float32)  # midway between the square's two places
    # One keypoint (the same in both frames) starts 0.4 to the left, within reach of sigma
    # 0.2; gradient descent on the loss alone brings it onto the moving pixels.
    start = np.array([[[0.1, -0.375]]], np.float32)
    kp = tf.Variable(start)
    optimizer = tf.keras.optimizers.SGD(0.05)
    before = float(losses.motion_coverage_loss(source, target, kp, kp, 0.2))
    for _ in range(100):
        with tf.GradientTape() as tape:
            loss = losses.motion_coverage_loss(source, target, kp, kp, 0.2)
        optimizer.apply_gradients([(tape.gradient(loss, kp), kp)])
    after = float(losses.motion_coverage_loss(source, target, kp, kp, 0.2))
    assert after < 0.5 * before
    assert np.linalg.norm(kp.numpy()[0, 0] - moving) < 0.1


def test_motion_coverage_loss_rejects_bad_input():
    images = np.zeros((1, 64, 64, 3), np.float32)
    kp = np.zeros((1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="one shape"):
        losses.motion_coverage_loss(images, images[:, :32], kp, kp, 0.1)
    with pytest.raises(ValueError, match="multiple of size=32"):
        losses.motion_coverage_loss(images[:, :48, :48], images[:, :48, :48], kp, kp, 0.1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        losses.motion_coverage_loss(images, images, kp, kp, 0.0)


def test_temporal_separation_loss_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, T, K, 2\]"):
        losses.temporal_separation_loss(np.zeros((2, 3, 2), np.float32), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        losses.temporal_separation_loss(np.zeros((1, 2, 3, 2), np.float32), 0.0)
    with pytest.raises(ValueError, match="K >= 2"):
        losses.temporal_separation_loss(np.zeros((1, 2, 1, 2), np.float32), 0.1)


def test_equivariance_loss_hand_values():
    # A shift by (0.2, -0.1): the warped image shows at u what the image has at u + shift.
    shift = warping.affine_matrices([0.0], [1.0], [[0.2, -0.1]])
    kp = np.array([[[0.3, 0.4], [-0.5, 0.0]]], np.float32)
    assert float(losses.equivariance_loss(kp, kp - [0.2, -0.1], shift)) == pytest.approx(
        0.0, abs=1e-6)
    # Keypoints that stay put are off by the shift: mean(0.2, 0.1, 0.2, 0.1).
    assert float(losses.equivariance_loss(kp, kp, shift)) == pytest.approx(0.15, rel=1e-5)
    # A quarter turn, A(u) = (-u_y, u_x): the keypoint at (0.5, 0) shows at (0, -0.5).
    turn = warping.affine_matrices([np.pi / 2], [1.0], [[0.0, 0.0]])
    one = np.array([[[0.5, 0.0]]], np.float32)
    assert float(losses.equivariance_loss(one, [[[0.0, -0.5]]], turn)) == pytest.approx(
        0.0, abs=1e-6)
    assert float(losses.equivariance_loss(one, one, turn)) == pytest.approx(0.5, rel=1e-5)


def test_equivariance_loss_is_low_for_a_detector_that_follows_the_image():
    # Two bright blobs; "detector" A finds each blob's centre of mass in its half of the image,
    # detector B returns fixed points. Through random affine maps A scores near 0, B does not.
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    blob = lambda x, y: np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    image = (blob(20, 30) + blob(44, 36))[None, ..., None].astype(np.float32)
    centres = np.asarray(kp_ops.pixel_centers(size))

    def follows(images):
        images = np.asarray(images)[..., 0]
        out = []
        for half in (slice(0, size // 2), slice(size // 2, size)):
            w = images[:, :, half] / images[:, :, half].sum(axis=(1, 2), keepdims=True)
            out.append(np.stack([(w * centres[None, None, half]).sum(axis=(1, 2)),
                                 (w * centres[None, :, None]).sum(axis=(1, 2))], -1))
        return np.stack(out, axis=1).astype(np.float32)

    rng = np.random.default_rng(0)
    a = warping.affine_matrices(rng.uniform(-0.2, 0.2, 4), rng.uniform(0.9, 1.1, 4),
                                rng.uniform(-0.05, 0.05, (4, 2)))
    images = np.repeat(image, 4, axis=0)
    warped = warping.affine_warp(images, a)
    kp = follows(images)
    good = float(losses.equivariance_loss(kp, follows(warped), a))
    fixed = float(losses.equivariance_loss(kp, kp, a))
    assert good < 0.01 and fixed > 5 * good, (good, fixed)


def test_equivariance_loss_rejects_bad_input():
    a = warping.affine_matrices([0.0], [1.0], [[0.0, 0.0]])
    kp = np.zeros((1, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        losses.equivariance_loss(kp, kp[:, :2], a)
    with pytest.raises(ValueError, match=r"\[B, 2, 3\]"):
        losses.equivariance_loss(kp, kp, np.zeros((1, 3, 3), np.float32))
