"""The run loop shared by both stages: optimizers, checkpoints, resume, NaN guard, TensorBoard,
the `tf.distribute` strategy, and batch-norm recalibration before export.

A trainer (`stage1.KeypointTranslationTrainer`, `stage2.MotionGenerationTrainer`) is a
`keras.Model` that owns `train_step`; this module drives it through `fit()` in chunks of
`checkpoint_every` steps, so that

* a checkpoint (`tf.train.CheckpointManager`) is written at the end of every chunk and at the end
  of the run, and a killed run resumes from the last one with `--workdir` alone;
* the global step is the generator optimizer's iteration count (one G update per step), which
  also drives the learning-rate schedule and names the TensorBoard points;
* the input pipeline is re-seeded from `(seed, step)` on resume, so a resumed run does not replay
  the batches it has already seen;
* `max_minutes` (0: no limit) ends the stage early, at the first step after that many minutes
  of this invocation's training, with a checkpoint; running the command again resumes it;
* a non-finite loss, or a non-finite weight or optimizer slot found before a checkpoint is
  written, stops the run before anything is saved over the last good checkpoint;
* under `MultiWorkerMirroredStrategy` only the chief writes into the run directory: the other
  workers save their checkpoints into a temporary directory of their own (the saves are
  collective, so every worker takes part) and delete it, and write no TensorBoard logs.
"""
from __future__ import annotations

import functools
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kpvp.models import precision
from kpvp.rundir import StageDir


class NonFiniteLossError(FloatingPointError):
    """A loss, weight or optimizer slot became NaN or Inf; the message names the step and the
    last good checkpoint."""


def learning_rate_schedule(stage_config) -> keras.optimizers.schedules.LearningRateSchedule:
    """Paper Sec. 4: lr 1e-4, multiplied by 0.95 every 20k iterations.

    `lr0 * rate ** (step / decay_steps)`: continuous, as the authors' `tf.train.exponential_decay`
    (staircase=False); `stage_config.lr_staircase` floors the exponent instead.
    """
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=stage_config.learning_rate,
        decay_steps=stage_config.lr_decay_steps,
        decay_rate=stage_config.lr_decay_rate,
        staircase=bool(stage_config.lr_staircase))


def make_optimizers(stage_config) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """Two Adam optimizers (generator, discriminator) with betas (0.5, 0.999), each wrapped in a
    `keras.optimizers.LossScaleOptimizer` (dynamic loss scale) when the stage's policy is
    mixed_float16 (`kpvp.models.precision`)."""
    scaled = precision.needs_loss_scaling(precision.stage_policy(stage_config))

    def adam(name):
        optimizer = keras.optimizers.Adam(
            learning_rate=learning_rate_schedule(stage_config),
            beta_1=stage_config.beta_1, beta_2=stage_config.beta_2, name=name)
        if not scaled:
            return optimizer
        return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled")
    return adam("generator_adam"), adam("discriminator_adam")


def global_step(trainer) -> int:
    return int(trainer.generator_optimizer.iterations.numpy())


