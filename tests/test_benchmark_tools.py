"""Smoke tests of the tools: benchmark_train.py, benchmark_generation.py, translator_oracle.py,
motion_oracle.py, keypoint_sheet.py, motion_stats.py.

Each tool runs as a script on a tiny setting for one or two steps; the tests check that the
printed numbers are positive and agree with each other, never a speed.
"""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from kpvp import configs, visualize
from kpvp.models import perceptual
from kpvp.data import pipelines
from kpvp.data.tracks import fixed_length_sequences
from kpvp.metrics import action_recognition

REPO = pathlib.Path(__file__).resolve().parents[1]

NUMBER = r"([-+0-9.eE]+|nan)"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name, *args, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.stdout


def run_in_process(name, capsys, *args):
    """Runs the tool's `run()` on its own flags (the CLI path is tested by `run_tool`)."""
    tool = load_tool(name)
    values = tool.define_flags(flags.FlagValues())
    values([name, *args])
    failed = tool.run(values)
    out = capsys.readouterr().out
    assert not failed, out
    return out


def table_rows(output, modes, columns):
    """`{mode: [[first `columns` numbers of each table line of that mode], ...]}`."""
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) > columns and fields[0] in modes and re.fullmatch(NUMBER, fields[1]):
            values = [float("nan") if v == "-" else float(v.rstrip("%"))
                      for v in fields[1:1 + columns]]
            rows.setdefault(fields[0], []).append(values)
    return rows


def gflop_per_step(output):
    match = re.search(r"work of one training step: " + NUMBER + " GFLOP", output)
    assert match, output
    return float(match.group(1))


def test_graph_flops_counts_matmuls_and_while_loop_bodies():
    tool = load_tool("benchmark_train")
    steps = 5

    @tf.function
    def fn(x, w, v):
        h = tf.linalg.matmul(x, w)  # 2 * 8 * 16 * 32 FLOPs
        # Like Keras' RNN loops: the body is a function of its own, called once per step.
        _, h = tf.while_loop(lambda i, h: i < steps, lambda i, h: (i + 1, tf.linalg.matmul(h, v)),
                             (tf.constant(0), h))
        return h

    specs = [tf.TensorSpec(s, tf.float32) for s in ((8, 16), (16, 32), (32, 32))]
    graph = fn.get_concrete_function(*specs).graph
    matmuls = 2 * 8 * 16 * 32 + steps * 2 * 8 * 32 * 32
    counted = tool.graph_flops(graph, loop_trip_count=steps)
    # Loop counters and comparisons add a few scalar operations.
    assert matmuls <= counted <= matmuls + 10 * steps
    # Without the trip count the body counts once.
    assert tool.graph_flops(graph) == pytest.approx(counted - (steps - 1) * 2 * 8 * 32 * 32,
                                                    abs=10 * steps)


def test_matmul_peak_is_positive_and_config_overrides_apply():
    tool = load_tool("benchmark_train")
    assert tool.matmul_flops_per_second(128, 2) > 0
    config = tool.make_config(1, tiny=True, batch_size=3, image_size=32, num_keypoints=5)
    assert (config.stage1.batch_size, config.image_size, config.num_keypoints) == (3, 32, 5)
    assert config.stage1.gaussian_size == 8  # T's U-Net at image_size / 4
    paper = tool.make_config(2)
    # The authors' batch (16), 2 x 1024 LSTMs, K = 40.
    assert (paper.stage2.batch_size, paper.stage2.lstm_units, paper.num_keypoints) == (16, 1024, 40)
    assert tool.make_config(1).stage1.batch_size == 16
    with pytest.raises(ValueError, match="image_size"):
        tool.make_config(1, image_size=70)


