"""Contact sheet of a trained keypoint detector Q on test videos, for looking at its keypoints.

Writes one PNG: a row per test video (`--videos_per_class` of each class), each row evenly
spaced frames with Q's keypoints drawn as coloured dots (a colour per keypoint index, so a
keypoint that follows a limb keeps its colour along the row)::

    python tools/keypoint_sheet.py --workdir=runs/demo --output=runs/demo/keypoints.png

`--workdir` needs stage 1's exports (`stage1/detector.keras`); the data set and its settings
come from the run's `config.json` (and `--config.x=...` overrides), as in `kpvp.evaluate`.
"""
import os

import keras
import numpy as np
from absl import app, flags, logging
from PIL import Image, ImageDraw

import kpvp.models  # noqa: F401  (registers the networks for `load_model`)
from kpvp import cli, visualize
from kpvp.rundir import RunDir
from kpvp.ops import images as image_ops

FLAGS = flags.FLAGS


def define_flags():
    """The tool's own flags (`--workdir` and `--config.x` come from `kpvp.cli`). Defined only
    when run as a script, so that importing the module defines no global flags."""
    cli.define_flags()
    flags.DEFINE_string("output", None, "PNG to write; default <workdir>/keypoint_sheet.png.")
    flags.DEFINE_integer("videos_per_class", 2, "Test videos per class, one row each.")
    flags.DEFINE_integer("columns", 8, "Frames per row.")
    flags.DEFINE_integer("zoom", 0, "Enlargement of each frame; 0: to about 192 pixels.")
    flags.DEFINE_string("split", "test", "train | test.")


def videos_per_class(config, split: str, count: int) -> list[dict]:
    """Up to `count` evaluation videos of each class, in class order."""
    from kpvp.data import pipelines, readers

    groups = readers.first_per_class(pipelines.eval_videos(config, split).as_numpy_iterator(),
                                     config.num_classes, count)
    return [e for label in range(config.num_classes) for e in groups[label]]


def keypoint_sheet(detector, videos: list[dict], class_names, columns: int,
                   zoom: int) -> Image.Image:
    """Rows = videos; `columns` evenly spaced frames each, with `detector`'s keypoints."""
    size = videos[0]["frames"].shape[1]
    zoom = zoom or max(1, 192 // size)
    cell, label_w = size * zoom, 110
    sheet = Image.new("RGB", (label_w + columns * cell, len(videos) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, element in enumerate(videos):
        times = np.linspace(0, len(element["frames"]) - 1, columns).round().astype(int)
        frames = element["frames"][times]
        keypoints = detector(image_ops.to_model_range(frames), training=False).numpy()
        big = np.stack([np.asarray(Image.fromarray(f).resize((cell, cell), Image.NEAREST))
                        for f in frames])
        tiles = visualize.draw_keypoints(big, keypoints, radius=max(2.0, cell / 64))
        for col, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile), (label_w + col * cell, row * cell))
        label = int(element["label"])
        name = class_names[label] if label < len(class_names) else str(label)
        draw.text((6, row * cell + cell // 2 - 12), f"{name}\n{element['id'].decode()}",
                  fill=(0, 0, 0))
    return sheet


def main(argv):
    del argv
    config = cli.resolve_config(FLAGS.workdir)
    path = RunDir(FLAGS.workdir).exported("detector")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: train stage 1 in {FLAGS.workdir!r} first")
    detector = keras.models.load_model(path)
    videos = videos_per_class(config, FLAGS.split, FLAGS.videos_per_class)
    sheet = keypoint_sheet(detector, videos, config.class_names, FLAGS.columns, FLAGS.zoom)
    output = FLAGS.output or os.path.join(FLAGS.workdir, "keypoint_sheet.png")
    sheet.save(output)
    logging.info("Wrote %s (%d videos)", output, len(videos))


if __name__ == "__main__":
    define_flags()
    app.run(main)