class _NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first step whose logged losses are not finite."""

    def __init__(self):
        super().__init__()
        self.bad_logs = None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = {k: float(v) for k, v in logs.items() if not np.all(np.isfinite(v))}
        if bad and self.bad_logs is None:
            self.bad_logs = bad
            self.model.stop_training = True


def nonfinite_variables(trainer) -> list[str]:
    """Paths of the trainer's floating-point weights and optimizer slots holding NaN or Inf.

    A loss logged before an update can be finite while the update leaves a weight NaN (an
    overflowing Adam slot, a NaN gradient of a term that a later step would show), so the
    losses alone cannot vouch for a checkpoint.
    """
    variables = list(trainer.weights)
    for name in ("generator_optimizer", "discriminator_optimizer"):
        optimizer = getattr(trainer, name, None)
        variables += list(optimizer.variables) if optimizer is not None else []
    floats = [v for v in variables if np.dtype(keras.backend.standardize_dtype(v.dtype)).kind
              == "f"]
    if not floats:
        return []
    finite = _all_finite([tf.convert_to_tensor(v) for v in floats]).numpy()
    return [getattr(v, "path", v.name) for v, ok in zip(floats, finite) if not ok]


@tf.function(reduce_retracing=True)
def _all_finite(tensors):
    return tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


class _Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint at the end of each chunk (epoch) unless the losses or the weights
    went bad."""

    def __init__(self, manager: tf.train.CheckpointManager, guard: _NonFiniteGuard):
        super().__init__()
        self.manager = manager
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.bad_logs is None:
            bad = nonfinite_variables(self.model)
            if bad:
                self.guard.bad_logs = {"non-finite variables": bad[:5] + ["..."] * (len(bad) > 5)}
                self.model.stop_training = True
                return
            path = self.manager.save(checkpoint_number=global_step(self.model))
            logging.info("Saved checkpoint %s", path)


class _TimeBudget(keras.callbacks.Callback):
    """Stops training at the first step that ends `minutes` after the budget was made (0: never);
    `_Checkpointer` then saves the step reached."""

    def __init__(self, minutes: float):
        super().__init__()
        self.deadline = time.monotonic() + 60.0 * minutes if minutes > 0 else None
        self.expired = False

    def on_train_batch_end(self, batch, logs=None):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.expired = True
            self.model.stop_training = True


