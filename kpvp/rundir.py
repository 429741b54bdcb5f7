"""The layout of a run directory (`--workdir`): every path in it, and the detector identity.

    workdir/
      config.json, run_info.json       resolved config; versions, git revision, choices made
      stage1/checkpoints, stage1/logs  Q + T + D_im (tf.train.CheckpointManager), TensorBoard
      stage1/detector.keras            Q, exported at the end of stage 1
      stage1/translator.keras          T
      stage1/export_info.json          the checkpoint step (and Q's id) the exports hold
      stageN/workertemp_<i>/           a non-chief worker's own saves (deleted when it ends)
      pseudo_labels/{train,test}/      Q's keypoints per video (resumable)
      stage2/checkpoints, stage2/logs  M + D_seq
      stage2/motion_generator.keras    M
      distill/checkpoints, distill/logs  a light T distilled from a teacher run's T
      samples/<class>_<i>.gif          generated videos | keypoints | masks
      report.json, report.md           the metrics (`kpvp.evaluation`)
      fvd_features/<set>-<key>.npz     I3D features of a real video set, keyed on what makes them

Only this module spells these names; everything else asks a `RunDir` (or a `StageDir`, the
part that the training loop fills). It imports only `kpvp.errors`, so any module may use it.

Every file of a run is written through `atomic_path` / `atomic_write` / `write_json`: to a
temporary name in the same directory, then renamed over the target (`os.replace`), so a run
killed mid-write leaves the previous file (or none), never a truncated one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import zipfile

from kpvp import errors

CONFIG_FILE = "config.json"
RUN_INFO_FILE = "run_info.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# The exported networks and the stage that writes each.
EXPORTS = {"detector": 1, "translator": 1, "motion_generator": 2}
# The parts of a `.keras` file that say what the network computes (not `metadata.json`, which
# holds the save date).
_KERAS_CONTENT = ("config.json", "model.weights.h5")
# Beside stage1/detector.keras: the stage-1 checkpoint step the export holds (and its id).
EXPORT_INFO_FILE = "export_info.json"
# Marks the temporary files of `atomic_path` (hidden, so globs of the outputs skip them).
TEMPORARY_MARK = ".tmp-"


class StageDir:
    """One stage's directory: `checkpoints/` (tf.train.CheckpointManager) and `logs/`."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"StageDir({self.path!r})"

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.path, "checkpoints")

    @property
    def logs(self) -> str:
        return os.path.join(self.path, "logs")

    def worker_temp(self, task_id: int) -> str:
        """Where a non-chief worker of a multi-worker run writes what it must write (its
        checkpoints, its copy of the exports) and deletes afterwards."""
        return os.path.join(self.path, f"workertemp_{int(task_id)}")


class RunDir:
    """A run directory: `RunDir("runs/demo").exported("detector")` etc. Makes no directory
    until asked (`makedirs`); a `RunDir` is path-like (`os.fspath(run)` is its root)."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def makedirs(self) -> "RunDir":
        os.makedirs(self.path, exist_ok=True)
        return self

    # === Files of the run ===
    @property
    def config_file(self) -> str:
        return os.path.join(self.path, CONFIG_FILE)

    @property
    def run_info_file(self) -> str:
        return os.path.join(self.path, RUN_INFO_FILE)

    @property
    def report_json(self) -> str:
        return os.path.join(self.path, REPORT_JSON)

    @property
    def report_md(self) -> str:
        return os.path.join(self.path, REPORT_MD)

    @property
    def samples(self) -> str:
        return os.path.join(self.path, "samples")

    def fvd_features(self, name: str, key: str) -> str:
        """The cached I3D features of the real video set `name` whose cache key is `key`."""
        for part, label in ((name, "set name"), (key, "cache key")):
            if not part or not all(c.isalnum() or c in "_-" for c in part):
                raise ValueError(f"FVD feature cache: bad {label} {part!r}")
        return os.path.join(self.path, "fvd_features", f"{name}-{key}.npz")

    def has_config(self) -> bool:
        return os.path.exists(self.config_file)

    # === Stages ===
    def stage(self, number: int) -> StageDir:
        if int(number) not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {number!r}")
        return StageDir(os.path.join(self.path, f"stage{int(number)}"))

    @property
    def distill(self) -> StageDir:
        """The distillation of a light T from a teacher run (`kpvp.trainers.distill`)."""
        return StageDir(os.path.join(self.path, "distill"))

    def checkpoints(self, stage: int) -> str:
        return self.stage(stage).checkpoints

    def exported(self, name: str) -> str:
        """The `.keras` file of network `name` (one of `EXPORTS`)."""
        if name not in EXPORTS:
            raise ValueError(f"unknown exported network {name!r}; expected one of "
                             f"{tuple(EXPORTS)}")
        return os.path.join(self.stage(EXPORTS[name]).path, f"{name}.keras")

    @property
    def stage1_export_info(self) -> str:
        """JSON beside Q and T: `{"checkpoint_step", "detector_id"}` of the stage-1 export."""
        return os.path.join(self.stage(1).path, EXPORT_INFO_FILE)

    def pseudo_labels(self, split: str) -> str:
        """The store of Q's keypoints on the videos of `split` (`kpvp.data.pseudo_labels`)."""
        return os.path.join(self.path, "pseudo_labels", split)

    # === The detector behind the pseudo-labels ===
    @property
    def detector_id(self) -> str:
        """Names the weights in `stage1/detector.keras`: a hash of its architecture and weights
        (not of the file, which also holds the save date), so re-exporting the same Q keeps
        the id and any other Q changes it (and with it the pseudo-labels)."""
        path = self.exported("detector")
        if not os.path.exists(path):
            raise errors.InputNotFound(
                f"No trained stage 1 in {self.path!r} ({path} missing): run `python -m "
                f"kpvp.train --stage=1 --workdir={self.path}` first")
        return "detector-" + file_content_hash(path)


def file_content_hash(path: str) -> str:
    """A short SHA-256 of a `.keras` file's config and weights (of the whole file if it is not
    a `.keras` zip archive)."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for name in _KERAS_CONTENT:
                if name in names:
                    digest.update(name.encode())
                    digest.update(archive.read(name))
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


# === Writing files that a crash cannot truncate ===
@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (same extension) for a writer that takes a path;
    renames it onto `path` when the block ends, removes it when the block raises.

    `with atomic_path(out) as tmp: model.save(tmp)`: `out` is either the old file or the
    complete new one, whenever the process dies.
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    # Unique per writer: two processes (or hosts on one file system) never share a temporary.
    tmp = os.path.join(directory, f".{stem}{TEMPORARY_MARK}{uuid.uuid4().hex[:12]}{ext}")
    try:
        yield tmp
        if os.path.isfile(tmp):  # on disk before the rename, so a power cut cannot empty it
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", encoding: str | None = None):
    """`open(path, mode)` whose content replaces `path` only once the block completes."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files: mode must start with 'w', got {mode!r}")
    if encoding is None and "b" not in mode:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f


def write_text(path, text: str) -> str:
    """Writes `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_write(path) as f:
        f.write(text)
    return os.fspath(path)


def read_json(path) -> dict:
    """The JSON object in `path`, or {} when the file does not exist (yet)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, value, **dump_kwargs) -> str:
    """Writes `value` as JSON to `path` atomically (`dump_kwargs` go to `json.dump`)."""
    with atomic_write(path) as f:
        json.dump(value, f, **dump_kwargs)
    return os.fspath(path)
