"""Training losses of both stages (paper eqs. 4 and 5); every loss returns a float32 scalar.

Adversarial losses take raw logits `D(x)` (before the sigmoid), so `log D` and `log(1 - D)`
are computed stably as `-softplus(-logit)` and `-softplus(logit)`.
"""
from keras import ops

from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping


def _f32(x):
    return ops.cast(x, "float32")


def _same_shape(a, b):
    """Shapes agree wherever both are known (graph mode may leave the batch size unknown)."""
    return len(a.shape) == len(b.shape) and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape))


def l1_loss(target, prediction):
    """Mean absolute error `mean |target - prediction|` over all elements -> scalar.

    Stage 2's reconstruction term `||k_tilde_{1:T} - k_hat_{1:T}||_1` (weighted by lambda2):
    any matching shapes, e.g. keypoint sequences `[B, T, K, 2]`. A MEAN, not a sum, so
    lambda2 does not depend on T or K.
    """
    target, prediction = _f32(target), _f32(prediction)
    if not _same_shape(target, prediction):
        raise ValueError(f"l1_loss: target shape {tuple(target.shape)} differs from prediction "
                         f"shape {tuple(prediction.shape)}")
    return ops.mean(ops.abs(target - prediction))


def perceptual_loss(features_real, features_fake, weights=None):
    """Perceptual loss `E_l ||Phi_l(v_hat) - Phi_l(v')||_1` (paper eq. 4) -> scalar.

    `features_real` / `features_fake`: lists of L feature maps `Phi_l` `[B, h_l, w_l, c_l]`
    of the target `v'` and of the output `v_hat`. Per layer the mean absolute difference;
    the layers are combined as `sum_l weights[l] * mean_l`, with equal weights `1 / L` by
    default (the expectation over l, as the authors).
    """
    features_real, features_fake = list(features_real), list(features_fake)
    if not features_real or len(features_real) != len(features_fake):
        raise ValueError(
            "perceptual_loss: features_real and features_fake must be non-empty lists of the "
            f"same length, got {len(features_real)} and {len(features_fake)}")
    if weights is None:
        weights = [1.0 / len(features_real)] * len(features_real)
    weights = list(weights)
    if len(weights) != len(features_real):
        raise ValueError(f"perceptual_loss: weights has {len(weights)} entries for "
                         f"{len(features_real)} feature layers")
    total = 0.0
    for weight, real, fake in zip(weights, features_real, features_fake):
        total = total + float(weight) * l1_loss(real, fake)
    return _f32(total)


def discriminator_loss(real_logits, fake_logits):
    """`L_D = -log D(real) - log(1 - D(fake))` (L_{D_im}, L_{D_seq}; eqs. 4, 5) -> scalar.

    Sigmoid binary cross-entropy of logits `[B, ...]`: real labelled 1, fake 0, each term
    averaged over its own batch (and over the map of a patch discriminator `[B, h, w, 1]`).
    """
    return (ops.mean(ops.softplus(-_f32(real_logits)))
            + ops.mean(ops.softplus(_f32(fake_logits))))


def generator_adversarial_loss(fake_logits):
    """Non-saturating generator loss `-log D(fake)` (in L_{Q,T} and L_M) -> scalar.

    `fake_logits` `[B, ...]` (one logit per example or a patch map), averaged over all.
    """
    return ops.mean(ops.softplus(-_f32(fake_logits)))


def kl_divergence(mu, log_var):
    """`D_KL(N(mu, diag(exp(log_var))) || N(0, I))` of q_phi(z | ...) (eq. 5) -> scalar.

    `mu`, `log_var` `[B, D]`: `0.5 * sum_d (exp(log_var) + mu^2 - 1 - log_var)`, SUMMED
    over the latent dimensions (the KL of the whole z) and AVERAGED over the batch.
    """
    mu, log_var = _f32(mu), _f32(log_var)
    if not _same_shape(mu, log_var) or len(mu.shape) != 2:
        raise ValueError(f"kl_divergence: mu and log_var must both be [B, D], got "
                         f"{tuple(mu.shape)} and {tuple(log_var.shape)}")
    per_example = 0.5 * ops.sum(ops.exp(log_var) + ops.square(mu) - 1.0 - log_var, axis=-1)
    return ops.mean(per_example)


