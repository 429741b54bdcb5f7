"""The first-order translator option: Q's Jacobians, dense motion, the warping generator, and
their training terms (`stage1.translator=first_order`)."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import generation, losses
from kpvp.models import dense_motion, keypoint_detector, translator as translator_lib
from kpvp.models.first_order import FirstOrderTranslator
from kpvp.models.keypoint_detector import KeypointDetector, locate
from kpvp.ops import warping
from kpvp.trainers import loop, stage1

from helpers import model_checks
from helpers.stage1 import TinyFeatures, tiny_config

SIZE, K = 32, 3


def small_translator(**kwargs):
    args = dict(image_size=SIZE, num_keypoints=K, filters=(8, 8, 8), num_residual=1,
                motion_filters=(8, 8), motion_size=16, norm="instance")
    args.update(kwargs)
    return FirstOrderTranslator(**args)


def inputs(rng, batch=2, k=K, jacobians=True):
    images = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
    source_kp, target_kp = rng.uniform(-0.7, 0.7, (2, batch, k, 2)).astype(np.float32)
    out = [images, source_kp, target_kp]
    if jacobians:
        out += list(np.eye(2, dtype=np.float32) + rng.uniform(-0.2, 0.2, (2, batch, k, 2, 2))
                    .astype(np.float32))
    return out


def blob(size, centre, radius=0.15):
    """A bright disc on black, `[1, size, size, 3]` in [-1, 1], centred at `centre` (x, y)."""
    grid = np.asarray(warping.pixel_grid(size))
    disc = np.sum((grid - np.asarray(centre)) ** 2, -1) < radius ** 2
    return np.repeat(np.where(disc, 1.0, -1.0)[None, ..., None], 3, -1).astype(np.float32)


def centroid(image):
    """The (x, y) centre of the bright pixels of `[size, size, C]` in [-1, 1] units."""
    weights = np.clip(np.asarray(image)[..., 0] + 1, 0, None)
    grid = np.asarray(warping.pixel_grid(image.shape[0]))
    return (grid * weights[..., None]).sum((0, 1)) / weights.sum()


@pytest.mark.parametrize("warped_skips", [True, False])
def test_translator_shared_checks_with_and_without_jacobians(rng, tmp_path, warped_skips):
    translator = small_translator(warped_skips=warped_skips)
    shapes = {"image": (2, SIZE, SIZE, 3), "mask": (2, SIZE, SIZE, 1),
              "warped": (2, SIZE, SIZE, 3)}
    with_jacobians = inputs(rng)
    out = model_checks.check_network(translator, with_jacobians, shapes, tmp_path)
    assert np.all(np.abs(out["image"]) <= 1.0)
    plain = translator(with_jacobians[:3])
    assert {k: v.shape for k, v in plain.items()} == shapes
    # Equal Jacobians in both frames are no Jacobians: J_s J_t^-1 = I.
    same = with_jacobians[:3] + [with_jacobians[3], with_jacobians[3]]
    np.testing.assert_allclose(translator(same)["image"], plain["image"], atol=1e-4)


@pytest.mark.parametrize("warped_skips", [True, False])
def test_encode_once_decode_many_equals_call(rng, warped_skips):
    translator = small_translator(warped_skips=warped_skips)
    images, source_kp, target_kp, source_jac, target_jac = inputs(rng)
    features = translator.encode_source(images)
    assert [f.shape[1:] for f in features] == [(SIZE, SIZE, 8), (SIZE // 2, SIZE // 2, 8),
                                               (SIZE // 4, SIZE // 4, 8)]
    decoded = translator.decode(features, images, source_kp, target_kp, source_jac, target_jac)
    direct = translator([images, source_kp, target_kp, source_jac, target_jac])
    for key in direct:
        np.testing.assert_allclose(decoded[key], direct[key], atol=1e-5)


def test_occlusion_mask_is_in_0_1_and_follows_the_occlusion_head(rng):
    translator = small_translator()
    batch = inputs(rng)
    mask = np.asarray(translator(batch)["mask"])
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.std() > 0
    head = translator.dense_motion.occlusion_head
    kernel, _ = head.get_weights()
    for bias, expected in ((50.0, 0.0), (-50.0, 1.0)):  # all visible / all to inpaint
        head.set_weights([np.zeros_like(kernel), np.full((1,), bias, np.float32)])
        np.testing.assert_allclose(translator(batch)["mask"], expected, atol=1e-6)


@pytest.mark.parametrize("jacobian", [np.eye(2), [[0.8, -0.3], [0.3, 0.8]]])
def test_dense_flow_moves_a_blob_where_the_keypoint_moved_it(jacobian):
    """With the masks shut on the keypoint's own map, the warped source shows the source's
    blob at the target keypoint, whatever the (relative) Jacobian."""
    translator = small_translator(num_keypoints=1, motion_size=SIZE)
    source_kp, target_kp = np.array([[[-0.4, -0.3]]], np.float32), np.array([[[0.35, 0.3]]],
                                                                             np.float32)
    source = blob(SIZE, source_kp[0, 0])
    jac_s = np.asarray(jacobian, np.float32)[None, None]
    eye = np.eye(2, dtype=np.float32)[None, None]
    translator([source, source_kp, target_kp, jac_s, eye])
    head = translator.dense_motion.mask_head
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([-30.0, 30.0], np.float32)])
    warped = np.asarray(translator([source, source_kp, target_kp, jac_s, eye])["warped"][0])
    np.testing.assert_allclose(centroid(warped), target_kp[0, 0], atol=0.06)
    assert abs(centroid(np.asarray(source[0])) - target_kp[0, 0]).max() > 0.5


def test_sparse_motions_are_the_local_affine_maps_on_hand_values():
    source_kp = np.array([[[0.1, -0.2]]], np.float32)
    target_kp = np.array([[[-0.3, 0.4]]], np.float32)
    jac = np.array([[[[0.5, -1.0], [2.0, 1.5]]]], np.float32)
    motions = np.asarray(dense_motion.sparse_motions(source_kp, target_kp, jac, 4))
    grid = np.asarray(warping.pixel_grid(4))
    np.testing.assert_allclose(motions[0, 0], grid, atol=1e-6)  # the background stays
    z = grid[1, 2]  # x = 0.25, y = -0.25
    expected = source_kp[0, 0] + jac[0, 0] @ (z - target_kp[0, 0])
    np.testing.assert_allclose(motions[0, 1, 1, 2], expected, atol=1e-6)
    relative = dense_motion.relative_jacobians(jac, jac)
    np.testing.assert_allclose(relative, np.eye(2)[None, None], atol=1e-5)


def test_detector_jacobians_start_at_identity_and_reload(rng, tmp_path):
    detector = KeypointDetector(K, filters=(8, 8, 8), softmax_temperature=0.1,
                                decoder_layout="light", jacobians=True)
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    model_checks.check_network(detector, images, (2, K, 2), tmp_path)
    keypoints, jacobians = detector.keypoints_and_jacobians(images)
    np.testing.assert_allclose(keypoints, detector(images), atol=1e-6)
    np.testing.assert_allclose(jacobians, np.broadcast_to(np.eye(2), (2, K, 2, 2)), atol=1e-6)
    head = detector.jacobian_head
    head.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in head.weights])
    detector.save(tmp_path / "q.keras")
    reloaded = keras.models.load_model(tmp_path / "q.keras")
    np.testing.assert_allclose(reloaded.keypoints_and_jacobians(images)[1], detector
                               .keypoints_and_jacobians(images)[1], atol=1e-6)
    np.testing.assert_allclose(locate(reloaded, images)[1], reloaded.keypoints_and_jacobians(
        images)[1], atol=1e-6)
    plain = KeypointDetector(K, filters=(8, 8))
    with pytest.raises(ValueError, match="jacobians=True"):
        plain.keypoints_and_jacobians(images)
    located, none = locate(plain, images)  # the one call for both kinds of Q
    assert none is None
    np.testing.assert_allclose(located, plain(images), atol=1e-6)


def test_jacobian_equivariance_loss_on_hand_values():
    turn = warping.affine_matrices(np.array([np.pi / 2]), np.array([1.0]), np.zeros((1, 2)))
    linear = np.asarray(turn)[0, :, :2]  # [[0, -1], [1, 0]]
    jac = np.eye(2, dtype=np.float32)[None, None]
    follows = np.linalg.inv(linear)[None, None].astype(np.float32)
    assert float(losses.jacobian_equivariance_loss(jac, follows, turn)) == pytest.approx(0.0,
                                                                                         abs=1e-6)
    # Jacobians that stay I under a quarter turn: |L - I| averages to 1.
    assert float(losses.jacobian_equivariance_loss(jac, jac, turn)) == pytest.approx(1.0,
                                                                                     rel=1e-5)
    with pytest.raises(ValueError, match=r"\[B, K, 2, 2\]"):
        losses.jacobian_equivariance_loss(jac[..., 0], jac[..., 0], turn)


def first_order_config():
    config = tiny_config()
    config.stage1.translator = "first_order"
    config.stage1.first_order_filters = (8, 8, 8)
    config.stage1.first_order_motion_filters = (8, 8)
    config.stage1.first_order_residual = 1
    config.stage1.equivariance_weight = 1.0
    return config


def test_config_chooses_the_translator_and_q_jacobians():
    config = first_order_config()
    translator = translator_lib.build_translator(config)
    assert isinstance(translator, FirstOrderTranslator)
    assert translator.motion_size == config.image_size // config.stage1.first_order_motion_downscale
    assert keypoint_detector.build_detector(config).jacobians
    config.stage1.translator = "masked"
    assert not keypoint_detector.build_detector(config).jacobians


def test_warped_skips_are_the_tiny_variant_s_and_old_saves_keep_the_bottleneck_generator(
        tmp_path):
    from kpvp import cli
    from kpvp.configs import base

    assert base.make_tiny(base.get_base_config()).stage1.first_order_warped_skips
    full = base.finalize(base.get_base_config())
    assert not full.stage1.first_order_warped_skips  # Siarohin et al.'s generator
    # A run saved before the field existed (tiny or not) reloads with the bottleneck-only T.
    tiny = base.finalize(base.make_tiny(base.get_base_config()))
    path = cli.save_config(tiny, str(tmp_path))
    values = json.loads(open(path, encoding="utf-8").read())
    del values["stage1"]["first_order_warped_skips"]
    open(path, "w", encoding="utf-8").write(json.dumps(values))
    assert not cli.load_saved_config(path).stage1.first_order_warped_skips
    # So does a .keras file written then: its config lacks the argument.
    old = {key: value for key, value in small_translator().get_config().items()
           if key != "warped_skips"}
    rebuilt = FirstOrderTranslator.from_config(old)
    assert not rebuilt.warped_skips
    rebuilt(inputs(np.random.default_rng(0), jacobians=False))
    # The decoder's full-resolution block sees the upsampled features only (8 channels),
    # with warped skips also the warped full-resolution encoder features (8 + 8).
    assert rebuilt.decoder[0].weights[0].shape[2] == 8
    skips = small_translator(warped_skips=True)
    skips(inputs(np.random.default_rng(0), jacobians=False))
    assert skips.decoder[0].weights[0].shape[2] == 16


def test_trainer_step_trains_the_jacobian_head_and_transfer_uses_jacobians(rng):
    keras.utils.set_random_seed(0)
    config = first_order_config()
    trainer = stage1.build_trainer(config, TinyFeatures())
    trainer.compile(*loop.make_optimizers(config.stage1))
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    batch = {"source": tf.constant(images), "target": tf.constant(images[::-1])}
    head = trainer.detector.jacobian_head
    before = [w.numpy().copy() for w in head.weights]
    logs = trainer.train_step(batch)
    assert np.isfinite(float(logs["equivariance"])) and np.isfinite(float(logs["perceptual"]))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, head.weights))
    out = trainer.reconstruct(batch["source"], batch["target"])
    assert out["target_jacobians"].shape == (2, config.num_keypoints, 2, 2)

    generator = generation.VideoGenerator(trainer.detector, None, trainer.translator)
    video = (rng.uniform(0, 255, (3, SIZE, SIZE, 3))).astype(np.uint8)
    result = generator.transfer(video[0], video)
    assert result["video"].shape == (3, SIZE, SIZE, 3)
    # Frame 0 drives the source with its own keypoints and Jacobians: T at k_s = k_t, J = I.
    x0 = generator.preprocess(video[:1])
    k0 = trainer.detector(x0)
    frames, _ = generator.render(x0, k0, k0[:, None])
    np.testing.assert_array_equal(result["video"][0],
                                  np.asarray(generation.image_ops.to_uint8(frames[0, 0])))


def test_savedmodel_serves_the_first_order_translator(tmp_path):
    """Export of a run with a first-order T: recorded in the metadata, and the served videos are
    the in-process ones (generated frames keep the input frame's Jacobians)."""
    from kpvp import cli, serving
    from helpers import tiny_run

    keras.utils.set_random_seed(0)
    config = tiny_run.tiny_config()
    config.stage1.translator = "first_order"
    detector = KeypointDetector(tiny_run.K, (8, 8, 8, 8), jacobians=True)
    translator = small_translator(image_size=tiny_run.SIZE, num_keypoints=tiny_run.K,
                                  warped_skips=True)  # the encoder's list of levels, served
    images = np.zeros((1, tiny_run.SIZE, tiny_run.SIZE, 3), np.float32)
    kp = detector(images)
    translator([images, kp, kp])
    for stage, name, net in (("stage1", "detector", detector), ("stage1", "translator", translator),
                             ("stage2", "motion_generator",
                              tiny_run.untrained_motion_generator(config))):
        os.makedirs(tmp_path / stage, exist_ok=True)
        net.save(tmp_path / stage / f"{name}.keras")
    cli.save_config(config, str(tmp_path))
    info = serving.export_run(str(tmp_path), str(tmp_path / "export"), config)
    assert info["translator"] == "first_order"
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    frames = tiny_run.random_images(2, seed=3)
    served = loaded.signatures["serving_default"](
        images=tf.constant(frames), actions=tf.constant([0, 1], tf.int32),
        seed=tf.constant(4, tf.int32))
    generator = generation.VideoGenerator.from_workdir(str(tmp_path), config.class_names)
    expected = generator.generate(frames, [0, 1], seed=4)
    assert np.abs(served["video"].numpy().astype(int) - expected["video"]).max() <= 1
    np.testing.assert_allclose(served["mask"].numpy(), expected["mask"], atol=1e-5)


def test_perceptual_scales_must_keep_the_feature_network_s_multiple_of_32():
    config = first_order_config()
    config.stage1.perceptual_scales = (1.0, 0.5)  # 32 -> 16 pixels
    with pytest.raises(ValueError, match="perceptual_scales"):
        stage1.build_trainer(config, TinyFeatures())
