"""A real stage-1 training process killed with SIGKILL mid-chunk resumes with the same command
from its last checkpoint and finishes with the expected step and a loadable export."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import kpvp.models  # noqa: F401  (registers the networks for load_model)
from kpvp.rundir import RunDir

NUM_STEPS, CHUNK = 12, 4
TIMEOUT = 900  # seconds per process; a step takes well under one on 2 busy cores


def command(workdir):
    return [sys.executable, "-m", "kpvp.train", "--stage=1", "--dataset=synthetic", "--tiny",
            f"--workdir={workdir}", "--config.image_size=32", "--config.stage1.gaussian_size=8",
            "--config.stage1.batch_size=2", f"--config.stage1.num_steps={NUM_STEPS}",
            f"--config.stage1.checkpoint_every={CHUNK}",
            "--config.stage1.perceptual_network=random",
            "--config.data.synthetic_num_train=4", "--config.data.synthetic_num_test=2"]


def environment():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


def latest_step(workdir):
    latest = tf.train.latest_checkpoint(RunDir(workdir).checkpoints(1))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


def saved_steps(log: str) -> list[int]:
    return [int(s) for s in re.findall(r"Saved checkpoint \S*ckpt-(\d+)", log)]


@pytest.mark.slow
def test_sigkill_mid_chunk_then_the_same_command_resumes_and_finishes(tmp_path):
    workdir = str(tmp_path / "run")
    log_path = tmp_path / "first.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command(workdir), stdout=log, stderr=subprocess.STDOUT,
                                env=environment(), start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while latest_step(workdir) is None:  # wait for the first chunk's checkpoint
            assert proc.poll() is None, "training ended before its first checkpoint:\n" + \
                log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # training the next chunk, or saving this one
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = latest_step(workdir)
    assert killed_at % CHUNK == 0 and 0 < killed_at < NUM_STEPS, killed_at
    assert not os.path.exists(RunDir(workdir).exported("detector"))  # it did not finish
    first_log = log_path.read_text()

    resumed = subprocess.run(command(workdir), capture_output=True, text=True, env=environment(),
                             timeout=TIMEOUT)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert re.search(rf"Resumed from \S*ckpt-{killed_at} \(step {killed_at}\)", log), log[-3000:]
    # It trained on from there: no chunk before the kill is trained (and saved) again.
    assert saved_steps(log) == list(range(killed_at + CHUNK, NUM_STEPS + 1, CHUNK))
    assert set(saved_steps(first_log)) <= set(range(CHUNK, killed_at + 1, CHUNK))
    assert latest_step(workdir) == NUM_STEPS

    run = RunDir(workdir)
    with open(run.stage1_export_info, encoding="utf-8") as f:
        assert json.load(f)["checkpoint_step"] == NUM_STEPS
    detector = keras.models.load_model(run.exported("detector"))
    keypoints = np.asarray(detector(np.zeros((2, 32, 32, 3), np.float32)))
    assert keypoints.shape[0] == 2 and keypoints.shape[-1] == 2
    assert np.all(np.isfinite(keypoints))
    assert not [name for name in os.listdir(run.stage(1).path) if ".tmp-" in name]
