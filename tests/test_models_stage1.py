"""Stage-1 networks: the keypoint detector Q and the masked translator T."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs
from kpvp.models import keypoint_detector, translator as translator_lib
from kpvp.models.keypoint_detector import KeypointDetector
from kpvp.models.translator import MaskedTranslator, masked_blend
from kpvp.ops import keypoints as kp_ops
from kpvp.ops import warping

from helpers import model_checks


def random_images(rng, batch, size):
    return rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


def random_keypoints(rng, batch, num_keypoints):
    return rng.uniform(-0.9, 0.9, (batch, num_keypoints, 2)).astype(np.float32)


# === Q ===

def test_detector_shared_checks(rng, tmp_path):
    detector = KeypointDetector(5, filters=(8, 16, 16), softmax_temperature=0.1)
    outputs = model_checks.check_network(detector, random_images(rng, 2, 32), (2, 5, 2), tmp_path)
    keypoints = np.asarray(outputs["output"])
    assert np.all(np.abs(keypoints) < 1)  # an expectation over pixel centres


def test_detector_maps_are_the_distributions_of_its_keypoints(rng):
    detector = KeypointDetector(3, filters=(8, 16), softmax_mode="marginal", norm="instance")
    images = random_images(rng, 2, 16)
    keypoints, maps = detector(images, return_heatmaps=True)
    assert maps.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(np.asarray(maps).sum(axis=(1, 2)), np.ones((2, 3)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(kp_ops.expected_keypoints(maps)),
                               np.asarray(keypoints), atol=1e-6)
    logits = detector.heatmap_logits(images)
    np.testing.assert_allclose(
        np.asarray(kp_ops.spatial_softmax_keypoints(logits, "marginal")),
        np.asarray(keypoints), atol=1e-6)


def test_fresh_detector_keypoints_move_with_the_image_only_at_a_low_temperature(rng):
    # The cold start the temperature is for: a freshly initialised Q's logits are nearly flat,
    # so at temperature 1 its keypoints barely depend on the image; at 0.1 (same weights) they
    # spread about ten times as far, giving T positions to learn from.
    keras.utils.set_random_seed(0)
    paper = KeypointDetector(4, filters=(8, 16, 16))
    sharp = KeypointDetector(4, filters=(8, 16, 16), softmax_temperature=0.1)
    images = random_images(rng, 16, 32)
    paper(images[:1])
    sharp(images[:1])
    sharp.set_weights(paper.get_weights())
    spread_paper = np.asarray(paper(images)).std(axis=0).mean()
    spread_sharp = np.asarray(sharp(images)).std(axis=0).mean()
    assert spread_paper < 0.02
    assert spread_sharp > 5 * spread_paper


def test_build_detector_and_bad_images(rng):
    config = configs.get_config("synthetic", "tiny")
    config.stage1.softmax_temperature = 0.25
    detector = keypoint_detector.build_detector(config)
    keypoints = detector(random_images(rng, 1, config.image_size))
    assert keypoints.shape == (1, config.num_keypoints, 2)
    assert detector.spatial_softmax.temperature == 0.25
    assert detector.get_config()["filters"] == list(config.stage1.detector_filters)
    with pytest.raises(ValueError, match="images"):
        detector(random_images(rng, 1, 36))  # 36 is not a multiple of 2 ** 3
    with pytest.raises(ValueError, match="num_keypoints"):
        KeypointDetector(0)


# === T ===

def small_translator(**kwargs):
    args = dict(image_size=32, num_keypoints=4, filters=(8, 16, 16), gaussian_size=8,
                gaussian_inv_std=5.0)
    args.update(kwargs)
    return MaskedTranslator(**args)


def test_translator_shared_checks(rng, tmp_path):
    translator = small_translator()
    inputs = [random_images(rng, 2, 32), random_keypoints(rng, 2, 4), random_keypoints(rng, 2, 4)]
    outputs = model_checks.check_network(
        translator, inputs,
        {"image": (2, 32, 32, 3), "crude": (2, 32, 32, 3), "mask": (2, 32, 32, 1)}, tmp_path)
    mask, crude = np.asarray(outputs["mask"]), np.asarray(outputs["crude"])
    assert mask.min() >= 0 and mask.max() <= 1
    # "mask" is the share of the crude image, 1 - m of eq. 3.
    np.testing.assert_allclose(
        np.asarray(outputs["image"]), mask * crude + (1 - mask) * inputs[0], atol=1e-6)


def test_our_unet_translator_shared_checks_and_tanh_crude_image(rng, tmp_path):
    translator = small_translator(decoder_layout="unet", crude_activation="tanh",
                                  mask_weighs="crude", use_bias=False, bn_momentum=0.99,
                                  bn_epsilon=1e-3)
    inputs = [random_images(rng, 2, 32), random_keypoints(rng, 2, 4), random_keypoints(rng, 2, 4)]
    outputs = model_checks.check_network(
        translator, inputs,
        {"image": (2, 32, 32, 3), "crude": (2, 32, 32, 3), "mask": (2, 32, 32, 1)}, tmp_path)
    mask, crude = np.asarray(outputs["mask"]), np.asarray(outputs["crude"])
    assert crude.min() >= -1 and crude.max() <= 1
    np.testing.assert_allclose(
        np.asarray(outputs["image"]), mask * crude + (1 - mask) * inputs[0], atol=1e-6)


def test_warping_translator_shared_checks_and_blend_with_the_warped_source(rng, tmp_path):
    translator = small_translator(warp=True, warp_inv_std=6.0, warp_background=0.05)
    source, source_kp, target_kp = random_images(rng, 2, 32), random_keypoints(rng, 2, 4), \
        random_keypoints(rng, 2, 4)
    outputs = model_checks.check_network(
        translator, [source, source_kp, target_kp],
        {"image": (2, 32, 32, 3), "crude": (2, 32, 32, 3), "mask": (2, 32, 32, 1),
         "warped": (2, 32, 32, 3)}, tmp_path)
    warped = np.asarray(warping.keypoint_warp(source, source_kp, target_kp, 6.0, 0.05))
    np.testing.assert_allclose(np.asarray(outputs["warped"]), warped, atol=1e-6)
    assert np.abs(warped - source).max() > 0.1  # the keypoints moved, so did the pixels
    mask, crude = np.asarray(outputs["mask"]), np.asarray(outputs["crude"])
    np.testing.assert_allclose(np.asarray(outputs["image"]),
                               mask * crude + (1 - mask) * warped, atol=1e-6)
    # With m = 1 (eq. 3), the same keypoints in source and target give back the source.
    kernel, _ = translator.mask_head.get_weights()
    translator.mask_head.set_weights([np.zeros_like(kernel), np.full((1,), 1e4, np.float32)])
    still = translator([source, source_kp, source_kp])
    np.testing.assert_allclose(np.asarray(still["image"]), source, atol=1e-5)


def test_translator_warps_only_when_the_config_says_so():
    for dataset in ("penn", "nemo", "mgif", "synthetic"):  # the paper's T, as the authors'
        assert not translator_lib.build_translator(configs.get_config(dataset, "authors")).warp
        assert translator_lib.build_translator(configs.get_config(dataset)).warp  # full: ours
    config = configs.get_config("synthetic", "tiny")
    assert translator_lib.build_translator(config).warp
    config.stage1.translator_warp = False
    assert not translator_lib.build_translator(config).warp
    config.stage1.translator_warp = True
    config.stage1.warp_inv_std = 7.0
    translator = translator_lib.build_translator(config)
    assert translator.warp and translator.warp_inv_std == 7.0
    assert translator.warp_background == config.stage1.warp_background
    with pytest.raises(ValueError, match="warp_background"):
        small_translator(warp=True, warp_background=0.0)


def test_masked_blend_is_eq_3_on_hand_values():
    # v_hat = m * s + (1 - m) * v_crude: m = 1 keeps the source, m = 0 takes the crude image.
    mask = np.array([0.0, 1.0, 0.25], np.float32).reshape(1, 1, 3, 1)
    crude = np.full((1, 1, 3, 3), 0.8, np.float32)
    source = np.full((1, 1, 3, 3), -0.4, np.float32)
    blended = np.asarray(masked_blend(mask, crude, source))[0, 0, :, 0]
    np.testing.assert_allclose(blended, [0.8, -0.4, 0.25 * -0.4 + 0.75 * 0.8], atol=1e-6)


@pytest.mark.parametrize("mask_weighs,bias,expected", [
    ("source", 1e4, "source"), ("source", -1e4, "crude"),
    ("crude", -1e4, "source"), ("crude", 1e4, "crude")])
def test_translator_with_saturated_mask_returns_source_or_crude(rng, mask_weighs, bias, expected):
    translator = small_translator(mask_weighs=mask_weighs)
    source = random_images(rng, 2, 32)
    inputs = [source, random_keypoints(rng, 2, 4), random_keypoints(rng, 2, 4)]
    translator(inputs)
    kernel, _ = translator.mask_head.get_weights()
    translator.mask_head.set_weights([np.zeros_like(kernel), np.full((1,), bias, np.float32)])
    outputs = translator(inputs)
    reference = source if expected == "source" else np.asarray(outputs["crude"])
    np.testing.assert_array_equal(np.asarray(outputs["image"]), reference)
    # "mask" is the share of the crude image whichever way the head is read.
    assert float(np.asarray(outputs["mask"]).mean()) == (0.0 if expected == "source" else 1.0)


@pytest.mark.parametrize("mask_weighs", ["source", "crude"])
def test_initial_crude_share_sets_the_mask_at_initialisation(rng, mask_weighs):
    source = random_images(rng, 2, 32)
    inputs = [source, random_keypoints(rng, 2, 4), random_keypoints(rng, 2, 4)]
    translator = small_translator(mask_weighs=mask_weighs, initial_crude_share=0.9)
    translator(inputs)
    _, bias = translator.mask_head.get_weights()
    # logit(0.9) = ln 9, on whichever side of eq. 3 the head weighs.
    assert float(bias[0]) == pytest.approx(np.log(9.0) * (-1 if mask_weighs == "source" else 1))
    kernel, _ = translator.mask_head.get_weights()
    translator.mask_head.set_weights([np.zeros_like(kernel), bias])
    outputs = translator(inputs)
    np.testing.assert_allclose(np.asarray(outputs["mask"]), 0.9, atol=1e-6)
    config = translator.get_config()
    assert config["initial_crude_share"] == 0.9
    with pytest.raises(ValueError, match="initial_crude_share"):
        small_translator(initial_crude_share=1.0)


@pytest.mark.parametrize("decoder_layout", ["plain", "unet"])
def test_encode_once_decode_many_equals_call(rng, decoder_layout):
    translator = small_translator(norm="instance", bottleneck_depth=1,
                                  decoder_layout=decoder_layout)
    source, source_kp = random_images(rng, 1, 32), random_keypoints(rng, 1, 4)
    targets = random_keypoints(rng, 3, 4)
    features = translator.encode_source(source)
    assert features.shape == (1, 8, 8, 8)  # gaussian_size^2 x half of filters[-1]
    repeat = lambda x: np.repeat(np.asarray(x), 3, axis=0)  # noqa: E731
    video = translator.decode(repeat(features), repeat(source), repeat(source_kp), targets)
    direct = translator([repeat(source), repeat(source_kp), targets])
    for key in ("image", "crude", "mask"):
        # Not bit-equal: the encoder ran on a batch of 1 here and of 3 there.
        np.testing.assert_allclose(np.asarray(video[key]), np.asarray(direct[key]), atol=1e-4)
    # The target keypoints matter: different targets give different frames.
    assert np.abs(np.asarray(video["image"][0]) - np.asarray(video["image"][1])).max() > 1e-4


def test_translator_rejects_bad_arguments_and_inputs(rng):
    with pytest.raises(ValueError, match="gaussian_size"):
        MaskedTranslator(128, 10, filters=(64, 128, 256), gaussian_size=16)
    with pytest.raises(ValueError, match="encoder_filters"):
        small_translator(encoder_filters=(4, 8))
    with pytest.raises(ValueError, match="bottleneck_depth"):
        small_translator(bottleneck_depth=4)
    for name in ("decoder_layout", "crude_activation", "mask_weighs"):
        with pytest.raises(ValueError, match=name):
            small_translator(**{name: "other"})
    translator = small_translator()
    keypoints = random_keypoints(rng, 1, 4)
    translator([random_images(rng, 1, 32), keypoints, random_keypoints(rng, 1, 4)])
    with pytest.raises(ValueError, match="source_image"):
        translator([random_images(rng, 1, 16), keypoints, random_keypoints(rng, 1, 4)])
    with pytest.raises(ValueError, match="target_kp"):
        translator([random_images(rng, 1, 32), keypoints, random_keypoints(rng, 1, 5)])


def test_paper_sized_networks_build_from_the_config():
    config = configs.get_config("penn", "full")
    translator = translator_lib.build_translator(config)
    assert translator.get_config()["gaussian_inv_std"] == config.stage1.gaussian_inv_std
    features = translator.encode_source(np.zeros((1, 128, 128, 3), np.float32))
    assert features.shape == (1, 32, 32, 128)  # the authors' 32x32x128 source features


# === Q and T together ===

def pair_images(size=32):
    """Two (source, target) pairs: a coloured square that moves over a smooth background."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    sources, targets = [], []
    for (colour, background, start, end) in [
            ((1.0, -0.6, -0.6), (0.2, 0.5, -0.8), (4, 5), (14, 18)),
            ((-0.8, 0.9, 0.3), (-0.5, -0.2, 0.6), (18, 16), (8, 6))]:
        pair = []
        for top, left in (start, end):
            image = np.stack([background[c] * (0.5 + 0.5 * (rows if c % 2 else cols))
                              for c in range(3)], axis=-1)
            image[top:top + 9, left:left + 9] = colour
            pair.append(image)
        sources.append(pair[0])
        targets.append(pair[1])
    return np.array(sources, np.float32), np.array(targets, np.float32)


