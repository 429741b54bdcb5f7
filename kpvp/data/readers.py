"""Data sources for the real data sets: one class per on-disk layout.

Every source is a sequence of the project's data element, one video each::

    {"frames": uint8 [T, H, W, 3], "label": int, "id": str,
     "joints": float32 [T, 13, 2], "visible": bool [T, 13]}   # joints/visible: Penn Action only

with attributes `name`, `class_names`, `has_joints` and `skipped` (a list of `(path, reason)` for
unreadable files). `source[i]` raises `CorruptVideoError` for a damaged video; iterating
(`for element in source`, or `iter_valid(source)`) logs a warning, records it in `skipped` and
moves on, then logs a one-line summary. Joints use the keypoint convention: (x, y) in [-1, 1],
(-1, -1) the top-left corner of the top-left pixel.

- `PennAction`: `frames/NNNN/%06d.jpg` + `labels/NNNN.mat`, the paper's 9 classes and split.
- `VideoFolder`: Siarohin's `train/` + `test/` folders of `.gif`/`.mp4`/strip images/frame
  folders (MGIF, UvA-NEMO) and users' own folders (flat, or one sub-folder per class).
- `open_source(config, split)`: the source named by `config.dataset`; `class_names_on_disk`:
  the classes a 'folder' data set has.

`datasets/README.md` says where to get each data set and how to unpack it.
"""
import csv
import os

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image

from kpvp import errors
from kpvp.data import synthetic
from kpvp.data.datasets import (CONTAINER_EXTENSIONS, GIF_EXTENSIONS, IMAGE_EXTENSIONS,
                                PENN_ALL_CLASSES, PENN_CLASSES, PENN_JOINTS, VIDEO_EXTENSIONS)
from kpvp.data.video_io import CorruptVideoError, read_video
from kpvp.ops import images as image_ops
from kpvp.ops import keypoints as keypoint_ops

SPLITS = ("train", "test")
SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits")

# Where `open_source` looks when config.data.data_dir is empty (relative to the current dir).
DEFAULT_DATA_DIRS = {"penn": os.path.join("datasets", "penn"),
                     "nemo": os.path.join("datasets", "nemo"),
                     "mgif": os.path.join("datasets", "mgif"),
                     "folder": os.path.join("datasets", "folder")}

_WHERE = {
    "penn": ("Penn Action", "http://dreamdragon.github.io/PennAction/ (Penn_Action.tar.gz)",
             "<data_dir>/frames/NNNN/NNNNNN.jpg and <data_dir>/labels/NNNN.mat (unpacking the "
             "tarball inside <data_dir> is fine: <data_dir>/Penn_Action/ is found too)"),
    "nemo": ("UvA-NEMO Smile", "https://www.uva-nemo.org/ (licence agreement required); "
             "preprocessed 128x128 version of Siarohin et al.: https://yadi.sk/d/lHdX-fdMKVx2Dw",
             "<data_dir>/train/ and <data_dir>/test/ holding one .mp4/.gif/.png strip or frame "
             "folder per video, file names containing 'spontaneous' or 'deliberate'/'posed' "
             "(or a labels.csv of name,class)"),
    "mgif": ("MGIF (moving gifs)", "https://yadi.sk/d/5VdqLARizmnj3Q (Siarohin et al.)",
             "<data_dir>/train/ and <data_dir>/test/ holding one .gif/.mp4/.png strip or frame "
             "folder per video"),
    "folder": ("your video folder", "your own videos",
               "<data_dir>/train/ and <data_dir>/test/ (or videos directly in <data_dir>, split "
               "90/10 by a seeded shuffle), flat or with one sub-folder per class"),
}


def missing_data_message(dataset: str, root) -> str:
    """The message of the error raised when `dataset` is not found at `root`."""
    title, where, layout = _WHERE[dataset]
    return (f"{title} data not found at {os.fspath(root)!r}. Get it from {where}; the expected "
            f"layout is {layout}. Point --data_dir (or --config.data.data_dir) at it, or unpack "
            f"it to the default {DEFAULT_DATA_DIRS[dataset]!r}. See datasets/README.md.")


