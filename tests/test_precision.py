"""Dtype policies and XLA settings from the config, loss scaling under mixed_float16, and a
mixed_float16 training step of each stage on the CPU (the GPU path, tested where it can be)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp.models import precision
from kpvp.trainers import loop, stage1, stage2
from tests.helpers import stage1 as stage1_helpers
from tests.helpers import tiny_run


@pytest.mark.parametrize("setting, policy", [
    (False, "float32"), (True, "mixed_bfloat16"), ("float32", "float32"),
    ("bf16", "mixed_bfloat16"), ("mixed_float16", "mixed_float16"), ("FP16", "mixed_float16"),
    ("false", "float32")])
def test_policy_names(setting, policy):
    assert precision.policy_name(setting) == policy


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="mixed_precision='half'"):
        precision.policy_name("half")


def test_auto_policy_follows_the_gpu():
    assert precision.auto_policy([]) == "float32"
    assert precision.auto_policy([(8, 0)]) == "mixed_bfloat16"
    assert precision.auto_policy([(8, 6), (7, 5)]) == "mixed_float16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n"
                       "processor\t: 1\nflags\t\t: fpu avx512f\n")
    flags = precision.cpu_flags(str(cpuinfo))
    assert flags == {"fpu", "avx512f", "avx512_bf16", "amx_tile"}
    assert precision.cpu_has_bf16_units(flags) is True
    assert precision.cpu_flags(str(tmp_path / "missing")) is None


def test_slow_policies_are_named_for_the_hardware():
    ice_lake, sapphire_rapids = {"avx512f", "avx512_vnni"}, {"avx512f", "amx_bf16"}
    warning = precision.hardware_warning("mixed_bfloat16", capabilities=[], flags=ice_lake)
    assert "without bfloat16 units" in warning
    assert "no (bf16 is emulated" in precision.cpu_bf16_summary(ice_lake)
    assert precision.hardware_warning("mixed_bfloat16", [], sapphire_rapids) is None
    assert precision.cpu_bf16_summary(sapphire_rapids) == "CPU bfloat16 units: yes"
    assert "no float16 arithmetic" in precision.hardware_warning("mixed_float16", [],
                                                                 sapphire_rapids)
    assert precision.hardware_warning("float32", [], ice_lake) is None
    # On a GPU the CPU's flags do not matter.
    assert precision.hardware_warning("mixed_bfloat16", [(8, 0)], ice_lake) is None


def test_unknown_cpu_flags_give_no_warning(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: None)  # an OS without /proc/cpuinfo
    assert precision.cpu_has_bf16_units() is None
    assert precision.hardware_warning("mixed_bfloat16", capabilities=[]) is None
    assert "unknown" in precision.cpu_bf16_summary()


def test_jit_settings():
    assert precision.jit_setting({"jit_compile": "auto"}) == "auto"
    assert precision.jit_setting({"jit_compile": "true"}) is True
    assert precision.jit_setting({"jit_compile": False}) is False
    assert precision.jit_setting({}) == "auto"
    with pytest.raises(ValueError, match="jit_compile='xla'"):
        precision.jit_setting({"jit_compile": "xla"})


def test_only_float16_wraps_the_optimizers():
    config = stage1_helpers.tiny_config()
    for setting, wrapped in (("float32", False), ("mixed_bfloat16", False),
                             ("mixed_float16", True)):
        config.stage1.mixed_precision = setting
        optimizers = loop.make_optimizers(config.stage1)
        assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) == wrapped
                   for o in optimizers), setting


def _step_under(policy, build, batch, stage_config):
    """A trainer built and compiled under `policy`, its first eight steps' logs (tf.function)."""
    keras.utils.set_random_seed(0)
    with precision.policy_scope(policy):
        trainer = build()
        trainer.compile(*loop.make_optimizers(stage_config))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    step = tf.function(trainer.train_step)
    logs = [step(batch) for _ in range(8)]
    return trainer, logs


def _check_float16_step(trainer, logs, network):
    assert isinstance(trainer.generator_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.discriminator_optimizer, keras.optimizers.LossScaleOptimizer)
    assert network.compute_dtype == "float16" and network.variable_dtype == "float32"
    for values in logs:
        for name, value in values.items():
            assert value.dtype == tf.float32, name
            assert np.isfinite(value.numpy()), name
    # A step whose scaled gradients overflow is skipped and halves the scale, the others
    # update (how many overflow first depends on the CPU's rounding: 2 to 4 seen).
    optimizer = trainer.generator_optimizer
    applied = int(optimizer.iterations)
    halvings = np.log2(optimizer.initial_scale / float(optimizer.dynamic_scale))
    assert applied >= 1
    assert applied + halvings == len(logs)


def test_stage1_mixed_float16_step_runs_on_cpu():
    config = stage1_helpers.tiny_config()
    config.stage1.mixed_precision = "mixed_float16"
    rng = np.random.default_rng(0)
    batch = {name: tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
             for name in ("source", "target")}
    trainer, logs = _step_under(
        "mixed_float16",
        lambda: stage1.build_trainer(config, stage1_helpers.TinyFeatures()), batch,
        config.stage1)
    _check_float16_step(trainer, logs, trainer.translator.layers[0])
    out = trainer.reconstruct(batch["source"], batch["target"])
    assert out["image"].dtype == tf.float32 and out["source_kp"].dtype == tf.float32


def test_stage2_mixed_float16_step_runs_on_cpu():
    config = tiny_run.tiny_config()
    config.stage2.mixed_precision = "mixed_float16"
    rng = np.random.default_rng(0)
    t, k = config.data.seq_len, config.num_keypoints
    batch = {"keypoints": tf.constant(rng.uniform(-0.5, 0.5, (2, t, k, 2)).astype(np.float32)),
             "label": tf.constant([0, 1], tf.int32)}
    trainer, logs = _step_under("mixed_float16", lambda: stage2.build_trainer(config), batch,
                                config.stage2)
    _check_float16_step(trainer, logs, trainer.discriminator)
