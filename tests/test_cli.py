"""Command-line config overrides: known fields pass, unknown ones get a clear message."""
import json
import os
import subprocess
import sys

import pytest

from kpvp import cli
from kpvp.configs import base
from kpvp.trainers import loop


def test_known_overrides_pass_and_unknown_ones_name_the_field_and_suggest():
    config = base.get_base_config()
    cli.check_config_overrides(
        ["prog", "--config.stage1.batch_size=4", "--config.seed", "3", "--tiny"], config)
    with pytest.raises(SystemExit) as info:
        cli.check_config_overrides(["prog", "--config.stage1.batchsize=4"], config)
    message = str(info.value)
    assert "--config.stage1.batchsize" in message
    assert "stage1.batch_size" in message
    # Anything after "--" is not a flag.
    cli.check_config_overrides(["prog", "--", "--config.nonsense=1"], config)


def test_train_cli_rejects_an_unknown_field_before_doing_anything(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "kpvp.train", "--stage=1", f"--workdir={tmp_path / 'run'}",
         "--config.stage1.learning_rat=1e-3"], capture_output=True, text=True, env=env,
        timeout=300)
    assert proc.returncode != 0
    assert "Unknown config field --config.stage1.learning_rat" in proc.stderr
    assert "stage1.learning_rate" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_saved_config_reloads_and_unknown_saved_fields_are_named(tmp_path):
    config = base.finalize(base.make_tiny(base.get_base_config()))
    config.stage1.learning_rate = 3e-4
    path = cli.save_config(config, str(tmp_path))
    reloaded = cli.load_saved_config(path)
    assert reloaded.stage1.learning_rate == pytest.approx(3e-4)
    assert reloaded.image_size == config.image_size
    assert tuple(reloaded.stage1.translator_filters) == tuple(config.stage1.translator_filters)

    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    values["stage1"]["mask_warmup_steps"] = 300
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    with pytest.raises(ValueError, match=r"stage1\.mask_warmup_steps.*new --workdir"):
        cli.load_saved_config(path)


def test_saved_config_without_the_added_fields_keeps_its_earlier_networks(tmp_path):
    config = base.finalize(base.get_base_config())
    path = cli.save_config(config, str(tmp_path))
    # A full config saved today keeps the authors' forms.
    assert cli.load_saved_config(path).stage2.posterior == "softplus"
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    for field in base.LEGACY_VALUES:
        stage, name = field.split(".")
        del values[stage][name]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    old = cli.load_saved_config(path)
    for field, value in base.LEGACY_VALUES.items():
        stage, name = field.split(".")
        assert old[stage][name] == value, field
    # They are the forms the tiny config still names.
    tiny = base.make_tiny(base.get_base_config())
    named = {f: tiny[f.split(".")[0]][f.split(".")[1]] for f in base.LEGACY_VALUES}
    assert named == base.LEGACY_VALUES


