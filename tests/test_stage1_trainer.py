"""Stage-1 trainer: the alternating update touches the right weights, losses add up, it learns."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs, losses, visualize
from kpvp.configs import base
from kpvp.ops import warping
from kpvp.trainers import loop, stage1

from helpers.stage1 import TinyFeatures, tiny_config


def make_trainer(config=None, seed=0):
    keras.utils.set_random_seed(seed)
    config = config or tiny_config()
    trainer = stage1.build_trainer(config, TinyFeatures())
    trainer.compile(*loop.make_optimizers(config.stage1))
    return trainer


def pair_batch(batch=4, size=32, seed=0):
    """Blobs that move between source and target, on a fixed background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    src, tgt = [], []
    for _ in range(batch):
        (x0, y0), (x1, y1) = rng.uniform(8, size - 8, (2, 2))
        blob = lambda x, y: np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 12.0)
        src.append(blob(x0, y0))
        tgt.append(blob(x1, y1))
    to_img = lambda m: np.repeat(np.stack(m)[..., None], 3, -1).astype(np.float32) * 1.6 - 0.8
    return {"source": tf.constant(to_img(src)), "target": tf.constant(to_img(tgt))}


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def changed(before, variables):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def test_alternating_step_updates_d_in_d_phase_and_g_in_g_phase():
    batch = pair_batch()
    a, b = make_trainer(), make_trainer()
    b.set_weights(a.get_weights())
    g0, d0 = snapshot(a.generator_variables), snapshot(a.discriminator.trainable_variables)

    # D phase alone: D moves, Q and T do not.
    fake = a.reconstruct(batch["source"], batch["target"], training=True)["image"]
    a.discriminator_step(a.prepare(batch), fake)
    assert changed(d0, a.discriminator.trainable_variables)
    assert not changed(g0, a.generator_variables)

    # The whole step = that D update, then a G update that leaves D where the D phase put it.
    b.train_step(batch)
    for va, vb in zip(a.discriminator.trainable_variables, b.discriminator.trainable_variables):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6)
    assert changed(g0, b.generator_variables)
    assert int(b.generator_optimizer.iterations) == 1
    assert int(b.discriminator_optimizer.iterations) == 1


def test_without_the_adversarial_term_d_is_neither_trained_nor_logged():
    config = tiny_config()
    config.stage1.adversarial_weight = 0.0
    trainer = make_trainer(config)
    batch = pair_batch()
    g0, d0 = snapshot(trainer.generator_variables), snapshot(trainer.discriminator.variables)
    logs = trainer.train_step(batch)
    assert not changed(d0, trainer.discriminator.variables)  # BN statistics included
    assert changed(g0, trainer.generator_variables)
    assert int(trainer.discriminator_optimizer.iterations) == 0
    assert not {"d_loss", "d_real", "d_fake", "adversarial"} & set(logs)
    assert float(logs["g_loss"]) == pytest.approx(float(logs["perceptual"]), rel=1e-6)
    assert "d_loss" in trainer.test_step(batch)  # evaluation still reports D


def test_generator_loss_is_weighted_sum_of_perceptual_and_adversarial():
    config = tiny_config()
    config.stage1.adversarial_weight = 0.25
    trainer = make_trainer(config)
    batch = pair_batch()
    logs = trainer.test_step(batch)
    expected = float(logs["perceptual"]) + 0.25 * float(logs["adversarial"])
    assert float(logs["g_loss"]) == pytest.approx(expected, rel=1e-5)

    out = trainer.reconstruct(batch["source"], batch["target"])
    feats = trainer.perceptual_network
    perceptual = losses.perceptual_loss(feats(batch["target"]), feats(out["image"]))
    assert float(logs["perceptual"]) == pytest.approx(float(perceptual), rel=1e-5)