# === Common behaviour ===

class _Source:
    """Shared sequence behaviour: `len`, indexing, iteration that skips corrupt videos."""

    name = "source"
    class_names: tuple = ()
    has_joints = False

    def __init__(self, limits=None):
        self.skipped = []
        self._items = []
        # `read_video`'s max_frames, stride, max_bytes (`video_limits(config)`).
        self.limits = dict(limits or {})

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} videos")
        return self._load(self._items[index])

    def __iter__(self):
        return iter_valid(self)

    def _load(self, item) -> dict:
        raise NotImplementedError

    def _skip(self, path, reason: str, warn: bool = True) -> None:
        path = os.fspath(path)
        if all(p != path for p, _ in self.skipped):
            if warn:
                logging.warning("%s: skipping %s: %s", self.name, path, reason)
            self.skipped.append((path, reason))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, videos={len(self)}, "
                f"classes={len(self.class_names)}, skipped={len(self.skipped)})")


def iter_valid(source):
    """Yields the readable elements of `source`; corrupt videos are logged, recorded in
    `source.skipped` (if it has one) and skipped. Ends with a one-line summary in the log."""
    read = 0
    skipped = getattr(source, "skipped", None)
    for index in range(len(source)):
        try:
            element = source[index]
        except CorruptVideoError as e:
            if skipped is not None:
                if all(p != e.path for p, _ in skipped):
                    skipped.append((e.path, e.reason))
            logging.warning("%s: skipping unreadable video %s: %s",
                            getattr(source, "name", "source"), e.path, e.reason)
            continue
        read += 1
        yield element
    logging.info("%s", skip_summary(source, read))


def first_per_class(elements, num_classes: int, count: int, limit: int = 0) -> dict:
    """The first `count` elements of each class among `elements` (data elements with a
    `label`; missing labels count as 0), in their order: `{class: [element, ...]}` for the
    classes `0 .. num_classes - 1`, and under the key `None` the first `count` elements of any
    class. Reading stops once every class has `count`, or after `limit` elements (0: no limit).
    """
    groups = {c: [] for c in range(num_classes)}
    groups[None] = []
    for read, element in enumerate(elements, start=1):
        for key in (None, int(element.get("label", 0))):
            if key in groups and len(groups[key]) < count:
                groups[key].append(element)
        if read == limit or all(len(groups[c]) >= count for c in range(num_classes)):
            break
    return groups


def skip_summary(source, read=None) -> str:
    """One line: how many videos were read and how many were skipped as unreadable."""
    skipped = getattr(source, "skipped", [])
    name = getattr(source, "name", "source")
    head = f"{name}: {len(source)} videos" if read is None else (
        f"{name}: read {read} of {len(source)} videos")
    if not skipped:
        return f"{head}, none skipped"
    examples = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped[:3])
    more = ", ..." if len(skipped) > 3 else ""
    return f"{head}, {len(skipped)} unreadable skipped ({examples}{more})"


def element_signature(source, image_size=None) -> dict:
    """`tf.TensorSpec`s of `source`'s elements, for `tf.data.Dataset.from_generator`.

    `image_size` fixes H = W when the source crops to squares; otherwise they are unknown.
    """
    size = image_size or (getattr(source, "image_size", None)
                          if getattr(source, "crop", True) else None)
    signature = {"frames": tf.TensorSpec([None, size, size, 3], tf.uint8),
                 "label": tf.TensorSpec([], tf.int32),
                 "id": tf.TensorSpec([], tf.string)}
    if source.has_joints:
        signature["joints"] = tf.TensorSpec([None, len(PENN_JOINTS), 2], tf.float32)
        signature["visible"] = tf.TensorSpec([None, len(PENN_JOINTS)], tf.bool)
    return signature


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


# === Penn Action ===

