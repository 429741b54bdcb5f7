"""Two-replica `MirroredStrategy` checks of both trainers, run as its own process.

The two logical CPU devices must be configured before TensorFlow runs any op, which a pytest
process cannot promise, so `tests/test_distributed.py` runs this file with `sys.executable`
and reads the JSON object it prints as the last line of stdout. No assertion here: the test
judges the numbers.

Usage (from the repository root):
`PYTHONPATH=. python tests/distributed_check.py --workdir DIR [--parts stage1,stage2,...]`

Parts `stage1` and `stage2` (what the test runs), for each trainer:
* `after_step`: one `fit(steps_per_epoch=1, epochs=1)` step under the strategy (the global
  batch split into two halves) against one single-device step (run eagerly: same maths, one
  graph less to trace) on the same global batch from the same weights. Adam's first update is `lr * g / (|g| + eps)`, blind to the scale of g, so
  the optimizers' moment slots (proportional to g and g^2) are compared too: they catch a wrong
  `1 / num_replicas` loss scaling. What may legitimately differ is removed:
  - stage 1 uses instance norm: the authors' batch norm normalises each replica's half batch
    with that half's statistics (Keras does not synchronise them by default);
  - stage 2 replaces M's sampled eps by one fixed vector: every replica draws its own noise
    stream (see `replica_noise`), which cannot reproduce the single-device draw.
* `fit_stage`: the same mirrored trainer, checkpointed at step 1, is resumed by
  `kpvp.trainers.loop.fit_stage` under the strategy for 3 more steps (two `fit()` calls, checkpoints
  at steps 2 and 4); a trainer made without a strategy then restores the last checkpoint.

Diagnostic parts (for the numbers behind the choices above): `stage1_batch` (per-replica batch
norm), `stage1_batch_synchronized` (`BatchNormalization(synchronized=True)`) and
`stage2_seeded` (M's own noise, with `replica_noise`: do both replicas draw the same eps?).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

# First TF call of the process: split the CPU into two logical devices for the two replicas.
_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kpvp import configs  # noqa: E402
from kpvp.models.discriminators import ImageDiscriminator  # noqa: E402
from kpvp.models import keypoint_detector, translator as translator_lib  # noqa: E402
from kpvp.trainers import loop, stage1, stage2  # noqa: E402
from helpers.stage1 import TinyFeatures, tiny_config  # noqa: E402  (same stand-ins)

GLOBAL_BATCH = 8
RTOL, ATOL = 1e-4, 1e-5
K2, T2 = 4, 8  # stage-2 keypoints and future frames


# === Small stand-ins and data ===
def stage1_config():
    c = tiny_config()
    # Q's heatmap bias has a zero gradient in exact arithmetic (the spatial softmax ignores a
    # constant added to a channel), so Adam turns its rounding noise into steps of either sign;
    # at the tiny variant's temperature 0.1 that noise is 10x larger and the two runs' biases
    # part by ~1e-5. The check compares the steps themselves, so it uses temperature 1.
    c.stage1.softmax_temperature = 1.0
    return c


def stage2_config():
    c = configs.get_config("synthetic", "tiny")
    c.num_keypoints = K2
    c.data.seq_len = T2 + 1
    c.stage2.lstm_units = 16
    c.stage2.lstm_layers = 2
    c.stage2.latent_dim = 4
    c.stage2.encoder_fc = 8
    c.stage2.decoder_fc = 8
    c.stage2.discriminator_units = 8
    c.stage2.learning_rate = 1e-3
    return c


def pair_batch(n=GLOBAL_BATCH, size=32, seed=0) -> dict:
    """Stage-1 pairs: a blob that moves between source and target, different per example."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = {"source": [], "target": []}
    for _ in range(n):
        for key, (x, y) in zip(images, rng.uniform(6, size - 6, (2, 2))):
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 12.0)
            tint = rng.uniform(0.4, 1.0, 3)
            images[key].append(blob[..., None] * tint * 1.6 - 0.8)
    return {key: np.stack(v).astype(np.float32) for key, v in images.items()}


