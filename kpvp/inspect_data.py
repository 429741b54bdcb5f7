"""Looks at a data set before training on it: statistics per split and a contact sheet.

    python -m kpvp.inspect_data --dataset=folder --data_dir=/data/my_videos --output=sheet.png
    python -m kpvp.inspect_data --dataset=synthetic --tiny --output=sheet.png --json=stats.json

Prints, per split (train/test): the number of videos per class, frame-count statistics
(min/median/max), the frame sizes seen, whether joints are present, and the files the reader
could not use with their reasons (the source's `skipped` list). `--output` writes a contact
sheet PNG: for each class a few videos (rows) of a few evenly spaced frames (columns), with the
ground-truth joints drawn where the data set has them, labelled with the class name, the video
id, its length and frame size. `--json` writes the statistics as JSON.

Frames are read at their size on disk (`--native_size`, the default); `--nonative_size` shows
them as the pipelines see them (the centre square resized to `config.image_size`).
A split that cannot be opened (a folder with `train/` but no `test/`) is reported and the other
one inspected; if no split can be opened the tool prints the reader's error and exits with 1.

Any config field can be set with --config.<field>=value (e.g. --config.image_size=64); the
fields are listed in kpvp/configs/base.py (and with their values by --helpfull).
"""
import json
import os
import sys

from absl import app, flags
from PIL import Image

from kpvp import cli
from kpvp.data import readers
from kpvp.data.inspection import contact_sheet, format_report, inspect_dataset, sheet_layout


def define_flags():
    """The app's flags (defined only when run as `python -m kpvp.inspect_data`, so that
    importing this module as a library defines none)."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        if name != "workdir":  # no run is read or written here
            flags.declare_key_flag(name)
    flags.DEFINE_string("output", "", "Contact sheet PNG to write (empty: none).")
    flags.DEFINE_string("json", "", "File to write the statistics to as JSON (empty: none).")
    flags.DEFINE_list("splits", list(readers.SPLITS), "Splits to inspect.")
    flags.DEFINE_string("sheet_split", "train", "Split shown in the contact sheet (the first "
                        "inspected one if unavailable).")
    flags.DEFINE_integer("videos_per_class", 3, "Rows of the contact sheet per class.")
    flags.DEFINE_integer("frames_per_video", 6,
                         "Columns of the contact sheet (evenly spaced frames).")
    flags.DEFINE_integer("cell_size", 96, "Side of one frame's cell in the contact sheet (pixels).")
    flags.DEFINE_integer("max_videos", 0,
                         "Read at most this many readable videos per split (0: all of them).")
    flags.DEFINE_bool("native_size", True,
                      "Frames at their size on disk; false: resized and cropped to "
                      "config.image_size as the training pipelines see them.")
    flags.DEFINE_integer("max_listed", 50,
                         "Skipped files printed per split (the JSON lists them all).")


FLAGS = flags.FLAGS


# === Command line ===

def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("videos_per_class", "frames_per_video", "cell_size"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(f"--{name} must be >= 1, got {getattr(FLAGS, name)}")
    unknown = [s for s in FLAGS.splits if s not in readers.SPLITS]
    if unknown or not FLAGS.splits:
        raise app.UsageError(f"--splits must name some of {readers.SPLITS}, got {FLAGS.splits}")
    config = cli.resolve_config()
    try:
        report, samples = inspect_dataset(
            config, FLAGS.splits, native_size=FLAGS.native_size,
            videos_per_class=FLAGS.videos_per_class, frames_per_video=FLAGS.frames_per_video,
            max_videos=FLAGS.max_videos)
    except (OSError, ValueError) as e:
        # The readers' messages say what is missing and where to get it; no traceback needed.
        print(f"kpvp.inspect_data: cannot inspect --dataset={config.dataset}: {e}",
              file=sys.stderr)
        sys.exit(1)

    if FLAGS.output:
        split = FLAGS.sheet_split if FLAGS.sheet_split in samples else next(iter(samples))
        class_names = report["splits"][split]["class_names"]
        sheet = contact_sheet(samples[split], class_names, FLAGS.frames_per_video,
                              FLAGS.cell_size)
        if os.path.dirname(FLAGS.output):
            os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
        Image.fromarray(sheet).save(FLAGS.output, format="PNG")
        report["sheet"] = {"path": FLAGS.output, "split": split,
                           "rows": len(sheet_layout(samples[split], class_names)),
                           "columns": FLAGS.frames_per_video, "cell_size": FLAGS.cell_size,
                           "height": sheet.shape[0], "width": sheet.shape[1]}

    print(format_report(report, FLAGS.max_listed))
    if "sheet" in report:
        s = report["sheet"]
        print(f"\ncontact sheet ({s['split']}, {s['rows']} rows x {s['columns']} frames): "
              f"{s['path']}")
    if FLAGS.json:
        if os.path.dirname(FLAGS.json):
            os.makedirs(os.path.dirname(FLAGS.json), exist_ok=True)
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"statistics: {FLAGS.json}")


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
