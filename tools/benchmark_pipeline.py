"""Throughput of the input pipelines: stage-1 pairs/s and stage-2 sequences/s.

Runs `kpvp.data.pipelines.stage1_dataset` with all augmentation on (flip, rotation, zoom/crop,
one of the ten PIL filters) at batch 16 and 32 and `stage2_dataset` (temporal sampling plus
keypoint augmentation) at the same batch sizes, and prints examples per second after a warm-up
batch (tracing and the first parallel calls are not counted)::

    python tools/benchmark_pipeline.py                     # synthetic, 128x128, paper settings
    python tools/benchmark_pipeline.py --tiny --batches=10
    python tools/benchmark_pipeline.py --config.data.num_parallel_calls=1

Stage-1 training consumes about 1-2 images/s on a 2-core CPU (DESIGN.md), so the pipeline only
has to stay well above that. The stage-2 input is random smooth keypoint tracks with the
config's K (the pipeline does not look at where pseudo-labels come from).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import cli  # noqa: E402
from kpvp.data import pipelines  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batches", 20, "Batches timed per setting (after one warm-up batch).")
flags.DEFINE_integer("num_videos", 64, "Training videos to decode for stage 1 (0 = the "
                     "config's count); throughput does not depend on it, start-up time does.")
flags.DEFINE_string("batch_sizes", "16,32", "Comma-separated batch sizes to time.")


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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = cli.resolve_config(None)
    if FLAGS.num_videos and config.dataset == "synthetic":
        config.data.synthetic_num_train = FLAGS.num_videos
    sizes = [int(s) for s in FLAGS.batch_sizes.split(",") if s.strip()]
    print(f"dataset={config.dataset} ({config.variant}) image_size={config.image_size} "
          f"num_parallel_calls={config.data.num_parallel_calls} cpus={os.cpu_count()} "
          f"batches={FLAGS.batches}")

    start = time.perf_counter()
    pipelines.stage1_dataset(config, "train")  # decodes and keeps the videos for the runs below
    print(f"stage 1: decoded and cached the training videos in "
          f"{time.perf_counter() - start:.1f} s")
    for batch_size in sizes:
        config.stage1.batch_size = batch_size
        for label, filters in (("all augmentation", True), ("without PIL filters", False)):
            config.data.pil_filters = filters
            seconds = _timed(pipelines.stage1_dataset(config, "train"), FLAGS.batches)
            print(f"stage 1, batch {batch_size:3d}, {label:20s}: {batch_size / seconds:8.1f} "
                  f"pairs/s ({2 * batch_size / seconds:.1f} images/s, {seconds:.3f} s/batch)")
    config.data.pil_filters = True

    sequences = _random_tracks(512, config.num_keypoints, np.random.default_rng(0))
    for batch_size in sizes:
        config.stage2.batch_size = batch_size
        seconds = _timed(pipelines.stage2_dataset(sequences, config), FLAGS.batches)
        print(f"stage 2, batch {batch_size:3d}, K={config.num_keypoints}, "
              f"seq_len={config.data.seq_len}: {batch_size / seconds:8.1f} sequences/s "
              f"({seconds * 1000:.1f} ms/batch)")


if __name__ == "__main__":
    app.run(main)
