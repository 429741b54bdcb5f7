"""Stage 1 trainer: keypoint detector Q and masked translator T against the image critic D_im.

One `train_step` (`AdversarialTrainer`'s) is the paper's alternating update on one batch of
frame pairs (s, v):

1. G forward: k_s = Q(s), k_v = Q(v), v_hat = T(s, k_s, k_v), recorded on the G tape.
2. D update on (v, v_hat) with v_hat detached.
3. G update of Q and T with lambda1 * L_perc(v, v_hat) + adversarial_weight * L_adv(D(v_hat))
   (+ separation_weight * L_sep(k_s, k_v) if set: Minderer et al.'s temporal separation loss,
   not in the paper; + coverage_weight * L_cov(s, v, k_s, k_v) if set: the share of the motion
   between s and v that no keypoint is near, not in the paper; + equivariance_weight *
   L_eq(v) if set: how far Q's keypoints of v seen through a random affine map A are from A's
   image of k_v, not in the paper; + pixel_l1_weight * mean |v - v_hat| if set, not in the
   paper), D(v_hat) being evaluated with the D just updated. The target's perceptual features
   carry no gradient, so they are computed outside the tape.

D_im's logits are one per image or a patch map (the authors'); the sigmoid cross-entropies
average over the map too. Logged besides the losses: `l1`, the pixel L1 between v and v_hat.

With a Q that has a Jacobian head (`stage1.translator=first_order`), T also gets both frames'
Jacobians, and the equivariance term adds `equivariance_jacobian_weight` times the Jacobians'
equivariance error. `perceptual_scales` (Siarohin et al.'s pyramid) averages L_perc over the
images resized to those scales.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from kpvp import losses, visualize
from kpvp.models import dense_motion, discriminators
from kpvp.models import keypoint_detector
from kpvp.models import translator as translator_lib
from kpvp.ops import warping
from kpvp.trainers.adversarial import AdversarialTrainer


class KeypointTranslationTrainer(AdversarialTrainer):
    """Owns Q, T, D_im and the feature network; `fit()` runs the alternating updates.

    Batches: `dict(source=float32 [B,H,W,3], target=float32 [B,H,W,3])`, images in [-1, 1].

    Args:
      detector, translator, discriminator: Q, T, D_im.
      perceptual_network: the fixed feature network of L_perc (`kpvp.perceptual`).
      stage_config: `config.stage1`: the terms' weights, `separation_sigma`, `coverage_sigma`
        and the `equivariance_*` ranges of the random affine maps.
      seed: the seed of the equivariance term's maps (`config.seed`).
    """

    TERMS = ("perceptual", "adversarial", "separation", "coverage", "equivariance", "pixel_l1")
    MONITORS = ("l1",)

    def __init__(self, detector, translator, discriminator, perceptual_network, stage_config,
                 seed=0, **kwargs):
        super().__init__(stage_config, **kwargs)
        self.detector = detector
        self.translator = translator
        self.discriminator = discriminator
        self.perceptual_network = perceptual_network
        self.perceptual_network.trainable = False
        self.separation_sigma = float(stage_config.separation_sigma)
        self.coverage_sigma = float(stage_config.coverage_sigma)
        self.equivariance_rotate_degrees = float(stage_config.equivariance_rotate_degrees)
        self.equivariance_scale = float(stage_config.equivariance_scale)
        self.equivariance_shift = float(stage_config.equivariance_shift)
        self.equivariance_jacobian_weight = float(
            stage_config.get("equivariance_jacobian_weight", 1.0))
        self.perceptual_scales = tuple(float(x) for x in
                                       stage_config.get("perceptual_scales", (1.0,)))
        size = translator.image_size
        bad = [x for x in self.perceptual_scales if not 0 < x <= 1 or round(size * x) % 32]
        if not self.perceptual_scales or bad:
            raise ValueError(
                f"stage1.perceptual_scales must be non-empty scales in (0, 1] that keep the "
                f"{size}-pixel images a multiple of 32 pixels, got {self.perceptual_scales}")
        if not 0 <= self.equivariance_scale < 1:
            raise ValueError(
                f"equivariance_scale must be in [0, 1), got {self.equivariance_scale}")
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

    # === The stage's step ===
    def prepare(self, batch) -> dict:
        """dict(source, real = the target v, real_features = its perceptual features, which
        carry no gradient)."""
        target = batch["target"]
        features = [[tf.stop_gradient(f) for f in self.perceptual_network(image)]
                    for image in self.pyramid(target)]
        return dict(source=batch["source"], real=target, real_features=features)

    def pyramid(self, images) -> list:
        """`images` at each of `perceptual_scales`."""
        size = self.translator.image_size
        return [dense_motion.resize(images, round(size * x)) for x in self.perceptual_scales]

    def generate(self, inputs, training) -> dict:
        """`reconstruct`'s outputs, with `fake` = v_hat."""
        out = self.reconstruct(inputs["source"], inputs["real"], training=training)
        out["fake"] = out["image"]
        return out

    def discriminate(self, images, inputs, training):
        return self.discriminator(images, training=training)

    def loss_term(self, name, inputs, generated, training):
        if name == "perceptual":
            return self.perceptual_loss(inputs["real_features"], generated["fake"])
        if name == "pixel_l1":
            return losses.l1_loss(inputs["real"], generated["fake"])
        if name == "separation":
            return self.separation_loss(generated)
        if name == "coverage":
            return self.coverage_loss(inputs["source"], inputs["real"], generated)
        if name == "equivariance":
            # A fixed draw of maps outside training: every evaluation measures the same ones.
            step = self.generator_optimizer.iterations if training else -1
            return self.equivariance_loss(inputs["real"], generated["target_kp"], step,
                                          training=training,
                                          jacobians=generated.get("target_jacobians"))
        raise ValueError(f"Unknown stage-1 loss term {name!r}")

    def monitors(self, inputs, generated) -> dict:
        return dict(l1=losses.l1_loss(inputs["real"], generated["fake"]))

    # === Networks and loss terms ===
    def reconstruct(self, source, target, training=False) -> dict:
        """`v_hat = T(s, Q(s), Q(v))`; returns T's outputs (image, mask, ...) with source_kp,
        target_kp (and source_jacobians, target_jacobians when Q gives them)."""
        source_kp, source_jac = keypoint_detector.locate(self.detector, source, training=training)
        target_kp, target_jac = keypoint_detector.locate(self.detector, target, training=training)
        return self._translate(source, source_kp, target_kp, source_jac, target_jac, training)

    def _translate(self, source, source_kp, target_kp, source_jac=None, target_jac=None,
                   training=False) -> dict:
        inputs = [source, source_kp, target_kp]
        if source_jac is not None:
            inputs += [source_jac, target_jac]
        out = dict(self.translator(inputs, training=training))
        out.update(source_kp=source_kp, target_kp=target_kp)
        if source_jac is not None:
            out.update(source_jacobians=source_jac, target_jacobians=target_jac)
        return out

    def calibration_pass(self, source, target) -> dict:
        """`reconstruct` in training mode with Q run once on source and target together, so that
        each batch-norm layer sees one batch a pass (`kpvp.trainers.loop.recalibrate_batch_norm`).
        """
        both = tf.concat([source, target], axis=0)
        keypoints, jacobians = keypoint_detector.locate(self.detector, both, training=True)
        source_kp, target_kp = tf.split(keypoints, 2, axis=0)
        source_jac = target_jac = None
        if jacobians is not None:
            source_jac, target_jac = tf.split(jacobians, 2, axis=0)
        return self._translate(source, source_kp, target_kp, source_jac, target_jac, True)

    def perceptual_loss(self, target_features, fake):
        """L_perc between the target's features (one list per scale of `perceptual_scales`) and
        those of `fake`, averaged over the scales, times `perceptual_scale`."""
        total = 0.0
        for features, image in zip(target_features, self.pyramid(fake)):
            total += losses.perceptual_loss(features, self.perceptual_network(image))
        return self.perceptual_scale * total / len(target_features)

    def separation_loss(self, out) -> tf.Tensor:
        """L_sep of the source and target keypoints of `reconstruct`'s output."""
        return losses.temporal_separation_loss(
            tf.stack([out["source_kp"], out["target_kp"]], axis=1), self.separation_sigma)

    def coverage_loss(self, source, target, out) -> tf.Tensor:
        """L_cov of a pair and `reconstruct`'s keypoints."""
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

    def equivariance_loss(self, images, keypoints, step, training=False,
                          jacobians=None) -> tf.Tensor:
        """L_eq of Q on `images` whose keypoints are `keypoints`: Q runs once more on the images
        seen through a random affine map (`random_affine(step)`). With `jacobians` (Q's, of
        `images`), plus `equivariance_jacobian_weight` times the Jacobians' error."""
        matrices = self.random_affine(tf.shape(images)[0], step)
        seen = warping.affine_warp(images, matrices)
        if jacobians is None:
            warped = self.detector(seen, training=training)
            return losses.equivariance_loss(keypoints, warped, matrices)
        warped, warped_jac = self.detector.keypoints_and_jacobians(seen, training=training)
        return (losses.equivariance_loss(keypoints, warped, matrices)
                + self.equivariance_jacobian_weight * losses.jacobian_equivariance_loss(
                    jacobians, warped_jac, matrices))

    # === Summaries ===
    def summary_images(self, batch) -> dict:
        """uint8 grids for TensorBoard: source | target | reconstruction | mask, keypoints drawn."""
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
    return KeypointTranslationTrainer(
        keypoint_detector.build_detector(config), translator_lib.build_translator(config),
        discriminators.build_image_discriminator(config), perceptual_network,
        config.stage1, seed=config.seed, name="keypoint_translation")