@pytest.mark.slow
def test_tiny_detector_and_translator_overfit_one_batch():
    keras.utils.set_random_seed(0)
    detector = KeypointDetector(4, filters=(8, 16, 32))
    translator = small_translator(filters=(16, 32, 32))
    sources, targets = pair_images()
    optimizer = keras.optimizers.Adam(3e-3)
    detector(sources)  # builds Q before its weights are read below

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            keypoints = detector(tf.concat([sources, targets], 0), training=True)
            outputs = translator([sources, keypoints[:2], keypoints[2:]], training=True)
            loss = tf.reduce_mean(tf.abs(outputs["image"] - targets))
        variables = detector.trainable_variables + translator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    head_before = detector.heatmap_head.get_weights()[0]
    losses = [float(step()) for _ in range(80)]
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    # Gradients reach Q through the keypoints and the gaussian maps.
    assert np.abs(detector.heatmap_head.get_weights()[0] - head_before).max() > 1e-4


def test_networks_give_float32_outputs_under_mixed_precision(rng):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        detector = KeypointDetector(4, filters=(8, 16))
        translator = small_translator()
    finally:
        keras.config.set_dtype_policy(previous)
    images = random_images(rng, 2, 32)
    keypoints = detector(images)
    outputs = translator([images, keypoints, keypoints])
    assert detector.stem[0].compute_dtype == "bfloat16"
    for tensor in [keypoints] + list(outputs.values()):
        assert keras.backend.standardize_dtype(tensor.dtype) == "float32"
        assert np.all(np.isfinite(np.asarray(tensor)))