def read_split_file(path) -> list:
    """Video ids of a split list: one video per line, `frames/0001 4` or `0001` (a class id after
    the name is allowed and ignored: classes come from the labels); `#` starts a comment."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise errors.InputNotFound(f"split file not found: {path!r}")
    ids = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name = os.path.basename(line.split()[0].rstrip("/"))
            if not name:
                raise errors.InvalidInput(f"{path}:{number}: expected a video name, got {line!r}")
            ids.append(name.zfill(4) if name.isdigit() else name)
    return ids


def default_penn_split_file(split: str) -> str:
    """The paper's split list shipped with kpvp: `kpvp/data/splits/penn_{split}.txt`."""
    return os.path.join(SPLITS_DIR, f"penn_{_check_split(split)}.txt")


def _find_penn_root(root: str) -> str:
    for candidate in (root, os.path.join(root, "Penn_Action")):
        if (os.path.isdir(os.path.join(candidate, "frames"))
                and os.path.isdir(os.path.join(candidate, "labels"))):
            return candidate
    raise errors.InputNotFound(missing_data_message("penn", root))


class PennAction(_Source):
    """Penn Action (Zhang et al. 2013): frames, action label and 13 annotated joints.

    Layout: `root/frames/NNNN/%06d.jpg`, `root/labels/NNNN.mat` (fields action, pose, x, y
    (T x 13 pixel coordinates), visibility, train (+1/-1), bbox, dimensions, nframes).

    Args:
      root: the data set folder (or its parent holding `Penn_Action/`).
      split: 'train' or 'test'.
      classes: action names to keep; `label` is the index in this tuple. The default is the
        paper's 9 classes with the authors' class ids.
      image_size: if set, the short side is resized to this size (with `crop`: the centre
        square is cut out, then resized to this size), joints moved along; else frames keep
        their size (mostly 480 x 640).
      crop: with `image_size`, whether to centre-crop to `image_size x image_size`.
      split_file: None for the paper's split (the authors' lists, 1172 train / 90 test, shipped
        in `kpvp/data/splits/`), 'official' for Penn Action's own `train` flag, or a path to a
        list of video ids (see `read_split_file`).
      limits: `read_video`'s max_frames, stride and max_bytes (`video_limits(config)`); the
        joints follow the frames kept.

    Elements: frames uint8 `[T, H, W, 3]`, label, id ('0001'), joints float32 `[T, 13, 2]` in
    [-1, 1] (order `PENN_JOINTS`), visible bool `[T, 13]`. Penn's pixel coordinates are taken as
    0-based (x = i at the centre of column i), as Python readers of the data set do.
    """

    has_joints = True

    def __init__(self, root, split: str, classes=PENN_CLASSES, image_size=None,
                 split_file=None, crop: bool = True, name: str = "penn", limits=None):
        super().__init__(limits)
        self.name = name
        self.split = _check_split(split)
        self.root = _find_penn_root(os.fspath(root))
        self.image_size = image_size
        self.crop = crop
        self.class_names = tuple(classes)
        unknown = [c for c in self.class_names if c not in PENN_ALL_CLASSES]
        if unknown or not self.class_names:
            raise ValueError(f"classes must be a non-empty subset of {PENN_ALL_CLASSES}, "
                             f"unknown: {unknown}")
        labels_dir = os.path.join(self.root, "labels")
        if split_file == "official":
            self.split_file = "official"
            ids = sorted(os.path.splitext(n)[0] for n in os.listdir(labels_dir)
                         if n.endswith(".mat"))
            want_train = 1 if split == "train" else -1
        else:
            self.split_file = split_file or default_penn_split_file(split)
            ids = read_split_file(self.split_file)
            want_train = None
        missing = []
        for video_id in ids:
            annotation = self._read_labels(video_id, missing)
            if annotation is None:
                continue
            if want_train is not None and annotation["train"] != want_train:
                continue
            if annotation["action"] in self.class_names:
                self._items.append(annotation)
        if missing:  # one line, not one per file: a partial download misses hundreds
            logging.warning("%s/%s: %d listed videos have no label file in %s (e.g. %s); "
                            "skipped", self.name, split, len(missing), labels_dir,
                            ", ".join(missing[:5]))
        if not self._items:
            raise errors.InputNotFound(
                f"{self.name}/{split}: no readable video of classes {self.class_names} in "
                f"{self.root!r} for the {split_file or 'paper'} split ({len(missing)} listed "
                f"videos have no label file, {len(self.skipped) - len(missing)} unreadable)")

    def _read_labels(self, video_id: str, missing: list):
        """The annotation of one video as a dict, or None (recorded in `skipped`; ids without a
        label file are also appended to `missing`)."""
        import scipy.io  # pylint: disable=import-outside-toplevel

        path = os.path.join(self.root, "labels", f"{video_id}.mat")
        if not os.path.isfile(path):
            self._skip(path, "missing label file", warn=False)
            missing.append(video_id)
            return None
        try:
            mat = scipy.io.loadmat(path)
            action = str(np.asarray(mat["action"]).ravel()[0]).strip()
            x, y = np.asarray(mat["x"], np.float32), np.asarray(mat["y"], np.float32)
            visible = np.asarray(mat["visibility"]).astype(bool)
            train = int(np.asarray(mat["train"]).ravel()[0])
        except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError,
                scipy.io.matlab.MatReadError) as e:
            self._skip(path, f"unreadable labels ({type(e).__name__}: {e})")
            return None
        if (x.ndim != 2 or x.shape[1:] != (len(PENN_JOINTS),) or len(x) == 0
                or y.shape != x.shape or visible.shape != x.shape):
            self._skip(path, f"x, y, visibility must all be [T, {len(PENN_JOINTS)}] with T >= 1, "
                             f"got {x.shape}, {y.shape}, {visible.shape}")
            return None
        return {"id": video_id, "action": action, "train": train,
                "xy": np.stack([x, y], axis=-1), "visible": visible}

    def _load(self, item) -> dict:
        frames_dir = os.path.join(self.root, "frames", item["id"])
        if not os.path.isdir(frames_dir):
            raise CorruptVideoError(frames_dir, "missing frames folder")
        frames = read_video(frames_dir, **self.limits)
        # The label rows of the frames kept (same stride and cap).
        stride, cap = self.limits.get("stride", 1), self.limits.get("max_frames") or None
        xy, visible = item["xy"][::stride][:cap], item["visible"][::stride][:cap]
        # A few videos have more label rows than frames or the reverse: keep the common part.
        length = min(len(frames), len(xy))
        frames = frames[:length]
        height, width = frames.shape[1:3]
        joints = np.array(keypoint_ops.pixel_indices_to_keypoints(xy[:length],
                                                                  (height, width)))
        if self.image_size:
            frames, joints = (np.array(x) for x in image_ops.resize_with_keypoints(
                frames, self.image_size, joints, self.crop))
        return {"frames": frames, "label": self.class_names.index(item["action"]),
                "id": item["id"], "joints": joints, "visible": visible[:length].copy()}


