"""Stages 1 and 2 under `--strategy=multi_worker`: two worker processes on 127.0.0.1
(`TF_CONFIG`), identical trained weights on both, only the chief writes into the run directory,
the chief's checkpoint resumes on one machine (stage 1), and the export loads (stage 2).

Each process is `python -m kpvp.train` wrapped by `tests/multi_worker_check.py`, which also
writes a digest of the worker's weights (see its docstring).
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import kpvp.models  # noqa: F401  (registers the networks for keras.saving.load_model)
import multi_worker_check
from kpvp.rundir import RunDir

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "multi_worker_check.py"
TIMEOUT = 900  # seconds for the two workers together; they train 4 tiny steps


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def flags(workdir, num_steps, strategy, stage=1):
    return [f"--stage={stage}", "--dataset=synthetic", "--tiny", f"--workdir={workdir}",
            f"--strategy={strategy}", "--config.image_size=32", "--config.stage1.gaussian_size=8",
            "--config.stage1.batch_size=4", f"--config.stage{stage}.num_steps={num_steps}",
            "--config.stage1.checkpoint_every=2", "--config.stage1.perceptual_network=random",
            "--config.data.synthetic_num_train=4", "--config.data.synthetic_num_test=2",
            *(STAGE2_FLAGS if stage == 2 else ())]


# Both runs of the stage-2 test take them (stage 1 too: one config for the workdir).
STAGE2_FLAGS = (  # a small M and D_seq on short sequences: stage 2 of the tiny config, scaled
    "--config.stage2.batch_size=4", "--config.stage2.checkpoint_every=2",
    "--config.stage2.lstm_units=16", "--config.stage2.latent_dim=4",
    "--config.stage2.encoder_fc=8", "--config.stage2.discriminator_units=16",
    "--config.data.seq_len=6", "--config.data.synthetic_num_frames=12")


def environment(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_two_workers(tmp, workdir, num_steps, stage=1):
    """Runs two workers of `kpvp.train --stage=stage` to `num_steps`; each writes
    tmp/digest{0,1}.json and tmp/worker{0,1}.log. Returns the digests and the logs' texts."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs, logs = [], []
    try:
        for index in range(2):
            log = open(tmp / f"worker{index}.log", "w", encoding="utf-8")
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, str(SCRIPT), str(tmp / f"digest{index}.json"),
                 *flags(workdir, num_steps, "multi_worker", stage)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=environment({"cluster": cluster, "task": {"type": "worker", "index": index}})))
        deadline = time.monotonic() + TIMEOUT
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the other would wait for it forever
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
        for log in logs:
            log.close()
    texts = [(tmp / f"worker{i}.log").read_text() for i in range(2)]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"worker {i} exited with {p.returncode}:\n{texts[i][-4000:]}"
    return [read(tmp / f"digest{i}.json") for i in (0, 1)], texts


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi_worker")
    workdir = str(tmp / "run")
    digests, logs = run_two_workers(tmp, workdir, 4)
    return dict(workdir=workdir, tmp=tmp, digests=digests, logs=logs)


@pytest.mark.slow
def test_two_workers_train_the_same_weights(cluster_run):
    chief, worker = cluster_run["digests"]
    assert chief["is_chief"] and not worker["is_chief"]
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["step"] == worker["step"] == 4
    assert chief["before_training"] == worker["before_training"]  # same initial weights
    assert chief["trainable"] == worker["trainable"]
    assert chief["trainable"] != chief["before_training"]
    # Batch norm's moving statistics are the only weights each worker keeps for itself (from
    # its own half of each batch; Keras does not synchronise them): the chief's are saved.
    differing = [path for path, value in chief["variables"].items()
                 if worker["variables"][path] != value]
    assert all(path.endswith(("moving_mean", "moving_variance")) for path in differing), differing


@pytest.mark.slow
def test_only_the_chief_writes_into_the_run_directory(cluster_run):
    run = RunDir(cluster_run["workdir"])
    assert tf.train.latest_checkpoint(run.checkpoints(1)).endswith("ckpt-4")
    assert read(run.stage1_export_info)["checkpoint_step"] == 4
    assert len(read(run.run_info_file)["invocations"]) == 1
    assert len(os.listdir(run.stage(1).logs)) == 1  # one TensorBoard event file
    # The other worker saved its checkpoints (saving is collective) elsewhere and deleted them.
    assert "workertemp_1/checkpoints/ckpt-2" in cluster_run["logs"][1]
    assert sorted(os.listdir(run.stage(1).path)) == [
        "checkpoints", "detector.keras", "export_info.json", "logs", "translator.keras"]


@pytest.mark.slow
def test_the_chiefs_checkpoint_resumes_on_one_machine(cluster_run):
    tmp, workdir = cluster_run["tmp"], cluster_run["workdir"]
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp / "single.json"),
                           *flags(workdir, 6, "default")],
                          capture_output=True, text=True, env=environment(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    single = read(tmp / "single.json")
    assert single["replicas"] == 1 and single["resumed_from"] == 4 and single["step"] == 6
    assert single["before_training"] == cluster_run["digests"][0]["all"]
    assert tf.train.latest_checkpoint(RunDir(workdir).checkpoints(1)).endswith("ckpt-6")


# === Stage 2 ===

@pytest.fixture(scope="module")
def stage2_cluster_run(tmp_path_factory):
    """Stage 1 for 2 steps on one machine (Q to label with), then stage 2 on two workers."""
    tmp = tmp_path_factory.mktemp("multi_worker_stage2")
    workdir = str(tmp / "run")
    stage1 = [*flags(workdir, 2, "default"), *STAGE2_FLAGS]
    proc = subprocess.run([sys.executable, "-m", "kpvp.train", *stage1],
                          capture_output=True, text=True, env=environment(), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    digests, logs = run_two_workers(tmp, workdir, 4, stage=2)
    return dict(workdir=workdir, digests=digests, logs=logs)


@pytest.mark.slow
def test_two_workers_train_the_same_motion_generator(stage2_cluster_run):
    chief, worker = stage2_cluster_run["digests"]
    assert chief["is_chief"] and not worker["is_chief"]
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["step"] == worker["step"] == 4 and chief["resumed_from"] == 0
    assert chief["before_training"] == worker["before_training"]
    # M and D_seq have no batch norm: every weight, optimizer slots included, is synchronised.
    assert chief["all"] == worker["all"] and chief["variables"] == worker["variables"]
    assert chief["trainable"] != chief["before_training"]
    for digest in (chief, worker):
        losses = digest["logs"]
        assert {"l1", "kl"} <= set(losses), sorted(losses)
        assert all(np.isfinite(value) for value in losses.values()), losses


@pytest.mark.slow
def test_the_chief_alone_writes_a_loadable_stage2_export(stage2_cluster_run):
    run = RunDir(stage2_cluster_run["workdir"])
    assert tf.train.latest_checkpoint(run.checkpoints(2)).endswith("ckpt-4")
    assert len(os.listdir(run.stage(2).logs)) == 1  # the chief's TensorBoard event file
    assert "workertemp_1/checkpoints/ckpt-2" in stage2_cluster_run["logs"][1]
    assert not [name for name in os.listdir(run.stage(2).path) if "workertemp" in name]
    generator = keras.saving.load_model(run.exported("motion_generator"))
    weights = [np.asarray(w) for w in generator.weights]
    assert weights and all(np.isfinite(w).all() for w in weights)
    # The digest the chief wrote of its M in memory.
    assert (multi_worker_check.digest([tf.constant(w) for w in weights])
            == stage2_cluster_run["digests"][0]["generator"])