def test_pipeline_benchmark_says_what_step_rate_it_feeds():
    tool = load_tool("benchmark_pipeline")
    assert (tool.usable_cores(-1, 2), tool.usable_cores(1, 2), tool.usable_cores(8, 2)) == (
        2, 1, 2)
    # 64 pairs/s on 2 cores at batch 16: 32 per core, 4 batches (steps) a second.
    line = tool.feed_line(64.0, 16, 2, "pairs")
    assert "32.0 pairs/s per core" in line and "feeds 4.00 steps/s at batch 16" in line
    assert "training" not in line
    assert "2.0x what training takes" in tool.feed_line(64.0, 16, 2, "pairs", step_seconds=0.5)
    assert "the pipeline is the bottleneck" in tool.feed_line(64.0, 16, 2, "pairs",
                                                              step_seconds=0.2)


@pytest.mark.slow
def test_train_benchmark_stage2_prints_positive_numbers():
    batch, k, steps = 4, 6, 32
    out = run_tool("benchmark_train", "--stage=2", "--tiny", f"--batch_size={batch}",
                   f"--num_keypoints={k}", "--steps=1", "--warmup=1", "--modes=graph",
                   "--matmul_size=256", "--matmul_repeats=2")
    rows = table_rows(out, ("graph",), 6)
    assert set(rows) == {"graph"}, out
    for (seconds, steps_per_s, seqs_per_s, gflops, percent, warmup), in rows.values():
        assert min(seconds, steps_per_s, seqs_per_s, gflops, percent, warmup) > 0, out
        assert steps_per_s == pytest.approx(1 / seconds, rel=0.02)
        assert seqs_per_s == pytest.approx(batch / seconds, rel=0.02)
    assert float(re.search(r"fp32 matmul peak: " + NUMBER, out).group(1)) > 0
    # The LSTM loops are counted: at least the forward matmuls of M's four 128-unit LSTMs
    # (tiny config) over 32 steps, 2 * B * (input + units) * 4 * units FLOPs each per step.
    config = load_tool("benchmark_train").make_config(2, tiny=True, num_keypoints=k)
    u = config.stage2.lstm_units
    inputs = [4 * k + config.num_classes, u, config.stage2.decoder_fc, u]
    lstm_forward = sum(2 * batch * (i + u) * 4 * u * steps for i in inputs)
    assert gflop_per_step(out) * 1e9 > lstm_forward


@pytest.mark.slow
def test_train_benchmark_stage1_bf16_keeps_losses_and_heads_float32(capsys):
    batch, size = 1, 32
    out = run_in_process("benchmark_train", capsys, "--stage=1", "--tiny",
                         f"--batch_size={batch}", f"--image_size={size}", "--perceptual=random",
                         "--steps=1", "--warmup=1", "--modes=bf16", "--matmul_size=256",
                         "--matmul_repeats=2")
    rows = table_rows(out, ("bf16",), 6)
    assert set(rows) == {"bf16"}, out
    for (seconds, steps_per_s, images_per_s, gflops, percent, warmup), in rows.values():
        assert min(seconds, steps_per_s, images_per_s, gflops, percent, warmup) > 0, out
        assert images_per_s == pytest.approx(batch / seconds, rel=0.02)
    # The perceptual loss alone runs VGG19 forward on the target and on the output.
    vgg_widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    pool_before = {2, 4, 8, 12}
    flops, side, cin = 0, size, 3
    for i, cout in enumerate(vgg_widths):
        side //= 2 if i in pool_before else 1
        flops += 2 * side * side * 9 * cin * cout
        cin = cout
    assert gflop_per_step(out) * 1e9 > 2 * batch * flops
    assert re.search(r"bf16 check: losses float32: yes, finite: yes; outputs that should be "
                     r"float32 but are not: none", out), out


