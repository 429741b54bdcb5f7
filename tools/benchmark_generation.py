"""Generation latency: one image + action -> a 32-frame video (Q once, M, T per frame).

    python tools/benchmark_generation.py                   # the paper's settings, batch 1 and 4
    python tools/benchmark_generation.py --tiny --batch_sizes=1 --repeats=1
    python tools/benchmark_generation.py --translator=light   # the light T for serving
    python tools/benchmark_generation.py --variant=authors    # the authors' T (no warp)

Untrained networks at the paper's settings (Penn Action: K = 40, 128x128, M with 2 x 1024
LSTMs, T = `config.data.seq_len - 1` = 32 predicted frames). For each mode and batch size the
whole path is run `--warmup` times untimed (tracing) and `--repeats` times timed; the best
repeat is reported, split into Q (keypoints of x0), M (sampling k_1..k_T) and T (the source
encoder once, then the decoder on `generation.FRAMES_PER_CALL` frames per call), each waited
for before the next starts:

* eager: the networks called op by op (as `generate()` ran them before it became one
  `tf.function`); the total time of `generate()` itself (uint8 in, uint8 video out, one
  graph) is printed beside it;
* graph: the same three parts, each in a `tf.function`;
* bf16: graph with the networks built under the `mixed_bfloat16` policy (reset afterwards);
  `generate()` is tried once too and its output dtypes are checked.

Latency is per batch; frames/s counts predicted frames (batch x T) per second. Every mode's
networks get the same weights (`--seed`), so each mode's frames are compared with the fp32
graph's at the end: the speed ratio and the largest difference in grey levels.
"""
import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import configs, generation  # noqa: E402
from kpvp.configs import base  # noqa: E402
from kpvp.models import motion_cvae, precision  # noqa: E402
from kpvp.models import keypoint_detector, translator as translator_lib  # noqa: E402
from kpvp.ops import images as image_ops  # noqa: E402

