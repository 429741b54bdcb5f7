"""Evaluates a trained run as in the paper (Sec. 4) and writes a JSON + Markdown report.

    python -m kpvp.evaluate --workdir=runs/demo --metric=all
    python -m kpvp.evaluate --workdir=runs/demo --metric=fvd,ssim
    python -m kpvp.evaluate --metric=fvd --real=DIR_OR_FILE --generated=DIR_OR_FILE

Metrics (`--metric`, comma-separated, or `all`):

* `fvd`: FVD (I3D Kinetics-400, Unterthiner et al.) of videos generated from the first frame and
  class of every test video against the real test videos, with two references: real train
  videos vs. the same real test videos (what other real videos of these actions score with this
  many videos; not a floor, since generated videos share the test videos' first frames, and
  with them their appearance, which train videos do not) and the input image repeated (a model
  that does not move).
* `action`: action recognition (paper Table 2) with classifiers trained on real training
  videos: a keypoint-sequence classifier on Q's keypoints, and a linear probe on I3D features of
  the videos. Real test videos give the ceiling; generated videos are scored with the class
  condition set to the true class, and with a random other class as condition (the analogue of
  the paper's model without class condition: only k0 carries class information then).
* `keypoints`: a linear regressor from Q's keypoints to ground-truth joints fitted on train
  frames, error on test frames (Thewlis et al. / Minderer et al.), beside the same regression on
  untrained Qs of `config.eval.untrained_seeds` seeds, whose spread shows how large a
  difference is meaningful: only for data sets with joints.
* `ssim`: SSIM / PSNR of stage-1 reconstructions T(s, Q(s), Q(v)) against the targets v on
  fixed test pairs, beside the trivial prediction v_hat = s, and the L1 error on the pixels
  where s and v differ (where the full-frame numbers hardly see a small moving object), with
  T's mean mask.

`--real`/`--generated` compute FVD between any two sets of videos (files or folders) without a
trained model. The metrics themselves live in `kpvp.evaluation` (one module per metric); this
app parses flags and calls them.

Any config field can be set with --config.<field>=value; the fields are listed in
kpvp/configs/base.py (and with their values by --helpfull).
"""
from __future__ import annotations

import json

from absl import app, flags

from kpvp import cli, errors
from kpvp.evaluation import fvd, report
from kpvp.evaluation import run as evaluation  # `run` is the console script's
from kpvp.rundir import RunDir


def define_flags():
    """The app's own flags, defined only when run as `python -m kpvp.evaluate` (the library is
    `kpvp.evaluation`, which defines none)."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        flags.declare_key_flag(name)
    flags.DEFINE_string("metric", "all",
                        f"Comma-separated subset of {evaluation.METRICS}, or 'all'.")
    flags.DEFINE_integer("num_videos", None, "Test videos to use (default: config.eval.num_videos, "
                         "0 = all).")
    flags.DEFINE_integer("seed", 0, "Seed of the generated videos' z.")
    flags.DEFINE_string("real", None, "FVD between folders/files: the real videos.")
    flags.DEFINE_string("generated", None, "FVD between folders/files: the generated videos.")
    flags.DEFINE_integer("num_frames", 32, "FVD between folders: frames per video, the first ones "
                         "(cut; shorter videos are an error unless --pad). The paper's protocol "
                         "compares 32 predicted frames.")
    flags.DEFINE_bool("pad", False, "FVD between folders: pad short videos by repeating the last "
                      "frame instead of failing.")
    # --workdir names the run to evaluate; FVD between folders needs none.
    flags.register_multi_flags_validator(
        ["workdir", "real", "generated"], lambda f: bool(f["workdir"] or f["real"]
                                                         or f["generated"]),
        message="--workdir is required (the trained run to evaluate), unless --real and "
                "--generated compare two sets of videos")


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.real or FLAGS.generated:
        if not (FLAGS.real and FLAGS.generated):
            raise app.UsageError("--real and --generated go together")
        result = fvd.fvd_between(FLAGS.real, FLAGS.generated, FLAGS.num_frames, FLAGS.pad)
        print(json.dumps(result))
        return
    metrics = evaluation.parse_metrics(FLAGS.metric)
    workdir = RunDir(FLAGS.workdir)
    if not workdir.has_config():
        raise errors.InputNotFound(f"--workdir={FLAGS.workdir!r} holds no trained run "
                                   f"({workdir.config_file} missing)")
    config = cli.resolve_config(FLAGS.workdir)
    result = evaluation.run_evaluation(config, FLAGS.workdir, metrics, FLAGS.num_videos, FLAGS.seed)
    print(report.format_summary(result))


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
