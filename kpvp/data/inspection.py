"""Statistics of a data set's splits and a contact sheet of its videos, for `kpvp.inspect_data`.

`inspect_dataset(config)` reads each split and returns its statistics (videos per class, frame
counts and sizes, joints present, the files the reader skipped and why) with a few sample
videos per class; `contact_sheet` draws those samples as a PNG-ready grid; `format_report`
prints the statistics as text.
"""
import collections

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kpvp.data import readers
from kpvp.visualize import draw_keypoints

# Width of the text column on the left of the contact sheet.
LABEL_WIDTH = 176
_CELL_BACKGROUND = (48, 48, 48)
_LABEL_BACKGROUNDS = ((255, 255, 255), (228, 233, 240))  # alternating per class
# Where invisible joints are moved so that drawing them paints nothing.
_OFF_IMAGE = -10.0


# === Statistics ===

def open_split(config, split: str, native_size: bool = True):
    """The data source of `split`, with frames at their size on disk if `native_size`.

    The synthetic data set is rendered at `config.image_size` either way (it has no other size).
    Raises what `readers.open_source` raises (FileNotFoundError naming the data set and where to
    get it, ValueError for a bad config).
    """
    if native_size and config.dataset != "synthetic":
        config = config.copy_and_resolve_references()
        config.image_size = None  # readers resize only when given a size
    return readers.open_source(config, split)


def frame_indices(num_frames: int, count: int) -> np.ndarray:
    """`count` evenly spaced frame indices in [0, num_frames), first and last included
    (repeated when the video is shorter than `count`)."""
    return np.linspace(0, num_frames - 1, count).round().astype(int)


def summarize_source(source, videos_per_class: int = 3, frames_per_video: int = 6,
                     max_videos: int = 0):
    """Reads every video of `source` once (at most `max_videos` readable ones if > 0).

    Returns `(stats, samples)`: `stats` a JSON-ready dict (`videos` listed by the reader, `read`,
    `per_class` counts of readable videos by class name, `frames` min/median/max/mean/total of
    T, `frame_sizes` [{height, width, videos}], `has_joints`, `skipped` [{path, reason}] and
    `num_skipped`, `complete`); `samples` the first `videos_per_class` readable videos of each
    class, each a dict with `frames` uint8 `[F, H, W, 3]` (F = `frames_per_video` evenly spaced
    frames), `joints` float32 `[F, 13, 2]` and `visible` bool `[F, 13]` (None without joints),
    `label`, `id`, `num_frames` (T).
    """
    class_names = tuple(source.class_names)
    lengths, sizes = [], collections.Counter()
    per_class = collections.Counter()
    samples = []
    read = 0
    skipped_before = len(source.skipped)
    stopped = False
    for element in readers.iter_valid(source):
        read += 1
        frames = element["frames"]
        label = int(element["label"])
        lengths.append(len(frames))
        sizes[frames.shape[1:3]] += 1
        per_class[label] += 1
        if per_class[label] <= videos_per_class:
            picked = frame_indices(len(frames), frames_per_video)
            joints = element.get("joints")
            samples.append({
                "frames": frames[picked], "label": label, "id": str(element["id"]),
                "num_frames": len(frames),
                "joints": None if joints is None else np.asarray(joints)[picked],
                "visible": None if joints is None else np.asarray(element["visible"])[picked],
            })
        if max_videos and read >= max_videos:
            stopped = True
            break
    scanned = read + len(source.skipped) - skipped_before
    complete = not stopped or scanned >= len(source)
    skipped = [{"path": path, "reason": reason} for path, reason in source.skipped]
    stats = {
        "class_names": list(class_names),
        "has_joints": bool(source.has_joints),
        "videos": len(source),
        "read": read,
        "complete": complete,
        "per_class": {name: per_class[i] for i, name in enumerate(class_names)},
        "frames": None if not lengths else {
            "min": int(np.min(lengths)), "median": float(np.median(lengths)),
            "max": int(np.max(lengths)), "mean": float(np.mean(lengths)),
            "total": int(np.sum(lengths))},
        "frame_sizes": [{"height": int(h), "width": int(w), "videos": n}
                        for (h, w), n in sorted(sizes.items())],
        "skipped": skipped,
        "num_skipped": len(skipped),
        "error": None,
    }
    return stats, samples


def inspect_dataset(config, splits=readers.SPLITS, native_size: bool = True,
                    videos_per_class: int = 3, frames_per_video: int = 6, max_videos: int = 0):
    """Statistics of each split of `config.dataset` (see `summarize_source`).

    Returns `(report, samples)`: `report` = {dataset, data_dir, frame_size, splits: {split:
    stats}} where a split that could not be opened has only `error` (the reader's message);
    `samples` = {split: sample list} for the splits that opened. Raises the reader's error
    (FileNotFoundError / ValueError) when no split can be opened.
    """
    if not splits:
        raise ValueError("splits must name at least one of train, test")
    report = {
        "dataset": config.dataset,
        "data_dir": None if config.dataset == "synthetic" else (
            config.data.data_dir or readers.DEFAULT_DATA_DIRS.get(config.dataset)),
        "frame_size": "native" if native_size and config.dataset != "synthetic"
                      else f"config.image_size={config.image_size}",
        "splits": {},
    }
    samples, errors = {}, []
    for split in splits:
        try:
            source = open_split(config, split, native_size)
        except (OSError, ValueError) as e:
            errors.append(e)
            report["splits"][split] = {"error": str(e)}
            continue
        report["splits"][split], samples[split] = summarize_source(
            source, videos_per_class, frames_per_video, max_videos)
    if not samples:
        raise errors[0]
    return report, samples


