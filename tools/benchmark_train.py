"""Training-step throughput of stage 1 (Q + T vs D_im) or stage 2 (M vs D_seq) on this machine.

    python tools/benchmark_train.py                         # stage 1, the paper's settings
    python tools/benchmark_train.py --perceptual=random     # VGG19 architecture (DESIGN.md's)
    python tools/benchmark_train.py --stage=2               # batch 16, 2 x 1024 LSTMs
    python tools/benchmark_train.py --tiny --batch_size=2 --steps=2 --matmul_size=1024

For each mode a fresh trainer is built and compiled (`kpvp.trainers.loop.make_optimizers`), its
`train_step` (one D update + one G update) is run `--warmup` times (tracing / compiling, not
timed) and then timed over `--steps` steps on a fixed random batch:

* graph: `tf.function(train_step)`, float32;
* xla: as graph with the stage's `jit_compile` config option on (`tf.function(train_step,
  jit_compile=True)`, as Keras' `fit()` compiles it);
* bf16 / fp16: graph with the stage's `mixed_precision` config option `mixed_bfloat16` /
  `mixed_float16`, the networks built under that policy (variables stay float32; the policy is
  reset afterwards) and, for fp16, the optimizers wrapped in a `LossScaleOptimizer`, as
  `kpvp.train` builds them (`kpvp.models.precision`); bf16_xla / fp16_xla: with XLA too. The
  losses are checked to be float32 and finite, and the outputs that the networks should keep
  in float32 (keypoints, image and mask heads, logits, mu and log-variance) are listed if they
  are not. fp16 is for GPUs: a CPU has no float16 arithmetic units.

Each mode's speed is also printed as a ratio to the fp32 graph step of the same run ("x graph").
With `--profile` one more step of each mode is traced with the TF profiler and the ops taking
the most self time are listed by op type (the time of the ops' kernels, summed over threads;
function calls and loops are left out, their bodies' ops count on their own; under XLA the
compiled cluster is one op).

The work of one training step is counted on the traced graph with the TF profiler
(`float_operation`; a multiply-add counts 2). Ops inside `tf.while_loop` bodies (the LSTMs of
stage 2) are counted per iteration and multiplied by the sequence length. The machine's fp32
peak is the best of `--matmul_repeats` square `tf.linalg.matmul`s of `--matmul_size`; each
mode's executed FLOP/s is printed as a fraction of it. Stage 1 "images" are (source, target)
pairs, as in DESIGN.md's reference numbers; stage 2 counts keypoint sequences.
"""
import gc
import glob
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import configs  # noqa: E402
from kpvp.models import perceptual, precision  # noqa: E402
from kpvp.configs import base  # noqa: E402
from kpvp.trainers import loop, stage1, stage2  # noqa: E402

# Each mode's (config.stageN.mixed_precision, config.stageN.jit_compile).
MODE_SETTINGS = {"graph": ("float32", False), "xla": ("float32", True),
                 "bf16": ("mixed_bfloat16", False), "bf16_xla": ("mixed_bfloat16", True),
                 "fp16": ("mixed_float16", False), "fp16_xla": ("mixed_float16", True)}
