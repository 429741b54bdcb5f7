"""The alternating D / G update both stages share: one `train_step`, each stage its loss terms.

A step on one batch, shaped like the keras-io GAN example and the paper's two stages:

1. `prepare(batch)`: the batch as the step uses it, `real` being what D sees as real, plus
   what carries no gradient (stage 1: the target's perceptual features).
2. G forward, recorded on the G tape: `generate(inputs)`, `fake` being what D sees as generated.
3. D update on (real, fake) with the fakes detached (the same fakes: no second G forward).
4. G update with the weighted sum of the stage's loss terms (`TERMS`, weighted by the config's
   `<term>_weight`), `adversarial` = -log D(fake) among them, D being the one just updated.

A term whose weight is the number 0 is neither computed nor logged by the train step, and with
`adversarial` among them step 3 is skipped (D is not trained; `d_*` are not logged); the test
step computes and logs every term. Logged by both stages: `d_loss`, `g_loss`, every term by
name, the stage's `MONITORS` (logged, not in the loss), and D's mean probability that the real
(`d_real`) and the generated (`d_fake`) data are real.

Losses are averaged over the global batch, so gradients summed across replicas by a
`tf.distribute` strategy equal the single-device gradients.
"""
from __future__ import annotations

import functools
import operator

import keras
import tensorflow as tf

from kpvp import losses


