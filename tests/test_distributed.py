"""Multi-device training: both trainers under a two-replica MirroredStrategy.

The strategy needs two logical CPU devices configured before TensorFlow runs any op, so the
work happens in a fresh process (`tests/distributed_check.py`, see its docstring for what is
compared and why); this test judges the JSON it prints.
"""
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "distributed_check.py"
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent),
                                                        os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(workdir),
                           "--parts", "stage1,stage2"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, f"{SCRIPT.name} failed:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{SCRIPT.name} printed nothing; stderr:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def _check_step(part):
    """One mirrored step equals one single-device step on the same global batch."""
    assert part["initial"]["identical"], "the two trainers did not start from the same weights"
    # A real update happened (Adam's first step moves a weight by up to lr = 1e-3) ...
    assert part["weights_moved"] > 50 * ATOL
    # ... and every network weight and optimizer slot (incl. Adam's moments, which scale with
    # the gradient) matches the single-device step, so per-replica losses are scaled right.
    after = part["after_step"]
    assert after["same_variables"], after
    assert after["allclose"], (
        f"mirrored step differs from the single-device step: {after['worst']} by "
        f"{after['worst_excess_over_rtol']:.3g} beyond rtol={RTOL} (max |diff| "
        f"{after['max_abs_diff']:.3g})")
    assert part["replicas_agree"], "the replicas' copies of some weight diverged"
    # The logged losses are those of the global batch, not of one replica's half.
    for when in ("batch", "epoch"):
        single, mirrored = part["logs_single"][when], part["logs_mirrored"][when]
        assert single.keys() == mirrored.keys()
        for name in single:
            assert mirrored[name] == pytest.approx(single[name], rel=RTOL, abs=ATOL), (when, name)


def _check_fit_stage(run):
    """fit_stage resumed under the strategy; a strategy-free trainer restores its checkpoint."""
    assert run["resumed_from"] == 1 and run["result_step"] == 4
    assert run["checkpoints"] == ["ckpt-1", "ckpt-2", "ckpt-4"]
    assert run["logs"] and all(math.isfinite(v) for v in run["logs"].values()), run["logs"]
    assert run["restoring_trainer_replicas"] == 1
    assert run["restored_step"] == 4
    assert run["fresh_vs_trained_weights"] > 0.0  # the restore had something to do
    restored = run["restored_vs_trained"]
    assert restored["same_variables"] and restored["identical"], restored
    assert run["replicas_agree"]


@pytest.mark.slow
def test_two_logical_devices_give_two_replicas(report):
    assert report["logical_cpus"] == 2
    assert report["replicas"] == 2


@pytest.mark.slow
def test_stage1_mirrored_step_equals_single_device_step(report):
    _check_step(report["stage1"])


@pytest.mark.slow
def test_stage2_mirrored_step_equals_single_device_step(report):
    _check_step(report["stage2"])


@pytest.mark.slow
def test_stage1_fit_stage_under_mirrored_restores_without_strategy(report):
    _check_fit_stage(report["stage1"]["fit_stage"])


@pytest.mark.slow
def test_stage2_fit_stage_under_mirrored_restores_without_strategy(report):
    _check_fit_stage(report["stage2"]["fit_stage"])