@pytest.mark.slow
def test_generation_benchmark_prints_consistent_times(capsys):
    frames = 4
    out = run_in_process("benchmark_generation", capsys, "--tiny", "--image_size=32",
                         f"--num_frames={frames}", "--batch_sizes=1,2", "--modes=eager,bf16",
                         "--repeats=1", "--warmup=1")
    rows = table_rows(out, ("eager", "bf16"), 8)
    assert set(rows) == {"eager", "bf16"}, out
    assert all(len(r) == 2 for r in rows.values()), out
    # The eager rows also time VideoGenerator.generate() itself.
    assert all(row[-1] > 0 for row in rows["eager"]), out
    for mode_rows in rows.values():
        for batch, latency, frames_per_s, q, m, t, t_share, *_ in mode_rows:
            assert min(latency, frames_per_s, q, m, t, t_share) > 0, out
            assert frames_per_s == pytest.approx(batch * frames / latency, rel=0.02)
            assert t_share == pytest.approx(100 * t / latency, rel=0.02, abs=0.1)
    # Under mixed_bfloat16 Q's and M's keypoint heads stay float32, and generate() works.
    assert ("bf16 keypoint dtypes: Q k0 float32, M k_1:T float32; generate(): works, output "
            "dtypes as documented") in out, out


def test_generation_benchmark_times_the_variant_asked_for():
    tool = load_tool("benchmark_generation")
    assert tool.make_config().stage1.translator_warp  # the full configs warp the source
    authors = tool.make_config(variant="authors")
    assert authors.variant == "authors" and not authors.stage1.translator_warp
    assert tool.make_config(tiny=True, variant="authors").variant == "tiny"


class _Pending:
    """A result whose work is done when it is waited for (`numpy()`), like an eager TF op that
    runs asynchronously: the fake clock moves by `cost` then."""

    def __init__(self, clock, cost, shape):
        self.clock, self.cost, self.shape = clock, cost, shape
        self.dtype = tf.float32

    def numpy(self):
        self.clock[0] += self.cost
        return np.zeros(self.shape, np.float32)


def test_generation_benchmark_charges_each_part_its_own_work(monkeypatch):
    """`run_parts` on a fake clock: Q costs 1, M 10, T 100 time units, Q's and M's only once
    their results are waited for. Each column gets exactly its part's cost, so a part that was
    not waited for before the next one started would show up in the wrong column."""
    tool = load_tool("benchmark_generation")
    clock = [0.0]
    monkeypatch.setattr(tool.time, "perf_counter", lambda: clock[0])
    frames = 3

    class Generator:
        def preprocess(self, images):
            return images

    def render(x0, k0, future):
        clock[0] += 100.0
        return tf.zeros((1, frames, 4, 4, 3)), None

    parts = type("Parts", (), {})()
    parts.q = lambda x0: _Pending(clock, 1.0, (1, 2, 2))
    parts.m = lambda k0, labels: _Pending(clock, 10.0, (1, frames, 2, 2))
    parts.t = render
    result = tool.run_parts(parts, Generator(), np.zeros((1, 4, 4, 3)), np.zeros(1))
    assert (result["q"], result["m"], result["t"], result["total"]) == (1.0, 10.0, 100.0, 111.0)


def test_translator_oracle_trains_t_on_joints_and_reports_against_copying(tmp_path):
    tool = load_tool("translator_oracle")
    config = tool.make_config("synthetic", tiny=True, learning_rate=1e-3)
    assert config.num_keypoints == 13 and config.stage1.learning_rate == 1e-3
    config.image_size, config.stage1.gaussian_size, config.stage1.batch_size = 32, 8, 2
    config.data.synthetic_num_train = config.data.synthetic_num_test = 2
    features = perceptual.make_perceptual_network("random")
    lines = []
    samples = tmp_path / "samples.png"
    results = tool.train(config, steps=3, eval_every=2, features=features, report=lines.append,
                         l1_weight=1.0, samples=str(samples), crude_weight=0.5)
    assert [r["step"] for r in results] == [2, 3] and len(lines) == 3
    # Copying the source does not depend on T; T's reconstruction and mask are real numbers.
    assert results[0]["copy_source_baseline"] == results[1]["copy_source_baseline"]
    for r in results:
        assert -1 <= r["reconstruction"]["ssim"] <= 1 and 0 < r["mean_mask"] < 1
        assert r["reconstruction"] != r["copy_source_baseline"]
    assert results[0]["copy_source_baseline"]["changed_l1"] > 0.05
    assert "oracle keypoints SSIM" in lines[0] and "copying the source SSIM" in lines[0]
    assert "L1 where changed" in lines[0] and "crude image L1" in lines[0]
    assert 0 < results[-1]["crude_changed_l1"] <= 1
    # Source | target | crude | mask | output of the first 6 test pairs, one row each.
    grid = np.asarray(Image.open(samples))
    assert grid.shape == (6 * 32, 5 * 32, 3) and lines[-1] == f"wrote {samples}"
    first = next(iter(pipelines.stage1_dataset(config, split="test")))
    np.testing.assert_array_equal(grid[:32, :32], visualize.to_uint8(first["source"][0]))
    np.testing.assert_array_equal(grid[:32, 32:64], visualize.to_uint8(first["target"][0]))
    # The crude image's loss term changes the training (same seed and data otherwise).
    without = tool.train(config, steps=3, eval_every=3, features=features, report=lines.append,
                         l1_weight=1.0)
    assert without[-1]["crude_changed_l1"] != results[-1]["crude_changed_l1"]


