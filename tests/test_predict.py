"""`python -m kpvp.predict` end to end on a tiny run: generation, batch mode, motion transfer."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kpvp import cli
from kpvp.data import video_io

from helpers.tiny_run import SIZE, save_tiny_run, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_predict(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "kpvp.predict", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    config = save_tiny_run(path)
    cli.save_config(config, str(path))
    images = path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in (("a", (SIZE, SIZE)), ("b", (48, 80))):  # any size is accepted
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"{name}.png")
    return path


@pytest.mark.slow
def test_generation_batch_mode_and_overlay(workdir, tmp_path):
    out = tmp_path / "out"
    result = run_predict(f"--workdir={workdir}", f"--image={workdir / 'images'}",
                         "--action=squat", "--num_samples=2", f"--output={out}", "--overlay",
                         "--format=png")
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(os.listdir(out))
    assert written == ["a_0.png", "a_1.png", "b_0.png", "b_1.png"]
    video = video_io.read_video(str(out / "a_0.png"), frame_size=(SIZE, 3 * SIZE))
    # seq_len frames; frames | keypoints | mask side by side.
    assert video.shape == (tiny_config().data.seq_len, SIZE, 3 * SIZE, 3)
    source = np.asarray(Image.open(workdir / "images" / "a.png"))
    np.testing.assert_array_equal(video[0, :, :SIZE], source)  # frame 0 is the input image


@pytest.mark.slow
def test_motion_transfer_and_clear_errors(workdir, tmp_path):
    driving = tmp_path / "driving.gif"
    frames = np.random.default_rng(1).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    video_io.write_video(str(driving), frames)
    out = tmp_path / "transfer.gif"
    result = run_predict(f"--workdir={workdir}", f"--image={workdir / 'images' / 'a.png'}",
                         f"--driving={driving}", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert video_io.read_video(str(out)).shape == (5, SIZE, 3 * SIZE, 3)  # driving|source|result

    bad_action = run_predict(f"--workdir={workdir}", f"--image={workdir / 'images' / 'a.png'}",
                             "--action=fly", f"--output={tmp_path / 'x.gif'}")
    assert bad_action.returncode != 0 and "Unknown action 'fly'" in bad_action.stderr
    missing = run_predict(f"--workdir={workdir}", "--image=/nonexistent.png",
                          f"--output={tmp_path / 'x.gif'}")
    assert missing.returncode != 0 and "no such file '/nonexistent.png'" in missing.stderr


@pytest.mark.slow
def test_outputs_are_never_replaced_silently_and_never_shared(workdir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(image).save(inputs / "a.png")
    Image.fromarray(image).save(inputs / "a.jpg")
    out = tmp_path / "out"
    result = run_predict(f"--workdir={workdir}", f"--image={inputs}", f"--output={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["a_jpg.gif", "a_png.gif"]  # one file per input

    # Again: refused in one line, the files are left as they were.
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    (out / "a_png.gif").write_bytes(b"mine")
    again = run_predict(f"--workdir={workdir}", f"--image={inputs}", f"--output={out}")
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert "a_jpg.gif exists (and 1 more); pass --overwrite" in again.stderr
    assert (out / "a_png.gif").read_bytes() == b"mine"
    replaced = run_predict(f"--workdir={workdir}", f"--image={inputs}", f"--output={out}",
                           "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before

    # Corrupt media: one line naming the file.
    driving = tmp_path / "broken.mp4"
    driving.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    broken = run_predict(f"--workdir={workdir}", f"--image={inputs / 'a.png'}",
                         f"--driving={driving}", f"--output={tmp_path / 't.gif'}")
    assert broken.returncode != 0 and "Traceback" not in broken.stderr
    assert f"kpvp.predict: error: cannot read video {str(driving)!r}" in broken.stderr
