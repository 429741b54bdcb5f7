"""Throughput of the input pipelines, and whether they can feed training.

Runs `kpvp.data.pipelines.stage1_dataset` with all augmentation on (flip, rotation, zoom/crop,
one of the ten PIL filters) and `stage2_dataset` (temporal sampling plus keypoint
augmentation), at the config's batch sizes unless `--batch_sizes` says otherwise, and prints
examples per second after a warm-up batch (tracing and the first parallel calls are not
counted)::

    python tools/benchmark_pipeline.py                     # synthetic, 128x128, paper settings
    python tools/benchmark_pipeline.py --tiny --batches=10
    python tools/benchmark_pipeline.py --config.data.num_parallel_calls=1
    python tools/benchmark_pipeline.py --step_seconds=7.45 --stage2_step_seconds=9.4
    python tools/benchmark_pipeline.py --tiny --measure_steps=3 --step_mode=bf16

Each line also gives pairs (sequences) per second per core the pipeline may use (the visible
cores, or `num_parallel_calls` if fewer) and the training step rate it can feed: batches per
second at that batch size. A training step's time, given (`--step_seconds`,
`--stage2_step_seconds`, e.g. from `tools/benchmark_train.py`) or measured here on a random
batch (`--measure_steps`, `tools/benchmark_train.py`'s trainer in `--step_mode`), is printed
beside it with the verdict: the pipeline is the bottleneck when it feeds fewer steps per second
than training takes. Both are measured alone; in training they share the cores, so the margin
is an upper bound. The stage-2 input is random smooth keypoint tracks with the config's K (the
pipeline does not look at where pseudo-labels come from).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import cli  # noqa: E402
from kpvp.data import pipelines  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The tool's flags and the shared ones (only when run as a script)."""
    cli.define_flags()
    flags.DEFINE_integer("batches", 20, "Batches timed per setting (after one warm-up batch).")
    flags.DEFINE_integer("num_videos", 64, "Training videos to decode for stage 1 (0 = the "
                         "config's count); throughput does not depend on it, start-up time "
                         "does.")
    flags.DEFINE_list("batch_sizes", [], "Batch sizes to time (default: the config's stage-1 "
                      "and stage-2 batch sizes).")
    flags.DEFINE_float("step_seconds", None, "A stage-1 training step's seconds at the config's "
                       "batch size, to compare with what the pipeline feeds.")
    flags.DEFINE_float("stage2_step_seconds", None, "The same for stage 2.")
    flags.DEFINE_integer("measure_steps", 0, "Time this many training steps of each stage on a "
                         "random batch (after one untimed step) when no step time is given.")
    flags.DEFINE_string("step_mode", "graph", "tools/benchmark_train.py's mode for "
                        "--measure_steps (graph, bf16, xla, ...).")


def usable_cores(num_parallel_calls: int, cpus: int) -> int:
    """Cores the pipeline's parallel maps can keep busy: all visible ones under AUTOTUNE (-1)."""
    return cpus if num_parallel_calls < 1 else min(num_parallel_calls, cpus)


def feed_line(examples_per_second: float, batch_size: int, cores: int, unit: str,
              step_seconds=None) -> str:
    """The per-core rate and the step rate the pipeline feeds, against training if known."""
    feeds = examples_per_second / batch_size
    line = (f"{examples_per_second / cores:.1f} {unit}/s per core; feeds {feeds:.2f} steps/s "
            f"at batch {batch_size}")
    if step_seconds:
        needs = 1.0 / step_seconds
        verdict = ("the pipeline is the bottleneck" if feeds < needs
                   else f"{feeds / needs:.1f}x what training takes")
        line += f"; training {step_seconds:.3g} s/step = {needs:.2f} steps/s: {verdict}"
    return line


