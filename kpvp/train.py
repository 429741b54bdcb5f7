"""Trains kpvp: `python -m kpvp.train --stage=1|2|all --dataset=synthetic --workdir=runs/x`.

* `--stage=1`: keypoint detector Q + masked translator T against D_im (paper Sec. 3.1).
* `--stage=2`: labels every training video with Q, then trains the motion cVAE M against D_seq.
* `--stage=all`: stage 1, pseudo-labels, stage 2, sample videos per class and the metrics
  report, in one workdir (the README's end-to-end job).

Every stage resumes from the last checkpoint in `--workdir`; the run's resolved config, package
versions and git revision are stored there.
"""
from __future__ import annotations

import os

from absl import app, flags, logging

from kpvp import cli

flags.DEFINE_enum("stage", "1", ["1", "2", "all"], "What to train.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy for the trainers.")
flags.DEFINE_integer("num_steps", None, "Shortcut for --config.stage1/2.num_steps (both stages).")
FLAGS = flags.FLAGS


def stage_dir(workdir: str, stage: int) -> str:
    return os.path.join(workdir, f"stage{stage}")


def run_stage1(config, workdir: str, strategy) -> dict:
    """Trains stage 1 to `config.stage1.num_steps`; exports Q and T as `.keras` files."""
    from kpvp import perceptual, run_info, training
    from kpvp.data import pipelines
    from kpvp.trainers import keypoint_translation

    directory = stage_dir(workdir, 1)
    with strategy.scope():
        features = perceptual.make_perceptual_network(config.stage1.perceptual_network,
                                                       config.stage1.vgg19_weights)
        trainer = keypoint_translation.build_trainer(config, features)
        trainer.compile(*training.make_optimizers(config.stage1))
    logging.info("Stage 1 perceptual features: %s", features.source)
    run_info.update_run_info(workdir, quiet_invocation=True,
                             perceptual_network=features.source)
    test_pairs = pipelines.stage1_dataset(config, split="test")
    image_batch = next(iter(test_pairs))
    result = training.fit_stage(
        trainer, lambda step: pipelines.stage1_dataset(config, "train", seed=config.seed + step),
        config.stage1, directory, image_batch=image_batch)
    export_stage1(trainer, directory)
    return result


def export_stage1(trainer, directory: str) -> None:
    trainer.detector.save(os.path.join(directory, "detector.keras"))
    trainer.translator.save(os.path.join(directory, "translator.keras"))
    logging.info("Exported detector.keras and translator.keras to %s", directory)


def run_stage2(config, workdir: str, strategy) -> dict:
    """Labels the training videos with Q (resumable), then trains M to `stage2.num_steps`."""
    from kpvp import training
    from kpvp.data import pipelines
    from kpvp.trainers import motion_generation

    sequences = pseudo_label(config, workdir, "train")
    directory = stage_dir(workdir, 2)
    with strategy.scope():
        trainer = motion_generation.build_trainer(config)
        trainer.compile(*training.make_optimizers(config.stage2))
    image_batch = next(iter(pipelines.stage2_dataset(sequences, config, training=False)))
    result = training.fit_stage(
        trainer,
        lambda step: pipelines.stage2_dataset(sequences, config, training=True,
                                              seed=config.seed + step),
        config.stage2, directory, image_batch=image_batch)
    trainer.generator.save(os.path.join(directory, "motion_generator.keras"))
    logging.info("Exported motion_generator.keras to %s", directory)
    return result


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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from kpvp import run_info, training

    config = cli.resolve_config(FLAGS.workdir)
    if FLAGS.num_steps is not None:
        config.stage1.num_steps = config.stage2.num_steps = FLAGS.num_steps
    cli.save_config(config, FLAGS.workdir)
    run_info.update_run_info(FLAGS.workdir)
    logging.info("Workdir %s, dataset %s (%s), stage %s", FLAGS.workdir, config.dataset,
                 config.variant, FLAGS.stage)
    strategy = training.make_strategy(FLAGS.strategy)
    if FLAGS.stage in ("1", "all"):
        run_stage1(config, FLAGS.workdir, strategy)
    if FLAGS.stage in ("2", "all"):
        run_stage2(config, FLAGS.workdir, strategy)
    if FLAGS.stage == "all":
        finish_all(config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
