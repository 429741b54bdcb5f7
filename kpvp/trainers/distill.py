"""Distillation: a student T (the light translator) learns to redraw what a trained T draws.

On a pair of training frames (s, v), the teacher's frozen Q gives `k_s = Q(s)`, `k_v = Q(v)`,
the frozen teacher T gives `v_t = T_teacher(s, k_s, k_v)`, and the student is trained on
`l1_weight * |T_student(s, k_s, k_v) - v_t| (+ perceptual_weight * L_perc(v_t, .))`. Nothing
else changes: the student serves with the teacher's Q (and M), as any T of a run would.

Logged: `loss`, `l1` (student against teacher), `perceptual` when weighted, `warped_l1` (the
warped source against the teacher: what the student's correction has to beat) and
`target_l1` (the student against the real frame v, for reference).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from kpvp import losses, visualize


class DistillationTrainer(keras.Model):
    """Owns the frozen teacher Q and T and the student T; `fit()` trains the student.

    Batches: `dict(source=float32 [B,H,W,3], target=float32 [B,H,W,3])`, images in [-1, 1].

    Args:
      detector, teacher: the teacher run's Q and T (not trained here).
      student: the T to train (same image size and K as the teacher's).
      stage_config: `config.distill` (`l1_weight`, `perceptual_weight`).
      perceptual_network: the feature network of L_perc (needed when its weight is not 0).
    """

    LOGS = ("loss", "l1", "perceptual", "warped_l1", "target_l1")

    def __init__(self, detector, teacher, student, stage_config, perceptual_network=None,
                 **kwargs):
        super().__init__(**kwargs)
        if getattr(detector, "jacobians", False):
            raise ValueError("Distillation: the teacher's Q gives Jacobians (a first-order T): "
                             "the light T does not take them")
        for name, net in (("teacher T", teacher), ("student T", student)):
            if net.image_size != student.image_size or net.num_keypoints != detector.num_keypoints:
                raise ValueError(
                    f"Distillation: the {name} works on {net.image_size}x{net.image_size} "
                    f"images and {net.num_keypoints} keypoints, the student on "
                    f"{student.image_size} and Q gives {detector.num_keypoints}")
        self.detector = detector
        self.teacher = teacher
        self.student = student
        self.detector.trainable = False
        self.teacher.trainable = False
        self.l1_weight = float(stage_config.l1_weight)
        self.perceptual_weight = float(stage_config.perceptual_weight)
        if self.perceptual_weight and perceptual_network is None:
            raise ValueError("Distillation: perceptual_weight is set but no perceptual network "
                             "was given")
        self.perceptual_network = perceptual_network
        if perceptual_network is not None:
            perceptual_network.trainable = False
        self.perceptual_scale = float(getattr(perceptual_network, "loss_scale", 1.0))
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.LOGS}

    def build(self, input_shape=None):
        size = self.student.image_size
        images = keras.ops.zeros((1, size, size, 3))
        keypoints = self.detector(images)
        self.teacher([images, keypoints, keypoints])
        self.student([images, keypoints, keypoints])
        if self.perceptual_network is not None:
            self.perceptual_network(images)
        self.built = True

    def compile(self, generator_optimizer, **kwargs):
        super().compile(optimizer=generator_optimizer, **kwargs)
        self.generator_optimizer = generator_optimizer
        if not self.built:
            self.build()
        generator_optimizer.build(self.student.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def checkpoint_items(self) -> dict:
        return dict(translator=self.student, generator_optimizer=self.generator_optimizer)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self.built:  # built in compile(): nothing to trace
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # === Steps ===
    def teach(self, source, target) -> dict:
        """The teacher's keypoints and image of a batch of pairs: dict(source_kp, target_kp,
        image), without gradients."""
        source_kp = self.detector(source, training=False)
        target_kp = self.detector(target, training=False)
        image = self.teacher([source, source_kp, target_kp], training=False)["image"]
        return {name: tf.stop_gradient(tf.cast(value, tf.float32)) for name, value in
                dict(source_kp=source_kp, target_kp=target_kp, image=image).items()}

    def losses_of(self, batch, training: bool):
        """(loss, dict of logged values, the student's outputs) of one batch."""
        source, target = batch["source"], batch["target"]
        taught = self.teach(source, target)
        out = self.student([source, taught["source_kp"], taught["target_kp"]],
                           training=training)
        values = dict(l1=losses.l1_loss(taught["image"], out["image"]),
                      target_l1=losses.l1_loss(target, out["image"]))
        loss = self.l1_weight * values["l1"]
        if self.perceptual_weight:
            real = [tf.stop_gradient(f) for f in self.perceptual_network(taught["image"])]
            values["perceptual"] = self.perceptual_scale * losses.perceptual_loss(
                real, self.perceptual_network(out["image"]))
            loss += self.perceptual_weight * values["perceptual"]
        if "warped" in out:
            values["warped_l1"] = losses.l1_loss(taught["image"], out["warped"])
        values["loss"] = loss
        return loss, values, dict(out, teacher=taught["image"], **taught)

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            loss, values, _ = self.losses_of(batch, training=True)
            scaled = self.generator_optimizer.scale_loss(loss)
        variables = self.student.trainable_variables
        self.generator_optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._update(values)

    def test_step(self, batch):
        return self._update(self.losses_of(batch, training=False)[1])

    def _update(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}

    # === Summaries ===
    def summary_images(self, batch) -> dict:
        """uint8 grids for TensorBoard: source | teacher | student | student's mask."""
        _, _, out = self.losses_of(batch, training=False)
        grid = visualize.side_by_side(
            visualize.to_uint8(batch["source"]), visualize.to_uint8(out["teacher"]),
            visualize.to_uint8(out["image"]), visualize.gray_to_rgb(out["mask"]))
        return {"source|teacher|student|mask": grid}