MODES = tuple(MODE_SETTINGS)
DEFAULT_MODES = ("graph", "xla", "bf16")
# Ops that run other ops (function calls, loops, conditionals): their time is their bodies'.
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If",
            "StatelessIf", "Case", "StatelessCase")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Defines the command-line flags in `fv` (only when run as a script, or in a fresh
    `FlagValues`, so the module imports cleanly next to other absl apps); returns `fv`."""
    flags.DEFINE_integer(
        "batch_size", None, "Batch size (default: 16 in stage 1 as in DESIGN.md's reference, "
        "the config's 32 in stage 2; with --tiny the tiny config's 8 / 16).", flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Image size (default: the config's, 128; tiny 64).",
                         flag_values=fv)
    flags.DEFINE_integer("num_keypoints", None, "K (default: the config's, 40; tiny 12).",
                         flag_values=fv)
    flags.DEFINE_integer("steps", 3, "Timed training steps per mode.", flag_values=fv)
    flags.DEFINE_integer("warmup", 1, "Untimed steps per mode (the first one traces / compiles).",
                         flag_values=fv)
    flags.DEFINE_enum(
        "perceptual", "auto", list(perceptual.KINDS),
        "Stage-1 perceptual network (auto: VGG19 if its weights are on disk, else the deflated "
        "I3D; random: VGG19 architecture, the same FLOPs as VGG19).", flag_values=fv)
    flags.DEFINE_list("modes", list(DEFAULT_MODES), f"Comma list of modes out of {MODES}.",
                      flag_values=fv)
    flags.DEFINE_bool("profile", True, "Trace one more step of each mode with the TF profiler "
                      "and print the ops taking the most self time.", flag_values=fv)
    flags.DEFINE_integer("top_ops", 10, "Op types listed per profiled mode.", flag_values=fv)
    flags.DEFINE_enum("stage", "1", ["1", "2"], "Stage 1 (Q + T vs D_im) or 2 (M vs D_seq).",
                      flag_values=fv)
    flags.DEFINE_bool("tiny", False, "Penn Action's tiny config instead of the paper's settings.",
                      flag_values=fv)
    flags.DEFINE_integer("matmul_size", 4096, "Side of the square matmuls measuring the peak.",
                         flag_values=fv)
    flags.DEFINE_integer("matmul_repeats", 5, "Timed matmuls; the best one gives the peak.",
                         flag_values=fv)
    flags.DEFINE_bool("count_flops", True, "Count the FLOPs of one step on its graph.",
                      flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the random batch and of the weights' initialisers.",
                         flag_values=fv)
    return fv


# === Set-up ===
def make_config(stage: int, tiny: bool = False, batch_size=None, image_size=None,
                num_keypoints=None):
    """Penn Action's config (the paper's settings, or `tiny`) with the benchmark's overrides."""
    config = configs.get_config("penn", "tiny" if tiny else "full")
    if image_size is not None:
        config.image_size = int(image_size)
    if num_keypoints is not None:
        config.num_keypoints = int(num_keypoints)
    s1 = config.stage1
    # T's U-Net runs at image_size / 2^(levels - 1); keep that consistent with the image size.
    levels = len(s1.translator_filters) - 1
    if config.image_size % 2 ** levels:
        raise ValueError(f"--image_size={config.image_size} must be divisible by {2 ** levels}")
    s1.gaussian_size = config.image_size // 2 ** levels
    if batch_size is not None:
        s1.batch_size = config.stage2.batch_size = int(batch_size)
    elif not tiny:
        s1.batch_size = 16
    if (s1.batch_size if stage == 1 else config.stage2.batch_size) < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    return base.finalize(config)


def make_batch(config, stage: int, seed: int = 0) -> dict:
    """A fixed random batch: stage 1 `dict(source, target)` float32 `[B, S, S, 3]` in [-1, 1];
    stage 2 `dict(keypoints [B, T+1, K, 2] random walks in [-1, 1], label int32 [B])`."""
    rng = np.random.default_rng(seed)
    if stage == 1:
        b, s = config.stage1.batch_size, config.image_size
        return {name: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32))
                for name in ("source", "target")}
    b, k, t = config.stage2.batch_size, config.num_keypoints, config.data.seq_len
    walks = rng.uniform(-0.5, 0.5, (b, 1, k, 2)) + np.cumsum(
        rng.normal(0, 0.02, (b, t, k, 2)), axis=1)
    return {"keypoints": tf.constant(np.clip(walks, -1, 1).astype(np.float32)),
            "label": tf.constant(rng.integers(0, config.num_classes, b).astype(np.int32))}


def mode_config(config, stage: int, mode: str):
    """A copy of `config` whose stage asks for `mode`'s dtype policy and XLA setting."""
    config = config.copy_and_resolve_references()
    stage_config = config.stage1 if stage == 1 else config.stage2
    stage_config.mixed_precision, jit = MODE_SETTINGS[mode]
    stage_config.jit_compile = "true" if jit else "false"
    return config


