"""Installs kpvp from this checkout (editable) with its requirements; `make install` runs it.

    python tools/install.py --extras=test [--dry-run] [-q]

kpvp requires the `tensorflow` distribution. pip does not count the other distributions of the
same `tensorflow` module (tensorflow-cpu, tensorflow-macos, intel-tensorflow, tf-nightly, ...)
as `tensorflow`, so beside one of them a plain `pip install -e .` would download a second
TensorFlow into the same folder. Where such a build is installed, this script keeps it: kpvp is
installed with `--no-deps`, then its other requirements (read from setup.py). Elsewhere it runs
the plain `pip install -e ".[extras]"`. Standard library only: it runs before kpvp's
requirements exist.
"""
from __future__ import annotations

import argparse
import ast
import importlib.metadata
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def setup_requirements(setup_py=ROOT / "setup.py") -> tuple[list[str], dict[str, list[str]]]:
    """`install_requires` and `extras_require` of setup.py, read without running it."""
    tree = ast.parse(pathlib.Path(setup_py).read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            for keyword in node.keywords:
                if keyword.arg in ("install_requires", "extras_require"):
                    found[keyword.arg] = ast.literal_eval(keyword.value)
    return found.get("install_requires", []), found.get("extras_require", {})


def tensorflow_providers() -> list[str]:
    """The installed distributions that provide the `tensorflow` module (normalised names)."""
    providers = importlib.metadata.packages_distributions().get("tensorflow", [])
    return sorted({normalise(name) for name in providers})


def requirements_without_tensorflow(extras: list[str], setup_py=ROOT / "setup.py") -> list[str]:
    """kpvp's requirements and those of `extras`, less every `tensorflow[...]` one."""
    install_requires, extras_require = setup_requirements(setup_py)
    unknown = sorted(set(extras) - set(extras_require))
    if unknown:
        raise SystemExit(f"install.py: unknown extras {unknown}; setup.py has "
                         f"{sorted(extras_require)}")
    requirements = list(install_requires)
    for extra in extras:
        requirements += extras_require[extra]
    return [r for r in requirements if requirement_name(r) != "tensorflow"]


def commands(extras: list[str], providers: list[str], pip: list[str]) -> list[list[str]]:
    """The pip commands that install kpvp given the distributions providing `tensorflow`."""
    target = "." + (f"[{','.join(extras)}]" if extras else "")
    if not providers or "tensorflow" in providers:
        return [pip + ["-e", target]]
    if "and-cuda" in extras:
        raise SystemExit(f"install.py: {', '.join(providers)} provides the tensorflow module; "
                         f"`pip uninstall {' '.join(providers)}` first to install "
                         "tensorflow[and-cuda]")
    return [pip + ["--no-deps", "-e", target], pip + requirements_without_tensorflow(extras)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. test")
    parser.add_argument("--dry-run", action="store_true", help="pip --dry-run: change nothing")
    parser.add_argument("-q", "--quiet", action="store_true", help="pip -q")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    pip = [sys.executable, "-m", "pip", "install"] + ["-q"] * args.quiet
    pip += ["--dry-run"] * args.dry_run
    providers = tensorflow_providers()
    if providers and "tensorflow" not in providers:
        print(f"install.py: keeping the installed {', '.join(providers)} as TensorFlow (pip "
              "would install `tensorflow` beside it): kpvp goes in with --no-deps, then its "
              "other requirements", flush=True)
    for command in commands(extras, providers, pip):
        print("install.py:", " ".join(command), flush=True)
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