def sequence_batch(n=GLOBAL_BATCH, seed=1) -> dict:
    """Stage-2 sequences k_0:T: class 0 drifts right, class 1 left, with per-example jitter."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    seq = np.repeat(rng.uniform(-0.5, 0.5, (n, 1, K2, 2)), T2 + 1, axis=1)
    direction = np.where(labels == 0, 1.0, -1.0)[:, None, None]
    seq[..., 0] += direction * 0.04 * np.arange(T2 + 1)[None, :, None]
    seq += rng.normal(0.0, 0.01, seq.shape)
    return {"keypoints": seq.astype(np.float32), "label": labels.astype(np.int32)}


def one_batch_dataset(batch: dict) -> tf.data.Dataset:
    """The global batch as a batched data set, which a strategy splits between its replicas."""
    return tf.data.Dataset.from_tensor_slices(batch).batch(GLOBAL_BATCH).repeat()


# === Trainers ===
@contextlib.contextmanager
def synchronized_batch_norm():
    """Every `BatchNormalization` made inside uses global-batch statistics across replicas."""
    original = keras.layers.BatchNormalization

    def synchronized(*args, **kwargs):
        return original(*args, synchronized=True, **kwargs)

    keras.layers.BatchNormalization = synchronized
    try:
        yield
    finally:
        keras.layers.BatchNormalization = original


def make_stage1_trainer(norm: str, run_eagerly: bool = False):
    """A tiny stage-1 trainer; `norm` in ("instance", "batch", "batch_synchronized")."""
    c = stage1_config()
    s1 = c.stage1
    layer_norm = "batch" if norm.startswith("batch") else norm
    with synchronized_batch_norm() if norm == "batch_synchronized" else contextlib.nullcontext():
        s1.norm = layer_norm
        detector = keypoint_detector.build_detector(c)
        translator = translator_lib.build_translator(c)
    trainer = stage1.KeypointTranslationTrainer(
        detector, translator, ImageDiscriminator(filters=s1.discriminator_filters),
        TinyFeatures(), s1)
    trainer.compile(*loop.make_optimizers(s1), run_eagerly=run_eagerly)
    return trainer


def fixed_noise(generator) -> None:
    """Replaces M's sampled eps by one fixed vector, the same for every example and replica."""
    eps = np.linspace(-1.5, 1.5, generator.latent_dim).astype(np.float32)

    def reparameterize(mu, log_var, seed=None):
        return mu + keras.ops.exp(0.5 * log_var) * eps

    generator.reparameterize = reparameterize


def make_stage2_trainer(noise: str, run_eagerly: bool = False):
    """A tiny stage-2 trainer; `noise` in ("fixed", "seeded")."""
    c = stage2_config()
    trainer = stage2.build_trainer(c)
    if noise == "fixed":
        fixed_noise(trainer.generator)
    trainer.compile(*loop.make_optimizers(c.stage2), run_eagerly=run_eagerly)
    return trainer


# === Comparisons ===
def state(trainer) -> dict:
    """Every network weight and optimizer slot of a trainer, keyed `"<position> <path>"`."""
    # Paths carry auto-numbered layer names (`tiny_features_1`), so the order (fixed by the
    # architecture) identifies a variable across two trainers; the path is kept for reading.
    out = {f"w{i:03d} {v.path}": v.numpy() for i, v in enumerate(trainer.weights)}
    for opt in (trainer.generator_optimizer, trainer.discriminator_optimizer):
        out.update({f"{opt.name}/{i:03d} {v.path}": np.asarray(v.numpy())
                    for i, v in enumerate(opt.variables)})
    return out


def compare(a: dict, b: dict) -> dict:
    """Largest differences of two `state()`s (matched by position) and whether they agree
    within RTOL / ATOL."""
    first, second = list(a.items()), list(b.items())
    slots = [k.split(" ")[0] for k in a], [k.split(" ")[0] for k in b]
    shapes = [v.shape for v in a.values()], [v.shape for v in b.values()]
    if slots[0] != slots[1] or shapes[0] != shapes[1]:
        return {"same_variables": False, "allclose": False,
                "counts": [len(first), len(second)]}
    worst_name, worst_excess, max_abs = "", -np.inf, 0.0
    for (name, x), (_, y) in zip(first, second):
        if x.size == 0:
            continue
        x, y = x.astype(np.float64), y.astype(np.float64)
        diff = np.abs(x - y)
        excess = float(np.max(diff - RTOL * np.abs(y)))
        max_abs = max(max_abs, float(diff.max()))
        if excess > worst_excess:
            worst_name, worst_excess = name, excess
    return {"same_variables": True, "allclose": bool(worst_excess <= ATOL),
            "num_variables": len(first), "max_abs_diff": max_abs, "worst": worst_name,
            "worst_excess_over_rtol": worst_excess,
            "identical": all(np.array_equal(x, y) for (_, x), (_, y) in zip(first, second))}


def max_change(before: dict, after: dict) -> float:
    """Largest difference of a network weight (optimizer slots left out), by position."""
    return max(float(np.max(np.abs(y.astype(np.float64) - x)))
               for (k, x), y in zip(before.items(), after.values())
               if k.startswith("w") and x.size)


class BatchLogs(keras.callbacks.Callback):
    """Keeps the logs `fit()` hands to callbacks after each batch."""

    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in (logs or {}).items()})


def one_step(trainer, batch: dict) -> dict:
    batch_logs = BatchLogs()
    history = trainer.fit(one_batch_dataset(batch), steps_per_epoch=1, epochs=1, verbose=0,
                          callbacks=[batch_logs])
    return {"epoch": {k: float(v[-1]) for k, v in history.history.items()},
            "batch": batch_logs.logs[-1]}


def replica_values_agree(trainer) -> bool:
    """Whether every mirrored variable holds the same value on both replicas."""
    for v in trainer.weights:
        values = getattr(v.value, "values", None)
        if values and any(not np.array_equal(values[0].numpy(), x.numpy()) for x in values[1:]):
            return False
    return True