# === Folders of videos (MGIF, UvA-NEMO, your own) ===

def nemo_label(path):
    """UvA-NEMO class from a file name: 'spontaneous', 'posed' ('deliberate' or 'posed' in the
    name), or None."""
    name = os.path.basename(os.fspath(path)).lower()
    if "spontaneous" in name:
        return "spontaneous"
    if "deliberate" in name or "posed" in name:
        return "posed"
    return None


def read_labels_file(path) -> dict:
    """`{video name: class name}` from a `labels.csv`/`labels.txt` of `name,class` lines (a
    `name,class` header line is allowed; tabs or spaces also separate). Names are matched with
    and without their extension."""
    labels = {}
    with open(path, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            row = next(csv.reader([line])) if "," in line else line.split()
            if len(row) < 2:
                raise errors.InvalidInput(f"{path}:{number}: expected 'name,class', got {line!r}")
            name, label = row[0].strip(), row[1].strip()
            is_header = not labels and (name.lower(), label.lower()) in (
                ("name", "class"), ("name", "label"))
            if not is_header:
                labels[name] = label
    return labels


def _is_video_file(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def video_entries(folder: str) -> list:
    """Video files and frame folders directly inside `folder`, sorted by name."""
    entries = []
    for n in sorted(os.listdir(folder)):
        path = os.path.join(folder, n)
        if n.startswith(".") or n.lower() in ("labels.csv", "labels.txt"):
            continue
        if _is_video_file(path) or os.path.isdir(path):
            entries.append(path)
    return entries


def _is_class_folder(folder: str) -> bool:
    """Whether `folder` holds videos (a class) rather than the frames of one video.

    It does if it has sub-folders, GIFs or video files, or if its first still image looks like
    a strip (width a multiple >= 2 of its height); other folders of still images are frame
    folders.
    """
    images = []
    for n in sorted(os.listdir(folder)):
        path = os.path.join(folder, n)
        if n.startswith("."):
            continue
        if os.path.isdir(path) or (os.path.isfile(path) and n.lower().endswith(
                GIF_EXTENSIONS + CONTAINER_EXTENSIONS)):
            return True
        if os.path.isfile(path) and n.lower().endswith(IMAGE_EXTENSIONS):
            images.append(path)
    if not images:
        return False
    try:
        with Image.open(images[0]) as image:  # reads the header only
            width, height = image.size
    except (OSError, ValueError):
        return False
    return width >= 2 * height and width % height == 0


class VideoFolder(_Source):
    """Videos in folders, Siarohin et al.'s layout: `root/train/`, `root/test/`.

    Each video is a `.gif`, a video file (`.mp4`, ...), a horizontal strip image (`.png`/`.jpg`)
    or a folder of frame images. Classes (`label`):

    - one sub-folder per class inside `train/` and `test/` (class names = sorted sub-folder
      names, or `class_names` to pick and order them). A sub-folder of still images is a class
      of strips if its first image is a strip (width a multiple >= 2 of the height), else one
      video's frames; `layout='classes'` or `'flat'` overrides this guess;
    - otherwise a flat folder: `label_fn(path)` gives a class name (or index) per video, else a
      `labels.csv`/`labels.txt` (`name,class`) in the split folder or `root`, else one class
      (`class_names[0]`, or the name of `root`).

    Without `train/`/`test/`, videos directly in `root` (flat or per class) are split per class
    by a seeded shuffle: `ceil(test_fraction * n)` of each class's n videos (n >= 2) go to test.
    Videos whose class cannot be found are recorded in `skipped`.

    Args:
      root: data folder. split: 'train' or 'test'. class_names: see above.
      image_size: if set, the short side is resized to this size (with `crop`: the centre
        square is cut out, then resized to this size).
      label_fn: path -> class name / index / None. frame_size: frame width (or (h, w)) in strips.
      layout: 'auto', 'flat' or 'classes'. seed, test_fraction: the split without train/test.
      name: used in logs and errors. limits: `read_video`'s max_frames, stride and max_bytes
        for every video (`video_limits(config)`).
    """

    def __init__(self, root, split: str, class_names=None, image_size=None, label_fn=None,
                 frame_size=None, layout: str = "auto", seed: int = 0,
                 test_fraction: float = 0.1, crop: bool = True, name: str = "folder",
                 limits=None):
        super().__init__(limits)
        self.name = name
        self.split = _check_split(split)
        self.root = os.fspath(root)
        self.image_size = image_size
        self.crop = crop
        self.frame_size = frame_size
        if layout not in ("auto", "flat", "classes"):
            raise ValueError(f"layout must be 'auto', 'flat' or 'classes', got {layout!r}")
        if not os.path.isdir(self.root):
            raise errors.InputNotFound(missing_data_message(name, self.root)
                                       if name in _WHERE else
                                       f"{name}: video folder not found: {self.root!r}")
        has_split_dirs = any(os.path.isdir(os.path.join(self.root, s)) for s in SPLITS)
        folder = os.path.join(self.root, split) if has_split_dirs else self.root
        if not os.path.isdir(folder):
            raise errors.InputNotFound(f"{name}: {self.root!r} has a {'/'.join(SPLITS)} layout "
                                       f"but no {split}/ folder")

        entries, raw_labels, self.class_names = self._labelled_entries(
            folder, class_names, label_fn, layout)
        if not entries:
            raise errors.InputNotFound(
                missing_data_message(name, self.root) if name in _WHERE
                else f"{name}: no videos (.gif, .mp4, strip images, frame folders) in {folder!r}")
        pairs = []
        for path, raw in zip(entries, raw_labels):
            label = self._label_index(raw)
            if label is None:
                self._skip(path, f"no class found (label {raw!r} not in {self.class_names})")
            else:
                pairs.append((path, label))
        if not has_split_dirs:
            pairs = seeded_split(pairs, split, seed=seed, test_fraction=test_fraction)
        self._items = pairs

    def _labelled_entries(self, folder, class_names, label_fn, layout):
        """(entry paths, raw labels, class names) of `folder`."""
        entries = video_entries(folder)
        dirs = [e for e in entries if os.path.isdir(e)]
        named = class_names is not None and len(class_names) > 1 and all(
            os.path.isdir(os.path.join(folder, c)) for c in class_names)
        use_classes = layout == "classes" or (layout == "auto" and (named or (
            dirs and len(dirs) == len(entries) and all(_is_class_folder(d) for d in dirs))))
        if use_classes:
            names = tuple(class_names) if class_names else tuple(os.path.basename(d) for d in dirs)
            missing = [c for c in names if not os.path.isdir(os.path.join(folder, c))]
            if missing:
                raise errors.InputNotFound(f"{self.name}: class folders {missing} not found in "
                                           f"{folder!r}")
            paths, labels = [], []
            for label, cls in enumerate(names):
                videos = video_entries(os.path.join(folder, cls))
                paths += videos
                labels += [label] * len(videos)
            return paths, labels, names

        if label_fn is None:
            labels_file = next((p for d in (folder, self.root) for p in (
                os.path.join(d, "labels.csv"), os.path.join(d, "labels.txt"))
                if os.path.isfile(p)), None)
            if labels_file:
                table = read_labels_file(labels_file)

                def label_fn(path):
                    name = os.path.basename(path)
                    return table.get(name, table.get(os.path.splitext(name)[0]))

                if class_names is None:
                    class_names = tuple(sorted(set(table.values())))
        if label_fn is None:
            if class_names is not None and len(class_names) > 1:
                raise ValueError(f"{self.name}: {len(class_names)} class names {class_names} "
                                 f"but {folder!r} is flat: give label_fn, a labels.csv, or one "
                                 "sub-folder per class")
            names = tuple(class_names) if class_names else (
                os.path.basename(os.path.abspath(self.root)),)
            return entries, [0] * len(entries), names
        labels = [label_fn(e) for e in entries]
        if class_names is None:
            if any(not isinstance(v, str) for v in labels if v is not None):
                raise ValueError(f"{self.name}: label_fn returned class indices; give "
                                 "class_names as well")
            class_names = tuple(sorted({v for v in labels if v is not None}))
        return entries, labels, tuple(class_names)

    def _label_index(self, raw):
        if raw is None:
            return None
        if isinstance(raw, (int, np.integer)):
            return int(raw) if 0 <= raw < len(self.class_names) else None
        return self.class_names.index(raw) if raw in self.class_names else None

    def _load(self, item) -> dict:
        path, label = item
        frames = read_video(path, frame_size=self.frame_size, **self.limits)
        if self.image_size:
            frames, _ = image_ops.resize_with_keypoints(frames, self.image_size,
                                                        crop=self.crop)
            frames = frames.numpy()
        video_id = os.path.splitext(os.path.relpath(path, self.root))[0].replace(os.sep, "/")
        return {"frames": frames, "label": label, "id": video_id}

    @property
    def paths(self) -> list:
        """The video paths of this split, in element order."""
        return [p for p, _ in self._items]


def seeded_split(pairs, split: str, seed: int = 0, test_fraction: float = 0.1) -> list:
    """The `split` part of `(path, label)` pairs: per class, `ceil(test_fraction * n)` videos
    (n >= 2; none when n == 1) picked by a seeded shuffle of the path-sorted list go to 'test'.
    The same files and seed give the same split; train and test are disjoint."""
    _check_split(split)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in sorted({l for _, l in pairs}):
        group = sorted(p for p in pairs if p[1] == label)
        order = rng.permutation(len(group))
        n_test = int(np.ceil(test_fraction * len(group))) if len(group) > 1 else 0
        picked = order[:n_test] if split == "test" else order[n_test:]
        chosen += [group[i] for i in sorted(picked)]
    return chosen


# === Dispatcher ===

def open_source(config, split: str, crop: bool = True):
    """The data source of `config.dataset` ('synthetic', 'penn', 'nemo', 'mgif', 'folder').

    Reads `config.data.data_dir` (empty: `DEFAULT_DATA_DIRS[dataset]`, relative to the current
    directory) and takes the centre square resized to `config.image_size`; with `crop=False`
    (for pipelines that crop at random themselves) the whole frame, its short side resized
    (synthetic videos are square anyway). For 'folder', class names come from disk
    (`source.class_names`), not from the config. Raises FileNotFoundError saying where to get
    the data when it is not there.
    """
    dataset = config.dataset
    _check_split(split)
    if dataset == "synthetic":
        return synthetic.open_source(config, split)
    if dataset not in DEFAULT_DATA_DIRS:
        raise ValueError(f"config.dataset must be one of synthetic, "
                         f"{', '.join(DEFAULT_DATA_DIRS)}; got {dataset!r}")
    root = config.data.data_dir or DEFAULT_DATA_DIRS[dataset]
    size, limits = config.image_size, video_limits(config)
    if dataset == "penn":
        return PennAction(root, split, classes=tuple(config.class_names), image_size=size,
                          crop=crop, limits=limits)
    if not os.path.isdir(root):
        raise errors.InputNotFound(missing_data_message(dataset, root))
    if dataset == "nemo":
        has_labels_file = any(os.path.isfile(os.path.join(d, f))
                              for d in (root, os.path.join(root, split))
                              for f in ("labels.csv", "labels.txt"))
        return VideoFolder(root, split, class_names=tuple(config.class_names), image_size=size,
                           label_fn=None if has_labels_file else nemo_label, layout="flat",
                           crop=crop, name="nemo", limits=limits)
    if dataset == "mgif":
        return VideoFolder(root, split, class_names=tuple(config.class_names), image_size=size,
                           layout="flat", crop=crop, name="mgif", limits=limits)
    # The seeded 90/10 split (folders without train/test) uses the fixed default seed, not
    # config.seed, so that runs with different seeds share one test set.
    return VideoFolder(root, split, image_size=size, crop=crop, name="folder", limits=limits)


def video_limits(config) -> dict:
    """`read_video`'s frame cap, stride and memory budget from `config.data`."""
    data = config.data
    return {"max_frames": data.get("max_video_frames", 0), "stride": data.get("video_stride", 1),
            "max_bytes": int(data.get("max_video_mb", 0) * 2 ** 20)}


def class_names_on_disk(config) -> tuple:
    """The class names of `config`'s data: for 'folder', the sub-folders of its training videos
    (or one class); for the other data sets, fixed ones, `config.class_names`."""
    if config.dataset != "folder":
        return tuple(config.class_names)
    return tuple(open_source(config, "train").class_names)