def test_the_authors_networks_train_against_a_patch_logit_map():
    config = tiny_config()
    full = configs.get_config("synthetic", "full").stage1
    for key in [*(k.split(".")[1] for k in base.LEGACY_VALUES if k.startswith("stage1.")),
                "softmax_mode"]:
        config.stage1[key] = full[key]
    trainer = make_trainer(config)
    batch = pair_batch()
    logs = trainer.test_step(batch)
    out = trainer.reconstruct(batch["source"], batch["target"])
    fake_logits = trainer.discriminator(out["image"]).numpy()
    assert fake_logits.shape == (4, 8, 8, 1)  # 32 -> 17 -> 10 -> 6, padded head: 8
    # The non-saturating G loss: -log sigmoid(logit) averaged over the batch and the map.
    expected = np.mean(np.log1p(np.exp(-fake_logits.astype(np.float64))))
    assert float(logs["adversarial"]) == pytest.approx(expected, rel=1e-5)
    g0, d0 = snapshot(trainer.generator_variables), snapshot(
        trainer.discriminator.trainable_variables)
    trainer.train_step(batch)
    assert changed(g0, trainer.generator_variables)
    assert changed(d0, trainer.discriminator.trainable_variables)


def _equivariance(trainer, batch, out):
    """L_eq recomputed: Q on the targets seen through the test step's fixed random maps."""
    matrices = trainer.random_affine(batch["target"].shape[0], -1)
    warped = trainer.detector(warping.affine_warp(batch["target"], matrices))
    return losses.equivariance_loss(out["target_kp"], warped, matrices)


# The optional terms on Q's keypoints (not in the paper): name -> (the loss recomputed from a
# trainer, a batch and `reconstruct`'s output; a setting of the term that is not the default).
OPTIONAL_TERMS = {
    "separation": (lambda trainer, batch, out: losses.temporal_separation_loss(
        np.stack([out["source_kp"], out["target_kp"]], axis=1), trainer.separation_sigma),
        dict(separation_sigma=0.05)),
    "coverage": (lambda trainer, batch, out: losses.motion_coverage_loss(
        batch["source"], batch["target"], out["source_kp"], out["target_kp"],
        trainer.coverage_sigma), dict(coverage_sigma=0.05)),
    "equivariance": (_equivariance, dict(equivariance_rotate_degrees=40.0)),
}


@pytest.mark.parametrize("term", sorted(OPTIONAL_TERMS))
def test_optional_keypoint_term_enters_the_generator_loss_only_when_weighted(term):
    loss_of, setting = OPTIONAL_TERMS[term]
    batch = pair_batch()
    plain = make_trainer()
    logs = plain.test_step(batch)
    out = plain.reconstruct(batch["source"], batch["target"])
    assert float(logs[term]) == pytest.approx(float(loss_of(plain, batch, out)), rel=1e-5)
    assert 0.0 < float(logs[term]) <= 1.0
    assert float(logs["g_loss"]) == pytest.approx(
        float(logs["perceptual"]) + float(logs["adversarial"]), rel=1e-5)

    config = tiny_config()
    config.stage1[f"{term}_weight"] = 3.0
    config.stage1.update(setting)
    weighted = make_trainer(config)
    logs = weighted.test_step(batch)
    out = weighted.reconstruct(batch["source"], batch["target"])
    assert float(logs[term]) == pytest.approx(float(loss_of(weighted, batch, out)), rel=1e-5)
    assert float(logs["g_loss"]) == pytest.approx(
        float(logs["perceptual"]) + float(logs["adversarial"]) + 3.0 * float(logs[term]),
        rel=1e-5)
    # The G step follows it: the term alone moves Q's weights, and not T's, which it does not
    # depend on.
    config.stage1.perceptual_weight = 0.0
    config.stage1.adversarial_weight = 0.0
    only = make_trainer(config)
    before_q = snapshot(only.detector.trainable_variables)
    before_t = snapshot(only.translator.trainable_variables)
    only.train_step(batch)
    assert changed(before_q, only.detector.trainable_variables)
    assert not changed(before_t, only.translator.trainable_variables)