class AdversarialTrainer(keras.Model):
    """A `keras.Model` driving alternating D / G updates through `fit()`.

    A subclass names its G loss terms in `TERMS` and its logged-only values in `MONITORS`,
    defines `build()`, `generator_variables`, a `discriminator` attribute and the hooks under
    "What a stage supplies".

    Args:
      stage_config: the stage's config section (`config.stage1` or `config.stage2`); its
        `<term>_weight` field weighs each term of `TERMS` in the G loss.
    """

    TERMS: tuple = ()
    MONITORS: tuple = ()

    def __init__(self, stage_config, **kwargs):
        super().__init__(**kwargs)
        self.term_weights = {name: float(getattr(stage_config, f"{name}_weight"))
                             for name in self.TERMS}
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names()}

    @classmethod
    def metric_names(cls) -> tuple:
        return ("d_loss", "g_loss", *cls.TERMS, *cls.MONITORS, "d_real", "d_fake")

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

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras (3.15) takes the first batch and all-reduces it to trace the
        # model, which MultiWorkerMirroredStrategy cannot do with a dict batch; a trainer is
        # built in compile(), so there is nothing to trace.
        if self.built and all(layer.built for layer in self._flatten_layers()):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # === What a stage supplies ===
    def prepare(self, batch) -> dict:
        """The batch as the step uses it: a dict with `real` `[B, ...]`, D's real examples."""
        raise NotImplementedError

    def generate(self, inputs: dict, training: bool) -> dict:
        """G's forward pass on `prepare`'s dict: a dict with `fake`, shaped as `real`."""
        raise NotImplementedError

    def discriminate(self, x, inputs: dict, training: bool):
        """D's logits of `x` (real or fake examples of the batch `inputs`)."""
        raise NotImplementedError

    def loss_term(self, name: str, inputs: dict, generated: dict, training: bool):
        """The G loss term `name` of `TERMS` other than `adversarial`, a scalar."""
        raise NotImplementedError

    def monitors(self, inputs: dict, generated: dict) -> dict:
        """Values logged beside the losses, `MONITORS` by name."""
        return {}

    def loss_weights(self) -> dict:
        """Each term's weight this step (a stage may schedule them)."""
        return dict(self.term_weights)

    # === Steps ===
    def train_step(self, batch):
        inputs = self.prepare(batch)
        weights = {name: w for name, w in self.loss_weights().items() if not _is_zero(w)}
        # With no adversarial term D has nothing to teach G: it is neither run nor updated.
        trains_discriminator = "adversarial" in weights or "adversarial" not in self.TERMS
        discriminator_logs = {}
        with tf.GradientTape() as g_tape:
            generated = self.generate(inputs, training=True)
            if trains_discriminator:
                # Paused, not left: D's update records on a tape of its own, G's tape skips it.
                with g_tape.stop_recording():
                    d_loss, real_logits, fake_logits = self.discriminator_step(
                        inputs, generated["fake"])
                discriminator_logs = dict(d_loss=d_loss,
                                          **_probabilities(real_logits, fake_logits))
            terms = self.generator_terms(weights, inputs, generated, training=True)
            g_loss = _weighted_sum(weights, terms)
            # The optimizer's loss scale (1 unless a LossScaleOptimizer wraps it: float16).
            scaled = self.generator_optimizer.scale_loss(g_loss * self._scale())
        variables = self.generator_variables
        self.generator_optimizer.apply(g_tape.gradient(scaled, variables), variables)
        return self._update_trackers(g_loss=g_loss, **terms, **self.monitors(inputs, generated),
                                     **discriminator_logs)

    def test_step(self, batch):
        return self._update_trackers(**self.inference_losses(batch)[0])

    def discriminator_step(self, inputs: dict, fake):
        """One D update (sigmoid BCE, `inputs["real"]` -> 1, detached `fake` -> 0).

        Returns (d_loss, real_logits, fake_logits).
        """
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            real_logits = self.discriminate(inputs["real"], inputs, training=True)
            fake_logits = self.discriminate(fake, inputs, training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            # Scaled inside the tape: a product taken after it would not be recorded.
            scaled = self.discriminator_optimizer.scale_loss(d_loss * self._scale())
        variables = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply(tape.gradient(scaled, variables), variables)
        return d_loss, real_logits, fake_logits

    def generator_terms(self, names, inputs: dict, generated: dict, training: bool,
                        fake_logits=None) -> dict:
        """The G loss terms `names` by name; `adversarial` from `fake_logits` if given, else
        from D run on the fakes now."""
        terms = {}
        for name in names:
            if name == "adversarial":
                if fake_logits is None:
                    fake_logits = self.discriminate(generated["fake"], inputs, training=training)
                terms[name] = losses.generator_adversarial_loss(fake_logits)
            else:
                terms[name] = self.loss_term(name, inputs, generated, training)
        return terms

    def inference_losses(self, batch) -> tuple[dict, dict]:
        """Every loss of `batch` in inference mode, without updates.

        Returns (what `test_step` logs, by name; G's outputs with `real_logits` and
        `fake_logits` added).
        """
        inputs = self.prepare(batch)
        generated = self.generate(inputs, training=False)
        real_logits = self.discriminate(inputs["real"], inputs, training=False)
        fake_logits = self.discriminate(generated["fake"], inputs, training=False)
        weights = self.loss_weights()
        terms = self.generator_terms(weights, inputs, generated, False, fake_logits)
        values = dict(d_loss=losses.discriminator_loss(real_logits, fake_logits),
                      g_loss=_weighted_sum({n: w for n, w in weights.items() if not _is_zero(w)},
                                           terms),
                      **terms, **self.monitors(inputs, generated),
                      **_probabilities(real_logits, fake_logits))
        return values, dict(generated, real_logits=real_logits, fake_logits=fake_logits)

    def _scale(self):
        """1 / replicas: losses averaged per replica, gradients summed across replicas."""
        return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync

    def _update_trackers(self, **values):
        """Adds `values` to their trackers; returns the running means of the values given (a
        metric a step does not compute is left out, not logged as 0)."""
        for name, value in values.items():
            self.trackers[name].update_state(value)
        logs = {name: self.trackers[name].result() for name in values}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras (3.15) reduces a multi-worker run's logs with `reduce(MEAN, axis=0)`, which
            # needs an axis to reduce: one per replica gives back the scalar mean.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


def _multi_worker(strategy) -> bool:
    """Whether `strategy` all-reduces across workers (as Keras tells it apart)."""
    extended = getattr(strategy, "extended", None)
    in_multi_worker = getattr(extended, "_in_multi_worker_mode", None)
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and in_multi_worker is not None and bool(in_multi_worker()))


def _is_zero(weight) -> bool:
    """True for a weight that is the number 0 (a scheduled tensor weight always counts)."""
    return isinstance(weight, (int, float)) and weight == 0


def _weighted_sum(weights: dict, terms: dict):
    products = [weight * terms[name] for name, weight in weights.items()]
    return functools.reduce(operator.add, products) if products else tf.constant(0.0)


def _probabilities(real_logits, fake_logits) -> dict:
    """D's mean probability that real (`d_real`) and generated (`d_fake`) data are real."""
    return dict(d_real=tf.reduce_mean(tf.sigmoid(real_logits)),
                d_fake=tf.reduce_mean(tf.sigmoid(fake_logits)))
