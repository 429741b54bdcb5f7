"""Can the translator T use keypoints at all? Trains T on ground-truth joints instead of Q's.

    python tools/translator_oracle.py --tiny --steps=750 --eval_every=250

Stage 1 can fail in two ways: Q finds no keypoints, or T cannot turn keypoints into the target
frame (then Q gets no useful gradient, whatever it finds). This tool separates them. It trains
T alone, with the perceptual loss of stage 1 (no discriminator), on the data set's ground-truth
joints of the source and target frames as keypoints (an oracle Q), and every `--eval_every`
steps prints SSIM / PSNR of its reconstructions of the fixed test pairs next to those of copying
the source frame, the L1 error on the pixels where source and target differ (the full-frame
numbers hardly see a small moving figure), the mean of T's mask and the L1 of its crude image
(before the blend) where the frame changed. `--samples=PATH` writes a PNG of the first test
pairs at the end: source | target | crude image | mask | T's output. If T with oracle keypoints
does not beat copying within a budget, a stage-1 run of that length will not learn keypoints
either.

Needs a data set with joints (synthetic, penn).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

from kpvp import configs, losses, visualize  # noqa: E402
from kpvp.models import perceptual  # noqa: E402
from kpvp.data import pipelines, readers  # noqa: E402
from kpvp.metrics import frame_metrics  # noqa: E402
from kpvp.models import translator as translator_lib  # noqa: E402


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    flags.DEFINE_enum("dataset", "synthetic", ["synthetic", "penn"], "Data set with joints.",
                      flag_values=fv)
    flags.DEFINE_bool("tiny", False, "The data set's tiny config.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Root of the data set on disk.", flag_values=fv)
    flags.DEFINE_integer("steps", 750, "Training steps.", flag_values=fv)
    flags.DEFINE_integer("eval_every", 250, "Evaluate on the test pairs every N steps.",
                         flag_values=fv)
    flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: the config's).",
                       flag_values=fv)
    flags.DEFINE_float("gaussian_inv_std", None, "Gaussian maps' inv_std (default: config's).",
                       flag_values=fv)
    flags.DEFINE_bool("warp", None, "Blend with the source warped by the keypoints "
                      "(config.stage1.translator_warp; default: the config's).", flag_values=fv)
    flags.DEFINE_enum("perceptual", "auto", list(perceptual.KINDS), "Perceptual network.",
                      flag_values=fv)
    flags.DEFINE_float("l1_weight", 0.0, "Weight of a pixel L1 term added to the perceptual "
                       "loss (not in the paper).", flag_values=fv)
    flags.DEFINE_float("crude_weight", 0.0, "Weight of the perceptual loss of T's crude image "
                       "(before the blend) added to the loss (not in the paper).",
                       flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of T's initial weights and of the data order.",
                         flag_values=fv)
    flags.DEFINE_string("samples", "", "PNG to write at the end: source | target | crude | "
                        "mask | output of the first test pairs, one row each.", flag_values=fv)
    return fv


def make_config(dataset="synthetic", tiny=False, data_dir=None, learning_rate=None,
                gaussian_inv_std=None, warp=None):
    config = configs.get_config(dataset, "tiny" if tiny else "full")
    config.num_keypoints = 13  # the joints are the keypoints
    if data_dir:
        config.data.data_dir = data_dir
    if learning_rate is not None:
        config.stage1.learning_rate = float(learning_rate)
    if gaussian_inv_std is not None:
        config.stage1.gaussian_inv_std = float(gaussian_inv_std)
    if warp is not None:
        config.stage1.translator_warp = bool(warp)
    if not readers.open_source(config, "test").has_joints:
        raise ValueError(f"{dataset} has no ground-truth joints; the oracle needs them")
    return config


def build_translator(config, seed=0) -> translator_lib.MaskedTranslator:
    keras.utils.set_random_seed(seed)
    return translator_lib.build_translator(config)


def oracle_inputs(batch):
    return [batch["source"], batch["source_joints"], batch["target_joints"]]


def evaluate(translator, config) -> dict:
    """SSIM / PSNR / L1 where the frame changed, of T and of copying the source; T's mask."""
    return frame_metrics.reconstruction_metrics(
        pipelines.stage1_dataset(config, split="test"),
        lambda batch: translator(oracle_inputs(batch)))


