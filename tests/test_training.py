"""The shared run loop: checkpoint/resume, the NaN guard, step segments, LR schedule."""
import os

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from kpvp.trainers import loop


class ToyTrainer(keras.Model):
    """Fits y = w * x with a G optimizer; a D optimizer exists only to mirror the real trainers."""

    def __init__(self, poison_at=None, **kwargs):
        super().__init__(**kwargs)
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")
        self.poison_at = poison_at
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.seen = []

    def compile(self, generator_optimizer, discriminator_optimizer):
        super().compile(optimizer=generator_optimizer)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        generator_optimizer.build([self.w])

    @property
    def metrics(self):
        return [self.loss_tracker]

    def checkpoint_items(self):
        return dict(w=self.w, generator_optimizer=self.generator_optimizer)

    def summary_images(self, batch):
        return {"x": tf.zeros((1, 4, 4, 3))}

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((self.w * x - y) ** 2)
            if self.poison_at is not None:
                step = tf.cast(self.generator_optimizer.iterations, tf.float32)
                loss = loss * tf.where(step >= self.poison_at, np.nan, 1.0)
        grads = tape.gradient(loss, [self.w])
        self.generator_optimizer.apply(grads, [self.w])
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def stage_config(num_steps, checkpoint_every=5, lr_staircase=True):
    return ml_collections.ConfigDict(dict(
        num_steps=num_steps, checkpoint_every=checkpoint_every, log_every=2,
        image_summary_every=4, keep_checkpoints=2, learning_rate=0.1, beta_1=0.5, beta_2=0.999,
        lr_decay_rate=0.5, lr_decay_steps=10, lr_staircase=lr_staircase))


def dataset(seed):
    x = tf.random.stateless_uniform((64,), seed=(seed, 0))
    return tf.data.Dataset.from_tensor_slices((x, 3.0 * x)).batch(8, drop_remainder=True).repeat()


def make_trainer(cfg, **kwargs):
    trainer = ToyTrainer(**kwargs)
    trainer.compile(*loop.make_optimizers(cfg))
    return trainer


def test_training_segments_cover_steps_and_end_on_chunk_boundaries():
    for start, total, chunk in [(0, 300, 100), (150, 300, 100), (0, 250, 100), (299, 300, 100)]:
        segments = loop.training_segments(start, total, chunk)
        covered = sum(steps * n for _, steps, n in segments)
        assert covered == total - start
        for first, steps, n in segments[:-1]:
            assert (first + steps * n) % chunk == 0
    assert loop.training_segments(300, 300, 100) == []


