"""Stage 1 trainer: keypoint detector Q and masked translator T against the image critic D_im.

One `train_step` is the paper's alternating update on one batch of frame pairs (s, v):

1. G forward: k_s = Q(s), k_v = Q(v), v_hat = T(s, k_s, k_v), recorded on the G tape.
2. D update on (v, v_hat) with v_hat detached (the same fakes: no second G forward).
3. G update of Q and T with lambda1 * L_perc(v, v_hat) + adversarial_weight * L_adv(D(v_hat))
   (+ separation_weight * L_sep(k_s, k_v) if set: Minderer et al.'s temporal separation loss,
   not in the paper; + coverage_weight * L_cov(s, v, k_s, k_v) if set: the share of the motion
   between s and v that no keypoint is near, not in the paper; + equivariance_weight *
   L_eq(v) if set: how far Q's keypoints of v seen through a random affine map A are from A's
   image of k_v, not in the paper), D(v_hat) being evaluated with the D just updated. The
   target's perceptual features carry no gradient, so they are computed outside the tape.

D_im's logits are one per image or a patch map (the authors'); the sigmoid cross-entropies
average over the map too. Losses are averaged over the global batch, so gradients summed across
replicas by a `tf.distribute` strategy equal the single-device gradients.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from kpvp import losses
from kpvp.models import discriminators
from kpvp.models import keypoint_detector
from kpvp.models import translator as translator_lib
from kpvp.ops import warping
from kpvp.trainers.adversarial import AdversarialTrainer

METRIC_NAMES = ("d_loss", "g_loss", "perceptual", "adversarial", "separation", "coverage",
                "equivariance", "l1", "d_real", "d_fake")


class KeypointTranslationTrainer(AdversarialTrainer):
    """Owns Q, T, D_im and the feature network; `fit()` runs the alternating updates.

    Batches: `dict(source=float32 [B,H,W,3], target=float32 [B,H,W,3])`, images in [-1, 1].
    """

    METRIC_NAMES = METRIC_NAMES

    def __init__(self, detector, translator, discriminator, perceptual_network,
                 perceptual_weight=1.0, adversarial_weight=1.0, separation_weight=0.0,
                 separation_sigma=0.1, coverage_weight=0.0, coverage_sigma=0.15,
                 equivariance_weight=0.0, equivariance_rotate_degrees=15.0,
                 equivariance_scale=0.1, equivariance_shift=0.1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector
        self.translator = translator
        self.discriminator = discriminator
        self.perceptual_network = perceptual_network
        self.perceptual_network.trainable = False
        self.perceptual_weight = float(perceptual_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.separation_weight = float(separation_weight)
        self.separation_sigma = float(separation_sigma)
        self.coverage_weight = float(coverage_weight)
        self.coverage_sigma = float(coverage_sigma)
        self.equivariance_weight = float(equivariance_weight)
        self.equivariance_rotate_degrees = float(equivariance_rotate_degrees)
        self.equivariance_scale = float(equivariance_scale)
        self.equivariance_shift = float(equivariance_shift)
        if not 0 <= self.equivariance_scale < 1:
            raise ValueError(f"equivariance_scale must be in [0, 1), got {equivariance_scale}")
        self.seed = int(seed)
        # The feature network's calibration to the paper's VGG19-on-[0, 255] loss scale
        # (`PerceptualNetwork.loss_scale`): 100 for the deflated I3D, 1 for VGG19.
        self.perceptual_scale = float(getattr(perceptual_network, "loss_scale", 1.0))

    # === Set-up ===
    def build(self, input_shape=None):
        """Creates every sub-model variable (needed before restoring a checkpoint)."""
        size = self.translator.image_size
        images = keras.ops.zeros((1, size, size, 3))
        keypoints = self.detector(images)
        self.translator([images, keypoints, keypoints])
        self.discriminator(images)
        self.perceptual_network(images)
        self.built = True

    @property
    def generator_variables(self):
        return self.detector.trainable_variables + self.translator.trainable_variables

    def checkpoint_items(self) -> dict:
        return dict(detector=self.detector, translator=self.translator,
                    discriminator=self.discriminator,
                    generator_optimizer=self.generator_optimizer,
                    discriminator_optimizer=self.discriminator_optimizer)

    # === Steps ===
    def reconstruct(self, source, target, training=False) -> dict:
        """`v_hat = T(s, Q(s), Q(v))`; returns dict(image, crude, mask, source_kp, target_kp)."""
        source_kp = self.detector(source, training=training)
        target_kp = self.detector(target, training=training)
        out = dict(self.translator([source, source_kp, target_kp], training=training))
        out.update(source_kp=source_kp, target_kp=target_kp)
        return out

    def calibration_pass(self, source, target) -> dict:
        """`reconstruct` in training mode with Q run once on source and target together, so that
        each batch-norm layer sees one batch a pass (`kpvp.training.recalibrate_batch_norm`)."""
        keypoints = self.detector(tf.concat([source, target], axis=0), training=True)
        source_kp, target_kp = tf.split(keypoints, 2, axis=0)
        out = dict(self.translator([source, source_kp, target_kp], training=True))
        out.update(source_kp=source_kp, target_kp=target_kp)
        return out

    def perceptual_loss(self, target_features, fake):
        """L_perc between the target's features and those of `fake`, times `perceptual_scale`."""
        return self.perceptual_scale * losses.perceptual_loss(
            target_features, self.perceptual_network(fake))

    def separation_loss(self, out) -> tf.Tensor:
        """L_sep of the source and target keypoints of `reconstruct`'s output (logged always,
        in the G loss only with `separation_weight` > 0)."""
        return losses.temporal_separation_loss(
            tf.stack([out["source_kp"], out["target_kp"]], axis=1), self.separation_sigma)

    def coverage_loss(self, source, target, out) -> tf.Tensor:
        """L_cov of a pair and `reconstruct`'s keypoints (logged always, in the G loss only
        with `coverage_weight` > 0)."""
        size = self.translator.image_size
        return losses.motion_coverage_loss(source, target, out["source_kp"], out["target_kp"],
                                           self.coverage_sigma, size=min(32, size))

    def random_affine(self, batch_size, step):
        """A random affine map `[B, 2, 3]` per image for the equivariance term: a rotation within
        +-`equivariance_rotate_degrees`, a scale within 1 +- `equivariance_scale` and a shift
        within +-`equivariance_shift`. Stateless, drawn from (`seed`, `step`), so a resumed run
        draws what the uninterrupted run would have."""
        # Under a tf.distribute strategy each replica takes its slice of the maps drawn for the
        # global batch, so the replicas' images get the maps one device would give them.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        replica = context.replica_id_in_sync_group if context is not None else 0
        start = tf.cast(replica, tf.int32) * batch_size
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)]), 3)
        unit = [tf.random.stateless_uniform(shape, seed, -1.0, 1.0)[start:start + batch_size]
                for shape, seed in zip(([replicas * batch_size], [replicas * batch_size],
                                        [replicas * batch_size, 2]), tf.unstack(seeds, 3))]
        angle = unit[0] * self.equivariance_rotate_degrees * (math.pi / 180.0)
        return warping.affine_matrices(angle, 1.0 + unit[1] * self.equivariance_scale,
                                       unit[2] * self.equivariance_shift)

    def equivariance_loss(self, images, keypoints, step, training=False) -> tf.Tensor:
        """L_eq of Q on `images` whose keypoints are `keypoints`: Q runs once more on the images
        seen through a random affine map (`random_affine(step)`). The train step computes it
        (and logs it) only with `equivariance_weight` > 0; the test step always."""
        matrices = self.random_affine(tf.shape(images)[0], step)
        warped = self.detector(warping.affine_warp(images, matrices), training=training)
        return losses.equivariance_loss(keypoints, warped, matrices)

    def generator_loss(self, perceptual, adversarial, separation, coverage, equivariance):
        loss = self.perceptual_weight * perceptual + self.adversarial_weight * adversarial
        for weight, term in ((self.separation_weight, separation),
                             (self.coverage_weight, coverage),
                             (self.equivariance_weight, equivariance)):
            if weight:
                loss += weight * term
        return loss

    def discriminator_step(self, real, fake):
        """One D_im update on real targets vs detached fakes; returns (loss, D(real), D(fake))."""
        return self.apply_discriminator_update(
            lambda x: self.discriminator(x, training=True), real, fake)

    def train_step(self, batch):
        source, target = batch["source"], batch["target"]
        target_features = [tf.stop_gradient(f) for f in self.perceptual_network(target)]
        with tf.GradientTape() as g_tape:
            out = self.reconstruct(source, target, training=True)
            fake = out["image"]
            separation = self.separation_loss(out)
            coverage = self.coverage_loss(source, target, out)
            # One more pass of Q: only when the term is trained (test_step always reports it).
            equivariance = (self.equivariance_loss(target, out["target_kp"],
                                                   self.generator_optimizer.iterations,
                                                   training=True)
                            if self.equivariance_weight else None)
        # Outside the G tape (a nested `stop_recording` would silence the D tape too); the tape
        # is re-entered below to finish the G loss on the updated D.
        d_loss, real_logits, fake_logits = self.discriminator_step(target, fake)
        with g_tape:
            perceptual = self.perceptual_loss(target_features, fake)
            adversarial = losses.generator_adversarial_loss(
                self.discriminator(fake, training=True))
            g_loss = self.generator_loss(perceptual, adversarial, separation, coverage,
                                         equivariance)
            scaled = g_loss * self._scale()
        variables = self.generator_variables
        grads = g_tape.gradient(scaled, variables)
        self.generator_optimizer.apply(grads, variables)
        optional = {} if equivariance is None else {"equivariance": equivariance}
        return self._update_trackers(
            d_loss=d_loss, g_loss=g_loss, perceptual=perceptual, adversarial=adversarial,
            separation=separation, coverage=coverage, l1=losses.l1_loss(target, fake),
            d_real=tf.reduce_mean(tf.sigmoid(real_logits)),
            d_fake=tf.reduce_mean(tf.sigmoid(fake_logits)), **optional)

    def test_step(self, batch):
        source, target = batch["source"], batch["target"]
        out = self.reconstruct(source, target)
        fake = out["image"]
        separation = self.separation_loss(out)
        coverage = self.coverage_loss(source, target, out)
        # A fixed draw of maps: every evaluation measures the same transforms.
        equivariance = self.equivariance_loss(target, out["target_kp"], step=-1)
        real_logits = self.discriminator(target)
        fake_logits = self.discriminator(fake)
        perceptual = self.perceptual_loss(self.perceptual_network(target), fake)
        adversarial = losses.generator_adversarial_loss(fake_logits)
        return self._update_trackers(
            d_loss=losses.discriminator_loss(real_logits, fake_logits),
            g_loss=self.generator_loss(perceptual, adversarial, separation, coverage,
                                       equivariance),
            perceptual=perceptual, adversarial=adversarial, separation=separation,
            coverage=coverage, equivariance=equivariance,
            l1=losses.l1_loss(target, fake),
            d_real=tf.reduce_mean(tf.sigmoid(real_logits)),
            d_fake=tf.reduce_mean(tf.sigmoid(fake_logits)))

    # === Summaries ===
    def summary_images(self, batch) -> dict:
        """uint8 grids for TensorBoard: source | target | reconstruction | mask, keypoints drawn."""
        from kpvp import visualize

        out = self.reconstruct(batch["source"], batch["target"])
        source = visualize.to_uint8(batch["source"])
        target = visualize.to_uint8(batch["target"])
        grid = visualize.side_by_side(
            visualize.draw_keypoints(source, out["source_kp"].numpy()),
            visualize.draw_keypoints(target, out["target_kp"].numpy()),
            visualize.to_uint8(out["image"]),
            visualize.gray_to_rgb(out["mask"]))
        return {"source|target|reconstruction|mask": grid}


def build_trainer(config, perceptual_network) -> KeypointTranslationTrainer:
    """Creates Q, T, D_im from `config` (see `kpvp/configs/base.py`) around a feature network."""
    s1 = config.stage1
    detector = keypoint_detector.build_detector(config)
    translator = translator_lib.build_translator(config)
    discriminator = discriminators.build_image_discriminator(config)
    return KeypointTranslationTrainer(detector, translator, discriminator, perceptual_network,
                                      perceptual_weight=s1.perceptual_weight,
                                      adversarial_weight=s1.adversarial_weight,
                                      separation_weight=s1.separation_weight,
                                      separation_sigma=s1.separation_sigma,
                                      coverage_weight=s1.coverage_weight,
                                      coverage_sigma=s1.coverage_sigma,
                                      equivariance_weight=s1.equivariance_weight,
                                      equivariance_rotate_degrees=s1.equivariance_rotate_degrees,
                                      equivariance_scale=s1.equivariance_scale,
                                      equivariance_shift=s1.equivariance_shift,
                                      seed=config.seed,
                                      name="keypoint_translation")
