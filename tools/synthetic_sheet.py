"""Contact sheet and GIFs of the synthetic data set, for looking at it.

Writes `<output_dir>/synthetic_sheet.png` (one row per class: evenly spaced frames of one video
with its ground-truth joints as dots, left joints red, right joints blue, head white) and
`<output_dir>/synthetic_<class>.gif` (a few videos of that class side by side)::

    python tools/synthetic_sheet.py --output_dir=/tmp/synthetic --image_size=128 --seed=0
"""
import os

import numpy as np
from absl import app, flags, logging
from PIL import Image, ImageDraw

from kpvp.data import datasets, synthetic

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "synthetic_sheet", "Folder for the PNG and the GIFs.")
flags.DEFINE_integer("image_size", 128, "Frame size of the rendered videos.")
flags.DEFINE_integer("seed", 0, "Data set seed.")
flags.DEFINE_string("split", "train", "train | test.")
flags.DEFINE_integer("num_frames", 48, "Frames per video.")
flags.DEFINE_integer("columns", 8, "Frames per row of the contact sheet.")
flags.DEFINE_integer("videos_per_class", 4, "Videos side by side in each GIF.")
flags.DEFINE_integer("gif_fps", 12, "GIF frame rate.")

_DOT_COLORS = {"head": (255, 255, 255), "l": (230, 30, 30), "r": (40, 90, 255)}


def videos_of_class(dataset, label: int, count: int):
    """The first `count` indices of `dataset` whose label is `label`."""
    found = [i for i in range(len(dataset)) if dataset.label(i) == label]
    return found[:count]


def draw_joints(frame: np.ndarray, joints: np.ndarray, visible: np.ndarray, zoom: int):
    """`frame` `[S, S, 3]` enlarged `zoom` times with `joints` `[13, 2]` drawn as dots."""
    size = frame.shape[0] * zoom
    img = Image.fromarray(frame).resize((size, size), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    r = max(2, size // 64)
    for name, (x, y), vis in zip(datasets.PENN_JOINTS, joints, visible):
        if not vis:
            continue
        # Keypoint convention: -1 / 1 are the outer pixel corners.
        px, py = (x + 1) / 2 * size - 0.5, (y + 1) / 2 * size - 0.5
        color = _DOT_COLORS["head" if name == "head" else name[0]]
        draw.ellipse([px - r, py - r, px + r, py + r], fill=color, outline=(0, 0, 0))
    return img


def contact_sheet(dataset, columns: int) -> Image.Image:
    """Rows = classes; each row `columns` evenly spaced frames of one video, with joints."""
    zoom = max(1, 128 // dataset.image_size)
    cell = dataset.image_size * zoom
    label_w = 110
    sheet = Image.new("RGB", (label_w + columns * cell, len(dataset.class_names) * cell),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for label, name in enumerate(dataset.class_names):
        indices = videos_of_class(dataset, label, 1)
        if not indices:
            raise ValueError(f"no video of class {name!r} in the first {len(dataset)} videos")
        element = dataset[indices[0]]
        times = np.linspace(0, dataset.num_frames - 1, columns).round().astype(int)
        for col, t in enumerate(times):
            tile = draw_joints(element["frames"][t], element["joints"][t],
                               element["visible"][t], zoom)
            sheet.paste(tile, (label_w + col * cell, label * cell))
        draw.text((6, label * cell + cell // 2 - 12), f"{label} {name}\n{element['id']}",
                  fill=(0, 0, 0))
    return sheet


def class_gif(dataset, label: int, count: int, path: str, fps: int) -> int:
    """Writes `count` videos of class `label` side by side as a GIF; returns the video count."""
    indices = videos_of_class(dataset, label, count)
    strips = np.concatenate([dataset[i]["frames"] for i in indices], axis=2)
    images = [Image.fromarray(f) for f in strips]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps,
                   loop=0, optimize=False)
    return len(indices)


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    num = 8 * max(FLAGS.videos_per_class, 1)
    dataset = synthetic.SyntheticVideos(FLAGS.split, num, image_size=FLAGS.image_size,
                                        num_frames=FLAGS.num_frames, seed=FLAGS.seed)
    sheet_path = os.path.join(FLAGS.output_dir, "synthetic_sheet.png")
    contact_sheet(dataset, FLAGS.columns).save(sheet_path)
    logging.info("Wrote %s", sheet_path)
    for label, name in enumerate(dataset.class_names):
        path = os.path.join(FLAGS.output_dir, f"synthetic_{name}.gif")
        count = class_gif(dataset, label, FLAGS.videos_per_class, path, FLAGS.gif_fps)
        logging.info("Wrote %s (%d videos)", path, count)


if __name__ == "__main__":
    app.run(main)
