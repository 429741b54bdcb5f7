"""Contact sheet of motion transfer: real test videos beside their reconstruction by trained runs.

Each test video drives its own first frame through a run's Q and T (`VideoGenerator.transfer`,
relative motion, as the report's "transfer" metric does); the sheet shows, per video, a row of
real frames and below it a row per run, at the same evenly spaced times, with the run's name::

    python tools/transfer_sheet.py --workdir=runs/a --compare=runs/b --output=sheet.png

The test videos and their settings come from `--workdir`'s `config.json` (`kpvp.cli`).
"""
import os

import numpy as np
from absl import app, flags, logging
from PIL import Image, ImageDraw

from kpvp import cli, generation

FLAGS = flags.FLAGS


def define_flags():
    """The tool's own flags (`--workdir` and `--config.x` come from `kpvp.cli`); defined only
    when run as a script."""
    cli.define_flags()
    flags.DEFINE_list("compare", [], "Further run directories to show below --workdir's rows.")
    flags.DEFINE_string("output", None, "PNG to write; default <workdir>/transfer_sheet.png.")
    flags.DEFINE_integer("columns", 8, "Frames per row.")
    flags.DEFINE_integer("zoom", 2, "Enlargement of each frame.")
    flags.DEFINE_integer("max_videos", 0, "Test videos to show (0: all).")


def transfer_sheet(runs: dict, videos: list, columns: int, zoom: int) -> Image.Image:
    """`runs` {name: VideoGenerator}; `videos` uint8 `[T, S, S, 3]` each -> the sheet."""
    size = videos[0].shape[1]
    cell, label_w = size * zoom, 90
    rows = len(videos) * (1 + len(runs))
    sheet = Image.new("RGB", (label_w + columns * cell, rows * cell), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    row = 0
    for index, video in enumerate(videos):
        times = np.linspace(0, len(video) - 1, columns).round().astype(int)
        lines = [(f"real {index}", video)]
        lines += [(name, gen.transfer(video[0], video)["video"]) for name, gen in runs.items()]
        for name, frames in lines:
            for col, t in enumerate(times):
                tile = Image.fromarray(frames[t]).resize((cell, cell), Image.NEAREST)
                sheet.paste(tile, (label_w + col * cell, row * cell))
            draw.text((4, row * cell + cell // 2 - 6), name, fill=(0, 0, 0))
            row += 1
    return sheet


def main(argv):
    del argv
    config = cli.resolve_config(FLAGS.workdir)
    from kpvp.data import pipelines

    videos = [e["frames"] for e in pipelines.eval_videos(config, "test").as_numpy_iterator()]
    videos = videos[:FLAGS.max_videos or None]
    runs = {os.path.basename(os.path.normpath(w)): generation.VideoGenerator.from_workdir(
        w, stage1_only=True) for w in [FLAGS.workdir] + FLAGS.compare}
    sheet = transfer_sheet(runs, videos, FLAGS.columns, FLAGS.zoom)
    output = FLAGS.output or os.path.join(FLAGS.workdir, "transfer_sheet.png")
    sheet.save(output)
    logging.info("Wrote %s (%d videos, runs %s)", output, len(videos), list(runs))


if __name__ == "__main__":
    define_flags()
    app.run(main)
