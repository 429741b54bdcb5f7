"""Packaging: what setup.py requires, the console scripts, and the install helper that keeps an
installed tensorflow-cpu (tools/install.py)."""
import ast
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = {"kpvp-train": "kpvp.train", "kpvp-evaluate": "kpvp.evaluate",
            "kpvp-predict": "kpvp.predict", "kpvp-export": "kpvp.export",
            "kpvp-inspect": "kpvp.inspect_data", "kpvp-weights": "kpvp.weights",
            "kpvp-app": "kpvp.app"}
# The distribution behind each third-party module kpvp imports. tensorboard is required
# without being imported: it shows the logs that training writes.
DISTRIBUTIONS = {"tensorflow": "tensorflow", "keras": "keras", "absl": "absl-py",
                 "numpy": "numpy", "scipy": "scipy", "PIL": "pillow",
                 "ml_collections": "ml-collections", "imageio_ffmpeg": "imageio-ffmpeg",
                 "tqdm": "tqdm"}
NOT_IMPORTED = {"tensorboard"}
# Modules of an optional extra, imported only by the app that needs them: {module: extra}.
OPTIONAL = {"flask": "app", "werkzeug": "app"}


def load_install_tool():
    spec = importlib.util.spec_from_file_location("install", ROOT / "tools" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = load_install_tool()


def third_party_imports() -> set[str]:
    """Top-level modules that kpvp imports, less the standard library and kpvp itself."""
    names = set()
    for path in (ROOT / "kpvp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names
            if n not in sys.stdlib_module_names and n not in ("kpvp", "__future__")}


def test_requirements_are_what_kpvp_imports_with_tensorflow_not_tensorflow_cpu():
    install_requires, extras = install.setup_requirements()
    required = {install.requirement_name(r) for r in install_requires}
    imported = third_party_imports() - set(OPTIONAL)
    assert imported <= set(DISTRIBUTIONS), f"add {imported - set(DISTRIBUTIONS)} to setup.py"
    assert extras["app"] == ["flask>=2.2"]  # werkzeug comes with flask
    assert required == {DISTRIBUTIONS[m] for m in imported} | NOT_IMPORTED
    assert "tensorflow>=2.16" in install_requires
    assert extras["and-cuda"] == ["tensorflow[and-cuda]>=2.16"]
    keras = next(r for r in install_requires if install.requirement_name(r) == "keras")
    assert keras == "keras>=3.14"  # safe_mode bypasses fixed in 3.9, 3.11 and 3.14


def test_install_keeps_an_installed_tensorflow_cpu_and_installs_the_rest():
    pip = ["python", "-m", "pip", "install"]
    plain = install.commands(["test"], [], pip)
    assert plain == [pip + ["-e", ".[test]"]]
    assert install.commands(["test"], ["tensorflow"], pip) == plain
    no_deps, rest = install.commands(["test"], ["tensorflow-cpu"], pip)
    assert no_deps == pip + ["--no-deps", "-e", ".[test]"]
    assert "keras>=3.14" in rest and "pytest>=7" in rest
    assert not [r for r in rest[len(pip):] if install.requirement_name(r) == "tensorflow"]
    with pytest.raises(SystemExit, match="pip uninstall tensorflow-cpu"):
        install.commands(["and-cuda"], ["tensorflow-cpu"], pip)
    with pytest.raises(SystemExit, match="unknown extras"):
        install.commands(["gpu"], ["tensorflow-cpu"], pip)


def test_install_sees_which_distribution_provides_tensorflow():
    providers = install.tensorflow_providers()
    assert providers, "TensorFlow is installed where the tests run"
    assert importlib.metadata.version(providers[0])


def installed_from_this_checkout(dist) -> bool:
    """Whether `dist` (kpvp's installed metadata) was installed from ROOT, editable or not."""
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    except json.JSONDecodeError:
        url = ""
    base = pathlib.Path(str(dist.locate_file(""))).resolve()
    return url == ROOT.as_uri() or base == ROOT


def test_console_scripts_resolve_to_each_apps_run():
    try:
        dist = importlib.metadata.distribution("kpvp")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("kpvp is not installed: `make install` (or pip install -e .) first")
    if not installed_from_this_checkout(dist):
        pytest.skip(f"the installed kpvp is not this checkout ({dist.locate_file('')})")
    scripts = {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}
    assert sorted(scripts) == sorted(COMMANDS)
    for command, module in COMMANDS.items():
        assert scripts[command].value == f"{module}:run"
        assert scripts[command].load() is importlib.import_module(module).run


def test_a_console_script_shows_the_same_help_as_python_m():
    """absl's --help reads `__main__` and argv[0]: under pip's wrapper (here `python -c`, whose
    `__main__` is not the app either) `run()` must still list the app's text and key flags."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    script = ("import sys; sys.argv = ['kpvp-export', '--help']; "
              "from kpvp.export import run; run()")
    outputs = [subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300).stdout
               for command in ([sys.executable, "-c", script],
                               [sys.executable, "-m", "kpvp.export", "--help"])]
    as_script, as_module = outputs
    assert "--output: Folder to write the SavedModel to" in as_module
    assert "--workdir" in as_module and "Exports a trained run" in as_module
    assert as_script.replace("\nkpvp-export:\n", "\n{main}:\n") == \
        as_module.replace(f"\n{ROOT / 'kpvp' / 'export.py'}:\n", "\n{main}:\n")