def _train_stage1(workdir, num_steps=None, check=True, extra=()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    steps = ["--export_only"] if num_steps is None else [f"--num_steps={num_steps}"]
    proc = subprocess.run(
        [sys.executable, "-m", "kpvp.train", "--stage=1", "--dataset=synthetic", "--tiny",
         f"--workdir={workdir}", *steps, "--config.stage1.batch_size=2",
         "--config.stage1.checkpoint_every=2", "--config.data.synthetic_num_train=4",
         "--config.data.synthetic_num_test=2", *extra],
        capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_export_only_without_a_checkpoint_names_the_missing_directory(tmp_path):
    proc = _train_stage1(str(tmp_path / "run"), check=False)
    assert proc.returncode != 0
    assert "--export_only: no stage-1 checkpoint in" in proc.stderr
    assert not os.path.exists(tmp_path / "run" / "stage1" / "detector.keras")


def _detector_weights(workdir):
    import keras

    import kpvp.models  # noqa: F401  (registers the networks)

    path = os.path.join(workdir, "stage1", "detector.keras")
    return [w.copy() for w in keras.models.load_model(path).get_weights()]


@pytest.mark.slow
def test_stage1_cli_trains_exports_from_the_last_checkpoint_and_resumes(tmp_path):
    import tensorflow as tf

    workdir = str(tmp_path / "run")
    checkpoints = os.path.join(workdir, "stage1", "checkpoints")
    _train_stage1(workdir, 2)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")
    trained = _detector_weights(workdir)

    # --export_only: no training, Q and T exported again from the last checkpoint, and the
    # workdir's config keeps its num_steps.
    for name in ("detector.keras", "translator.keras"):
        os.remove(os.path.join(workdir, "stage1", name))
    _train_stage1(workdir)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")
    again = _detector_weights(workdir)
    assert all((a == b).all() for a, b in zip(trained, again))
    assert os.path.exists(os.path.join(workdir, "stage1", "translator.keras"))
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    # --num_steps with --stage=1 set stage 1's steps only; stage 2 keeps the tiny default.
    assert saved["stage1"]["num_steps"] == 2 and saved["stage2"]["num_steps"] == 3000

    # Past num_steps already: the same without the flag.
    _train_stage1(workdir, 1)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-2")

    # Resuming trains on from step 2 and changes the weights.
    _train_stage1(workdir, 4)
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-4")
    resumed = _detector_weights(workdir)
    assert any((a != b).any() for a, b in zip(trained, resumed))


@pytest.mark.slow
def test_max_minutes_ends_stage1_early_with_a_checkpoint_and_exports_that_step(tmp_path):
    workdir = str(tmp_path / "run")
    # A budget of 6 ms runs out during the first step (its tracing alone takes seconds).
    proc = _train_stage1(workdir, 1000, extra=["--config.stage1.max_minutes=0.0001"])
    assert "Stopped at step 1 of 1000: max_minutes=0.0001 reached" in proc.stderr
    assert loop.latest_checkpoint_step(os.path.join(workdir, "stage1", "checkpoints")) == 1
    with open(os.path.join(workdir, "stage1", "export_info.json"), encoding="utf-8") as f:
        assert json.load(f)["checkpoint_step"] == 1
    assert os.path.exists(os.path.join(workdir, "stage1", "translator.keras"))


def _flat(config):
    return cli._flatten(config.to_dict())


@pytest.mark.parametrize("dataset", ["penn", "synthetic", "folder"])
def test_paper_small_changes_only_what_a_cpu_forces(dataset):
    from kpvp import configs

    full, small = (_flat(configs.get_config(dataset, v)) for v in ("full", "paper_small"))
    changed = {key for key in full if full[key] != small[key]}
    cpu_forced = {"variant", "image_size", "stage1.gaussian_size", "stage1.gaussian_inv_std",
                  "stage1.batch_size", "data.synthetic_num_train", "data.synthetic_num_test",
                  "eval.num_videos", "eval.num_train_videos"}
    schedule = {f"stage{s}.{k}" for s in (1, 2) for k in (
        "num_steps", "checkpoint_every", "log_every", "image_summary_every")}
    assert changed <= cpu_forced | schedule, sorted(changed - cpu_forced - schedule)
    assert small["image_size"] == 64 and small["stage1.gaussian_size"] == 16
    # The gaussian keeps its width in cells of T's input maps: 14.3 at 32x32 is 7.15 at 16x16.
    assert small["stage1.gaussian_inv_std"] == pytest.approx(full["stage1.gaussian_inv_std"] / 2)


def test_unknown_variant_is_named():
    from kpvp import configs

    with pytest.raises(ValueError, match="'huge'"):
        configs.get_config("penn", "huge")


def test_a_section_the_saved_config_lacks_takes_its_variant_s_values(tmp_path):
    config = base.finalize(base.make_tiny(base.get_base_config()))
    path = cli.save_config(config, str(tmp_path))
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    del values["distill"]  # a run saved before distillation existed
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    old = cli.load_saved_config(path)
    tiny, full = base.make_tiny(base.get_base_config()).distill, base.get_base_config().distill
    assert tiny.lr_decay_steps != full.lr_decay_steps
    assert old.distill.to_dict() == tiny.to_dict()
    assert old.stage1.learning_rate == config.stage1.learning_rate  # saved sections as saved