def test_equivariance_term_costs_no_train_step_pass_of_q_when_off():
    # Off, the train step neither runs Q on warped images nor logs a 0 for the term (nor for
    # the other terms at weight 0); the test step reports it either way.
    batch = pair_batch()
    trainer = make_trainer()
    calls = []
    call = trainer.detector.call
    trainer.detector.call = lambda *a, **k: calls.append(1) or call(*a, **k)
    logs = trainer.train_step(batch)
    assert not {"equivariance", "separation", "coverage"} & set(logs)
    assert {"perceptual", "adversarial", "l1", "d_real", "d_fake"} <= set(logs)
    assert len(calls) == 2  # source and target
    assert float(trainer.test_step(batch)["equivariance"]) > 0.0
    config = tiny_config()
    config.stage1.equivariance_weight = 1.0
    weighted = make_trainer(config)
    assert float(weighted.train_step(batch)["equivariance"]) > 0.0


def test_equivariance_maps_are_drawn_from_the_seed_and_step_within_their_ranges():
    trainer = make_trainer()
    a, b = trainer.random_affine(64, 5), trainer.random_affine(64, 5)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # a resumed step redraws them
    assert not np.allclose(np.asarray(a), np.asarray(trainer.random_affine(64, 6)))
    a = np.asarray(a)
    scale = np.sqrt(np.linalg.det(a[:, :, :2]))
    angle = np.degrees(np.arctan2(a[:, 1, 0], a[:, 0, 0]))
    s1 = tiny_config().stage1
    assert np.all(np.abs(scale - 1) <= s1.equivariance_scale + 1e-6)
    assert np.all(np.abs(angle) <= s1.equivariance_rotate_degrees + 1e-4)
    assert np.all(np.abs(a[:, :, 2]) <= s1.equivariance_shift + 1e-6)
    assert np.abs(angle).max() > 0.5 * s1.equivariance_rotate_degrees  # not all near identity


def test_perceptual_term_is_multiplied_by_the_feature_network_loss_scale():
    config = tiny_config()
    plain = make_trainer(config)
    keras.utils.set_random_seed(0)
    features = TinyFeatures()
    features.loss_scale = 100.0  # as the deflated I3D
    scaled = stage1.build_trainer(config, features)
    scaled.compile(*loop.make_optimizers(config.stage1))
    batch = pair_batch()
    a, b = plain.test_step(batch), scaled.test_step(batch)
    assert float(b["perceptual"]) == pytest.approx(100.0 * float(a["perceptual"]), rel=1e-5)
    assert float(b["g_loss"]) == pytest.approx(
        float(b["perceptual"]) + float(b["adversarial"]), rel=1e-5)


def test_pixel_l1_term_is_the_mean_absolute_error_and_lowers_it_alone():
    batch = pair_batch()
    config = tiny_config()
    config.stage1.pixel_l1_weight = 2.5
    trainer = make_trainer(config)
    logs = trainer.test_step(batch)
    image = trainer.reconstruct(batch["source"], batch["target"])["image"]
    by_hand = np.abs(batch["target"].numpy() - np.asarray(image)).mean()
    assert float(logs["pixel_l1"]) == pytest.approx(by_hand, rel=1e-5)
    assert float(logs["g_loss"]) == pytest.approx(
        float(logs["perceptual"]) + float(logs["adversarial"]) + 2.5 * by_hand, rel=1e-5)
    assert "pixel_l1" not in make_trainer().train_step(batch)  # off by default: not computed
    # Alone in the G loss it is learnable: a few steps on one batch lower it.
    config.stage1.perceptual_weight = 0.0
    config.stage1.adversarial_weight = 0.0
    only = make_trainer(config)
    start = float(only.test_step(batch)["pixel_l1"])
    only.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=60, epochs=1,
             verbose=0)
    for tracker in only.metrics:
        tracker.reset_state()
    end = float(only.test_step(batch)["pixel_l1"])
    assert end < 0.85 * start


@pytest.mark.slow
def test_tiny_trainer_lowers_reconstruction_loss_on_one_batch():
    config = tiny_config()
    config.stage1.adversarial_weight = 0.0  # the reconstruction objective alone must be learnable
    trainer = make_trainer(config)
    batch = pair_batch(batch=4)
    data = tf.data.Dataset.from_tensors(batch).repeat()
    start = float(trainer.test_step(batch)["perceptual"])
    trainer.fit(data, steps_per_epoch=120, epochs=1, verbose=0)
    for tracker in trainer.metrics:
        tracker.reset_state()
    end = float(trainer.test_step(batch)["perceptual"])
    assert end < 0.5 * start, (start, end)


