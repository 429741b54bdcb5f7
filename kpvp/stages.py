"""The training stages of one run directory: stage 1, pseudo-labels, stage 2, samples, and the
distillation of a light T from another run.

Library functions behind `python -m kpvp.train` (which only parses flags and calls them); what
each writes where in the run directory is laid out in `kpvp.rundir`.
"""
from __future__ import annotations

import contextlib
import os
import shutil

import keras
from absl import logging

from kpvp import errors, generation, rundir, run_info
from kpvp.data import pipelines, pseudo_labels
from kpvp.evaluation import report as eval_report
from kpvp.evaluation import run as eval_run
from kpvp.models import perceptual, precision
from kpvp.models import translator as translator_lib
from kpvp.rundir import RunDir, StageDir
from kpvp.trainers import distill, loop, stage1, stage2


def run_stage1(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Trains stage 1 to `config.stage1.num_steps`; exports Q and T as `.keras` files.

    `export_only`: restore the last checkpoint and export it, without training or data.
    """
    directory = RunDir(workdir).stage(1)
    # Q's, T's and D_im's initial weights follow config.seed (the data pipelines take it too).
    keras.utils.set_random_seed(config.seed)
    # The policy is read when layers are made: networks built here compute in it (their
    # keypoint layers and output heads stay float32); later stages are unaffected.
    policy = precision.stage_policy(config.stage1)
    with precision.policy_scope(policy), strategy.scope():
        features = perceptual.make_perceptual_network(config.stage1.perceptual_network,
                                                       config.stage1.vgg19_weights)
        trainer = stage1.build_trainer(config, features)
        trainer.compile(*loop.make_optimizers(config.stage1),
                        jit_compile=precision.jit_setting(config.stage1))
    logging.info("Stage 1 dtype policy: %s", policy)
    precision.warn_if_slow(policy, "Stage 1")
    logging.info("Stage 1 perceptual features: %s", features.source)
    if loop.is_chief(strategy):
        run_info.update_run_info(workdir, quiet_invocation=True,
                                 perceptual_network=features.source)
    if export_only:
        result = _restore_for_export(trainer, directory)
    else:
        test_pairs = pipelines.stage1_dataset(config, split="test")
        image_batch = next(iter(test_pairs))
        result = loop.fit_stage(
            trainer, lambda step: pipelines.stage1_dataset(config, "train",
                                                           seed=config.seed + step),
            config.stage1, directory, image_batch=image_batch)
    recalibrate_stage1(trainer, config)
    export_stage1(trainer, workdir, result["step"], strategy)
    return result


def recalibrate_stage1(trainer, config) -> None:
    """Q's and T's batch-norm statistics re-estimated on `stage1.bn_recalibration_batches`
    training batches before export (the checkpoint keeps the moving averages)."""
    num_batches = int(config.stage1.bn_recalibration_batches)
    layers = loop.batch_norm_layers(trainer.detector, trainer.translator)
    if num_batches <= 0 or not layers:
        return
    batches = pipelines.stage1_dataset(config, "train", seed=config.seed).take(num_batches)
    used = loop.recalibrate_batch_norm(
        layers, lambda batch: trainer.calibration_pass(batch["source"], batch["target"]), batches)
    logging.info("Batch-norm statistics of Q and T re-estimated on %d training batches", used)


def export_stage1(trainer, workdir, step: int, strategy=None) -> None:
    """Q and T as `.keras` files, and `export_info.json`: the checkpoint step they hold and Q's
    id (`check_stage1_export` compares them with the newest checkpoint before stage 2)."""
    run = RunDir(workdir)
    exports = {name: run.exported(name) for name in ("detector", "translator")}
    with _written_by_chief(run.stage(1), strategy, exports) as paths:
        for name, path in paths.items():
            with rundir.atomic_path(path) as tmp:
                getattr(trainer, name).save(tmp)
    if loop.is_chief(strategy):
        rundir.write_json(run.stage1_export_info, {"checkpoint_step": int(step),
                                                   "detector_id": run.detector_id}, indent=2)
        logging.info("Exported Q and T (step %d) to %s", step, run.stage(1).path)


class StaleExportError(RuntimeError):
    """`stage1/detector.keras` is not the Q of the newest stage-1 checkpoint."""


def check_stage1_export(workdir) -> None:
    """Raises `StaleExportError` unless `stage1/detector.keras` is the Q of the newest stage-1
    checkpoint (as `export_info.json` records); passes when the run has no checkpoint."""
    run = RunDir(workdir)
    latest = loop.latest_checkpoint_step(run.checkpoints(1))
    if latest is None:
        return  # Q was put there by hand: there is nothing to compare it with
    info = rundir.read_json(run.stage1_export_info)
    exported = info.get("checkpoint_step")
    if exported == latest and info.get("detector_id") == run.detector_id:
        return
    held = "an unknown step" if exported is None else f"step {exported}"
    if exported == latest:
        held = f"a Q other than step {exported}'s"
    raise StaleExportError(
        f"{run.exported('detector')} holds {held} but the newest stage-1 checkpoint is step "
        f"{latest}: export it with `python -m kpvp.train --stage=1 --export_only "
        f"--workdir={run.path}` (or finish stage 1) before stage 2 labels the videos with it")


def _restore_for_export(trainer, directory: StageDir) -> dict:
    step = loop.restore_latest(trainer, directory.checkpoints)
    logging.info("Restored step %d from %s for export", step, directory.path)
    return {"step": step, "resumed_from": step, "logs": {}}


def run_stage2(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Labels the training videos with Q (resumable), then trains M to `stage2.num_steps`.

    `export_only`: restore the last checkpoint and export M, without labelling or training.
    """
    directory = RunDir(workdir).stage(2)
    keras.utils.set_random_seed(config.seed)  # M's and D_seq's initial weights
    policy = precision.stage_policy(config.stage2)
    with precision.policy_scope(policy), strategy.scope():
        trainer = stage2.build_trainer(config)
        trainer.compile(*loop.make_optimizers(config.stage2),
                        jit_compile=precision.jit_setting(config.stage2))
    logging.info("Stage 2 dtype policy: %s", policy)
    precision.warn_if_slow(policy, "Stage 2")
    if export_only:
        result = _restore_for_export(trainer, directory)
        _export_stage2(trainer, workdir, strategy)
        return result
    check_stage1_export(workdir)
    if loop.is_chief(strategy):
        sequences = pseudo_labels.label_run(config, workdir, "train")
    else:  # the same labels, kept out of the run directory
        temp = directory.worker_temp(loop.task_id(strategy))
        sequences = pseudo_labels.label_run(config, workdir, "train",
                                            out_dir=os.path.join(temp, "pseudo_labels"))
        shutil.rmtree(temp, ignore_errors=True)
    image_batch = next(iter(pipelines.stage2_dataset(sequences, config, training=False)))
    result = loop.fit_stage(
        trainer,
        lambda step: pipelines.stage2_dataset(sequences, config, training=True,
                                              seed=config.seed + step),
        config.stage2, directory, image_batch=image_batch)
    _export_stage2(trainer, workdir, strategy)
    return result


def _export_stage2(trainer, workdir, strategy=None) -> None:
    run = RunDir(workdir)
    with _written_by_chief(run.stage(2), strategy,
                           {"generator": run.exported("motion_generator")}) as paths:
        with rundir.atomic_path(paths["generator"]) as tmp:
            trainer.generator.save(tmp)
    logging.info("Exported M to %s", paths["generator"])


@contextlib.contextmanager
def _written_by_chief(stage: StageDir, strategy, paths: dict):
    """Yields `paths` to write: as they are on the chief; on another worker of a multi-worker
    run, the same names in its temporary directory, deleted afterwards (every worker saves, as
    tf.distribute's multi-worker guide has it, and only the chief's files stay)."""
    if loop.is_chief(strategy):
        os.makedirs(stage.path, exist_ok=True)
        yield paths
        return
    temp = stage.worker_temp(loop.task_id(strategy))
    os.makedirs(temp, exist_ok=True)
    try:
        yield {name: os.path.join(temp, os.path.basename(p)) for name, p in paths.items()}
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def teacher_networks(teacher: str) -> dict:
    """The paths of a teacher run's exported Q and T (and M when it has one); a clear error
    when `teacher` is not a run or has no trained stage 1."""
    run = RunDir(teacher)
    if not os.path.isdir(run.path):
        raise errors.InputNotFound(f"--teacher: no such run directory {teacher!r}")
    paths = {name: run.exported(name) for name in ("detector", "translator", "motion_generator")}
    missing = [paths[name] for name in ("detector", "translator")
               if not os.path.exists(paths[name])]
    if missing:
        raise errors.InputNotFound(
            f"--teacher={teacher}: no trained stage 1 ({', '.join(missing)} missing): train it "
            f"with `python -m kpvp.train --stage=1 --workdir={teacher}` (or export a stopped "
            "run with --export_only) first")
    return {name: path for name, path in paths.items() if os.path.exists(path)}


def run_distill(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Trains the light T of `config` to redraw `config.distill.teacher`'s T on training pairs
    (`kpvp.trainers.distill`), to `distill.num_steps`; then exports it as the run's T beside
    copies of the teacher's Q (and M), so that the workdir is a run like any other.

    `export_only`: restore the last distillation checkpoint and export it, without training.
    """
    paths = teacher_networks(config.distill.teacher)
    teacher = {name: keras.models.load_model(path) for name, path in paths.items()
               if name != "motion_generator"}
    keras.utils.set_random_seed(config.seed)  # the student's initial weights
    policy = precision.stage_policy(config.distill)
    with precision.policy_scope(policy), strategy.scope():
        features = None
        if config.distill.perceptual_weight:
            features = perceptual.make_perceptual_network(config.stage1.perceptual_network,
                                                           config.stage1.vgg19_weights)
        student = translator_lib.build_translator(config)
        try:
            trainer = distill.DistillationTrainer(teacher["detector"], teacher["translator"],
                                                  student, config.distill, features)
        except ValueError as error:
            raise errors.InvalidInput(f"--teacher={config.distill.teacher}: {error}") from None
        trainer.compile(loop.make_optimizers(config.distill)[0],
                        jit_compile=precision.jit_setting(config.distill))
    directory = RunDir(workdir).distill
    logging.info("Distilling %s's T into a %s T (policy %s)", config.distill.teacher,
                 config.stage1.translator, policy)
    precision.warn_if_slow(policy, "Distillation")
    if export_only:
        result = _restore_for_export(trainer, directory)
    else:
        data_config = config.copy_and_resolve_references()
        data_config.stage1.batch_size = config.distill.batch_size
        image_batch = next(iter(pipelines.stage1_dataset(data_config, split="test")))
        result = loop.fit_stage(
            trainer, lambda step: pipelines.stage1_dataset(data_config, "train",
                                                           seed=config.seed + step),
            config.distill, directory, image_batch=image_batch)
    if loop.is_chief(strategy):
        _export_distilled(student, paths, workdir)
    return result


def _export_distilled(student, teacher_paths: dict, workdir: str) -> None:
    """The student as the run's T; the teacher's Q (and M) copied beside it."""
    run = RunDir(workdir)
    for name, source in teacher_paths.items():
        target = run.exported(name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if name == "translator":
            with rundir.atomic_path(target) as tmp:
                student.save(tmp)
            continue
        with rundir.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    logging.info("Exported the distilled T and the teacher's %s to %s",
                 " and ".join(n for n in ("detector", "motion_generator") if n in teacher_paths),
                 run.path)
    if "motion_generator" not in teacher_paths:
        logging.warning("The teacher has no M: train it with `python -m kpvp.train --stage=2 "
                        "--workdir=%s` before generating", run.path)


def finish_all(config, workdir: str) -> None:
    """After both stages: sample videos per class, then the metrics report."""
    paths = generation.write_class_samples(config, workdir)
    logging.info("Wrote %d sample videos to %s", len(paths), RunDir(workdir).samples)
    report = eval_run.run_evaluation(config, workdir, eval_run.METRICS)
    print(eval_report.format_summary(report))