MODES = ("eager", "graph", "bf16")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Defines the command-line flags in `fv` (only when run as a script, or in a fresh
    `FlagValues`, so the module imports cleanly next to other absl apps); returns `fv`."""
    flags.DEFINE_list("batch_sizes", ["1", "4"], "Videos per call, comma list.", flag_values=fv)
    flags.DEFINE_list("modes", list(MODES), f"Comma list of modes out of {MODES}.",
                      flag_values=fv)
    flags.DEFINE_integer("repeats", 3, "Timed calls per mode and batch size (the best is shown).",
                         flag_values=fv)
    flags.DEFINE_integer("warmup", 1, "Untimed calls per mode and batch size (tracing).",
                         flag_values=fv)
    flags.DEFINE_integer("image_size", None, "Image size (default: the config's, 128; tiny 64).",
                         flag_values=fv)
    flags.DEFINE_integer("num_keypoints", None, "K (default: the config's, 40; tiny 12).",
                         flag_values=fv)
    flags.DEFINE_integer("num_frames", None, "Predicted frames per video (default: "
                         "config.data.seq_len - 1 = 32).", flag_values=fv)
    flags.DEFINE_bool("tiny", False, "Penn Action's tiny config instead of the paper's settings "
                      "(--variant=tiny).", flag_values=fv)
    flags.DEFINE_enum("variant", "full", configs.VARIANTS, "Config variant: full (the default), "
                      "authors (the authors' networks exactly: T without the warped source), "
                      "tiny, paper_small.", flag_values=fv)
    flags.DEFINE_string("translator", None, "config.stage1.translator, e.g. light (default: "
                        "the config's, masked).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the weights' initialisation, the images and z.",
                         flag_values=fv)
    return fv


# === Set-up ===
def make_config(tiny: bool = False, image_size=None, num_keypoints=None, num_frames=None,
                translator=None, variant="full"):
    """Penn Action's config (`variant`; `tiny` forces the tiny one) with the benchmark's
    overrides."""
    config = configs.get_config("penn", "tiny" if tiny else variant)
    if translator:
        if translator not in translator_lib.TRANSLATORS:
            raise ValueError(f"--translator must be one of {sorted(translator_lib.TRANSLATORS)}"
                             f", got {translator!r}")
        config.stage1.translator = translator
    if num_frames is not None:
        if int(num_frames) < 1:
            raise ValueError(f"--num_frames must be >= 1, got {num_frames}")
        # M decodes seq_len - 1 future frames after k0.
        config.data.seq_len = int(num_frames) + 1
    if image_size is not None:
        config.image_size = int(image_size)
    if num_keypoints is not None:
        config.num_keypoints = int(num_keypoints)
    levels = len(config.stage1.translator_filters) - 1
    if config.image_size % 2 ** levels:
        raise ValueError(f"--image_size={config.image_size} must be divisible by {2 ** levels}")
    config.stage1.gaussian_size = config.image_size // 2 ** levels
    return base.finalize(config)


def build_generator(config, seed: int = 0) -> generation.VideoGenerator:
    """Untrained Q, M, T of `config` (as the trainers build them) under the current policy;
    `seed` seeds M's noise (the script seeds the weights' initialisers globally)."""
    detector = keypoint_detector.build_detector(config)
    translator = translator_lib.build_translator(config)
    motion = motion_cvae.build_motion_generator(config, seed=seed)
    size = config.image_size
    images = keras.ops.zeros((1, size, size, 3))
    keypoints = detector(images)
    translator([images, keypoints, keypoints])
    motion.build()
    return generation.VideoGenerator(detector, motion, translator, config.class_names)


class Parts:
    """The three stages of generation as callables, eager or each in a `tf.function`."""

    def __init__(self, generator: generation.VideoGenerator, compiled: bool, seed: int):
        def sample(k0, labels):
            return generator.motion_generator.sample(k0, labels, seed=seed)

        wrap = tf.function if compiled else (lambda fn: fn)
        self.q = wrap(generator.detector)
        self.m = wrap(sample)
        self.t = wrap(generator.render)


def run_parts(parts: Parts, generator, images, labels) -> dict:
    """One video batch through Q, M, T, waiting after each.

    Returns dict(q, m, t, total) in seconds and `dtypes` of the keypoints Q and M produced.
    """
    start = time.perf_counter()
    x0 = generator.preprocess(images)
    k0 = parts.q(x0)
    k0.numpy()
    after_q = time.perf_counter()
    future = parts.m(k0, labels)
    future.numpy()
    after_m = time.perf_counter()
    frames, _ = parts.t(x0, k0, future)
    video = image_ops.to_uint8(frames).numpy()
    end = time.perf_counter()
    if video.shape[1] != future.shape[1]:
        raise AssertionError(f"expected {future.shape[1]} frames, got video {video.shape}")
    return {"q": after_q - start, "m": after_m - after_q, "t": end - after_m,
            "total": end - start, "dtypes": {"Q k0": k0.dtype.name, "M k_1:T": future.dtype.name},
            "video": video}


def time_generation(parts, generator, images, labels, warmup: int, repeats: int) -> dict:
    """Best of `repeats` `run_parts` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        run_parts(parts, generator, images, labels)
    runs = [run_parts(parts, generator, images, labels) for _ in range(max(1, repeats))]
    return min(runs, key=lambda r: r["total"])


def time_generate_call(generator, images, labels, seed: int, repeats: int) -> float:
    """Best seconds of `VideoGenerator.generate` (after one untimed call)."""
    generator.generate(images, labels, seed=seed)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        generator.generate(images, labels, seed=seed)
        best = min(best, time.perf_counter() - start)
    return best


def check_generate(generator, images, labels, seed: int) -> str:
    """Runs `generate()` once; '' if its outputs have the documented dtypes, else the problem."""
    try:
        out = generator.generate(images, labels, seed=seed)
    except Exception as error:  # the report names the failure
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    wrong = [f"{name} {out[name].dtype}" for name, dtype in
             (("video", np.uint8), ("keypoints", np.float32), ("mask", np.float32))
             if out[name].dtype != dtype]
    if not np.all(np.isfinite(out["keypoints"])):
        wrong.append("non-finite keypoints")
    return ", ".join(wrong)