def measured_step_seconds(config, stage: int, steps: int, mode: str) -> float:
    """Median seconds of `steps` training steps of `stage` (tools/benchmark_train.py's trainer
    under `mode`, on a random batch at the config's batch size, one untimed step first)."""
    import benchmark_train  # tools/ is on sys.path when this runs as a script

    trainer = benchmark_train.build_trainer(
        benchmark_train.mode_config(config, stage, mode), stage)
    step = benchmark_train.step_function(trainer)
    timed = benchmark_train.time_steps(step, benchmark_train.make_batch(config, stage), 1, steps)
    return float(np.median(timed["seconds"]))


def _timed(dataset, batches: int):
    """Seconds per batch over `batches` batches after one warm-up batch."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - start) / batches


def _random_tracks(count: int, num_keypoints: int, rng: np.random.Generator):
    """Smooth random keypoint tracks of 40..150 frames in [-0.8, 0.8]."""
    sequences = []
    for i in range(count):
        length = int(rng.integers(40, 151))
        start = rng.uniform(-0.5, 0.5, (1, num_keypoints, 2))
        steps = rng.normal(0.0, 0.01, (length, num_keypoints, 2)).cumsum(0)
        keypoints = np.clip(start + steps, -0.8, 0.8).astype(np.float32)
        sequences.append({"keypoints": keypoints, "label": i % 4})
    return sequences


def _step_seconds(config, stage: int, given):
    if given or not FLAGS.measure_steps:
        return given
    seconds = measured_step_seconds(config, stage, FLAGS.measure_steps, FLAGS.step_mode)
    print(f"stage {stage}: training step measured here ({FLAGS.step_mode}, batch "
          f"{(config.stage1 if stage == 1 else config.stage2).batch_size}): {seconds:.3f} s")
    return seconds


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = cli.resolve_config(None)
    if FLAGS.num_videos and config.dataset == "synthetic":
        config.data.synthetic_num_train = FLAGS.num_videos
    sizes = [int(s) for s in FLAGS.batch_sizes]
    cpus = len(os.sched_getaffinity(0))
    cores = usable_cores(config.data.num_parallel_calls, cpus)
    print(f"dataset={config.dataset} ({config.variant}) image_size={config.image_size} "
          f"num_parallel_calls={config.data.num_parallel_calls} cpus={cpus} "
          f"batches={FLAGS.batches} load average {os.getloadavg()[0]:.2f}")
    step1 = _step_seconds(config, 1, FLAGS.step_seconds)
    step2 = _step_seconds(config, 2, FLAGS.stage2_step_seconds)

    start = time.perf_counter()
    pipelines.stage1_dataset(config, "train")  # decodes and keeps the videos for the runs below
    print(f"stage 1: decoded and cached the training videos in "
          f"{time.perf_counter() - start:.1f} s")
    train_batch = config.stage1.batch_size
    for batch_size in sizes or [train_batch]:
        config.stage1.batch_size = batch_size
        for label, filters in (("all augmentation", True), ("without PIL filters", False)):
            config.data.pil_filters = filters
            seconds = _timed(pipelines.stage1_dataset(config, "train"), FLAGS.batches)
            step = step1 if batch_size == train_batch else None
            print(f"stage 1, batch {batch_size:3d}, {label:20s}: {batch_size / seconds:8.1f} "
                  f"pairs/s ({2 * batch_size / seconds:.1f} images/s, {seconds:.3f} s/batch); "
                  + feed_line(batch_size / seconds, batch_size, cores, "pairs", step))
    config.data.pil_filters = True

    sequences = _random_tracks(512, config.num_keypoints, np.random.default_rng(0))
    train_batch = config.stage2.batch_size
    for batch_size in sizes or [train_batch]:
        config.stage2.batch_size = batch_size
        seconds = _timed(pipelines.stage2_dataset(sequences, config), FLAGS.batches)
        step = step2 if batch_size == train_batch else None
        print(f"stage 2, batch {batch_size:3d}, K={config.num_keypoints}, "
              f"seq_len={config.data.seq_len}: {batch_size / seconds:8.1f} sequences/s "
              f"({seconds * 1000:.1f} ms/batch); "
              + feed_line(batch_size / seconds, batch_size, cores, "sequences", step))


if __name__ == "__main__":
    define_flags()
    cli.run(main)