def build_trainer(config, stage: int, perceptual_kind: str = "auto"):
    """A compiled trainer of `stage` as `kpvp.stages` builds it: under the stage's dtype policy,
    with its optimizers (loss-scaled under mixed_float16) and its `jit_compile` setting."""
    stage_config = config.stage1 if stage == 1 else config.stage2
    with precision.policy_scope(precision.stage_policy(stage_config)):
        if stage == 1:
            features = perceptual.make_perceptual_network(perceptual_kind,
                                                           config.stage1.vgg19_weights)
            trainer = stage1.build_trainer(config, features)
        else:
            trainer = stage2.build_trainer(config)
        trainer.compile(*loop.make_optimizers(stage_config),
                        jit_compile=precision.jit_setting(stage_config))
    return trainer


def step_function(trainer):
    """`train_step` as a `tf.function`, with XLA if the trainer was compiled with it."""
    return tf.function(trainer.train_step, jit_compile=bool(trainer.jit_compile))


# === Measurements ===
def time_steps(step, batch, warmup: int, steps: int) -> dict:
    """Runs `step(batch)` `warmup` times untimed, then `steps` timed; returns the seconds.

    Returns dict(warmup_seconds, seconds [steps], logs) with the last step's logs as floats.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        logs = step(batch)
        _ = {k: float(v) for k, v in logs.items()}  # waits for the step
    warmup_seconds = time.perf_counter() - start
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = step(batch)
        logs = {k: float(v) for k, v in logs.items()}
        seconds.append(time.perf_counter() - start)
    return {"warmup_seconds": warmup_seconds, "seconds": seconds, "logs": logs}


def profile_step(step, batch, logdir: str) -> dict:
    """Traces one call of `step(batch)` with the TF profiler into `logdir`.

    Returns dict(ops = {op type: [self seconds, executions]}, wall = seconds of the step).
    """
    tf.profiler.experimental.start(logdir, options=tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=2, python_tracer_level=0, device_tracer_level=1))
    try:
        start = time.perf_counter()
        _ = {k: float(v) for k, v in step(batch).items()}
        wall = time.perf_counter() - start
    finally:
        tf.profiler.experimental.stop()
    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    if not paths:
        raise RuntimeError(f"the profiler wrote no trace under {logdir}")
    return {"ops": op_self_times(paths[-1]), "wall": wall}


def op_self_times(path: str) -> dict:
    """{op type: [self seconds, executions]} of the TF ops in an `.xplane.pb` trace.

    An op event is named `name:type`; its self time is its duration minus that of the op events
    nested in it on the same thread. Ops of `CALL_OPS` are left out (their bodies count).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the trace's format, in TF
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = {}
    for plane in space.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            events = []
            for event in line.events:
                meta = metadata[event.metadata_id]
                op_type = (meta.display_name or meta.name.rpartition(":")[2]).strip()
                if ":" in meta.name and "::" not in meta.name and op_type:
                    events.append((event.offset_ps, event.offset_ps + event.duration_ps,
                                   op_type))
            events.sort(key=lambda e: (e[0], -e[1]))
            stack = []  # [end, type, self ps] of the op events enclosing the current one
            for start, end, op_type in events:
                while stack and stack[-1][0] <= start:
                    _close(stack.pop(), totals)
                if stack:
                    stack[-1][2] -= end - start
                stack.append([end, op_type, end - start])
            while stack:
                _close(stack.pop(), totals)
    return totals


def _close(entry, totals):
    _, op_type, self_ps = entry
    # A tf.function's call (`__inference_...`) waits for ops running on other threads.
    if op_type in CALL_OPS or op_type.startswith("__inference"):
        return
    total = totals.setdefault(op_type, [0.0, 0])
    total[0] += max(self_ps, 0) / 1e12
    total[1] += 1


def print_profile(mode: str, profile: dict, top: int) -> None:
    """The `top` op types by self time, with their share of all ops' self time."""
    ops = sorted(profile["ops"].items(), key=lambda item: -item[1][0])
    total = sum(seconds for seconds, _ in profile["ops"].values())
    print(f"{mode} profile: one traced step {profile['wall']:.3g} s wall, ops' self time "
          f"{total:.3g} s summed over threads; top op types by self time:")
    for op_type, (seconds, count) in ops[:top]:
        print(f"  {op_type:<34} {seconds:8.3f} s {100 * seconds / max(total, 1e-12):5.1f} %  "
              f"x{count}")
    if mode.endswith("xla"):
        print("  (XLA: the compiled cluster runs as one op; its fusions are not timed one by one)")


