"""Exports a trained run as a TensorFlow SavedModel for serving (library: `kpvp.serving`).

    python -m kpvp.export --workdir=runs/penn --output=exported/kpvp/1

(TensorFlow Serving expects one numbered version folder per model version, hence the `/1`.)
The signatures, and the input bounds that keep one odd image from exhausting a server's
memory, are described in `kpvp/serving.py`.

Any config field can be set with --config.<field>=value; the fields are listed in
kpvp/configs/base.py (and with their values by --helpfull).
"""
from __future__ import annotations

from absl import app, flags, logging

from kpvp import cli, serving

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The shared flags (`kpvp.cli`) and `--output`, `--overwrite`; defined only when run as a
    program."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        flags.declare_key_flag(name)
    flags.mark_flag_as_required("workdir")
    flags.DEFINE_string("output", None, "Folder to write the SavedModel to (for TensorFlow "
                        "Serving: <model base path>/<version>, e.g. exported/kpvp/1).",
                        required=True)
    flags.DEFINE_bool("overwrite", False, "Replace the contents of a non-empty --output.")
    flags.DEFINE_integer("max_side", serving.MAX_SIDE, "Largest height or width of an image the "
                         "served model accepts.", lower_bound=1)
    flags.DEFINE_float("max_aspect_ratio", serving.MAX_ASPECT_RATIO, "Largest long side / short "
                       "side of an image the served model accepts.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = cli.resolve_config(FLAGS.workdir)
    info = serving.export_run(FLAGS.workdir, FLAGS.output, config, overwrite=FLAGS.overwrite,
                              max_side=FLAGS.max_side, max_aspect_ratio=FLAGS.max_aspect_ratio)
    logging.info("Exported %s to %s: %d classes %s, %dx%d images, %d frames, K = %d",
                 FLAGS.workdir, FLAGS.output, len(info["class_names"]), info["class_names"],
                 info["image_size"], info["image_size"], info["num_frames"],
                 info["num_keypoints"])
    print(FLAGS.output)


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