class _Replay:
    """A stand-in M for the test videos `sequences`: from a video's first pose under its own
    class it replays that video's real future; under another class c, or always when `still`,
    it holds the first pose."""

    def __init__(self, sequences, labels, still=False):
        self.sequences, self.labels, self.still = sequences, labels, still

    def sample(self, k0, labels, seed=None):
        k0 = np.asarray(k0)
        out = np.repeat(k0[:, None], self.sequences.shape[1] - 1, axis=1)
        for i, (first, c) in enumerate(zip(k0, labels)):
            video = int(np.argmin(np.abs(self.sequences[:, 0] - first).sum(axis=(1, 2))))
            if not self.still and c == self.labels[video]:
                out[i] = self.sequences[video, 1:]
        return out


def test_motion_oracle_scores_generators_by_the_class_they_follow():
    tool = load_tool("motion_oracle")
    config = configs.get_config("synthetic", "tiny")
    tracks = tool.load_joints(config, num_test=16)
    assert config.num_keypoints == 13 and len(tracks["train"]) == 96
    x, y = fixed_length_sequences(tracks["train"], config.data.seq_len)
    test_x, test_y = fixed_length_sequences(tracks["test"], config.data.seq_len)
    classifier = action_recognition.train_sequence_classifier(x, y, config.num_classes)
    ceiling = action_recognition.accuracy(classifier, test_x, test_y)
    assert ceiling >= 0.75
    # The real videos under their own class: own-class accuracy is the classifier's on them.
    replay = tool.evaluate_motion(_Replay(test_x, test_y), classifier, test_x, test_y,
                                  config.num_classes, samples=2)
    assert replay["num_samples"] == 2 * 16 * config.num_classes
    assert replay["own_class"] == pytest.approx(ceiling)
    # A generator that ignores the class gives every condition the same sequence, so exactly
    # one condition in C is followed, and the class of the first pose as often under another
    # condition as under its own, whatever the classifier says.
    still = tool.evaluate_motion(_Replay(test_x, test_y, still=True), classifier, test_x,
                                 test_y, config.num_classes, samples=2)
    assert still["follows_condition"] == pytest.approx(1 / config.num_classes)
    assert still["own_class"] == pytest.approx(still["other_follows_first_frame"])


