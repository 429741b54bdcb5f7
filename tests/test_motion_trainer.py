"""Stage-2 trainer (M vs D_seq): loss assembly, alternating updates, optimizers, checkpoints,
and a tiny M that learns two opposite motions."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs, losses
from kpvp.models.discriminators import SequenceDiscriminator
from kpvp.models.motion_cvae import MotionCVAE
from kpvp.trainers import loop, stage2
from kpvp.trainers.stage2 import MotionGenerationTrainer

K, T = 3, 10
STEP = 0.04  # per-frame x displacement of the toy motions


def _toy_sequences(n, seed):
    """Class 0 moves every keypoint right by STEP per frame, class 1 moves it left."""
    rng = np.random.default_rng(seed)
    k0 = rng.uniform(-0.5, 0.5, (n, 1, K, 2))
    labels = np.arange(n) % 2
    direction = np.where(labels == 0, 1.0, -1.0)[:, None, None]
    seq = np.repeat(k0, T + 1, axis=1)
    seq[..., 0] += direction * STEP * np.arange(T + 1)[None, :, None]
    return seq.astype("float32"), labels.astype("int32")


def _trainer(seed=0, g_lr=3e-3, d_lr=1e-3, num_classes=2, kl_warmup_steps=0):
    keras.utils.set_random_seed(seed)
    generator = MotionCVAE(K, num_classes, units=32, num_layers=2, latent_dim=4, encoder_fc=16,
                           decoder_fc=16, num_steps=T, seed=seed)
    discriminator = SequenceDiscriminator(units=16, num_classes=num_classes)
    trainer = MotionGenerationTrainer(generator, discriminator, dict(
        l1_weight=1000.0, kl_weight=2.0, adversarial_weight=1.0, kl_warmup_steps=kl_warmup_steps))
    trainer.build()
    trainer.compile(keras.optimizers.Adam(g_lr, beta_1=0.5),
                    keras.optimizers.Adam(d_lr, beta_1=0.5))
    return trainer


def _batch(n=8, seed=1):
    seq, labels = _toy_sequences(n, seed)
    return {"keypoints": tf.constant(seq), "label": tf.constant(labels)}


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, after):
    return any(np.any(a != b) for a, b in zip(before, after))


def _unchanged(before, after):
    return all(np.array_equal(a, b) for a, b in zip(before, after))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_test_step_losses_equal_hand_computed_values():
    trainer = _trainer()
    # A non-zero posterior mean and variance make every KL term count.
    mu_bias = trainer.generator.mu_dense.bias
    mu_bias.assign(np.linspace(-1.0, 1.0, mu_bias.shape[0]).astype("float32"))
    trainer.generator.log_var_dense.bias.assign(np.full(mu_bias.shape[0], 0.7, "float32"))
    batch = _batch()
    logs = {k: float(v) for k, v in trainer.test_step(batch).items()}

    real = batch["keypoints"].numpy()[:, 1:]
    out = trainer.generator([batch["keypoints"], batch["label"]], training=False)
    mu, log_var = out["mu"].numpy().astype(np.float64), out["log_var"].numpy().astype(np.float64)
    kl = np.mean(0.5 * np.sum(np.exp(log_var) + mu ** 2 - 1.0 - log_var, axis=1))
    l1 = np.mean(np.abs(out["keypoints"].numpy() - real))
    fake_logits = trainer.discriminator([out["keypoints"], batch["label"]]).numpy()
    real_logits = trainer.discriminator([real, batch["label"]]).numpy()
    adv = np.mean(_softplus(-fake_logits))
    d_loss = np.mean(_softplus(-real_logits)) + np.mean(_softplus(fake_logits))

    assert kl > 1.0
    np.testing.assert_allclose(logs["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(logs["l1"], l1, rtol=1e-5)
    np.testing.assert_allclose(logs["adversarial"], adv, rtol=1e-5)
    np.testing.assert_allclose(logs["d_loss"], d_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], 1000.0 * l1 + 2.0 * kl + adv, rtol=1e-5)
    # D's mean probability of 'real' for each kind of sequence.
    np.testing.assert_allclose(logs["d_real"], np.mean(_sigmoid(real_logits)), rtol=1e-5)
    np.testing.assert_allclose(logs["d_fake"], np.mean(_sigmoid(fake_logits)), rtol=1e-5)


def test_kl_warmup_scales_the_kl_term_by_the_steps_done():
    trainer = _trainer(kl_warmup_steps=4)
    mu_bias = trainer.generator.mu_dense.bias
    mu_bias.assign(np.linspace(-1.0, 1.0, mu_bias.shape[0]).astype("float32"))
    batch = _batch()
    for done, weight in ((0, 0.0), (1, 0.5), (3, 1.5), (4, 2.0), (9, 2.0)):
        trainer.generator_optimizer.iterations.assign(done)
        trainer.reset_metrics()  # the logs are running means
        logs = {k: float(v) for k, v in trainer.test_step(batch).items()}
        expected = 1000.0 * logs["l1"] + weight * logs["kl"] + logs["adversarial"]
        np.testing.assert_allclose(logs["g_loss"], expected, rtol=1e-5)
    # A training step counts: the weight follows the optimizer's iterations.
    trainer.generator_optimizer.iterations.assign(0)
    trainer.train_step(batch)
    assert float(trainer.current_kl_weight()) == pytest.approx(0.5)
    assert MotionGenerationTrainer.from_config(trainer.get_config()).kl_warmup_steps == 4


def test_train_step_updates_d_then_g_and_never_the_other():
    trainer = _trainer()
    g_vars = trainer.generator.trainable_variables
    d_vars = trainer.discriminator.trainable_variables
    snapshots = {"before": (_values(g_vars), _values(d_vars))}
    d_step = trainer.discriminator_step

    def spy(*args, **kwargs):
        result = d_step(*args, **kwargs)
        snapshots["between"] = (_values(g_vars), _values(d_vars))
        return result

    trainer.discriminator_step = spy
    logs = trainer.train_step(_batch())
    snapshots["after"] = (_values(g_vars), _values(d_vars))

    (g0, d0), (g1, d1), (g2, d2) = (snapshots[k] for k in ("before", "between", "after"))
    assert _changed(d0, d1), "the D phase did not update D_seq"
    assert _unchanged(g0, g1), "the D phase changed M"
    assert _changed(g1, g2), "the G phase did not update M"
    assert _unchanged(d1, d2), "the G phase changed D_seq"
    assert int(trainer.generator_optimizer.iterations) == 1
    assert int(trainer.discriminator_optimizer.iterations) == 1
    assert set(logs) == set(trainer.metric_names())


def test_train_step_takes_the_g_loss_on_the_d_updates_fakes_against_the_updated_d():
    """One step by hand through the trainer's parts, on a twin with the same weights and noise:
    one G forward (M samples z once), D's update on its detached output, then the G terms with
    the D just updated; the train step logs exactly these values."""
    step, by_hand = _trainer(), _trainer()
    batch = _batch()
    logs = {k: float(v) for k, v in step.train_step(batch).items()}

    inputs = by_hand.prepare(batch)
    generated = by_hand.generate(inputs, training=True)
    d_loss, real_logits, fake_logits = by_hand.discriminator_step(inputs, generated["fake"])
    updated_logits = by_hand.discriminate(generated["fake"], inputs, training=True)
    assert not np.allclose(updated_logits, fake_logits)  # D has moved
    l1 = losses.l1_loss(inputs["real"], generated["fake"])
    kl = losses.kl_divergence(generated["mu"], generated["log_var"])
    adversarial = losses.generator_adversarial_loss(updated_logits)
    expected = dict(d_loss=d_loss, l1=l1, kl=kl, adversarial=adversarial,
                    g_loss=1000.0 * l1 + 2.0 * kl + adversarial,
                    d_real=np.mean(_sigmoid(real_logits)), d_fake=np.mean(_sigmoid(fake_logits)))
    assert set(logs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(logs[name], float(value), rtol=1e-5, err_msg=name)


def test_test_step_changes_no_weight():
    trainer = _trainer()
    before = _values(trainer.weights)
    trainer.test_step(_batch())
    assert _unchanged(before, _values(trainer.weights))
    assert int(trainer.generator_optimizer.iterations) == 0


def test_compile_builds_both_optimizers_on_their_own_variables():
    trainer = _trainer()
    g_opt, d_opt = trainer.generator_optimizer, trainer.discriminator_optimizer
    assert trainer.optimizer is g_opt
    assert g_opt.built and d_opt.built
    # Adam keeps one momentum slot per variable it trains: exactly its own network's.
    for opt, net in ((g_opt, trainer.generator), (d_opt, trainer.discriminator)):
        slots = [v for v in opt.variables if v.path.endswith("_momentum")]
        assert sorted(tuple(v.shape) for v in slots) == sorted(
            tuple(v.shape) for v in net.trainable_variables)
    # fit() finds everything built and adds no variable (no hidden optimizer, no rebuild).
    counts = (len(g_opt.variables), len(d_opt.variables))
    trainer.run_eagerly = True  # the same set-up path as in graph mode, without tracing
    trainer.fit(tf.data.Dataset.from_tensors(_batch()).repeat(), steps_per_epoch=1, verbose=0)
    assert (len(g_opt.variables), len(d_opt.variables)) == counts
    assert trainer.optimizer is g_opt and int(g_opt.iterations) == 1
    assert set(trainer.checkpoint_items()) == {
        "generator", "discriminator", "generator_optimizer", "discriminator_optimizer",
        "generator_noise"}


def test_checkpoint_restores_networks_and_optimizers(tmp_path):
    trainer = _trainer(seed=0)
    batch = _batch()
    trainer.train_step(batch)
    trainer.train_step(batch)
    path = tf.train.Checkpoint(**trainer.checkpoint_items()).save(str(tmp_path / "ckpt"))

    restored = _trainer(seed=5)
    tf.train.Checkpoint(**restored.checkpoint_items()).restore(
        path).assert_existing_objects_matched()
    for name in ("generator", "discriminator", "generator_optimizer", "discriminator_optimizer"):
        a, b = trainer.checkpoint_items()[name], restored.checkpoint_items()[name]
        assert len(a.variables) == len(b.variables)
        for x, y in zip(a.variables, b.variables):
            if "seed_generator" in x.path:
                continue  # the LSTM cells' dropout seeds (unused); M's noise is checked below
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=f"{name}: {x.path}")
    assert int(restored.generator_optimizer.iterations) == 2
    # Restored noise stream: unseeded samples continue identically; so does the next step.
    k0, labels = batch["keypoints"][:, 0], batch["label"]
    np.testing.assert_array_equal(trainer.generator.sample(k0, labels),
                                  restored.generator.sample(k0, labels))
    for tracker in trainer.metrics:
        tracker.reset_state()  # running means: compare this step alone
    logs, logs_restored = trainer.train_step(batch), restored.train_step(batch)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(float(logs[key]), float(logs_restored[key]), rtol=1e-6)


def test_build_trainer_from_configs():
    config = configs.get_config("synthetic", "tiny")
    trainer = stage2.build_trainer(config)
    assert trainer.built and trainer.generator.built and trainer.discriminator.built
    assert trainer.generator.conditional
    # The tiny config names kpvp's earlier D_seq: one LSTM, the class at every step.
    assert config.stage2.discriminator_conditional and config.stage2.discriminator_layers == 1
    assert trainer.discriminator.num_classes == config.num_classes
    assert trainer.discriminator.num_layers == 1
    assert trainer.discriminator.units == config.stage2.discriminator_units
    assert trainer.term_weights == dict(l1=config.stage2.l1_weight, kl=config.stage2.kl_weight,
                                        adversarial=config.stage2.adversarial_weight)
    assert trainer.kl_warmup_steps == config.stage2.kl_warmup_steps == 0

    # MGIF-style: only k0 conditions M, D_seq sees no class; a step runs with labels present.
    mgif = configs.get_config("mgif", "tiny")
    mgif.stage2.lstm_units, mgif.stage2.discriminator_units = 16, 8
    mgif.num_keypoints = 4
    trainer = stage2.build_trainer(mgif)
    assert not trainer.generator.conditional and trainer.discriminator.num_classes == 0
    trainer.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    k_seq = np.random.default_rng(0).uniform(-1, 1, (2, 33, 4, 2)).astype("float32")
    logs = trainer.train_step({"keypoints": k_seq, "label": np.zeros(2, "int32")})
    assert all(np.isfinite(float(v)) for v in logs.values())


def _lstm_params(units, inputs):
    return 4 * (units * (inputs + units) + units)


def test_penn_full_config_builds_the_authors_d_seq_and_m():
    config = configs.get_config("penn", "full")
    trainer = stage2.build_trainer(config)
    d, k2, units = trainer.discriminator, 2 * config.num_keypoints, 1024
    # 2 x 1024 LSTMs over k_1..k_T with no class input (eq. 5), one logit at the last step.
    assert d.num_classes == 0 and trainer.generator.conditional
    assert [tuple(v.shape) for v in d.weights if v.path.endswith("/kernel")] == [
        (k2, 4 * units), (units, 4 * units), (units, 1)]
    assert d.count_params() == (_lstm_params(units, k2) + _lstm_params(units, units)
                                + units * 1 + 1)
    # M, layer by layer as in test_motion_cvae: encoder LSTMs on 2K, posterior layer on
    # [h_T, k_0, a], ReLU FC32 on [z, k_0, a], decoder LSTMs, tanh coordinates.
    c, z = config.num_classes, 64
    m = (_lstm_params(units, k2) + _lstm_params(units, units) + (units + k2 + c) * 2 * z + 2 * z
         + (z + k2 + c) * 32 + 32 + _lstm_params(units, 32) + _lstm_params(units, units)
         + units * k2 + k2)
    assert trainer.generator.count_params() == m

    # The class cannot reach D_seq: the same sequences give the same logits whatever the labels.
    k_seq = np.random.default_rng(0).uniform(-1, 1, (3, 33, config.num_keypoints, 2))
    real = tf.constant(k_seq[:, 1:], tf.float32)
    np.testing.assert_array_equal(
        trainer.discriminate(real, dict(label=tf.constant([0, 1, 2])), training=False),
        trainer.discriminate(real, dict(label=tf.constant([8, 8, 8])), training=False))
    with pytest.raises(ValueError, match="keypoints tensor"):
        d([real, tf.constant([0, 1, 2])])


def test_d_seq_judges_k_1_to_t_without_k_0():
    trainer = _trainer(num_classes=0)
    seen = []
    call = trainer.discriminator.call
    trainer.discriminator.call = lambda x, training=None: seen.append(x.shape) or call(x)
    trainer.test_step(_batch())
    assert seen and all(shape[1] == T for shape in seen)


def test_bad_batches_are_rejected():
    trainer = _trainer()
    with pytest.raises(ValueError, match="keypoints"):
        trainer.test_step((np.zeros((2, T + 1, K, 2), "float32"),))
    with pytest.raises(ValueError, match="keypoints"):
        trainer.test_step({"keypoints": np.zeros((2, T + 1, K), "float32")})


def test_summary_images_are_uint8_grids():
    trainer = _trainer()
    images = trainer.summary_images(_batch(n=6), num_examples=3, num_frames=5, size=32)
    (grid,) = images.values()
    assert grid.shape == (3, 3 * 32, 5 * 32, 3) and grid.dtype == np.uint8
    assert len(np.unique(grid.reshape(-1, 3), axis=0)) > 2  # keypoints are drawn


@pytest.mark.slow
def test_tiny_motion_generator_learns_opposite_motions():
    trainer = _trainer()
    seq, labels = _toy_sequences(256, seed=0)
    data = tf.data.Dataset.from_tensor_slices({"keypoints": seq, "label": labels})
    data = data.shuffle(256, seed=0).repeat().batch(32)
    held_out = _batch(n=64, seed=9)
    l1_before = float(trainer.test_step(held_out)["l1"])
    history = trainer.fit(data, steps_per_epoch=150, epochs=1, verbose=0).history
    for tracker in trainer.metrics:
        tracker.reset_state()
    l1_after = float(trainer.test_step(held_out)["l1"])
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert l1_after < 0.3 * l1_before, (l1_before, l1_after)

    # Samples from z ~ N(0, I): class 0 moves right, class 1 moves left, y stays put.
    k0 = held_out["keypoints"][:, 0]
    n = k0.shape[0]
    expected = STEP * T
    for label, sign in ((0, 1.0), (1, -1.0)):
        samples = trainer.generator.sample(k0, np.full(n, label, "int32"), seed=1).numpy()
        dx = samples[:, -1, :, 0] - k0.numpy()[:, :, 0]
        assert sign * dx.mean() > 0.5 * expected, (label, dx.mean())
        assert np.mean(sign * dx > 0) > 0.9
        assert np.abs(samples[..., 1] - k0.numpy()[:, None, :, 1]).mean() < 0.5 * expected


def test_export_only_stage2_writes_m_from_the_checkpoint_without_pseudo_labelling(tmp_path):
    """`--export_only --stage=2` restores M and exports it; it never labels videos, so it works
    in a workdir with no stage 1 (labelling would need Q and fail there)."""
    from kpvp import stages

    import kpvp.models  # noqa: F401  (registers M for load_model)

    config = configs.get_config("synthetic", "tiny")
    config.stage2.lstm_units = 8
    trainer = stage2.build_trainer(config)
    trainer.compile(*loop.make_optimizers(config.stage2))
    # "Trained" weights that a freshly built M (same seed) does not have, at step 7.
    for variable in trainer.generator.weights:
        variable.assign(variable + 0.5)
    trainer.generator_optimizer.iterations.assign(7)
    manager = loop.make_checkpoint_manager(
        trainer, str(tmp_path / "stage2" / "checkpoints"))
    manager.save(checkpoint_number=7)

    result = stages.run_stage2(config, str(tmp_path), tf.distribute.get_strategy(),
                               export_only=True)
    assert result["step"] == 7
    assert not (tmp_path / "pseudo_labels").exists()
    exported = keras.models.load_model(str(tmp_path / "stage2" / "motion_generator.keras"))
    saved = trainer.generator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, exported.get_weights()))
    with pytest.raises(FileNotFoundError, match="stage 1"):  # what training would need
        stages.run_stage2(config, str(tmp_path), tf.distribute.get_strategy())