def run(f: flags.FlagValues) -> list:
    """Runs the benchmark with parsed flags `f` and prints the table; returns the failed modes."""
    unknown = [m for m in f.modes if m not in MODES]
    if unknown or not f.modes:
        raise app.UsageError(f"--modes: unknown {unknown}; expected a comma list of {MODES}")
    try:
        batch_sizes = [int(b) for b in f.batch_sizes]
    except ValueError as error:
        raise app.UsageError(f"--batch_sizes must be integers, got {f.batch_sizes}") from error
    if not batch_sizes or min(batch_sizes) < 1:
        raise app.UsageError(f"--batch_sizes must be >= 1, got {f.batch_sizes}")
    config = make_config(f.tiny, f.image_size, f.num_keypoints, f.num_frames, f.translator,
                         f.variant)
    steps = config.data.seq_len - 1
    s2 = config.stage2
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, load average "
          f"{os.getloadavg()[0]:.2f} (other processes share the cores); "
          f"{precision.cpu_bf16_summary()}")
    warp = ", warped source" if config.stage1.translator_warp else ""
    print(f"untrained networks ({config.variant}): {config.image_size}x{config.image_size}, "
          f"K={config.num_keypoints}, T {config.stage1.translator}{warp}, M "
          f"{s2.lstm_layers}x{s2.lstm_units} LSTMs, {steps} predicted frames per video")
    rng = np.random.default_rng(f.seed)
    print(f"{'mode':<6} {'batch':>5} {'latency s':>10} {'frames/s':>9} {'Q s':>7} {'M s':>7} "
          f"{'T s':>7} {'T share':>8} {'generate() s':>13}", flush=True)
    notes, failed, results = [], [], {}
    inputs = {b: rng.integers(0, 256, (b, config.image_size, config.image_size, 3),
                              dtype=np.uint8) for b in batch_sizes}
    for mode in f.modes:
        previous = keras.mixed_precision.global_policy()
        try:
            if mode == "bf16":
                keras.mixed_precision.set_global_policy("mixed_bfloat16")
            keras.utils.set_random_seed(f.seed)  # every mode: the same weights
            try:
                generator = build_generator(config, f.seed)
            finally:
                keras.mixed_precision.set_global_policy(previous)
            parts = Parts(generator, compiled=mode != "eager", seed=f.seed)
            for b in batch_sizes:
                images = inputs[b]
                labels = tf.constant(np.arange(b) % config.num_classes, tf.int32)
                r = time_generation(parts, generator, images, labels, f.warmup, f.repeats)
                results[(mode, b)] = r
                generate = f"{'-':>13}"
                if mode == "eager":
                    seconds = time_generate_call(generator, images, labels, f.seed, f.repeats)
                    generate = f"{seconds:13.4g}"
                print(f"{mode:<6} {b:5d} {r['total']:10.4g} {b * steps / r['total']:9.4g} "
                      f"{r['q']:7.4g} {r['m']:7.4g} {r['t']:7.4g} "
                      f"{100 * r['t'] / r['total']:7.1f}% {generate}", flush=True)
            if mode == "bf16":
                dtypes = ", ".join(f"{name} {dtype}" for name, dtype in r["dtypes"].items())
                problem = check_generate(generator, images, labels, f.seed)
                notes.append(f"bf16 keypoint dtypes: {dtypes}; generate(): "
                             + (problem or "works, output dtypes as documented"))
        except Exception as error:  # report every mode, then fail
            failed.append(mode)
            print(f"{mode}: FAILED: {type(error).__name__}: {str(error).splitlines()[0][:300]}",
                  flush=True)
        keras.backend.clear_session()
        gc.collect()
    for note in notes:
        print(note)
    for b in batch_sizes:
        if ("graph", b) not in results:
            continue
        base_run = results[("graph", b)]
        for mode in f.modes:
            if mode == "graph" or (mode, b) not in results:
                continue
            r = results[(mode, b)]
            grey = np.abs(r["video"].astype(np.int32) - base_run["video"].astype(np.int32))
            print(f"batch {b}: {mode} {base_run['total'] / r['total']:.2f}x the fp32 graph "
                  f"speed ({b * steps / r['total']:.1f} against {b * steps / base_run['total']:.1f}"
                  f" frames/s); frames differ from the fp32 graph's by at most {grey.max()} grey "
                  f"levels (mean {grey.mean():.3f}; same weights and input)")
    return failed


def main(argv):
    del argv
    keras.utils.set_random_seed(flags.FLAGS.seed)
    if run(flags.FLAGS):
        raise SystemExit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