def test_motion_oracle_trains_stage_2_on_joints(tmp_path):
    tool = load_tool("motion_oracle")
    config = configs.get_config("synthetic", "tiny")
    config.data.synthetic_num_train, config.data.synthetic_num_test = 8, 4
    config.stage2.lstm_units, config.stage2.batch_size = 8, 4
    config.stage2.offsets = True
    tracks = tool.load_joints(config, num_test=0)
    lines = []
    output = str(tmp_path / "m.keras")
    results = tool.train(config, tracks, steps=3, eval_every=2, samples=1, report=lines.append,
                         output=output)
    assert [r["step"] for r in results] == [2, 3] and len(lines) == 4
    assert lines[-1] == f"saved M to {output}"
    assert "real test sequences" in lines[0] and "follow their condition" in lines[1]
    for r in results:
        assert r["num_samples"] == 4 * config.num_classes
        assert 0 <= r["follows_condition"] <= 1 and 0 < r["test_l1"] < 1
        assert r["train_logs"]["l1"] > 0 and r["train_logs"]["kl"] >= 0
    # The saved M is the trained one: its reconstruction L1 on the test joints is the last
    # evaluation's.
    import keras

    import kpvp.models  # noqa: F401  (registers M for load_model)

    reloaded = keras.models.load_model(output)
    test_x, test_y = fixed_length_sequences(tracks["test"], config.data.seq_len)
    recon = np.asarray(reloaded([test_x, test_y], training=False)["keypoints"])
    assert np.mean(np.abs(recon - test_x[:, 1:])) == pytest.approx(results[-1]["test_l1"],
                                                                   rel=1e-5)
    with pytest.raises(ValueError, match="must be a .keras file"):
        tool.train(config, tracks, steps=1, eval_every=1, samples=1, output="m.h5")


def run_with_detector(tmp_path, config):
    """A workdir with `config` and an untrained tiny Q exported as stage 1's; returns
    (workdir, detector)."""
    import keras

    from kpvp import cli
    from kpvp.models import KeypointDetector
    from kpvp.rundir import RunDir

    workdir = tmp_path / "run"
    (workdir / "stage1").mkdir(parents=True)
    cli.save_config(config, str(workdir))
    keras.utils.set_random_seed(0)
    detector = KeypointDetector(num_keypoints=config.num_keypoints, filters=(4, 4, 4, 4),
                                softmax_temperature=0.1)
    detector(np.zeros((1, config.image_size, config.image_size, 3), np.float32))
    detector.save(RunDir(workdir).exported("detector"))
    return workdir, detector


def test_keypoint_sheet_draws_the_detectors_keypoints_on_each_class(tmp_path):
    config = configs.get_config("synthetic", "tiny")
    config.image_size, config.num_keypoints = 32, 3
    config.data.synthetic_num_test, config.data.eval_num_frames = 12, 8
    workdir, detector = run_with_detector(tmp_path, config)
    output = tmp_path / "sheet.png"
    run_tool("keypoint_sheet", f"--workdir={workdir}", f"--output={output}",
             "--videos_per_class=1", "--columns=2", "--zoom=4")
    sheet = np.asarray(Image.open(output).convert("RGB"))
    cell, label_w = 32 * 4, 110
    assert sheet.shape == (config.num_classes * cell, label_w + 2 * cell, 3)
    # Row r is the first test video of class r; its frames 0 and 7 carry the detector's
    # keypoints as dots in the keypoint colours, centred where the keypoints are.
    tool = load_tool("keypoint_sheet")
    videos = tool.videos_per_class(config, "test", 1)
    assert [int(v["label"]) for v in videos] == list(range(config.num_classes))
    colors = visualize.keypoint_colors(3)
    for row, video in enumerate(videos):
        frames = video["frames"][[0, 7]]
        kps = detector(frames.astype(np.float32) / 127.5 - 1.0, training=False).numpy()
        for col in range(2):
            tile = sheet[row * cell:(row + 1) * cell, label_w + col * cell:][:, :cell]
            # The last keypoint is drawn on top of the others.
            x, y = ((kps[col, -1] + 1) * cell / 2).astype(int)
            np.testing.assert_array_equal(tile[np.clip(y, 0, cell - 1), np.clip(x, 0, cell - 1)],
                                          colors[-1])
            # Rows away from every dot are the frame enlarged 4 times.
            big = np.repeat(np.repeat(frames[col], 4, axis=0), 4, axis=1)
            dot_rows = (kps[col, :, 1] + 1) * cell / 2
            far = np.abs(np.arange(cell)[:, None] - dot_rows).min(axis=-1) > 6
            assert far.sum() > cell // 2
            np.testing.assert_array_equal(tile[far], big[far])


