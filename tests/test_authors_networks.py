"""The full configs build the authors' stage-1 networks Q, T and D_im; the tiny config ours.

The layer lists and parameter counts below are written out from the authors' TF1 code
(models/networks/__init__.py: encoder, pose_encoder, translator, img_discr), not taken from a
run of kpvp.
"""
import json

import numpy as np
import pytest

from kpvp import cli, configs
from kpvp.models import layers
from kpvp.configs import base
from kpvp.models import discriminators, keypoint_detector, translator as translator_lib

K = 40
def conv_params(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def conv_bn_params(k, cin, cout):
    """A conv with bias, then BatchNorm: gamma, beta, moving mean and moving variance."""
    return conv_params(k, cin, cout) + 4 * cout


# (input resolution, kernel, stride, input channels, output channels) of every conv-BN-ReLU.
ENCODER_TO_32 = [(128, 7, 1, 3, 32), (128, 3, 1, 32, 32),
                 (128, 3, 2, 32, 64), (64, 3, 1, 64, 64),
                 (64, 3, 2, 64, 128), (32, 3, 1, 128, 128)]
Q_BLOCKS = ENCODER_TO_32 + [
    (32, 3, 2, 128, 256), (16, 3, 1, 256, 256),
    # Decoder: no concatenation at 16x16 (the bottleneck is that level's encoder feature).
    (16, 3, 1, 256, 128), (16, 3, 1, 128, 128), (16, 3, 1, 128, 128), (16, 3, 1, 128, 128),
    (32, 3, 1, 128 + 128, 64), (32, 3, 1, 64, 64), (32, 3, 1, 64, 64), (32, 3, 1, 64, 64),
    (64, 3, 1, 64 + 64, 32), (64, 3, 1, 32, 32), (64, 3, 1, 32, 32), (64, 3, 1, 32, 32),
    (128, 3, 1, 32 + 32, 16), (128, 3, 1, 16, 16)]
# T's decoder input: the 32x32x128 source features and two 32x32xK gaussian maps; no skips.
T_BLOCKS = ENCODER_TO_32 + [
    (32, 3, 1, 128 + 2 * K, 256), (32, 3, 1, 256, 256), (32, 3, 1, 256, 256),
    (32, 3, 1, 256, 256),
    (64, 3, 1, 256, 128), (64, 3, 1, 128, 128), (64, 3, 1, 128, 128), (64, 3, 1, 128, 128),
    (128, 3, 1, 128, 64), (128, 3, 1, 64, 64)]
# D_im: a zero pad of 1 before each 'same' stride-2 conv: 130 -> 65, 67 -> 34, ...
D_BLOCKS = [(130, 4, 2, 3, 64), (67, 4, 2, 64, 128), (36, 4, 2, 128, 256),
            (20, 4, 2, 256, 512), (12, 4, 2, 512, 1024), (8, 4, 2, 1024, 2048)]

Q_PARAMS = sum(conv_bn_params(k, cin, cout) for _, k, _, cin, cout in Q_BLOCKS) \
    + conv_params(1, 16, K)
T_PARAMS = sum(conv_bn_params(k, cin, cout) for _, k, _, cin, cout in T_BLOCKS) \
    + conv_params(3, 64, 3) + conv_params(3, 64, 1)
D_PARAMS = sum(conv_params(k, cin, cout) for _, k, _, cin, cout in D_BLOCKS) \
    + conv_params(3, 2048, 1, bias=False)


@pytest.fixture
def recorded_blocks(monkeypatch):
    """Every ConvBlock call as (input resolution, kernel, stride, in, out channels); clear it
    after a network's first call, which also traces the network symbolically to build it."""
    calls = []
    original = layers.ConvBlock.call

    def call(self, inputs, training=None):
        calls.append((inputs.shape[1], self.kernel_size, self.strides, inputs.shape[-1],
                      self.filters))
        return original(self, inputs, training=training)

    monkeypatch.setattr(layers.ConvBlock, "call", call)
    return calls


def images(rng, batch=1):
    return rng.uniform(-1, 1, (batch, 128, 128, 3)).astype(np.float32)


def penn(variant="full"):
    config = configs.get_config("penn", variant)
    assert (config.num_keypoints, config.image_size) == (K, 128)
    return config


def authors_blocks(network):
    """The ConvBlocks of `network`: bias, batch norm of tf.contrib (0.999, 1e-5), ReLU."""
    blocks = [layer for layer in network._flatten_layers()
              if isinstance(layer, layers.ConvBlock)]
    for block in blocks:
        assert block.use_bias and block.norm == "batch" and block.activation == "relu"
        assert (block.norm_layer.momentum, block.norm_layer.epsilon) == (0.999, 1e-5)
    return blocks


def test_full_config_q_is_the_authors_hourglass(rng, recorded_blocks):
    detector = keypoint_detector.build_detector(penn())
    detector(images(rng))
    recorded_blocks.clear()
    keypoints, maps = detector(images(rng), return_heatmaps=True)
    assert recorded_blocks == Q_BLOCKS
    assert len(authors_blocks(detector)) == len(Q_BLOCKS)
    assert detector.heatmap_head.kernel.shape == (1, 1, 16, K) and detector.heatmap_head.use_bias
    assert maps.shape == (1, 128, 128, K) and keypoints.shape == (1, K, 2)
    assert detector.spatial_softmax.mode == "marginal"
    assert detector.spatial_softmax.temperature == 0.1  # ours; 1.0 in the authors variant
    assert detector.count_params() == Q_PARAMS


def test_full_config_t_is_the_authors_plain_decoder(rng, recorded_blocks):
    # The full configs' T is this network blending with the warped source (ours) instead.
    translator = translator_lib.build_translator(penn("authors"))
    source, keypoints = images(rng), rng.uniform(-0.9, 0.9, (1, K, 2)).astype(np.float32)
    translator([source, keypoints, keypoints])
    recorded_blocks.clear()
    outputs = translator([source, keypoints, keypoints[:, ::-1]])
    assert recorded_blocks == T_BLOCKS  # each decoder conv reads only the one before it
    assert len(authors_blocks(translator)) == len(T_BLOCKS)
    assert not hasattr(translator, "unet_in")
    assert translator.crude_head.kernel.shape == (3, 3, 64, 3)
    assert translator.mask_head.kernel.shape == (3, 3, 64, 1)
    assert translator.crude_head.activation.__name__ == "linear"
    assert translator.mask_head.activation.__name__ == "sigmoid"
    assert {key: value.shape for key, value in outputs.items()} == {
        "image": (1, 128, 128, 3), "crude": (1, 128, 128, 3), "mask": (1, 128, 128, 1)}
    assert translator.count_params() == T_PARAMS


def test_full_config_t_blends_with_eq_3(rng):
    translator = translator_lib.build_translator(penn("authors"))
    source, keypoints = images(rng), rng.uniform(-0.9, 0.9, (1, K, 2)).astype(np.float32)
    translator([source, keypoints, keypoints])
    kernel = np.zeros((3, 3, 64, 1), np.float32)
    # m = sigmoid(log 3) = 0.75 everywhere: v_hat = 0.75 s + 0.25 v_crude.
    translator.mask_head.set_weights([kernel, np.full((1,), np.log(3.0), np.float32)])
    outputs = translator([source, keypoints, keypoints])
    crude = np.asarray(outputs["crude"])
    np.testing.assert_allclose(np.asarray(outputs["image"]), 0.75 * source + 0.25 * crude,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(outputs["mask"]), 0.25, atol=1e-6)  # 1 - m


def test_full_config_d_im_is_the_authors_patch_discriminator(rng, recorded_blocks):
    discriminator = discriminators.build_image_discriminator(penn())
    discriminator(images(rng, 1))
    recorded_blocks.clear()
    logits = discriminator(images(rng, 2))
    assert recorded_blocks == D_BLOCKS
    assert logits.shape == (2, 6, 6, 1)  # the head pads to 6x6 and keeps it ('same')
    assert all(conv.norm_layer is None and conv.use_bias and conv.negative_slope == 0.01
               for conv in discriminator.convs)
    assert discriminator.logit.kernel.shape == (3, 3, 2048, 1)
    assert discriminator.count_params() == D_PARAMS


@pytest.mark.parametrize("dataset", configs.DATASETS)
def test_every_full_config_picks_the_authors_forms_and_every_tiny_config_ours(dataset):
    full, tiny = configs.get_config(dataset, "full"), configs.get_config(dataset, "tiny")
    exact = configs.get_config(dataset, "authors")
    authors = dict(softmax_mode="marginal", softmax_temperature=1.0, bn_momentum=0.999,
                   bn_epsilon=1e-5, conv_bias=True, detector_decoder="authors",
                   translator_decoder="plain", translator_crude_activation="linear",
                   translator_mask_weighs="source", discriminator_head="patch",
                   discriminator_pad=1, coverage_weight=0.0, translator_warp=False)
    assert {key: exact.stage1[key] for key in authors} == authors
    # The full configs add exactly the three stage-1 settings the paper-small runs learned with.
    full_flat, exact_flat = (cli._flatten(c.to_dict()) for c in (full, exact))
    changed = {key: full_flat[key] for key in full_flat if full_flat[key] != exact_flat[key]}
    assert changed == {"variant": "full", "stage1.softmax_temperature": 0.1,
                       "stage1.coverage_weight": 50.0, "stage1.translator_warp": True}
    ours = {**{key.split(".")[1]: value for key, value in base.LEGACY_VALUES.items()
               if key.startswith("stage1.")}, "softmax_mode": "joint"}
    assert {key: tiny.stage1[key] for key in ours} == ours


def test_old_runs_reload_with_the_networks_they_were_built_with(tmp_path):
    tiny = configs.get_config("synthetic", "tiny")
    # A config.json written before the fields existed: the legacy values, not the defaults.
    saved = base.finalize(base.make_tiny(base.get_base_config())).to_dict()
    for key in base.LEGACY_VALUES:
        section, name = key.split(".")
        del saved[section][name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved, default=list))
    reloaded = cli.load_saved_config(str(path))
    for key, value in base.LEGACY_VALUES.items():
        section, name = key.split(".")
        assert reloaded[section][name] == value == tiny[section][name]
    # A .keras config written before the arguments existed builds the same networks.
    detector = keypoint_detector.build_detector(tiny)
    old = {key: value for key, value in detector.get_config().items()
           if key not in keypoint_detector.LEGACY_ARGUMENTS}
    assert keypoint_detector.KeypointDetector.from_config(old).get_config() == \
        detector.get_config()
    translator = translator_lib.build_translator(tiny)
    old = {key: value for key, value in translator.get_config().items()
           if key not in translator_lib.LEGACY_ARGUMENTS}
    assert translator_lib.MaskedTranslator.from_config(old).get_config() == \
        translator.get_config()
    discriminator = discriminators.build_image_discriminator(tiny)
    old = {key: value for key, value in discriminator.get_config().items()
           if key not in discriminators.LEGACY_ARGUMENTS}
    assert discriminators.ImageDiscriminator.from_config(old).get_config() == \
        discriminator.get_config()
