"""Stage 2 trainer: the motion cVAE M against the sequence discriminator D_seq (paper eq. 5).

One `train_step` is the paper's alternating update on one batch of pseudo-label sequences
`k_0:T` with action classes a:

1. G forward: `(k~_1:T, mu, log_var) = M(k_0:T, a)` with z drawn from q(z | k_1:T, k_0, a)
   (recorded on the G tape).
2. D update: `L_Dseq = -log D(k_1:T) - log(1 - D(k~_1:T))` with k~ detached (the same
   sequences: no second G forward).
3. G update of M: `l1_weight * |k~ - k| + kl_weight * KL(q || N(0, I))
   + adversarial_weight * (-log D(k~))`, D being the one just updated.

Losses are averaged over the global batch, so gradients summed across replicas by a
`tf.distribute` strategy equal the single-device gradients.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kpvp import losses
from kpvp.models import motion_cvae
from kpvp.models.discriminators import SequenceDiscriminator
from kpvp.models.motion_cvae import MotionCVAE
from kpvp.trainers.adversarial import AdversarialTrainer

METRIC_NAMES = ("d_loss", "g_loss", "l1", "kl", "adv", "d_real_acc", "d_fake_acc")


@keras.saving.register_keras_serializable(package="kpvp")
class MotionGenerationTrainer(AdversarialTrainer):
    """Owns M (`generator`) and D_seq (`discriminator`); `fit()` runs the alternating updates.

    Batches: `dict(keypoints=float32 [B, T+1, K, 2], label=int32 [B])` (k_0:T in [-1, 1]), as
    made by `kpvp.data.pipelines.stage2_dataset`. Logged: `d_loss`, `g_loss`, `l1`, `kl`, `adv`
    and D's accuracy on real (`d_real_acc`) and generated (`d_fake_acc`) sequences.

    Args:
      generator: M, a `MotionCVAE`.
      discriminator: D_seq, a `SequenceDiscriminator` (class-conditional iff `num_classes > 0`;
        the paper's and the authors' D_seq is not). It sees k_1:T, not k_0 (the authors' code).
      l1_weight: lambda2 (1000).
      kl_weight: weight of the KL term (1 in eq. 5).
      adversarial_weight: lambda3 (2), the weight of `-log D_seq(k~)`.
      kl_warmup_steps: not in the paper; the KL weight rises linearly from 0 to `kl_weight`
        over this many G updates (0: constant), so the encoder starts using z before the KL
        term can collapse q onto the prior (the warm-up of Bowman et al., 2016).
    """

    METRIC_NAMES = METRIC_NAMES

    def __init__(self, generator, discriminator, l1_weight=1000.0, kl_weight=1.0,
                 adversarial_weight=2.0, kl_warmup_steps=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.kl_weight = float(kl_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.kl_warmup_steps = int(kl_warmup_steps)

    @classmethod
    def from_config_dict(cls, config) -> "MotionGenerationTrainer":
        """The built trainer of a kpvp config (see `build_trainer`)."""
        return build_trainer(config)

    # === Set-up ===
    def build(self, input_shape=None):
        """Creates every sub-model variable (needed before restoring a checkpoint)."""
        self.generator.build()
        steps, k = self.generator.num_steps, self.generator.num_keypoints
        self._discriminate(keras.ops.zeros((1, steps, k, 2)), keras.ops.zeros((1,), "int32"))
        self.built = True

    @property
    def generator_variables(self):
        return self.generator.trainable_variables

    def checkpoint_items(self) -> dict:
        """Trackables to checkpoint: both networks, both optimizers and M's noise stream."""
        # The seed generator is no TF trackable, so its state is listed on its own: a resumed
        # run then continues the noise stream instead of replaying it from the start.
        return dict(generator=self.generator, discriminator=self.discriminator,
                    generator_optimizer=self.generator_optimizer,
                    discriminator_optimizer=self.discriminator_optimizer,
                    generator_noise=self.generator.seed_generator.state)

    # === Steps ===
    def call(self, inputs, training=None):
        """Reconstruction of a batch: `dict(keypoints [B,T+1,K,2], label [B])` -> M's outputs."""
        k_seq, labels = self._unpack(inputs)
        return self.generator([k_seq, labels], training=training)

    def discriminator_step(self, real, fake, labels):
        """One D_seq update on real k_1:T vs generated k~_1:T (detached), both `[B, T, K, 2]`.

        Returns (d_loss, real_logits [B, 1], fake_logits [B, 1]).
        """
        return self.apply_discriminator_update(
            lambda x: self._discriminate(x, labels, training=True), real, fake)

    def generator_losses(self, real, outputs, labels, training=True) -> dict:
        """Eq. 5's L_M terms from M's outputs; returns dict(g_loss, l1, kl, adv, fake_logits)."""
        fake = outputs["keypoints"]
        l1 = losses.l1_loss(real, fake)
        kl = losses.kl_divergence(outputs["mu"], outputs["log_var"])
        fake_logits = self._discriminate(fake, labels, training=training)
        adv = losses.generator_adversarial_loss(fake_logits)
        g_loss = self.l1_weight * l1 + self.current_kl_weight() * kl + self.adversarial_weight * adv
        return dict(g_loss=g_loss, l1=l1, kl=kl, adv=adv, fake_logits=fake_logits)

    def current_kl_weight(self):
        """`kl_weight`, scaled by the warm-up fraction of G updates done so far."""
        if self.kl_warmup_steps <= 0:
            return self.kl_weight
        done = tf.cast(self.generator_optimizer.iterations, tf.float32)
        return self.kl_weight * tf.minimum(1.0, done / float(self.kl_warmup_steps))

    def train_step(self, batch):
        k_seq, labels = self._unpack(batch)
        real = k_seq[:, 1:]
        with tf.GradientTape() as g_tape:
            outputs = self.generator([k_seq, labels], training=True)
            with g_tape.stop_recording():
                d_loss, real_logits, fake_logits = self.discriminator_step(
                    real, outputs["keypoints"], labels)
            g = self.generator_losses(real, outputs, labels)
            scaled = g["g_loss"] * self._scale()
        variables = self.generator.trainable_variables
        grads = g_tape.gradient(scaled, variables)
        self.generator_optimizer.apply(grads, variables)
        return self._update_trackers(
            d_loss=d_loss, g_loss=g["g_loss"], l1=g["l1"], kl=g["kl"], adv=g["adv"],
            d_real_acc=_accuracy(real_logits, True), d_fake_acc=_accuracy(fake_logits, False))

    def test_step(self, batch):
        """The same losses without updates; M decodes z = mu (no sampling noise)."""
        k_seq, labels = self._unpack(batch)
        real = k_seq[:, 1:]
        outputs = self.generator([k_seq, labels], training=False)
        g = self.generator_losses(real, outputs, labels, training=False)
        real_logits = self._discriminate(real, labels, training=False)
        return self._update_trackers(
            d_loss=losses.discriminator_loss(real_logits, g["fake_logits"]),
            g_loss=g["g_loss"], l1=g["l1"], kl=g["kl"], adv=g["adv"],
            d_real_acc=_accuracy(real_logits, True),
            d_fake_acc=_accuracy(g["fake_logits"], False))

    def _discriminate(self, keypoints, labels, training=None):
        """D_seq logits `[B, 1]` of sequences `[B, T, K, 2]` (with the class if conditional)."""
        if self.discriminator.num_classes:
            return self.discriminator([keypoints, labels], training=training)
        return self.discriminator(keypoints, training=training)

    def _unpack(self, batch):
        if not isinstance(batch, dict) or "keypoints" not in batch:
            raise ValueError("stage-2 batches must be dicts with 'keypoints' [B, T+1, K, 2] and "
                             f"'label' [B], got {type(batch).__name__}"
                             + (f" with keys {sorted(batch)}" if isinstance(batch, dict) else ""))
        k_seq = tf.convert_to_tensor(batch["keypoints"], tf.float32)
        if k_seq.shape.rank != 4 or k_seq.shape[-1] != 2:
            raise ValueError(f"batch['keypoints'] must be [B, T+1, K, 2], got {k_seq.shape}")
        labels = batch.get("label")
        if labels is None:
            labels = tf.zeros(tf.shape(k_seq)[:1], tf.int32)
        return k_seq, tf.cast(tf.reshape(labels, [-1]), tf.int32)

    # === Summaries ===
    def summary_images(self, batch, num_examples: int = 4, num_frames: int = 8,
                       size: int = 64, seed: int = 0) -> dict:
        """uint8 grids for TensorBoard, one per example: rows real k_1:T | reconstruction |
        sample from z ~ N(0, I), columns `num_frames` evenly spaced time steps, keypoints drawn
        on a grey `size` x `size` canvas. Returns `{name: [N, 3 * size, num_frames * size, 3]}`."""
        from kpvp import visualize

        k_seq, labels = self._unpack(batch)
        k_seq, labels = k_seq[:num_examples], labels[:num_examples]
        real = k_seq[:, 1:].numpy()
        recon = self.generator([k_seq, labels], training=False)["keypoints"].numpy()
        sample = self.generator.sample(k_seq[:, 0], labels, seed=seed,
                                       num_steps=real.shape[1]).numpy()
        steps = np.linspace(0, real.shape[1] - 1, min(num_frames, real.shape[1])).round()
        steps = steps.astype(int)
        canvas = np.full((len(steps), size, size, 3), 96, np.uint8)
        grids = []
        for b in range(real.shape[0]):
            rows = [np.concatenate(visualize.draw_keypoints(canvas, seq[b, steps]), axis=1)
                    for seq in (real, recon, sample)]
            grids.append(np.concatenate(rows, axis=0))
        return {"real|reconstruction|sample": np.stack(grids)}

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config.update(generator=keras.saving.serialize_keras_object(self.generator),
                      discriminator=keras.saving.serialize_keras_object(self.discriminator),
                      l1_weight=self.l1_weight, kl_weight=self.kl_weight,
                      kl_warmup_steps=self.kl_warmup_steps,
                      adversarial_weight=self.adversarial_weight)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def _accuracy(logits, real: bool):
    """Fraction of sequences D_seq classifies correctly (logit > 0 means 'real')."""
    hits = logits > 0.0 if real else logits <= 0.0
    return tf.reduce_mean(tf.cast(hits, tf.float32))


def build_trainer(config) -> MotionGenerationTrainer:
    """Creates M and D_seq from `config` (see `kpvp/configs/base.py`); returns a built trainer.

    M is class-conditional iff `config.class_conditional` (and `num_classes > 0`); D_seq sees
    the class too only if `stage2.discriminator_conditional` as well (not in eq. 5).
    """
    s2 = config.stage2
    generator = motion_cvae.build_motion_generator(config)
    conditional = bool(config.class_conditional) and int(config.num_classes) > 0
    d_conditional = conditional and bool(s2.discriminator_conditional)
    discriminator = SequenceDiscriminator(
        units=s2.discriminator_units, num_layers=s2.discriminator_layers,
        num_classes=int(config.num_classes) if d_conditional else 0,
        name="sequence_discriminator")
    trainer = MotionGenerationTrainer(generator, discriminator, l1_weight=s2.l1_weight,
                                      kl_weight=s2.kl_weight,
                                      kl_warmup_steps=s2.kl_warmup_steps,
                                      adversarial_weight=s2.adversarial_weight,
                                      name="motion_generation")
    trainer.build()
    return trainer


__all__ = ["MotionGenerationTrainer", "MotionCVAE", "build_trainer", "METRIC_NAMES"]