def step_equivalence(make_trainer, batch: dict, strategy):
    """One mirrored step vs one single-device step from the same weights on the same batch.

    `make_trainer(run_eagerly)` makes a compiled trainer; the single-device reference runs
    eagerly (same maths, no second graph to trace). Returns (report dict, mirrored trainer).
    """
    keras.utils.set_random_seed(0)
    single = make_trainer(run_eagerly=True)
    with strategy.scope():
        mirrored = make_trainer(run_eagerly=False)
    mirrored.set_weights(single.get_weights())
    start = state(single)
    initial = compare(start, state(mirrored))
    logs_single = one_step(single, batch)
    logs_mirrored = one_step(mirrored, batch)
    after_single, after_mirrored = state(single), state(mirrored)
    return {"initial": initial,
            "weights_moved": max_change(start, after_single),
            "after_step": compare(after_single, after_mirrored),
            "replicas_agree": replica_values_agree(mirrored),
            "logs_single": logs_single, "logs_mirrored": logs_mirrored}, mirrored


def replica_noise(trainer, strategy) -> dict:
    """Draws eps once per replica from M's own seed generator; are the draws the same?"""
    zeros = tf.zeros((GLOBAL_BATCH // 2, trainer.generator.latent_dim))

    @tf.function
    def draw():
        return trainer.generator.reparameterize(zeros, zeros)

    draws = [x.numpy() for x in strategy.experimental_local_results(strategy.run(draw))]
    return {"num_draws": len(draws),
            "identical_across_replicas": all(np.array_equal(draws[0], d) for d in draws[1:])}


# === fit_stage under the strategy ===
def resume_under_fit_stage(trainer, make_trainer, stage_config, batch: dict,
                           directory: str) -> dict:
    """Checkpoints a mirrored `trainer` at its step 1, lets `fit_stage` resume it to step 4
    (3 steps, chunks of 2: two `fit()` calls), then restores the last checkpoint into a
    trainer made without a strategy."""
    stage_config.num_steps = 4
    stage_config.checkpoint_every = 2
    stage_config.log_every = 1
    stage_config.keep_checkpoints = 5
    ckpt_dir = os.path.join(directory, "checkpoints")
    loop.make_checkpoint_manager(trainer, ckpt_dir).save(
        checkpoint_number=loop.global_step(trainer))
    result = loop.fit_stage(trainer, lambda step: one_batch_dataset(batch), stage_config,
                                directory, verbose=0)
    restored = make_trainer(run_eagerly=False)
    before_restore = state(restored)
    step = loop.restore_latest(restored, ckpt_dir)
    trained, loaded = state(trainer), state(restored)
    return {"resumed_from": result["resumed_from"], "result_step": result["step"],
            "restored_step": step,
            "checkpoints": [os.path.basename(p)
                            for p in tf.train.get_checkpoint_state(ckpt_dir)
                            .all_model_checkpoint_paths],
            "restored_vs_trained": compare(trained, loaded),
            "fresh_vs_trained_weights": max_change(before_restore, trained),
            "replicas_agree": replica_values_agree(trainer),
            "logs": result["logs"],
            "restoring_trainer_replicas": restored.distribute_strategy.num_replicas_in_sync}


PARTS = ("stage1", "stage2", "stage1_batch", "stage1_batch_synchronized", "stage2_seeded")


def run_part(part: str, strategy, workdir: str) -> dict:
    stage, _, variant = part.partition("_")
    if stage == "stage1":
        norm = variant or "instance"

        def make_trainer(run_eagerly):
            return make_stage1_trainer(norm, run_eagerly)

        config, batch = stage1_config().stage1, pair_batch()
    else:
        noise = variant or "fixed"

        def make_trainer(run_eagerly):
            return make_stage2_trainer(noise, run_eagerly)

        config, batch = stage2_config().stage2, sequence_batch()
    out, mirrored = step_equivalence(make_trainer, batch, strategy)
    if part == "stage2_seeded":
        out["replica_noise"] = replica_noise(mirrored, strategy)
    if not variant:
        out["fit_stage"] = resume_under_fit_stage(mirrored, make_trainer, config, batch,
                                                  os.path.join(workdir, part))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="directory for the fit_stage runs")
    parser.add_argument("--parts", default="stage1,stage2",
                        help=f"comma-separated subset of {PARTS}")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}; expected some of {PARTS}")
    # Grappler's graph rewriting costs more time than it saves on these tiny networks.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    # One strategy for the whole process: every MirroredStrategy numbers its collectives from
    # the same keys, so a second one would collide with the first one's all-reduces.
    strategy = loop.make_strategy("mirrored")
    report = {"logical_cpus": len(tf.config.list_logical_devices("CPU")),
              "replicas": strategy.num_replicas_in_sync, "rtol": RTOL, "atol": ATOL,
              "seconds": {}}
    for part in parts:
        start = time.time()
        report[part] = run_part(part, strategy, args.workdir)
        report["seconds"][part] = round(time.time() - start, 1)
    return report


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
    sys.stdout.flush()