def test_motion_stats_hand_values_and_an_m_that_holds_the_first_pose():
    from kpvp.models.motion_cvae import MotionCVAE

    tool = load_tool("motion_stats")
    # Keypoint 0 moves right by 0.01 per frame, keypoint 1 alternates +-0.02 in y about a still
    # point: distances from frame 0 are 0.01 t and 0 or 0.04, second differences 0 and 0.04.
    steps = np.arange(9, dtype=np.float32)
    seq = np.zeros((1, 9, 2, 2), np.float32)
    seq[0, :, 0, 0] = 0.01 * steps
    seq[0, :, 1, 1] = 0.02 * (-1.0) ** steps
    np.testing.assert_allclose(tool.displacement(seq), [(0.01 * steps[1:].mean() + 0.02) / 2],
                               rtol=1e-5)
    np.testing.assert_allclose(tool.jitter(seq), [0.04 / 4], rtol=1e-5)
    with pytest.raises(ValueError, match="T >= 3"):
        tool.jitter(seq[:, :2])
    # Smoothing keeps a still keypoint, and a constant-speed track where the window is
    # symmetric (the middle frame), and flattens the alternation to about 0 (its gaussian
    # weights nearly cancel).
    smoothed = tool.smooth(seq)
    assert smoothed[0, 4, 0, 0] == pytest.approx(0.04, abs=1e-6)
    np.testing.assert_allclose(smoothed[0, :, 0, 1], 0.0, atol=1e-7)
    np.testing.assert_allclose(smoothed[0, 2:7, 1, 1], 0.0, atol=2e-3)

    # An untrained M decoding offsets (a zero-initialised head) holds the first pose: its
    # posterior and prior sequences do not move, and its reconstruction error is the labels'.
    seqs = np.concatenate([seq, 2 * seq, -seq])
    labels = np.array([0, 0, 1])
    m = MotionCVAE(num_keypoints=2, num_classes=3, units=8, latent_dim=4, encoder_fc=8,
                   decoder_fc=4, num_steps=8, offsets=True, seed=0)
    m.build()
    rows = tool.motion_stats(seqs, labels, 3, 32.0, motion_generator=m,
                             joints=seqs[:, :, :1], joint_labels=labels)
    assert [r["class"] for r in rows] == [0, 1] and [r["videos"] for r in rows] == [2, 1]
    first = rows[0]
    assert first["labels"] == pytest.approx(32 * 1.5 * tool.displacement(seq)[0], rel=1e-5)
    assert first["joints"] == pytest.approx(32 * 1.5 * 0.01 * steps[1:].mean(), rel=1e-5)
    assert first["posterior"] == first["prior"] == 0.0
    moved = np.abs(seqs[:2, 1:] - seqs[:2, :1]).mean()
    assert first["recon"] == pytest.approx(32 * moved, rel=1e-5)
    assert first["hold"] == pytest.approx(first["recon"], rel=1e-5)
    assert 0 < first["smooth"] < first["hold"]
    assert first["sd"] > 0 and first["abs_mu"] >= 0
    table = tool.format_table(rows, ["a", "b", "c"])
    assert table.splitlines()[0].startswith(
        "| class | videos | joints | labels | jitter | hold | smooth |")
    assert len(table.splitlines()) == 4


def test_motion_stats_cli_on_a_saved_detector(tmp_path):
    config = configs.get_config("synthetic", "tiny")
    config.image_size, config.num_keypoints = 32, 3
    config.data.synthetic_num_train, config.data.synthetic_num_frames = 4, 12
    config.data.seq_len = 8
    workdir, _ = run_with_detector(tmp_path, config)
    out = run_tool("motion_stats", f"--workdir={workdir}")
    assert "no trained M in the run" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "videos" not in line]
    assert 1 <= len(rows) <= config.num_classes
    assert sum(int(r.split("|")[2]) for r in rows) == 4
