"""kpvp.models.layers: SpatialSoftmax on blobs, GaussianMaps, ConvBlock; shared layer checks."""
import keras
import numpy as np
import pytest

from kpvp.models import layers
from kpvp.ops import keypoints as kp_ops

from helpers import model_checks


def blob_image(height, width, row, col, sigma=1.5):
    """A bright gaussian blob centred on pixel (row, col), `[H, W]`."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma ** 2)).astype(np.float32)


@pytest.mark.parametrize("mode", ["joint", "marginal"])
def test_spatial_softmax_finds_the_blob_and_follows_it(mode):
    height, width, shift = 24, 32, 5
    # Logits = 400 x blob intensity: a peaked heatmap, as a trained detector would produce
    # (the marginal mode averages a row first, so it needs the larger factor).
    left = blob_image(height, width, row=10, col=9)
    right = blob_image(height, width, row=10, col=9 + shift)
    heatmaps = 400.0 * np.stack([left, right])[..., None]
    keypoints = np.asarray(layers.SpatialSoftmax(mode)(heatmaps))
    assert keypoints.shape == (2, 1, 2)
    np.testing.assert_allclose(keypoints[0, 0], [19 / 32 - 1, 21 / 24 - 1], atol=2e-3)
    # Moving the blob right by 5 pixels moves x by 5 pixel widths and leaves y alone.
    np.testing.assert_allclose(keypoints[1, 0] - keypoints[0, 0], [shift * 2 / width, 0.0],
                               atol=2e-3)


def test_spatial_softmax_returns_maps_and_checks_its_mode():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    keypoints, maps = layers.SpatialSoftmax()(logits, return_maps=True)
    np.testing.assert_allclose(np.asarray(maps).sum(axis=(1, 2)), np.ones((2, 3)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(keypoints),
                               np.asarray(kp_ops.spatial_softmax_keypoints(logits)), atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        layers.SpatialSoftmax("argmax")
    with pytest.raises(ValueError, match="temperature"):
        layers.SpatialSoftmax(temperature=0)


def test_spatial_softmax_and_gaussian_maps_shared_checks():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 8, 6, 4)).astype(np.float32)
    model_checks.check_layer(layers.SpatialSoftmax("marginal", temperature=0.1), logits,
                             (2, 4, 2))
    keypoints = rng.uniform(-1, 1, (2, 4, 2)).astype(np.float32)
    maps = model_checks.check_layer(layers.GaussianMaps(12, 5.0), keypoints, (2, 12, 12, 4))
    np.testing.assert_allclose(np.asarray(maps["output"]),
                               np.asarray(kp_ops.gaussian_maps(keypoints, 12, 5.0)))
    with pytest.raises(ValueError, match="inv_std"):
        layers.GaussianMaps(12, 0.0)


def test_keypoint_layers_stay_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        softmax, gaussians = layers.SpatialSoftmax(), layers.GaussianMaps(8, 3.0)
        block = layers.ConvBlock(4)
    finally:
        keras.config.set_dtype_policy(previous)
    assert block.compute_dtype == "bfloat16"
    assert softmax.compute_dtype == "float32" and gaussians.compute_dtype == "float32"
    heatmaps = 40.0 * blob_image(64, 64, 20, 41)[None, :, :, None]
    keypoints = softmax(heatmaps)
    assert keras.backend.standardize_dtype(keypoints.dtype) == "float32"
    # bfloat16 would round x ~ 0.3 to a multiple of 1/256; float32 keeps it to 1e-4.
    np.testing.assert_allclose(np.asarray(keypoints)[0, 0], [83 / 64 - 1, 41 / 64 - 1],
                               atol=1e-4)
    assert keras.backend.standardize_dtype(gaussians(keypoints).dtype) == "float32"


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_conv_block_shapes_norms_and_checks(norm):
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    block = layers.ConvBlock(5, kernel_size=3, strides=2, norm=norm, activation="relu")
    outputs = model_checks.check_layer(block, inputs, (2, 4, 4, 5))["output"]
    assert np.asarray(outputs).min() >= 0.0  # ReLU
    names = [w.path.split("/")[-1] for w in block.weights]
    assert ("bias" in names) == (norm == "none")  # a bias before a normalisation is wasted
    if norm == "instance":
        # Instance norm: every output channel of every example has mean ~beta = 0 before ReLU.
        pre = layers.ConvBlock(5, norm="instance", activation="none")
        normalised = np.asarray(pre(inputs))
        np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0.0, atol=1e-4)


def test_conv_block_leaky_relu_slope():
    block = layers.ConvBlock(1, kernel_size=1, norm="none", activation="leaky_relu",
                             negative_slope=0.01)
    block.build((1, 1, 1, 1))
    block.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros((1,), np.float32)])
    outputs = np.asarray(block(np.array([[[[-2.0]]], [[[3.0]]]], np.float32)))
    np.testing.assert_allclose(outputs.ravel(), [-0.02, 3.0], rtol=1e-6)


def test_conv_block_rejects_unknown_options():
    with pytest.raises(ValueError, match="norm"):
        layers.ConvBlock(4, norm="layer")
    with pytest.raises(ValueError, match="activation"):
        layers.ConvBlock(4, activation="gelu")


@pytest.mark.parametrize("use_bias,strides", [(True, 1), (False, 2)])
def test_conv_block_inference_folds_the_batch_norm_into_the_conv(use_bias, strides):
    # Inference runs one folded convolution; it must equal conv -> batch norm -> ReLU by hand.
    rng = np.random.default_rng(0)
    block = layers.ConvBlock(6, kernel_size=3, strides=strides, norm="batch", use_bias=use_bias,
                             epsilon=1e-5)
    x = rng.normal(size=(2, 7, 7, 3)).astype(np.float32)
    block(x, training=True)
    bn = block.norm_layer
    mean, var = rng.normal(size=6), rng.uniform(0.2, 3.0, size=6)
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    for variable, value in ((bn.moving_mean, mean), (bn.moving_variance, var),
                            (bn.gamma, gamma), (bn.beta, beta)):
        variable.assign(value.astype(np.float32))
    conv = np.asarray(block.conv(x))  # with the conv's own bias when it has one
    expected = np.maximum((conv - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0.0)
    np.testing.assert_allclose(np.asarray(block(x, training=False)), expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(block(x)), expected, atol=2e-5)
    # Training still normalises with the batch's statistics: each channel's mean is beta (0).
    before_relu = layers.ConvBlock(6, norm="batch", activation="none", epsilon=1e-5)
    out = np.asarray(before_relu(x, training=True))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), np.zeros(6), atol=1e-4)
