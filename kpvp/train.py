"""Trains kpvp: `python -m kpvp.train --stage=1|2|all --dataset=synthetic --workdir=runs/x`.

* `--stage=1`: keypoint detector Q + masked translator T against D_im (paper Sec. 3.1).
* `--stage=2`: labels every training video with Q, then trains the motion cVAE M against D_seq.
* `--stage=all`: stage 1, pseudo-labels, stage 2, sample videos per class and the metrics
  report, in one workdir (the README's end-to-end job).
* `--stage=distill --teacher=RUN`: a light T (`stage1.translator=light`) trained to redraw
  RUN's T, into a new workdir that gets RUN's config, Q and M (`kpvp.trainers.distill`).

Every stage resumes from the last checkpoint in `--workdir`; the run's resolved config, package
versions and git revision are stored there. `--export_only` writes the `.keras` files of each
`--stage` from its last checkpoint without training, to use a run that was stopped early.

Any config field can be set with --config.<field>=value; the fields are listed in
kpvp/configs/base.py (and with their values by --helpfull).
"""
from __future__ import annotations

import tensorflow as tf
from absl import app, flags, logging

from kpvp import cli, errors, run_info, stages
from kpvp.configs import base
from kpvp.data import readers
from kpvp.rundir import RunDir
from kpvp.trainers import loop

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The shared flags (`kpvp.cli`) and this app's; defined only when run as a program."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        flags.declare_key_flag(name)
    flags.mark_flag_as_required("workdir")
    flags.DEFINE_enum("stage", "1", ["1", "2", "all", "distill"], "What to train (distill: "
                      "a light T that redraws --teacher's T, into a new --workdir).")
    flags.DEFINE_string("teacher", None, "--stage=distill: the trained run whose T to distil "
                        "(its Q and M are copied into --workdir).")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy for the trainers.")
    flags.DEFINE_integer("num_steps", None, "Shortcut for --config.stageN.num_steps of the "
                         "stages that --stage runs (both for --stage=all; "
                         "--config.distill.num_steps for --stage=distill).")
    flags.DEFINE_bool("export_only", False, "Write the networks of --stage from its last "
                      "checkpoint in --workdir without training (use a stopped run); the "
                      "workdir's config is left as it is.")


def _stage_numbers(stage: str) -> tuple[int, ...]:
    if stage in ("all", "distill"):
        return (1, 2) if stage == "all" else ()
    return (int(stage),)


def _check_checkpoints(workdir: str, stage: str) -> None:
    """For --export_only: every stage of --stage must have a checkpoint to export."""
    run = RunDir(workdir)
    directories = {n: run.checkpoints(n) for n in _stage_numbers(stage)}
    if stage == "distill":
        directories = {"distill": run.distill.checkpoints}
    for number, directory in directories.items():
        if tf.train.latest_checkpoint(directory) is None:
            raise errors.InputNotFound(f"--export_only: no stage-{number} checkpoint in "
                                       f"{directory}; train that stage first")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.stage == "distill":
        config = cli.resolve_distill_config(FLAGS.workdir, FLAGS.teacher)
    elif FLAGS.teacher:
        raise app.UsageError("--teacher is for --stage=distill")
    else:
        config = cli.resolve_config(FLAGS.workdir)
    if FLAGS.num_steps is not None:
        for name in [f"stage{n}" for n in _stage_numbers(FLAGS.stage)] or ["distill"]:
            config[name].num_steps = FLAGS.num_steps
    if config.dataset == "folder":
        config.class_names = readers.class_names_on_disk(config)
        base.finalize(config)
        logging.info("Classes found in %s: %s", config.data.data_dir, config.class_names)
    if FLAGS.export_only:
        if FLAGS.num_steps is not None:
            raise app.UsageError("--export_only trains nothing: leave out --num_steps")
        _check_checkpoints(FLAGS.workdir, FLAGS.stage)
    # Made before any TensorFlow op (a multi-worker strategy must be); only its chief writes.
    strategy = loop.make_strategy(FLAGS.strategy)
    chief = loop.is_chief(strategy)
    if chief and not FLAGS.export_only:
        cli.save_config(config, FLAGS.workdir)
    if chief:
        run_info.update_run_info(FLAGS.workdir)
    logging.info("Workdir %s, dataset %s (%s), stage %s", FLAGS.workdir, config.dataset,
                 config.variant, FLAGS.stage)
    if FLAGS.stage in ("1", "all"):
        stages.run_stage1(config, FLAGS.workdir, strategy, export_only=FLAGS.export_only)
    if FLAGS.stage in ("2", "all"):
        stages.run_stage2(config, FLAGS.workdir, strategy, export_only=FLAGS.export_only)
    if FLAGS.stage == "distill":
        stages.run_distill(config, FLAGS.workdir, strategy, export_only=FLAGS.export_only)
    if FLAGS.stage == "all" and not FLAGS.export_only and chief:
        stages.finish_all(config, FLAGS.workdir)


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
