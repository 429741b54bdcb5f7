"""Motion cVAE M: shapes, conditioning, reparameterisation, seeded sampling, save/reload."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs, losses
from kpvp.models import motion_cvae
from kpvp.models.motion_cvae import MotionCVAE

from helpers import model_checks

K, T, C, D = 5, 6, 3, 4
# The authors' M (the full configs' forms; the constructor defaults are kpvp's earlier ones).
AUTHORS = dict(encoder_condition="head", encoder_fc=0, posterior="softplus",
               decoder_fc_activation="relu")


def _model(**overrides):
    args = dict(num_keypoints=K, num_classes=C, units=16, num_layers=2, latent_dim=D,
                encoder_fc=8, decoder_fc=6, num_steps=T, seed=3)
    args.update(overrides)
    model = MotionCVAE(**args)
    model.build()
    return model


def _sequences(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    k_seq = rng.uniform(-0.8, 0.8, (batch, T + 1, K, 2)).astype("float32")
    labels = (np.arange(batch) % C).astype("int32")
    return k_seq, labels


def _differ(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("form", [{}, AUTHORS, dict(AUTHORS, posterior="relu")],
                         ids=["earlier", "authors", "authors_relu"])
def test_shared_network_checks(tmp_path, form):
    k_seq, labels = _sequences()
    outputs = model_checks.check_network(
        _model(**form), [k_seq, labels],
        {"keypoints": (4, T, K, 2), "mu": (4, D), "log_var": (4, D)}, tmp_path)
    # tanh output: absolute coordinates inside the image.
    assert np.all(np.abs(outputs["keypoints"]) <= 1.0)


def test_reload_reproduces_sampling_and_reconstruction(tmp_path):
    model = _model()
    k_seq, labels = _sequences()
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model.sample(k_seq[:, 0], labels, seed=11),
                                  reloaded.sample(k_seq[:, 0], labels, seed=11))
    np.testing.assert_array_equal(model([k_seq, labels])["keypoints"],
                                  reloaded([k_seq, labels])["keypoints"])


def test_checkpoint_holds_every_weight(tmp_path):
    model = _model()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    stored = {name: shape for name, shape in tf.train.list_variables(path)
              if name.startswith("model/")}
    assert len(stored) == len(model.trainable_variables)
    assert sorted(map(tuple, stored.values())) == sorted(
        tuple(v.shape) for v in model.trainable_variables)
    restored = _model(seed=9)
    restored.set_weights([np.zeros_like(w) for w in restored.get_weights()])
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    k_seq, labels = _sequences()
    np.testing.assert_array_equal(model([k_seq, labels])["keypoints"],
                                  restored([k_seq, labels])["keypoints"])


def test_encode_decode_sample_shapes_and_num_steps():
    model = _model()
    k_seq, labels = _sequences(batch=3)
    mu, log_var = model.encode(k_seq[:, 1:], k_seq[:, 0], labels)
    assert mu.shape == (3, D) and log_var.shape == (3, D)
    assert model.decode(mu, k_seq[:, 0], labels).shape == (3, T, K, 2)
    assert model.decode(mu, k_seq[:, 0], labels, num_steps=9).shape == (3, 9, K, 2)
    assert model.sample(k_seq[:, 0], labels, seed=0).shape == (3, T, K, 2)
    # The reconstruction follows the length of the given sequence, not num_steps.
    out = model([k_seq[:, :4], labels])
    assert out["keypoints"].shape == (3, 3, K, 2)


def test_inference_reconstruction_decodes_the_mean():
    model = _model()
    k_seq, labels = _sequences()
    out = model([k_seq, labels], training=False)
    expected = model.decode(out["mu"], k_seq[:, 0], labels)
    np.testing.assert_allclose(out["keypoints"], expected, atol=1e-6)
    again = model([k_seq, labels], training=False)
    np.testing.assert_array_equal(out["keypoints"], again["keypoints"])
    # Training draws z from q(z | ...), so the reconstruction moves away from the mean's.
    noisy = model([k_seq, labels], training=True)
    np.testing.assert_allclose(noisy["mu"], out["mu"], atol=1e-6)
    assert _differ(noisy["keypoints"], out["keypoints"]) > 1e-4


def test_reparameterize_has_the_posterior_mean_and_std():
    model = _model()
    mu = np.full((4000, D), 1.5, "float32")
    log_var = np.full((4000, D), np.log(0.25), "float32")  # sigma = 0.5
    z = keras.ops.convert_to_numpy(model.reparameterize(mu, log_var, seed=5))
    assert abs(z.mean() - 1.5) < 0.02
    assert abs(z.std() - 0.5) < 0.02


@pytest.mark.parametrize("form", [{}, AUTHORS], ids=["earlier", "authors"])
def test_decoder_uses_class_latent_and_first_keypoints(form):
    model = _model(**form)
    k_seq, _ = _sequences(batch=2)
    k0 = k_seq[:, 0]
    z = np.random.default_rng(1).normal(size=(2, D)).astype("float32")
    base = model.decode(z, k0, np.array([0, 0]))
    assert _differ(base, model.decode(z, k0, np.array([1, 2]))) > 1e-4
    assert _differ(base, model.decode(z + 1.0, k0, np.array([0, 0]))) > 1e-4
    assert _differ(base, model.decode(z, k0[::-1], np.array([0, 0]))) > 1e-4
    # Example 0 is unaffected by what example 1 gets: no mixing across the batch.
    other = model.decode(z, k0, np.array([0, 2]))
    np.testing.assert_allclose(other[0], base[0], atol=1e-6)


@pytest.mark.parametrize("form", [{}, AUTHORS], ids=["earlier", "authors"])
def test_encoder_uses_future_first_keypoints_and_class(form):
    model = _model(**form)
    k_seq, labels = _sequences()
    mu, _ = model.encode(k_seq[:, 1:], k_seq[:, 0], labels)
    assert _differ(mu, model.encode(k_seq[:, 1:] * 0.5, k_seq[:, 0], labels)[0]) > 1e-5
    assert _differ(mu, model.encode(k_seq[:, 1:], k_seq[:, 0] * 0.5, labels)[0]) > 1e-5
    assert _differ(mu, model.encode(k_seq[:, 1:], k_seq[:, 0], (labels + 1) % C)[0]) > 1e-5


def test_sampling_is_reproducible_from_a_seed():
    model = _model()
    k_seq, labels = _sequences()
    first = model.sample(k_seq[:, 0], labels, seed=7)
    np.testing.assert_array_equal(first, model.sample(k_seq[:, 0], labels, seed=7))
    assert _differ(first, model.sample(k_seq[:, 0], labels, seed=8)) > 1e-4
    # Without a seed the model's own generator advances: two draws differ.
    assert _differ(model.sample(k_seq[:, 0], labels), model.sample(k_seq[:, 0], labels)) > 1e-4
    z = np.zeros((4, D), "float32")
    np.testing.assert_allclose(model.sample(k_seq[:, 0], labels, z=z),
                               model.decode(z, k_seq[:, 0], labels), atol=1e-6)
    # An int seed means the z that generation and the SavedModel draw for it (latent_noise).
    np.testing.assert_array_equal(
        first, model.sample(k_seq[:, 0], labels, z=motion_cvae.latent_noise(7, 4, D)))


def test_unconditional_model_ignores_labels():
    for model in (_model(num_classes=0), _model(class_conditional=False)):
        assert not model.conditional
        k_seq, labels = _sequences()
        with_labels = model([k_seq, labels])["keypoints"]
        np.testing.assert_array_equal(with_labels, model([k_seq, (labels + 1) % C])["keypoints"])
        np.testing.assert_array_equal(with_labels, model(k_seq)["keypoints"])
        assert model.sample(k_seq[:, 0], seed=1).shape == (4, T, K, 2)
    # Fewer weights than the class-conditional model: the class input is really gone.
    assert (_model(class_conditional=False).count_params()
            < _model(class_conditional=True).count_params())


def test_bad_inputs_name_the_argument():
    model = _model()
    k_seq, labels = _sequences()
    with pytest.raises(ValueError, match="k_seq"):
        model([k_seq[..., :1], labels])
    with pytest.raises(ValueError, match="k_seq"):
        model([k_seq[:, :, :K - 1], labels])
    with pytest.raises(ValueError, match="k_seq"):
        model([k_seq[:, :1], labels])
    with pytest.raises(ValueError, match="labels"):
        model([k_seq])
    with pytest.raises(ValueError, match="k0"):
        model.sample(k_seq[:, :2, 0], labels, seed=0)
    with pytest.raises(ValueError, match="z"):
        model.decode(np.zeros((4, D + 1), "float32"), k_seq[:, 0], labels)
    with pytest.raises(ValueError, match="num_keypoints"):
        MotionCVAE(num_keypoints=0)


def test_build_motion_generator_follows_the_run_config():
    config = configs.get_config("synthetic", "tiny")
    model = motion_cvae.build_motion_generator(config)
    assert model.num_keypoints == config.num_keypoints
    assert model.num_classes == config.num_classes and model.conditional
    assert model.units == config.stage2.lstm_units
    assert model.num_layers == config.stage2.lstm_layers
    assert model.latent_dim == config.stage2.latent_dim
    assert model.num_steps == config.data.seq_len - 1 == 32
    # The tiny variant names kpvp's own forms; the full configs build the authors' M.
    assert model.offsets and model.condition_every_step
    assert (model.encoder_condition, model.encoder_fc, model.posterior,
            model.decoder_fc_activation) == ("every_step", 64, "log_var", "linear")
    full = motion_cvae.build_motion_generator(configs.get_config("synthetic", "full"))
    assert not full.offsets and not full.condition_every_step
    assert (full.encoder_condition, full.encoder_fc, full.posterior,
            full.decoder_fc_activation) == ("head", 0, "softplus", "relu")
    assert not motion_cvae.build_motion_generator(configs.get_config("mgif", "tiny")).conditional


def test_offsets_model_starts_at_the_first_pose_and_moves_it(tmp_path):
    k_seq, labels = _sequences()
    model = _model(offsets=True)
    # Zero-initialised displacements: untrained, every future frame is k_0, even beyond [-1, 1].
    k0 = k_seq[:, 0] * 1.2
    held = model.sample(k0, labels, seed=1)
    np.testing.assert_allclose(held, np.repeat(k0[:, None], T, axis=1), atol=1e-6)
    # The kernel is still zero, so the displacement is the output bias at every step.
    kernel, bias = model.output_dense.get_weights()
    model.output_dense.set_weights([kernel, np.linspace(-0.3, 0.3, bias.size)])
    moved = np.asarray(model.sample(k0, labels, seed=1))
    np.testing.assert_allclose(moved - k0[:, None],
                               np.broadcast_to(np.linspace(-0.3, 0.3, 2 * K).reshape(K, 2),
                                               moved.shape), atol=1e-6)
    # It survives saving with its option.
    path = tmp_path / "offsets.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.offsets
    np.testing.assert_array_equal(reloaded.sample(k0, labels, seed=1), moved)


def test_condition_every_step_changes_only_the_later_decoder_inputs(tmp_path):
    k_seq, labels = _sequences()
    first_only = _model()
    every = _model(condition_every_step=True)
    every.set_weights(first_only.get_weights())
    z = np.random.default_rng(0).normal(size=(4, D)).astype("float32")
    k0 = k_seq[:, 0]
    # Step 1 sees FC([z, k_0, a]) in both; after it one model sees zeros, the other the same.
    np.testing.assert_allclose(first_only.decode(z, k0, labels, num_steps=1),
                               every.decode(z, k0, labels, num_steps=1), atol=1e-6)
    a, b = first_only.decode(z, k0, labels), every.decode(z, k0, labels)
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-6)
    assert _differ(a[:, 1:], b[:, 1:]) > 1e-4
    path = tmp_path / "every.keras"
    every.save(path)
    reloaded = keras.models.load_model(path)
    assert reloaded.condition_every_step
    np.testing.assert_array_equal(reloaded.decode(z, k0, labels), b)


def _lstm_params(units, inputs):
    return 4 * (units * (inputs + units) + units)


def _dense_params(inputs, outputs):
    return inputs * outputs + outputs


def test_penn_full_config_builds_the_authors_m():
    config = configs.get_config("penn", "full")
    model = motion_cvae.build_motion_generator(config)
    model.build()
    k2, classes, units, z = 2 * config.num_keypoints, config.num_classes, 1024, 64
    assert (k2, classes, model.num_steps) == (80, 9, 32)
    kernel = {v.path.split("/", 1)[1]: tuple(v.shape) for v in model.weights
              if v.path.endswith("/kernel")}
    # Encoder: the LSTMs read k_1..k_T alone; ONE layer maps [h_T, k_0, a] to [mu, sigma].
    assert kernel["encoder_lstm_0/lstm_cell/kernel"] == (k2, 4 * units)
    assert kernel["encoder_lstm_1/lstm_cell/kernel"] == (units, 4 * units)
    assert kernel["posterior/kernel"] == (units + k2 + classes, 2 * z)
    assert not hasattr(model, "encoder_dense")
    # Decoder: ReLU FC32 on [z, k_0, a], 2 x 1024 LSTMs, tanh coordinates.
    assert kernel["decoder_fc/kernel"] == (z + k2 + classes, 32)
    assert model.decoder_dense.activation is keras.activations.relu
    assert kernel["decoder_lstm_0/lstm_cell/kernel"] == (32, 4 * units)
    assert kernel["decoder_lstm_1/lstm_cell/kernel"] == (units, 4 * units)
    assert kernel["keypoints/kernel"] == (units, k2)
    assert model.output_dense.activation is keras.activations.tanh
    assert [lstm.units for lstm in model.encoder_lstms + model.decoder_lstms] == [units] * 4

    encoder = (_lstm_params(units, k2) + _lstm_params(units, units)
               + _dense_params(units + k2 + classes, 2 * z))
    decoder = (_dense_params(z + k2 + classes, 32) + _lstm_params(units, 32)
               + _lstm_params(units, units) + _dense_params(units, k2))
    assert model.count_params() == encoder + decoder
    # What the export keeps: the decoder's weights (beside the LSTMs' seed states).
    assert sum(int(np.prod(v.shape)) for v in model.decoder_variables if v.trainable) == decoder


def _posterior_model(posterior, bias):
    """An M whose posterior layer outputs `bias` whatever the sequence (zero kernel)."""
    model = _model(**dict(AUTHORS, posterior=posterior))
    kernel, _ = model.posterior_dense.get_weights()
    model.posterior_dense.set_weights([np.zeros_like(kernel), np.asarray(bias, "float32")])
    return model


def test_softplus_posterior_kl_equals_the_hand_computed_value():
    # mu (first D), then the pre-activations s of sigma; -200 would make softplus alone 0.
    bias = [0.5, -1.0, 0.0, 2.0, 1.0, -2.0, 0.0, -200.0]
    model = _posterior_model("softplus", bias)
    k_seq, labels = _sequences(batch=3)
    mu, log_var = model.encode(k_seq[:, 1:], k_seq[:, 0], labels)
    mu_hand = np.array(bias[:D])
    sigma = np.log1p(np.exp(np.array(bias[D:]))) + 1e-4  # softplus + the 1e-4 floor
    kl_hand = 0.5 * np.sum(mu_hand ** 2 + sigma ** 2 - np.log(sigma ** 2) - 1.0)
    np.testing.assert_allclose(mu, np.broadcast_to(mu_hand, (3, D)), atol=1e-6)
    np.testing.assert_allclose(np.exp(0.5 * np.asarray(log_var)),
                               np.broadcast_to(sigma, (3, D)), rtol=1e-5)
    np.testing.assert_allclose(float(losses.kl_divergence(mu, log_var)), kl_hand, rtol=1e-5)
    # Sampling scales the noise by that sigma.
    z = model.reparameterize(np.zeros((4000, D), "float32"),
                             np.repeat(np.asarray(log_var)[:1], 4000, axis=0), seed=2)
    np.testing.assert_allclose(np.std(np.asarray(z), axis=0)[:3], sigma[:3], rtol=0.05)


def test_relu_posterior_is_the_authors_kl_with_its_log_floor():
    bias = [0.5, -1.0, 0.0, 2.0, 1.0, -2.0, 0.0, 0.3]
    model = _posterior_model("relu", bias)
    k_seq, labels = _sequences(batch=2)
    mu, log_var = model.encode(k_seq[:, 1:], k_seq[:, 0], labels)
    mu_hand, sigma = np.maximum(bias[:D], 0.0), np.maximum(bias[D:], 0.0)
    # The authors' KL: 0.5 * sum(mu^2 + sigma^2 - log(1e-8 + sigma^2) - 1).
    kl_hand = 0.5 * np.sum(mu_hand ** 2 + sigma ** 2 - np.log(1e-8 + sigma ** 2) - 1.0)
    np.testing.assert_allclose(mu[0], mu_hand, atol=1e-6)
    np.testing.assert_allclose(float(losses.kl_divergence(mu, log_var)), kl_hand, rtol=1e-5)
