"""Stage 2 trainer: the motion cVAE M against the sequence discriminator D_seq (paper eq. 5).

One `train_step` (`AdversarialTrainer`'s) is the paper's alternating update on one batch of
pseudo-label sequences `k_0:T` with action classes a:

1. G forward: `(k~_1:T, mu, log_var) = M(k_0:T, a)` with z drawn from q(z | k_1:T, k_0, a)
   (recorded on the G tape).
2. D update: `L_Dseq = -log D(k_1:T) - log(1 - D(k~_1:T))` with k~ detached.
3. G update of M: `l1_weight * |k~ - k| + kl_weight * KL(q || N(0, I))
   + adversarial_weight * (-log D(k~))`, D being the one just updated.
"""
from __future__ import annotations

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from kpvp import losses, visualize
from kpvp.models import motion_cvae
from kpvp.models.discriminators import SequenceDiscriminator
from kpvp.trainers.adversarial import AdversarialTrainer


@keras.saving.register_keras_serializable(package="kpvp")
class MotionGenerationTrainer(AdversarialTrainer):
    """Owns M (`generator`) and D_seq (`discriminator`); `fit()` runs the alternating updates.

    Batches: `dict(keypoints=float32 [B, T+1, K, 2], label=int32 [B])` (k_0:T in [-1, 1]), as
    made by `kpvp.data.pipelines.stage2_dataset`.

    Args:
      generator: M, a `MotionCVAE`.
      discriminator: D_seq, a `SequenceDiscriminator` (class-conditional iff `num_classes > 0`;
        the paper's and the authors' D_seq is not). It sees k_1:T, not k_0 (the authors' code).
      stage_config: `config.stage2` (or a dict of the fields read): `l1_weight` (lambda2,
        1000), `kl_weight` (1 in eq. 5), `adversarial_weight` (lambda3, 2) and
        `kl_warmup_steps`, not in the paper: the KL weight rises linearly from 0 to
        `kl_weight` over this many G updates (0: constant), so the encoder starts using z
        before the KL term can collapse q onto the prior (the warm-up of Bowman et al., 2016).
    """

    TERMS = ("l1", "kl", "adversarial")

    def __init__(self, generator, discriminator, stage_config, **kwargs):
        if isinstance(stage_config, dict):
            stage_config = ml_collections.ConfigDict(stage_config)
        super().__init__(stage_config, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.kl_warmup_steps = int(stage_config.kl_warmup_steps)

    # === Set-up ===
    def build(self, input_shape=None):
        """Creates every sub-model variable (needed before restoring a checkpoint)."""
        self.generator.build()
        steps, k = self.generator.num_steps, self.generator.num_keypoints
        self.discriminate(keras.ops.zeros((1, steps, k, 2)),
                          dict(label=keras.ops.zeros((1,), "int32")), training=False)
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

    # === The stage's step ===
    def prepare(self, batch) -> dict:
        """dict(keypoints = k_0:T `[B, T+1, K, 2]`, real = k_1:T, label `[B]`)."""
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
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return dict(keypoints=k_seq, real=k_seq[:, 1:], label=labels)

    def generate(self, inputs, training) -> dict:
        """M's outputs (`keypoints` k~_1:T, `mu`, `log_var`), with `fake` = k~_1:T; outside
        training M decodes z = mu (no sampling noise)."""
        out = dict(self.generator([inputs["keypoints"], inputs["label"]], training=training))
        out["fake"] = out["keypoints"]
        return out

    def discriminate(self, keypoints, inputs, training):
        """D_seq logits `[B, 1]` of sequences `[B, T, K, 2]` (with the class if conditional)."""
        if self.discriminator.num_classes:
            return self.discriminator([keypoints, inputs["label"]], training=training)
        return self.discriminator(keypoints, training=training)

    def loss_term(self, name, inputs, generated, training):
        if name == "l1":
            return losses.l1_loss(inputs["real"], generated["fake"])
        if name == "kl":
            return losses.kl_divergence(generated["mu"], generated["log_var"])
        raise ValueError(f"Unknown stage-2 loss term {name!r}")

    def loss_weights(self) -> dict:
        return dict(self.term_weights, kl=self.current_kl_weight())

    def current_kl_weight(self):
        """`kl_weight`, scaled by the warm-up fraction of G updates done so far."""
        kl_weight = self.term_weights["kl"]
        if self.kl_warmup_steps <= 0 or not kl_weight:
            return kl_weight
        done = tf.cast(self.generator_optimizer.iterations, tf.float32)
        return kl_weight * tf.minimum(1.0, done / float(self.kl_warmup_steps))

    def call(self, inputs, training=None):
        """Reconstruction of a batch: `dict(keypoints [B,T+1,K,2], label [B])` -> M's outputs."""
        inputs = self.prepare(inputs)
        return self.generator([inputs["keypoints"], inputs["label"]], training=training)

    # === Summaries ===
    def summary_images(self, batch, num_examples: int = 4, num_frames: int = 8,
                       size: int = 64, seed: int = 0) -> dict:
        """uint8 grids for TensorBoard, one per example: rows real k_1:T | reconstruction |
        sample from z ~ N(0, I), columns `num_frames` evenly spaced time steps, keypoints drawn
        on a grey `size` x `size` canvas. Returns `{name: [N, 3 * size, num_frames * size, 3]}`."""
        inputs = self.prepare(batch)
        k_seq, labels = inputs["keypoints"], inputs["label"]
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
                      stage_config=dict({f"{name}_weight": weight
                                         for name, weight in self.term_weights.items()},
                                        kl_warmup_steps=self.kl_warmup_steps))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


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
    trainer = MotionGenerationTrainer(generator, discriminator, s2, name="motion_generation")
    trainer.build()
    return trainer

