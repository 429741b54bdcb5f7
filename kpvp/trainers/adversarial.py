"""What both trainers share: two optimizers, loss trackers, replica-scaled losses.

A subclass (stage 1: `KeypointTranslationTrainer`, stage 2: `MotionGenerationTrainer`) names
its logged values in `METRIC_NAMES`, defines `build()`, `generator_variables`, a
`discriminator` attribute and `train_step`, shaped like the keras-io GAN example.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from kpvp import losses


class AdversarialTrainer(keras.Model):
    """A `keras.Model` driving alternating D / G updates through `fit()`."""

    METRIC_NAMES: tuple = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.METRIC_NAMES}

    @property
    def generator_variables(self) -> list:
        raise NotImplementedError

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        # The generator optimizer doubles as Keras' `optimizer`, so no hidden default is made;
        # building both here on their own variables keeps Keras from building the G optimizer
        # over D's variables too, and gives checkpoints every slot before the first step.
        super().compile(optimizer=generator_optimizer, **kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        if not self.built:
            self.build()
        generator_optimizer.build(self.generator_variables)
        discriminator_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _scale(self):
        """1 / replicas: losses averaged per replica, gradients summed across replicas."""
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    def apply_discriminator_update(self, discriminate, real, fake):
        """One D update (sigmoid BCE, real -> 1, detached fake -> 0).

        `discriminate(x)` runs D in training mode on a batch. Returns (d_loss, real_logits,
        fake_logits).
        """
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            real_logits = discriminate(real)
            fake_logits = discriminate(fake)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            # Scaled inside the tape: a product taken after it would not be recorded.
            scaled = d_loss * self._scale()
        variables = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply(tape.gradient(scaled, variables), variables)
        return d_loss, real_logits, fake_logits

    def _update_trackers(self, **values):
        """Adds `values` to their trackers; returns the running means of the values given (a
        metric a step does not compute is left out, not logged as 0)."""
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in values}