def test_learning_rate_decays_by_rate_every_decay_steps():
    schedule = loop.learning_rate_schedule(stage_config(10))
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(9)) == pytest.approx(0.1)
    assert float(schedule(10)) == pytest.approx(0.05)
    assert float(schedule(25)) == pytest.approx(0.025)


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_full_configs_decay_continuously_as_the_authors_code_and_tiny_in_steps(stage):
    from kpvp import configs

    full = getattr(configs.get_config("penn", "full"), stage)
    assert not full.lr_staircase
    continuous = loop.learning_rate_schedule(full)
    for step in (0, 1, 10_000, 19_999, 20_000, 30_000, 150_000):
        assert float(continuous(step)) == pytest.approx(1e-4 * 0.95 ** (step / 20_000),
                                                        rel=1e-5)
    assert float(continuous(10_000)) == pytest.approx(1e-4 * 0.95 ** 0.5, rel=1e-5)

    tiny = getattr(configs.get_config("penn", "tiny"), stage)
    assert tiny.lr_staircase
    staircase = loop.learning_rate_schedule(tiny)
    lr0 = tiny.learning_rate
    for step in (0, 1, 19_999, 20_000, 30_000, 150_000):
        assert float(staircase(step)) == pytest.approx(lr0 * 0.95 ** (step // 20_000), rel=1e-5)


def test_fit_stage_trains_checkpoints_and_resumes(tmp_path):
    cfg = stage_config(12)
    trainer = make_trainer(cfg)
    seeds = []
    result = loop.fit_stage(trainer, lambda s: seeds.append(s) or dataset(s), cfg,
                                str(tmp_path), image_batch=(0,), verbose=0)
    assert result["step"] == 12
    assert seeds == [0, 10]  # one fit() for the whole chunks, one for the remainder
    ckpts = sorted(os.listdir(tmp_path / "checkpoints"))
    assert any(c.startswith("ckpt-12") for c in ckpts)
    w_after = float(trainer.w.numpy())
    assert w_after > 0.5  # it learned towards 3

    # A fresh trainer restores step, weights and optimizer state, then continues.
    cfg.num_steps = 17
    resumed = make_trainer(cfg)
    seeds.clear()
    result = loop.fit_stage(resumed, lambda s: seeds.append(s) or dataset(s), cfg,
                                str(tmp_path), verbose=0)
    assert result["resumed_from"] == 12 and result["step"] == 17
    assert seeds == [12, 15]  # realigns to the chunk grid, re-seeded from the resume step
    assert os.path.isdir(tmp_path / "logs")


class MinuteClock:
    """Stands in for `time`: each `monotonic()` call is one minute after the one before."""

    def __init__(self):
        self.calls = 0

    def monotonic(self):
        self.calls += 1
        return 60.0 * self.calls


def test_max_minutes_stops_with_a_checkpoint_and_a_rerun_resumes(tmp_path, monkeypatch):
    cfg = stage_config(20)
    cfg.max_minutes = 2.5  # it starts at minute 1; step 3 ends at minute 4, the first past 3.5
    monkeypatch.setattr(loop, "time", MinuteClock())
    trainer = make_trainer(cfg)
    result = loop.fit_stage(trainer, dataset, cfg, str(tmp_path), verbose=0)
    assert result["out_of_time"] and result["step"] == 3
    assert loop.latest_checkpoint_step(str(tmp_path / "checkpoints")) == 3  # off the 5-grid
    w_stopped = float(trainer.w.numpy())
    assert w_stopped > 0

    monkeypatch.setattr(loop, "time", MinuteClock())
    resumed = make_trainer(cfg)
    result = loop.fit_stage(resumed, dataset, cfg, str(tmp_path), verbose=0)
    assert result["resumed_from"] == 3 and result["step"] == 6 and result["out_of_time"]
    assert float(resumed.w.numpy()) > w_stopped

    cfg.max_minutes = 0  # no limit: on to num_steps
    result = loop.fit_stage(make_trainer(cfg), dataset, cfg, str(tmp_path), verbose=0)
    assert result["step"] == 20 and not result["out_of_time"]


def test_a_negative_max_minutes_is_refused(tmp_path):
    cfg = stage_config(5)
    cfg.max_minutes = -1
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        loop.fit_stage(make_trainer(cfg), dataset, cfg, str(tmp_path), verbose=0)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = stage_config(20)
    trainer = make_trainer(cfg, poison_at=7)
    with pytest.raises(loop.NonFiniteLossError, match=r"step 8.*ckpt-5"):
        loop.fit_stage(trainer, dataset, cfg, str(tmp_path), verbose=0)
    manager = loop.make_checkpoint_manager(make_trainer(cfg), str(tmp_path / "checkpoints"))
    assert manager.latest_checkpoint.endswith("ckpt-5")


class WeightPoisoningTrainer(ToyTrainer):
    """From step `poison_at` on, the update leaves a weight NaN that the loss never reads, so
    every logged loss stays finite."""

    def __init__(self, poison_at, **kwargs):
        super().__init__(**kwargs)
        self.unused = self.add_weight(shape=(2,), initializer="zeros", name="unused")
        self.poison_step = poison_at

    def train_step(self, batch):
        logs = super().train_step(batch)
        step = tf.cast(self.generator_optimizer.iterations, tf.float32)
        self.unused.assign(tf.where(step > self.poison_step, np.nan, self.unused))
        return logs


def test_a_nan_weight_behind_finite_losses_is_caught_before_the_checkpoint(tmp_path):
    cfg = stage_config(20)
    trainer = WeightPoisoningTrainer(poison_at=7)
    trainer.compile(*loop.make_optimizers(cfg))
    assert loop.nonfinite_variables(trainer) == []
    losses = []
    logger = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    original_fit = trainer.fit
    trainer.fit = lambda *a, **k: original_fit(*a, **dict(k, callbacks=k["callbacks"] + [logger]))
    with pytest.raises(loop.NonFiniteLossError, match=r"step 10.*unused.*ckpt-5"):
        loop.fit_stage(trainer, dataset, cfg, str(tmp_path), verbose=0)
    assert len(losses) == 10 and np.all(np.isfinite(losses))  # the losses looked fine
    assert loop.latest_checkpoint_step(str(tmp_path / "checkpoints")) == 5  # not 10
    assert [p.split("/")[-1] for p in loop.nonfinite_variables(trainer)] == ["unused"]


def test_restore_latest_without_checkpoint_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        loop.restore_latest(make_trainer(stage_config(1)), str(tmp_path / "none"))


def test_checkpoint_saves_every_weight_of_networks_with_layer_lists(tmp_path):
    """BatchNorm statistics of list-held layers must survive a checkpoint round trip."""
    from kpvp.models.keypoint_detector import KeypointDetector

    class Holder(ToyTrainer):
        def __init__(self):
            super().__init__()
            self.detector = KeypointDetector(3, (4, 4, 4, 4))
            self.detector(tf.zeros((1, 16, 16, 3)))

        def checkpoint_items(self):
            return dict(detector=self.detector, generator_optimizer=self.generator_optimizer)

    cfg = stage_config(1)
    a = Holder()
    a.compile(*loop.make_optimizers(cfg))
    for i, v in enumerate(a.detector.weights):
        v.assign(tf.fill(v.shape, float(i)))
    loop.make_checkpoint_manager(a, str(tmp_path)).save()
    b = Holder()
    b.compile(*loop.make_optimizers(cfg))
    manager = loop.make_checkpoint_manager(b, str(tmp_path))
    manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    non_trainable = [v for v in b.detector.weights if not v.trainable]
    assert non_trainable  # BatchNorm moving statistics
    for va, vb in zip(a.detector.weights, b.detector.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def _cpu_allocator_pools(env_value):
    """Runs a fresh interpreter that imports kpvp first; True if TF's CPU allocator keeps
    statistics, which only the pooling (BFC) allocator does.

    With oneDNN's custom ops on (TensorFlow's default on CPUs with AVX-512), the CPU allocator
    keeps statistics either way, so the probe turns them off."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    if env_value is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = env_value
    code = ("import kpvp, tensorflow as tf\n"
            "x = tf.random.normal((256, 256)); _ = x @ x\n"
            "try:\n    tf.config.experimental.get_memory_info('CPU:0'); print('pool')\n"
            "except ValueError:\n    print('default')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1] == "pool"


def test_importing_kpvp_makes_tensorflow_pool_cpu_memory_unless_the_user_says_otherwise():
    assert _cpu_allocator_pools(None)
    assert not _cpu_allocator_pools("false")


def test_batch_norm_recalibration_averages_the_batch_statistics_by_hand():
    norm = keras.layers.BatchNormalization(momentum=0.999, epsilon=1e-5)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False), norm])
    model.layers[0].set_weights([np.eye(2, dtype=np.float32)])
    batches = [np.array([[0.0, 1.0], [2.0, 3.0]], np.float32),  # means (1, 2), variances (1, 1)
               np.array([[4.0, -1.0], [4.0, 5.0]], np.float32)]  # means (4, 2), variances (0, 9)
    assert loop.batch_norm_layers(model, model) == [norm]
    used = loop.recalibrate_batch_norm([norm], lambda x: model(x, training=True), batches)
    assert used == 2 and norm.momentum == 0.999  # restored
    np.testing.assert_allclose(norm.moving_mean.numpy(), [2.5, 2.0], atol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), [0.5, 5.0], atol=1e-6)
    # Plain moving averages after the same two batches would still be close to (0, 1).
    fresh = keras.layers.BatchNormalization(momentum=0.999)
    for x in batches:
        fresh(x, training=True)
    assert np.abs(fresh.moving_mean.numpy()).max() < 0.01