class _Summaries(keras.callbacks.Callback):
    """TensorBoard scalars every `log_every` steps, trainer images every `image_every` steps."""

    def __init__(self, logdir: str, log_every: int, image_every: int, image_batch=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(logdir)
        self.log_every = max(1, log_every)
        self.image_every = max(1, image_every)
        self.image_batch = image_batch

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if step % self.log_every == 0:
            with self.writer.as_default(step=step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(f"train/{name}", float(value))
                opt = self.model.generator_optimizer
                tf.summary.scalar("train/learning_rate", float(opt.learning_rate))
        if self.image_batch is not None and step % self.image_every == 0:
            self.write_images(step)

    def write_images(self, step):
        images = self.model.summary_images(self.image_batch)
        with self.writer.as_default(step=step):
            for name, value in images.items():
                tf.summary.image(name, value, max_outputs=4)
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        step = global_step(self.model)
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                if name.startswith("val_"):
                    tf.summary.scalar(f"eval/{name[4:]}", float(value))
        self.writer.flush()


def checkpointable(item):
    """A network as an ordered mapping of ALL its weights; other trackables unchanged.

    Keras 3 layers kept in Python lists are invisible to `tf.train.Checkpoint` (only the
    variables an optimizer happens to reference get saved, and BatchNorm statistics are lost;
    keras-team/keras#18398). Listing `model.weights` (creation order, fixed by the architecture)
    saves every variable whatever the model's attribute layout; a changed architecture fails on
    restore with a shape or count mismatch.
    """
    if isinstance(item, keras.layers.Layer):
        return {f"w{i:04d}": v for i, v in enumerate(item.weights)}
    return item


def make_checkpoint_manager(trainer, directory: str, max_to_keep: int = 3):
    items = {name: checkpointable(item) for name, item in trainer.checkpoint_items().items()}
    checkpoint = tf.train.Checkpoint(**items)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)


def restore_latest(trainer, directory: str) -> int:
    """Restores the newest checkpoint in `directory` into a built trainer; returns its step."""
    manager = make_checkpoint_manager(trainer, directory)
    if manager.latest_checkpoint is None:
        raise FileNotFoundError(f"No checkpoint found in {directory!r}: train this stage first")
    # Every variable the trainer has must come from the checkpoint; the optimizer's slots,
    # created lazily, stay unread (expect_partial silences that).
    manager.checkpoint.restore(
        manager.latest_checkpoint).assert_existing_objects_matched().expect_partial()
    return global_step(trainer)


def fit_stage(trainer, make_dataset, stage_config, directory: str, *, image_batch=None,
              validation_data=None, verbose="auto") -> dict:
    """Trains `trainer` to `stage_config.num_steps` steps, resuming from `directory` if possible.

    Args:
      trainer: a built, compiled trainer with `generator_optimizer`, `checkpoint_items()` and
        `summary_images(batch)`.
      make_dataset: `seed_offset -> tf.data.Dataset` of training batches (infinite); called with
        the resume step so that a resumed run continues on fresh batches.
      stage_config: `config.stage1` or `config.stage2`.
      directory: the stage's directory: `checkpoints/` and `logs/` go inside.
      image_batch: a fixed batch for TensorBoard image summaries.
    Returns:
      dict with `step`, `resumed_from`, the last logs and `out_of_time` (stopped by
      `stage_config.max_minutes` before `num_steps`).
    Raises:
      NonFiniteLossError: a loss, weight or optimizer slot became NaN/Inf (the last good
        checkpoint is kept).
      ValueError: `max_minutes` under `MultiWorkerMirroredStrategy` (the workers' clocks could
        stop them at different steps and hang the collective ops).
    """
    stage_dir = StageDir(directory)
    ckpt_dir = stage_dir.checkpoints
    strategy = trainer.distribute_strategy
    minutes = float(stage_config.get("max_minutes", 0))
    if minutes < 0:
        raise ValueError(f"max_minutes must be >= 0 (0: no limit), got {minutes:g}")
    if minutes and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError("max_minutes is not supported with the multi_worker strategy: set "
                         "num_steps instead (each worker's clock could stop it at another step)")
    chief = is_chief(strategy)
    # Every worker resumes from the chief's checkpoints (the workdir must be shared or copied);
    # a non-chief worker saves into a directory of its own, deleted when the stage ends.
    write_dir = ckpt_dir if chief else os.path.join(
        stage_dir.worker_temp(task_id(strategy)), "checkpoints")
    manager = make_checkpoint_manager(trainer, write_dir, stage_config.keep_checkpoints)
    resumed_from = 0
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest:
        manager.checkpoint.restore(latest).assert_existing_objects_matched()
        resumed_from = global_step(trainer)
        logging.info("Resumed from %s (step %d)", latest, resumed_from)
    total = int(stage_config.num_steps)
    if resumed_from >= total:
        logging.info("Already trained to step %d >= num_steps %d", resumed_from, total)
        return {"step": resumed_from, "resumed_from": resumed_from, "logs": {},
                "out_of_time": False}
    budget = _TimeBudget(minutes)
    try:
        history, guard = _fit_chunks(trainer, make_dataset, stage_config, manager, stage_dir,
                                     resumed_from, image_batch if chief else None,
                                     validation_data, verbose, summaries=chief, budget=budget)
        if guard.bad_logs is None and (manager.latest_checkpoint is None or not
                                       manager.latest_checkpoint.endswith(
                                           f"-{global_step(trainer)}")):
            guard.bad_logs = _final_check(trainer)
            if guard.bad_logs is None:
                manager.save(checkpoint_number=global_step(trainer))
    finally:
        if not chief:
            shutil.rmtree(os.path.dirname(write_dir), ignore_errors=True)
    if guard.bad_logs is not None:
        last = tf.train.latest_checkpoint(ckpt_dir) or "none (no checkpoint was written before)"
        raise NonFiniteLossError(
            f"Non-finite values at step {global_step(trainer)}: {guard.bad_logs}. Training "
            f"stopped; the last good checkpoint is {last}. Lower the learning rate or check the "
            "data.")
    logs = {k: float(v[-1]) for k, v in (history.history.items() if history else [])}
    step = global_step(trainer)
    if budget.expired:
        logging.warning("Stopped at step %d of %d: max_minutes=%g reached (checkpoint saved); "
                        "run the same command again to continue", step, total, minutes)
    return {"step": step, "resumed_from": resumed_from, "logs": logs,
            "out_of_time": budget.expired}


def _final_check(trainer):
    bad = nonfinite_variables(trainer)
    return {"non-finite variables": bad[:5]} if bad else None


def _fit_chunks(trainer, make_dataset, stage_config, manager, stage_dir, start, image_batch,
                validation_data, verbose, summaries: bool, budget: _TimeBudget):
    """`fit()` from step `start` to `num_steps` (or until `budget` runs out), a checkpoint per
    chunk; (history, guard)."""
    total = int(stage_config.num_steps)
    chunk = max(1, int(stage_config.checkpoint_every))
    guard = _NonFiniteGuard()
    callbacks = [guard, _Checkpointer(manager, guard), budget]
    if summaries:
        callbacks.append(_Summaries(stage_dir.logs, stage_config.log_every,
                                    stage_config.image_summary_every, image_batch))
    history = None
    for first, steps_per_epoch, num_epochs in training_segments(start, total, chunk):
        if guard.bad_logs is not None or budget.expired:
            break
        epoch = first // chunk
        history = trainer.fit(make_dataset(first), steps_per_epoch=steps_per_epoch,
                              epochs=epoch + num_epochs, initial_epoch=epoch,
                              callbacks=callbacks, verbose=verbose, shuffle=False,
                              validation_data=validation_data)
    return history, guard


def latest_checkpoint_step(directory: str) -> int | None:
    """The step of the newest checkpoint in `directory` (None when it has none)."""
    latest = tf.train.latest_checkpoint(directory)
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def training_segments(start: int, total: int, chunk: int) -> list[tuple[int, int, int]]:
    """Splits steps [start, total) into `fit()` calls whose epochs end on multiples of `chunk`.

    Returns `(first_step, steps_per_epoch, num_epochs)` triples: a short epoch up to the next
    multiple of `chunk` (after resuming from an off-grid step), then whole chunks, then the rest.
    """
    segments = []
    if start % chunk and start < total:
        steps = min(chunk - start % chunk, total - start)
        segments.append((start, steps, 1))
        start += steps
    full = (total - start) // chunk
    if full > 0:
        segments.append((start, chunk, full))
        start += full * chunk
    if start < total:
        segments.append((start, total - start, 1))
    return segments


STRATEGIES = ("default", "mirrored", "multi_worker")


@functools.lru_cache(maxsize=None)
def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local devices), `multi_worker` (TF_CONFIG hosts).

    One object per name and process: a second MirroredStrategy would reuse the first one's
    collective keys and break the all-reduces of whichever trains second.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")


def task_id(strategy=None) -> int:
    """This worker's index in a multi-worker cluster (0 outside one)."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    return int(getattr(resolver, "task_id", None) or 0)


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run's files: the `chief` task of a multi-worker
    cluster, worker 0 of one without a chief, and any process outside one."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True
    if task_type == "chief":
        return True
    return (task_type == "worker" and int(resolver.task_id or 0) == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def batch_norm_layers(*models) -> list:
    """Every `BatchNormalization` layer inside `models` (each once)."""
    found = []
    for model in models:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.BatchNormalization) and layer not in found:
                found.append(layer)
    return found


def recalibrate_batch_norm(layers, forward, batches) -> int:
    """Sets each batch-norm layer's moving mean and variance to the average of its batch
    statistics over `batches` ("precise BN"); returns the number of batches used.

    `forward(batch)` runs the networks in training mode. With the authors' momentum 0.999 the
    moving averages need thousands of steps to forget their initial (0, 1): a short run's
    exported networks would otherwise compute with statistics they never trained with.
    """
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for count, batch in enumerate(batches, start=1):
            for layer in layers:  # the cumulative mean of the batch statistics so far
                layer.momentum = 1.0 - 1.0 / count
            forward(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return count