def graph_flops(graph, loop_trip_count: int = 1) -> int:
    """Floating-point operations of one run of `graph` (TF profiler, multiply-add = 2).

    Functions called by `While` ops count `loop_trip_count` times per call (the profiler alone
    skips them; the trip count of Keras' RNN loops is not a graph constant), functions of
    `PartitionedCall` ops once. Only ops with static shapes are counted.
    """
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    functions = getattr(graph, "_functions", {})
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile"):
            name, repeats = op.get_attr("body").name, loop_trip_count
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            name, repeats = op.get_attr("f").name, 1
        else:
            continue
        function = functions.get(name)
        if function is not None and getattr(function, "graph", None) is not None:
            total += repeats * graph_flops(function.graph, loop_trip_count)
    return total


def step_flops(step, batch, loop_trip_count: int = 1) -> int:
    """FLOPs of one call of the `tf.function` `step` on `batch` (its traced graph)."""
    return graph_flops(step.get_concrete_function(batch).graph, loop_trip_count)


def matmul_flops_per_second(size: int = 4096, repeats: int = 5, dtype=tf.float32) -> float:
    """Best FLOP/s of `size` x `size` matmuls in a `tf.function` (2 * size^3 FLOPs each)."""
    rng = np.random.default_rng(0)
    a = tf.cast(rng.standard_normal((size, size)).astype(np.float32), dtype)
    b = tf.cast(rng.standard_normal((size, size)).astype(np.float32), dtype)

    @tf.function
    def product(x, y):
        # A scalar result: copying the product out would be timed too.
        return tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1, :1], tf.float32))

    float(product(a, b))
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        float(product(a, b))
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def network_flops(trainer, config, stage: int) -> dict:
    """Forward FLOPs of each network on ONE example: `{name: flops}`.

    Stage 1: Q, T (and T's source encoder alone), D_im and the perceptual network on one
    image; stage 2: M (reconstruction, encoder + decoder) and D_seq on one sequence.
    """
    def count(fn, *args, trip_count=1):
        return graph_flops(tf.function(fn).get_concrete_function(*args).graph, trip_count)

    if stage == 1:
        size, k = config.image_size, config.num_keypoints
        image = tf.TensorSpec((1, size, size, 3), tf.float32)
        keypoints = tf.TensorSpec((1, k, 2), tf.float32)
        translator = trainer.translator
        return {
            "Q": count(lambda x: trainer.detector(x), image),
            "T": count(lambda x, a, b: translator([x, a, b])["image"], image, keypoints,
                       keypoints),
            "T encoder": count(translator.encode_source, image),
            "D_im": count(lambda x: trainer.discriminator(x), image),
            f"perceptual ({trainer.perceptual_network.source})":
                count(lambda x: trainer.perceptual_network(x), image),
        }
    steps, k = config.data.seq_len - 1, config.num_keypoints
    labels = tf.TensorSpec((1,), tf.int32)
    sequence = tf.TensorSpec((1, steps + 1, k, 2), tf.float32)
    future = tf.TensorSpec((1, steps, k, 2), tf.float32)
    discriminator = trainer.discriminator

    def discriminate(x, a):
        return discriminator([x, a]) if discriminator.num_classes else discriminator(x)

    return {
        "M": count(lambda x, a: trainer.generator([x, a])["keypoints"], sequence, labels,
                   trip_count=steps),
        "D_seq": count(discriminate, future, labels, trip_count=steps),
    }


