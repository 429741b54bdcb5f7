"""The layout of a run directory (`--workdir`): every path in it, and the detector identity.

    workdir/
      config.json, run_info.json       resolved config; versions, git revision, choices made
      stage1/checkpoints, stage1/logs  Q + T + D_im (tf.train.CheckpointManager), TensorBoard
      stage1/detector.keras            Q, exported at the end of stage 1
      stage1/translator.keras          T
      pseudo_labels/{train,test}/      Q's keypoints per video (resumable)
      stage2/checkpoints, stage2/logs  M + D_seq
      stage2/motion_generator.keras    M
      samples/<class>_<i>.gif          generated videos | keypoints | masks
      report.json, report.md           the metrics (`kpvp.evaluation`)

Only this module spells these names; everything else asks a `RunDir` (or a `StageDir`, the
part that the training loop fills). It imports only `kpvp.errors`, so any module may use it.
"""
from __future__ import annotations

import hashlib
import os
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

    def has_config(self) -> bool:
        return os.path.exists(self.config_file)

    # === Stages ===
    def stage(self, number: int) -> StageDir:
        if int(number) not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {number!r}")
        return StageDir(os.path.join(self.path, f"stage{int(number)}"))

    def checkpoints(self, stage: int) -> str:
        return self.stage(stage).checkpoints

    def exported(self, name: str) -> str:
        """The `.keras` file of network `name` (one of `EXPORTS`)."""
        if name not in EXPORTS:
            raise ValueError(f"unknown exported network {name!r}; expected one of "
                             f"{tuple(EXPORTS)}")
        return os.path.join(self.stage(EXPORTS[name]).path, f"{name}.keras")

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
