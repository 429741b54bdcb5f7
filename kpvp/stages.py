"""The training stages of one run directory: stage 1, pseudo-labels, stage 2, samples.

Library functions behind `python -m kpvp.train` (which only parses flags and calls them):

    workdir/
      config.json, run_info.json       resolved config; versions, git revision, choices made
      stage1/checkpoints, stage1/logs  Q + T + D_im (tf.train.CheckpointManager), TensorBoard
      stage1/detector.keras            Q, exported at the end of stage 1
      stage1/translator.keras          T
      pseudo_labels/{train,test}/      Q's keypoints per video (resumable)
      stage2/checkpoints, stage2/logs  M + D_seq
      stage2/motion_generator.keras    M
      samples/<class>_<i>.gif          generated videos | keypoints | masks
      report.json, report.md           the metrics (`kpvp.evaluate`)
"""
from __future__ import annotations

import os

from absl import logging


def stage_dir(workdir: str, stage: int) -> str:
    return os.path.join(workdir, f"stage{stage}")


def run_stage1(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Trains stage 1 to `config.stage1.num_steps`; exports Q and T as `.keras` files.

    `export_only`: restore the last checkpoint and export it, without training or data.
    """
    from kpvp import run_info
    from kpvp.models import perceptual
    from kpvp.data import pipelines
    from kpvp.trainers import loop, stage1

    import keras

    directory = stage_dir(workdir, 1)
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
    export_stage1(trainer, directory)
    return result


def recalibrate_stage1(trainer, config) -> None:
    """Q's and T's batch-norm statistics re-estimated on `stage1.bn_recalibration_batches`
    training batches before export (the checkpoint keeps the moving averages)."""
    from kpvp.data import pipelines
    from kpvp.trainers import loop

    num_batches = int(config.stage1.bn_recalibration_batches)
    layers = loop.batch_norm_layers(trainer.detector, trainer.translator)
    if num_batches <= 0 or not layers:
        return
    batches = pipelines.stage1_dataset(config, "train", seed=config.seed).take(num_batches)
    used = loop.recalibrate_batch_norm(
        layers, lambda batch: trainer.calibration_pass(batch["source"], batch["target"]), batches)
    logging.info("Batch-norm statistics of Q and T re-estimated on %d training batches", used)


def export_stage1(trainer, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    trainer.detector.save(os.path.join(directory, "detector.keras"))
    trainer.translator.save(os.path.join(directory, "translator.keras"))
    logging.info("Exported detector.keras and translator.keras to %s", directory)


def _restore_for_export(trainer, directory: str) -> dict:
    from kpvp.trainers import loop

    step = loop.restore_latest(trainer, os.path.join(directory, "checkpoints"))
    logging.info("Restored step %d from %s for export", step, directory)
    return {"step": step, "resumed_from": step, "logs": {}}


def run_stage2(config, workdir: str, strategy, export_only: bool = False) -> dict:
    """Labels the training videos with Q (resumable), then trains M to `stage2.num_steps`.

    `export_only`: restore the last checkpoint and export M, without labelling or training.
    """
    import keras

    from kpvp.data import pipelines
    from kpvp.trainers import loop, stage2

    directory = stage_dir(workdir, 2)
    keras.utils.set_random_seed(config.seed)  # M's and D_seq's initial weights
    with strategy.scope():
        trainer = stage2.build_trainer(config)
        trainer.compile(*loop.make_optimizers(config.stage2))
    if export_only:
        result = _restore_for_export(trainer, directory)
        _export_stage2(trainer, directory)
        return result
    sequences = pseudo_label(config, workdir, "train")
    image_batch = next(iter(pipelines.stage2_dataset(sequences, config, training=False)))
    result = loop.fit_stage(
        trainer,
        lambda step: pipelines.stage2_dataset(sequences, config, training=True,
                                              seed=config.seed + step),
        config.stage2, directory, image_batch=image_batch)
    _export_stage2(trainer, directory)
    return result


def _export_stage2(trainer, directory: str) -> None:
    trainer.generator.save(os.path.join(directory, "motion_generator.keras"))
    logging.info("Exported motion_generator.keras to %s", directory)


def detector_id(workdir: str) -> str:
    """Names the stage-1 weights behind `stage1/detector.keras` (its last checkpoint)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(os.path.join(stage_dir(workdir, 1), "checkpoints"))
    exported = os.path.join(stage_dir(workdir, 1), "detector.keras")
    if latest is None or not os.path.exists(exported):
        raise FileNotFoundError(
            f"No trained stage 1 in {workdir!r}: run `python -m kpvp.train --stage=1 "
            f"--workdir={workdir}` first")
    return os.path.basename(latest)


def pseudo_label(config, workdir: str, split: str) -> list[dict]:
    """Q's keypoints for every video of `split` (written once, reused if Q is unchanged)."""
    import keras

    import kpvp.models  # noqa: F401  (registers the networks for `load_model`)
    from kpvp.data import pseudo_labels, readers

    ident = detector_id(workdir)
    detector = keras.models.load_model(os.path.join(stage_dir(workdir, 1), "detector.keras"))
    out_dir = os.path.join(workdir, "pseudo_labels", split)
    source = readers.open_source(config, split)
    summary = pseudo_labels.label_videos(detector, source, out_dir, ident,
                                         image_size=config.image_size)
    logging.info("Pseudo-labels (%s): %s", split, summary)
    return pseudo_labels.load_pseudo_labels(out_dir, ident)


def finish_all(config, workdir: str) -> None:
    """After both stages: sample videos per class, then the metrics report."""
    from kpvp import evaluate, generation

    paths = generation.write_class_samples(config, workdir)
    logging.info("Wrote %d sample videos to %s", len(paths), os.path.dirname(paths[0]))
    report = evaluate.run_evaluation(config, workdir, evaluate.METRICS)
    print(evaluate.format_summary(report))