# === Contact sheet ===

def sheet_layout(samples, class_names) -> list:
    """Rows of the contact sheet: `[(label, sample or None)]`, class by class in order, the
    samples of each class (one empty row for a class without a readable video)."""
    rows = []
    for label in range(len(class_names)):
        of_class = [s for s in samples if s["label"] == label]
        rows += [(label, s) for s in of_class] or [(label, None)]
    return rows


def fit_in_cell(frame: np.ndarray, cell_size: int, joints=None):
    """Scales `frame` `[H, W, 3]` to fit a `cell_size` square (aspect kept, centred on a dark
    background); `joints` `[K, 2]` (keypoint convention) move along. Returns `(tile, joints)`."""
    height, width = frame.shape[:2]
    scale = cell_size / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = (cell_size - h) // 2, (cell_size - w) // 2
    tile = np.empty((cell_size, cell_size, 3), np.uint8)
    tile[...] = _CELL_BACKGROUND
    tile[top:top + h, left:left + w] = np.asarray(
        Image.fromarray(frame).resize((w, h), Image.BILINEAR))
    if joints is None:
        return tile, None
    # In pixel-corner units the resize maps corner to corner, so the joints move exactly.
    joints = np.asarray(joints, np.float32)
    x = ((joints[..., 0] + 1.0) / 2.0 * w + left) / cell_size * 2.0 - 1.0
    y = ((joints[..., 1] + 1.0) / 2.0 * h + top) / cell_size * 2.0 - 1.0
    return tile, np.stack([x, y], axis=-1)


def _fit_text(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."


def contact_sheet(samples, class_names, frames_per_video: int = 6,
                  cell_size: int = 96) -> np.ndarray:
    """The contact sheet of `samples` (from `summarize_source`) as uint8 `[R * cell_size,
    LABEL_WIDTH + frames_per_video * cell_size, 3]`, R = `len(sheet_layout(...))`.

    Each row: the class index and name, video id, length and frame size on the left, then the
    video's sampled frames scaled into square cells, with its visible joints as coloured dots.
    """
    rows = sheet_layout(samples, class_names)
    sheet = Image.new("RGB", (LABEL_WIDTH + frames_per_video * cell_size,
                              len(rows) * cell_size), _CELL_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    radius = max(1.5, cell_size / 48)
    for r, (label, sample) in enumerate(rows):
        top = r * cell_size
        draw.rectangle([0, top, LABEL_WIDTH - 1, top + cell_size - 1],
                       fill=_LABEL_BACKGROUNDS[label % 2])
        lines = [f"{label}: {class_names[label]}"]
        if sample is None:
            lines.append("(no readable video)")
        else:
            height, width = sample["frames"].shape[1:3]
            lines += [sample["id"], f"T={sample['num_frames']}  {height}x{width} (HxW)"]
            for c, frame in enumerate(sample["frames"]):
                joints = None
                if sample["joints"] is not None:
                    joints = np.where(sample["visible"][c][:, None], sample["joints"][c],
                                      _OFF_IMAGE)
                tile, joints = fit_in_cell(frame, cell_size, joints)
                if joints is not None:
                    tile = draw_keypoints(tile, joints, radius=radius)
                sheet.paste(Image.fromarray(tile), (LABEL_WIDTH + c * cell_size, top))
        for i, line in enumerate(lines):
            draw.text((6, top + 6 + 14 * i), _fit_text(draw, line, font, LABEL_WIDTH - 12),
                      fill=(0, 0, 0), font=font)
    return np.asarray(sheet)


# === Report ===

def format_report(report, max_listed: int = 50) -> str:
    """The statistics of `inspect_dataset` as text, one block per split."""
    lines = [f"dataset: {report['dataset']}"
             + (f"  (data_dir: {report['data_dir']})" if report["data_dir"] else ""),
             f"frame size: {report['frame_size']}"]
    for split, stats in report["splits"].items():
        lines.append("")
        if stats.get("error"):
            lines.append(f"[{split}] not available: {stats['error']}")
            continue
        partial = "" if stats["complete"] else "  (stopped early: --max_videos)"
        lines.append(f"[{split}] {stats['read']} readable of {stats['videos']} videos, "
                     f"{len(stats['class_names'])} classes{partial}")
        width = max([len(n) for n in stats["class_names"]] + [len("class")])
        lines.append(f"  {'label':>5}  {'class':<{width}}  {'videos':>6}")
        for label, name in enumerate(stats["class_names"]):
            lines.append(f"  {label:>5}  {name:<{width}}  {stats['per_class'][name]:>6}")
        frames = stats["frames"]
        if frames:
            lines.append(f"  frames per video: min {frames['min']}, median "
                         f"{frames['median']:g}, max {frames['max']} (total {frames['total']})")
        sizes = ", ".join(f"{s['height']}x{s['width']} ({s['videos']})"
                          for s in stats["frame_sizes"])
        lines.append(f"  frame sizes (HxW, videos): {sizes or 'none'}")
        lines.append(f"  joints: {'yes' if stats['has_joints'] else 'no'}")
        lines.append(f"  unreadable / skipped files: {stats['num_skipped']}")
        for item in stats["skipped"][:max_listed]:
            lines.append(f"    {item['path']}: {item['reason']}")
        if stats["num_skipped"] > max_listed:
            lines.append(f"    ... and {stats['num_skipped'] - max_listed} more (--json lists all)")
    return "\n".join(lines)
