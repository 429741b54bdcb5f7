"""Training-step throughput of stage 1 (Q + T vs D_im) or stage 2 (M vs D_seq) on this machine.

    python tools/benchmark_train.py                         # stage 1, the paper's settings
    python tools/benchmark_train.py --perceptual=random     # VGG19 architecture (DESIGN.md's)
    python tools/benchmark_train.py --stage=2               # batch 16, 2 x 1024 LSTMs
    python tools/benchmark_train.py --tiny --batch_size=2 --steps=2 --matmul_size=1024

For each mode a fresh trainer is built and compiled (`kpvp.trainers.loop.make_optimizers`), its
`train_step` (one D update + one G update) is run `--warmup` times (tracing / compiling, not
timed) and then timed over `--steps` steps on a fixed random batch:

* graph: `tf.function(train_step)`, float32;
* xla: `tf.function(train_step, jit_compile=True)`, float32;
* bf16: graph with every network built under the `mixed_bfloat16` policy (variables stay
  float32); the policy is reset afterwards. The losses are checked to be float32 and finite,
  and the outputs that the networks should keep in float32 (keypoints, image and mask heads,
  logits, mu and log-variance) are listed if they are not.

The work of one training step is counted on the traced graph with the TF profiler
(`float_operation`; a multiply-add counts 2). Ops inside `tf.while_loop` bodies (the LSTMs of
stage 2) are counted per iteration and multiplied by the sequence length. The machine's fp32
peak is the best of `--matmul_repeats` square `tf.linalg.matmul`s of `--matmul_size`; each
mode's executed FLOP/s is printed as a fraction of it. Stage 1 "images" are (source, target)
pairs, as in DESIGN.md's reference numbers; stage 2 counts keypoint sequences.
"""
import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import configs  # noqa: E402
from kpvp.models import perceptual  # noqa: E402
from kpvp.configs import base  # noqa: E402
from kpvp.trainers import loop, stage1, stage2  # noqa: E402

MODES = ("graph", "xla", "bf16")


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
    flags.DEFINE_list("modes", list(MODES), f"Comma list of modes out of {MODES}.",
                      flag_values=fv)
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


def build_trainer(config, stage: int, perceptual_kind: str = "auto"):
    """A compiled trainer of `stage`, built under the current dtype policy."""
    if stage == 1:
        features = perceptual.make_perceptual_network(perceptual_kind,
                                                       config.stage1.vgg19_weights)
        trainer = stage1.build_trainer(config, features)
        trainer.compile(*loop.make_optimizers(config.stage1))
    else:
        trainer = stage2.build_trainer(config)
        trainer.compile(*loop.make_optimizers(config.stage2))
    return trainer


def step_function(trainer, mode: str):
    """`train_step` as a `tf.function` (with XLA for mode 'xla')."""
    return tf.function(trainer.train_step, jit_compile=mode == "xla")


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
             steps: int, count_flops: bool) -> dict:
    """Builds a fresh trainer for `mode` and times it; counts FLOPs if asked.

    Returns dict(seconds, warmup_seconds, logs, and where measured: flops (one step),
    network_flops, precision (bf16), perceptual_source (stage 1)).
    """
    previous = keras.mixed_precision.global_policy()
    if mode == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trainer = build_trainer(config, stage, perceptual_kind)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    step = step_function(trainer, mode)
    result = time_steps(step, batch, warmup, steps)
    if count_flops:
        # Every loop of stage 2 runs over the T future frames.
        result["flops"] = step_flops(step, batch, loop_trip_count=config.data.seq_len - 1)
        result["network_flops"] = network_flops(trainer, config, stage)
    if mode == "bf16":
        result["precision"] = precision_report(trainer, batch, stage, result["logs"])
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

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores "
          f"visible, load average {os.getloadavg()[0]:.2f} (other processes share the cores)")
    peak = matmul_flops_per_second(f.matmul_size, f.matmul_repeats, tf.float32)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({f.matmul_size}x{f.matmul_size}, best "
          f"of {f.matmul_repeats})", flush=True)
    if "bf16" in f.modes:
        bf16_peak = matmul_flops_per_second(f.matmul_size, f.matmul_repeats, tf.bfloat16)
        print(f"bfloat16 matmul: {bf16_peak / 1e9:.1f} GFLOP/s ({bf16_peak / peak:.2f} x fp32)",
              flush=True)

    results, failed, flops = {}, [], None
    for mode in f.modes:
        try:
            r = run_mode(mode, config, stage, batch, f.perceptual, f.warmup, f.steps,
                         f.count_flops and flops is None)
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
            print(f"{'mode':<6} {'s/step':>8} {'steps/s':>8} {unit:>11} {'GFLOP/s':>8} "
                  f"{'% of fp32 peak':>15} {'warm-up s':>10}  losses")
        results[mode] = r
        seconds = float(np.mean(r["seconds"]))
        rate = flops / seconds if flops else float("nan")
        losses_text = ", ".join(f"{k} {v:.3g}" for k, v in r["logs"].items()
                                if k in ("d_loss", "g_loss"))
        print(f"{mode:<6} {seconds:8.4g} {1 / seconds:8.4g} {batch_size / seconds:11.4g} "
              f"{rate / 1e9:8.1f} {100 * rate / peak:15.1f} {r['warmup_seconds']:10.1f}  "
              f"{losses_text}", flush=True)
    if "bf16" in results:
        p = results["bf16"]["precision"]
        print(f"bf16 check: losses float32: {'yes' if p['losses_float32'] else 'NO'}, finite: "
              f"{'yes' if p['losses_finite'] else 'NO'}; outputs that should be float32 but are "
              f"not: {', '.join(f'{n} ({d})' for n, d in p['not_float32']) or 'none'}")
        if "graph" in results:
            speedup = np.mean(results["graph"]["seconds"]) / np.mean(results["bf16"]["seconds"])
            print(f"bf16 vs graph fp32: {speedup:.2f} x the speed")
    return failed


def main(argv):
    del argv
    keras.utils.set_random_seed(flags.FLAGS.seed)
    if run(flags.FLAGS):
        raise SystemExit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