def test_summary_images_show_source_target_reconstruction_and_mask():
    trainer = make_trainer()
    batch = pair_batch(batch=2)
    (grid,) = trainer.summary_images(batch).values()
    assert grid.dtype == np.uint8 and grid.shape == (2, 32, 4 * 32, 3)
    source, target, reconstruction, mask = np.split(grid, 4, axis=2)
    out = trainer.reconstruct(batch["source"], batch["target"])
    np.testing.assert_array_equal(reconstruction, visualize.to_uint8(out["image"]))
    # T's mask in grey levels, 255 where m = 1.
    np.testing.assert_array_equal(mask, np.repeat(
        np.round(np.clip(out["mask"], 0, 1) * 255).astype(np.uint8), 3, axis=-1))
    # Source and target: the frames, with Q's keypoints drawn as dots (the last on top) and
    # untouched more than 3 pixels away from every keypoint.
    colors = visualize.keypoint_colors(4)
    for panel, frames, keypoints in ((source, batch["source"], out["source_kp"]),
                                     (target, batch["target"], out["target_kp"])):
        frames, centres = visualize.to_uint8(frames), (np.asarray(keypoints) + 1) * 16 - 0.5
        for b in range(2):
            x, y = np.clip(np.round(centres[b, -1]).astype(int), 0, 31)
            np.testing.assert_array_equal(panel[b, y, x], colors[-1])
            rows, cols = np.mgrid[0:32, 0:32]
            far = np.all((np.abs(cols[..., None] - centres[b, :, 0]) > 3)
                         | (np.abs(rows[..., None] - centres[b, :, 1]) > 3), axis=-1)
            assert far.sum() > 32 * 32 // 2
            np.testing.assert_array_equal(panel[b][far], frames[b][far])


def _initial_detector_weights(tmp_path, name, seed):
    """Stage 1 through `stages.run_stage1` with 0 steps: the exported Q is the initial one."""
    import kpvp.models  # noqa: F401  (registers Q for load_model)
    from kpvp import stages

    config = tiny_config()
    config.seed = seed
    config.stage1.num_steps = 0
    config.stage1.perceptual_network = "i3d2d"
    config.data.synthetic_num_train = 2
    config.data.synthetic_num_test = 2
    workdir = str(tmp_path / name)
    stages.run_stage1(config, workdir, tf.distribute.get_strategy())
    keras.utils.set_random_seed(123)  # what a caller did last must not matter
    return keras.models.load_model(f"{workdir}/stage1/detector.keras").get_weights()


def test_stage1_initial_weights_follow_the_config_seed(tmp_path, i3d_arrays):
    a = _initial_detector_weights(tmp_path, "a", seed=0)
    b = _initial_detector_weights(tmp_path, "b", seed=0)
    c = _initial_detector_weights(tmp_path, "c", seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_recalibrated_batch_norm_makes_inference_match_training_on_that_batch():
    """With the authors' momentum 0.999 a fresh run's moving statistics are still (0, 1); after
    re-estimating them on one batch, Q and T in inference mode compute what they compute in
    training mode on that batch."""
    config = tiny_config()
    config.stage1.bn_momentum = 0.999
    trainer = make_trainer(config)
    batch = pair_batch()
    layers = loop.batch_norm_layers(trainer.detector, trainer.translator)
    assert layers and all(layer.momentum == 0.999 for layer in layers)

    both = tf.concat([batch["source"], batch["target"]], axis=0)
    trained = trainer.calibration_pass(batch["source"], batch["target"])
    assert np.abs(trainer.detector(both, training=False).numpy()
                  - np.concatenate([trained["source_kp"], trained["target_kp"]])).max() > 1e-3
    used = loop.recalibrate_batch_norm(
        layers, lambda b: trainer.calibration_pass(b["source"], b["target"]), [batch])
    assert used == 1 and all(layer.momentum == 0.999 for layer in layers)
    inferred = trainer.reconstruct(batch["source"], batch["target"], training=False)
    for key in ("source_kp", "target_kp", "image"):
        np.testing.assert_allclose(inferred[key], trained[key], atol=2e-3, err_msg=key)