def precision_report(trainer, batch, stage: int, logs: dict) -> dict:
    """Checks a trainer built under mixed precision.

    Returns dict(losses_float32, losses_finite, not_float32 = [(output name, dtype)]): the
    losses of the trainer's inference step (every loss term) and the logged ones, and the
    outputs that should be float32 (Q's keypoints, T's image/crude/mask, D logits, M's
    keypoints, mu and log-variance) but are not.
    """
    def dtype(x):
        return keras.backend.standardize_dtype(x.dtype)

    values, out = trainer.inference_losses(batch)
    if stage == 1:
        outputs = {f"T {name}" if name in ("image", "crude", "mask") else f"Q {name}": value
                   for name, value in out.items() if not name.endswith(("logits", "fake"))}
        outputs["D_im logits"] = out["fake_logits"]
    else:
        outputs = {f"M {name}": value for name, value in out.items()
                   if not name.endswith(("logits", "fake"))}
        outputs["D_seq logits"] = out["fake_logits"]
    loss_values = list(values.values())
    finite = [np.asarray(v, np.float64) for v in loss_values] + list(logs.values())
    return {
        "losses_float32": all(dtype(v) == "float32" for v in loss_values),
        "losses_finite": bool(np.all(np.isfinite(np.asarray(finite, np.float64)))),
        "not_float32": [(name, dtype(v)) for name, v in outputs.items()
                        if dtype(v) != "float32"],
    }


def run_mode(mode: str, config, stage: int, batch, perceptual_kind: str, warmup: int,
             steps: int, count_flops: bool, profile: bool = False) -> dict:
    """Builds a fresh trainer for `mode` (`mode_config`) and times it; counts FLOPs and traces
    one more step if asked.

    Returns dict(seconds, warmup_seconds, logs, and where measured: flops (one step),
    network_flops, precision (mixed modes), loss_scaled (optimizers wrapped), profile,
    perceptual_source (stage 1)).
    """
    trainer = build_trainer(mode_config(config, stage, mode), stage, perceptual_kind)
    step = step_function(trainer)
    result = time_steps(step, batch, warmup, steps)
    if count_flops:
        # Every loop of stage 2 runs over the T future frames.
        result["flops"] = step_flops(step, batch, loop_trip_count=config.data.seq_len - 1)
        result["network_flops"] = network_flops(trainer, config, stage)
    if profile:
        with tempfile.TemporaryDirectory() as logdir:
            result["profile"] = profile_step(step, batch, logdir)
    if MODE_SETTINGS[mode][0] != "float32":
        result["precision"] = precision_report(trainer, batch, stage, result["logs"])
    result["loss_scaled"] = all(
        isinstance(o, keras.optimizers.LossScaleOptimizer)
        for o in (trainer.generator_optimizer, trainer.discriminator_optimizer))
    if stage == 1:
        result["perceptual_source"] = trainer.perceptual_network.source
    return result


# === Report ===
def describe(config, stage: int, batch_size: int, perceptual_source: str = "") -> str:
    if stage == 1:
        s1 = config.stage1
        return (f"stage 1 (Q + T vs D_im), batch {batch_size}, {config.image_size}x"
                f"{config.image_size}, K={config.num_keypoints}, Q {tuple(s1.detector_filters)} "
                f"{s1.detector_decoder}, T {tuple(s1.translator_filters)} "
                f"{s1.translator_decoder}, D_im {tuple(s1.discriminator_filters)} "
                f"{s1.discriminator_head}, perceptual {perceptual_source}")
    s2 = config.stage2
    return (f"stage 2 (M vs D_seq), batch {batch_size}, T={config.data.seq_len - 1}, "
            f"K={config.num_keypoints}, {s2.lstm_layers}x{s2.lstm_units} LSTMs, "
            f"D_seq {s2.discriminator_units}, {config.num_classes} classes")


