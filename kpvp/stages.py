"""The training stages of one run directory: stage 1, pseudo-labels, stage 2, samples.

Library functions behind `python -m kpvp.train` (which only parses flags and calls them); what
each writes where in the run directory is laid out in `kpvp.rundir`.
"""
from __future__ import annotations

import os

import keras
from absl import logging

from kpvp import generation, run_info
from kpvp.data import pipelines, pseudo_labels
from kpvp.evaluation import report as eval_report
from kpvp.evaluation import run as eval_run
from kpvp.models import perceptual
from kpvp.rundir import RunDir, StageDir
from kpvp.trainers import loop, stage1, stage2


def run_stage1(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Trains stage 1 to `config.stage1.num_steps`; exports Q and T as `.keras` files.

    `export_only`: restore the last checkpoint and export it, without training or data.
    """
    directory = RunDir(workdir).stage(1)
    # Q's, T's and D_im's initial weights follow config.seed (the data pipelines take it too).
    keras.utils.set_random_seed(config.seed)
    # The policy is read when layers are made: networks built here compute in bfloat16 (their
    # keypoint layers and output heads stay float32); later stages are unaffected.
    policy = "mixed_bfloat16" if config.stage1.mixed_precision else "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            features = perceptual.make_perceptual_network(config.stage1.perceptual_network,
                                                           config.stage1.vgg19_weights)
            trainer = stage1.build_trainer(config, features)
            trainer.compile(*loop.make_optimizers(config.stage1))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    logging.info("Stage 1 dtype policy: %s", policy)
    logging.info("Stage 1 perceptual features: %s", features.source)
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
    export_stage1(trainer, workdir)
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


def export_stage1(trainer, workdir) -> None:
    run = RunDir(workdir)
    os.makedirs(run.stage(1).path, exist_ok=True)
    trainer.detector.save(run.exported("detector"))
    trainer.translator.save(run.exported("translator"))
    logging.info("Exported Q and T to %s", run.stage(1).path)


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
    with strategy.scope():
        trainer = stage2.build_trainer(config)
        trainer.compile(*loop.make_optimizers(config.stage2))
    if export_only:
        result = _restore_for_export(trainer, directory)
        _export_stage2(trainer, workdir)
        return result
    sequences = pseudo_labels.label_run(config, workdir, "train")
    image_batch = next(iter(pipelines.stage2_dataset(sequences, config, training=False)))
    result = loop.fit_stage(
        trainer,
        lambda step: pipelines.stage2_dataset(sequences, config, training=True,
                                              seed=config.seed + step),
        config.stage2, directory, image_batch=image_batch)
    _export_stage2(trainer, workdir)
    return result


def _export_stage2(trainer, workdir) -> None:
    path = RunDir(workdir).exported("motion_generator")
    trainer.generator.save(path)
    logging.info("Exported M to %s", path)


def finish_all(config, workdir: str) -> None:
    """After both stages: sample videos per class, then the metrics report."""
    paths = generation.write_class_samples(config, workdir)
    logging.info("Wrote %d sample videos to %s", len(paths), RunDir(workdir).samples)
    report = eval_run.run_evaluation(config, workdir, eval_run.METRICS)
    print(eval_report.format_summary(report))