def temporal_separation_loss(keypoints, sigma):
    """Minderer et al.'s temporal separation loss (not in the paper) -> scalar in [0, 1].

    `keypoints` `[B, T, K, 2]` (stage 1 gives T = 2: source and target). Each keypoint's
    trajectory is centred on its temporal mean; `d_kk'` is the mean over time of the squared
    distance between the centred trajectories of k and k'; the loss is the batch mean of
    `exp(-d_kk' / (2 sigma^2))` averaged over the `K (K - 1)` pairs k != k'. It is 1 when all
    keypoints move alike (up to a constant offset) and falls to 0 as their motions differ, so
    it discourages several keypoints doing one keypoint's work. For T = 2,
    `d_kk' = |delta_k - delta_k'|^2 / 4` with `delta` a keypoint's displacement.
    """
    keypoints = _f32(keypoints)
    if len(keypoints.shape) != 4 or keypoints.shape[-1] != 2:
        raise ValueError(f"temporal_separation_loss: keypoints must be [B, T, K, 2], got "
                         f"{tuple(keypoints.shape)}")
    if sigma <= 0:
        raise ValueError(f"temporal_separation_loss: sigma must be > 0, got {sigma}")
    num_keypoints = keypoints.shape[2]
    if num_keypoints is None or num_keypoints < 2:
        raise ValueError(f"temporal_separation_loss: needs a static K >= 2, got {num_keypoints}")
    centred = keypoints - ops.mean(keypoints, axis=1, keepdims=True)
    differences = centred[:, :, :, None, :] - centred[:, :, None, :, :]  # [B, T, K, K, 2]
    distances = ops.mean(ops.sum(ops.square(differences), axis=-1), axis=1)  # [B, K, K]
    similarity = ops.mean(ops.exp(-distances / (2.0 * sigma ** 2)), axis=0)  # [K, K]
    # The diagonal is always 1: drop it, and average over the K (K - 1) pairs.
    return (ops.sum(similarity) - num_keypoints) / (num_keypoints * (num_keypoints - 1))