def run(f: flags.FlagValues) -> list:
    """Runs the benchmark with parsed flags `f` and prints the table; returns the failed modes."""
    stage = int(f.stage)
    unknown = [m for m in f.modes if m not in MODES]
    if unknown or not f.modes:
        raise app.UsageError(f"--modes: unknown {unknown}; expected a comma list of {MODES}")
    if f.steps < 1 or f.warmup < 0:
        raise app.UsageError(f"--steps must be >= 1 and --warmup >= 0, got {f.steps}, {f.warmup}")
    config = make_config(stage, f.tiny, f.batch_size, f.image_size, f.num_keypoints)
    batch = make_batch(config, stage, f.seed)
    batch_size = config.stage1.batch_size if stage == 1 else config.stage2.batch_size
    noun = "image" if stage == 1 else "sequence"
    unit = f"{noun}s/s"

    gpus = precision.gpu_compute_capabilities()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores "
          f"visible, {len(gpus)} GPU(s) {gpus or ''}, load average {os.getloadavg()[0]:.2f} "
          f"(other processes share the cores); {precision.cpu_bf16_summary()}")
    peak = matmul_flops_per_second(f.matmul_size, f.matmul_repeats, tf.float32)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({f.matmul_size}x{f.matmul_size}, best "
          f"of {f.matmul_repeats})", flush=True)
    if any(m.startswith("bf16") for m in f.modes):
        bf16_peak = matmul_flops_per_second(f.matmul_size, f.matmul_repeats, tf.bfloat16)
        print(f"bfloat16 matmul: {bf16_peak / 1e9:.1f} GFLOP/s ({bf16_peak / peak:.2f} x fp32)",
              flush=True)

    results, failed, flops = {}, [], None
    for mode in f.modes:
        try:
            r = run_mode(mode, config, stage, batch, f.perceptual, f.warmup, f.steps,
                         f.count_flops and flops is None, f.profile)
        except Exception as error:  # report every mode, then fail
            failed.append(mode)
            print(f"{mode}: FAILED: {type(error).__name__}: {str(error).splitlines()[0][:300]}",
                  flush=True)
            continue
        finally:
            keras.backend.clear_session()
            gc.collect()
        if not results:
            print(describe(config, stage, batch_size, r.get("perceptual_source", "")))
            if "flops" in r:
                flops = r["flops"]
                print(f"work of one training step: {flops / 1e9:.1f} GFLOP (TF profiler on the "
                      f"traced graph), {flops / 1e9 / batch_size:.2f} GFLOP per {noun}")
                print(f"forward GFLOP per {noun}: " + ", ".join(
                    f"{name} {value / 1e9:.3g}" for name, value in r["network_flops"].items()))
            print(f"{'mode':<8} {'s/step':>8} {'steps/s':>8} {unit:>11} {'GFLOP/s':>8} "
                  f"{'% of fp32 peak':>15} {'warm-up s':>10} {'x graph':>8}  losses")
        results[mode] = r
        seconds = float(np.mean(r["seconds"]))
        rate = flops / seconds if flops else float("nan")
        losses_text = ", ".join(f"{k} {v:.3g}" for k, v in r["logs"].items()
                                if k in ("d_loss", "g_loss"))
        ratio = (f"{np.mean(results['graph']['seconds']) / seconds:8.2f}"
                 if "graph" in results else f"{'-':>8}")
        print(f"{mode:<8} {seconds:8.4g} {1 / seconds:8.4g} {batch_size / seconds:11.4g} "
              f"{rate / 1e9:8.1f} {100 * rate / peak:15.1f} {r['warmup_seconds']:10.1f} "
              f"{ratio}  {losses_text}", flush=True)
    for mode, r in results.items():
        if "precision" in r:
            p = r["precision"]
            print(f"{mode} check: losses float32: {'yes' if p['losses_float32'] else 'NO'}, "
                  f"finite: {'yes' if p['losses_finite'] else 'NO'}; outputs that should be "
                  f"float32 but are not: "
                  f"{', '.join(f'{n} ({d})' for n, d in p['not_float32']) or 'none'}; "
                  f"optimizers loss-scaled: {'yes' if r['loss_scaled'] else 'no'}")
    if "graph" in results:
        base_seconds = np.mean(results["graph"]["seconds"])
        print("speed against the fp32 graph step: " + ", ".join(
            f"{mode} {base_seconds / np.mean(r['seconds']):.2f}x" for mode, r in results.items()))
    for mode, r in results.items():
        if "profile" in r:
            print_profile(mode, r["profile"], f.top_ops)
    return failed


def main(argv):
    del argv
    keras.utils.set_random_seed(flags.FLAGS.seed)
    if run(flags.FLAGS):
        raise SystemExit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