def sample_grid(translator, config, rows: int = 6) -> np.ndarray:
    """uint8 grid of the first `rows` test pairs: source | target | crude | mask | output."""
    batches, grid = pipelines.stage1_dataset(config, split="test"), []
    for batch in batches:
        out = translator(oracle_inputs(batch))
        grid.append(visualize.side_by_side(
            visualize.to_uint8(batch["source"]), visualize.to_uint8(batch["target"]),
            visualize.to_uint8(out["crude"]), visualize.gray_to_rgb(out["mask"]),
            visualize.to_uint8(out["image"])))
        if sum(len(g) for g in grid) >= rows:
            break
    return np.concatenate(np.concatenate(grid)[:rows], axis=0)


def train(config, steps, eval_every, features, seed=0, report=print,
          l1_weight=0.0, samples="", crude_weight=0.0) -> list[dict]:
    """Trains T on oracle keypoints; returns the evaluations (step, oracle, copy, mask).

    The loss is stage 1's perceptual term (scaled as the trainer scales it) plus `l1_weight`
    times the pixel L1 to the target and `crude_weight` times the perceptual term of T's
    crude image (neither in the paper; 0 by default).
    """
    translator = build_translator(config, seed)
    scale = float(getattr(features, "loss_scale", 1.0))
    s1 = config.stage1
    optimizer = keras.optimizers.Adam(s1.learning_rate, beta_1=s1.beta_1, beta_2=s1.beta_2)

    @tf.function
    def step(batch):
        target_features = [tf.stop_gradient(f) for f in features(batch["target"])]
        with tf.GradientTape() as tape:
            out = translator(oracle_inputs(batch), training=True)
            loss = scale * losses.perceptual_loss(target_features, features(out["image"]))
            loss += l1_weight * losses.l1_loss(batch["target"], out["image"])
            if crude_weight:
                loss += crude_weight * scale * losses.perceptual_loss(
                    target_features, features(out["crude"]))
        variables = translator.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    results, start = [], time.time()
    data = pipelines.stage1_dataset(config, "train", seed=config.seed + seed)
    for i, batch in enumerate(data.take(steps), start=1):
        step(batch)
        if i % eval_every == 0 or i == steps:
            result = dict(step=i, seconds=round(time.time() - start, 1),
                          **evaluate(translator, config))
            results.append(result)
            rec, copy = result["reconstruction"], result["copy_source_baseline"]
            report(f"step {i:6d} ({result['seconds']:.0f} s): T with oracle keypoints SSIM "
                   f"{rec['ssim']:.4f} PSNR {rec['psnr']:.2f} dB L1 where changed "
                   f"{rec['changed_l1']:.4f} | copying the source SSIM {copy['ssim']:.4f} PSNR "
                   f"{copy['psnr']:.2f} dB L1 {copy['changed_l1']:.4f} | mean mask "
                   f"{result['mean_mask']:.3f}, crude image L1 where changed "
                   f"{result['crude_changed_l1']:.4f}")
    if samples:
        Image.fromarray(sample_grid(translator, config)).save(samples)
        report(f"wrote {samples}")
    return results


def main(argv):
    del argv
    f = flags.FLAGS
    config = make_config(f.dataset, f.tiny, f.data_dir, f.learning_rate, f.gaussian_inv_std,
                         f.warp)
    features = perceptual.make_perceptual_network(f.perceptual, config.stage1.vgg19_weights)
    print(f"T on ground-truth joints: {f.dataset}{' (tiny)' if f.tiny else ''}, "
          f"{config.image_size}x{config.image_size}, batch {config.stage1.batch_size}, lr "
          f"{config.stage1.learning_rate:g}, gaussian inv_std {config.stage1.gaussian_inv_std:g}, "
          f"perceptual {features.source}, warp {config.stage1.translator_warp}", flush=True)
    if f.l1_weight:
        print(f"plus {f.l1_weight:g} x pixel L1 (not in the paper)", flush=True)
    if f.crude_weight:
        print(f"plus {f.crude_weight:g} x the crude image's perceptual term (not in the paper)",
              flush=True)
    train(config, f.steps, f.eval_every, features, f.seed,
          report=lambda line: print(line, flush=True), l1_weight=f.l1_weight, samples=f.samples,
          crude_weight=f.crude_weight)


if __name__ == "__main__":
    define_flags()
    app.run(main)