def motion_coverage_loss(source, target, source_kp, target_kp, sigma, size=32):
    """The share of the motion between two frames that no keypoint is near (not in the paper)
    -> scalar in [0, 1].

    `source`, `target` `[B, H, W, 3]`: a frame pair; `source_kp`, `target_kp` `[B, K, 2]`:
    their keypoints. The motion is `|target - source|` averaged over the channels and pooled
    to `size x size` cells, normalised per pair to a distribution `w` over cells (a still pair
    contributes 0). A cell `u` is covered by a keypoint `k` to the degree
    `g_k(u) = exp(-|u - k|^2 / (2 sigma^2))` (`sigma` in [-1, 1] units), and left uncovered by
    all keypoints of both frames to the degree `prod_k (1 - g_k(u))`. The loss is the batch
    mean of `sum_u w(u) prod_k (1 - g_k(u))`: 1 when every moving pixel is far from every
    keypoint, 0 when every moving pixel sits on one. Its gradient pulls keypoints towards the
    parts that move, which the reconstruction loss alone rewards too little for thin limbs.
    """
    source, target = _f32(source), _f32(target)
    if len(source.shape) != 4 or not _same_shape(source, target):
        raise ValueError(f"motion_coverage_loss: source and target must be [B, H, W, C] of one "
                         f"shape, got {tuple(source.shape)} and {tuple(target.shape)}")
    height, width = source.shape[1], source.shape[2]
    if height is None or width is None or height % size or width % size:
        raise ValueError(f"motion_coverage_loss: image size {height}x{width} must be a multiple "
                         f"of size={size}")
    if sigma <= 0:
        raise ValueError(f"motion_coverage_loss: sigma must be > 0, got {sigma}")
    change = ops.mean(ops.abs(target - source), axis=-1, keepdims=True)
    change = ops.average_pool(change, (height // size, width // size),
                              strides=(height // size, width // size))[..., 0]  # [B, s, s]
    total = ops.sum(change, axis=(1, 2), keepdims=True)
    weights = change / ops.maximum(total, 1e-8)
    inv_std = 1.0 / (sigma * 2.0 ** 0.5)
    keypoints = ops.concatenate([_f32(source_kp), _f32(target_kp)], axis=1)
    maps = kp_ops.gaussian_maps(keypoints, size, inv_std)  # [B, s, s, 2K]
    uncovered = ops.prod(1.0 - maps, axis=-1)
    return ops.mean(ops.sum(weights * uncovered, axis=(1, 2)))


def equivariance_loss(keypoints, warped_keypoints, matrices):
    """How far the keypoints of a transformed image are from the transformed keypoints (not in
    the paper; Thewlis et al., 2017) -> scalar.

    `keypoints` `[B, K, 2]`: Q's keypoints of images `x`; `warped_keypoints`: Q's keypoints of
    `affine_warp(x, A)` (`kpvp.ops.warping`), whose pixel `u` shows what `x` has at `A(u)`;
    `matrices` `A` `[B, 2, 3]`. A detector that follows the image content puts keypoint k of
    the warped image at `u` with `A(u) = k`, so the loss is the mean absolute difference
    `|A(warped_keypoints) - keypoints|` over the coordinates (in [-1, 1] units). It asks each
    keypoint to stay on the same piece of the image as the image moves, which the
    reconstruction loss alone does not, and which a warp of the source needs.
    """
    keypoints, warped_keypoints = _f32(keypoints), _f32(warped_keypoints)
    if len(keypoints.shape) != 3 or keypoints.shape[-1] != 2 or not _same_shape(
            keypoints, warped_keypoints):
        raise ValueError(f"equivariance_loss: keypoints and warped_keypoints must both be "
                         f"[B, K, 2], got {tuple(keypoints.shape)} and "
                         f"{tuple(warped_keypoints.shape)}")
    _check_affine_matrices("equivariance_loss", matrices)
    return ops.mean(ops.abs(warping.apply_affine(warped_keypoints, matrices) - keypoints))


def _check_affine_matrices(name, matrices):
    if len(matrices.shape) != 3 or tuple(matrices.shape[1:]) != (2, 3):
        raise ValueError(f"{name}: matrices must be [B, 2, 3], got {tuple(matrices.shape)}")


def jacobian_equivariance_loss(jacobians, warped_jacobians, matrices):
    """The Jacobians' part of the equivariance loss (Siarohin et al., 2019) -> scalar.

    `jacobians` `[B, K, 2, 2]`: Q's Jacobians of images `x`; `warped_jacobians`: those of
    `affine_warp(x, A)`; `matrices` `A` `[B, 2, 3]`. A Jacobian is the local frame of a keypoint
    (offset `d` in its frame lies at `k + J d`); through `A` the warped image's frame maps to
    `L J_warped` in `x`, `L` = `A`'s linear part, so the loss is the mean absolute difference
    `|L J_warped - J|` over the entries (Siarohin et al. compare `J^-1 L J_warped` with I,
    which needs `J` invertible).
    """
    jacobians, warped_jacobians = _f32(jacobians), _f32(warped_jacobians)
    if len(jacobians.shape) != 4 or tuple(jacobians.shape[2:]) != (2, 2) or not _same_shape(
            jacobians, warped_jacobians):
        raise ValueError(f"jacobian_equivariance_loss: jacobians and warped_jacobians must both "
                         f"be [B, K, 2, 2], got {tuple(jacobians.shape)} and "
                         f"{tuple(warped_jacobians.shape)}")
    _check_affine_matrices("jacobian_equivariance_loss", matrices)
    linear = _f32(matrices)[:, None, :, :2]
    return ops.mean(ops.abs(ops.matmul(linear, warped_jacobians) - jacobians))
