"""kpvp's LSTM: keras.layers.LSTM's numbers and weights, with no cast in its time loop."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp.models import discriminators, lstm, motion_cvae
from kpvp.models.motion_cvae import MotionCVAE

B, T, D, UNITS = 3, 7, 5, 6


def _pair(rng, dtype=None, **kwargs):
    """keras.layers.LSTM and kpvp's with the same random weights (forget bias included)."""
    reference = keras.layers.LSTM(UNITS, **kwargs)
    fast = lstm.LSTM(UNITS, dtype=dtype, **kwargs)
    reference.build((None, None, D))
    fast.build((None, None, D))
    weights = [rng.normal(0, 0.5, w.shape).astype("float32") for w in reference.get_weights()]
    reference.set_weights(weights)
    fast.set_weights(weights)
    return reference, fast


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("return_state", [True, False])
@pytest.mark.parametrize("initial_state", [True, False])
def test_float32_outputs_equal_keras_lstm(rng, return_sequences, return_state, initial_state):
    reference, fast = _pair(rng, return_sequences=return_sequences, return_state=return_state)
    x = rng.normal(size=(B, T, D)).astype("float32")
    state = ([rng.normal(size=(B, UNITS)).astype("float32") for _ in range(2)]
             if initial_state else None)
    expected = _as_list(reference(x, initial_state=state))
    got = _as_list(fast(x, initial_state=state))
    assert [tuple(e.shape) for e in expected] == [tuple(g.shape) for g in got]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-5)


def test_float32_gradients_equal_keras_lstm(rng):
    reference, fast = _pair(rng, return_sequences=True)
    x = tf.constant(rng.normal(size=(B, T, D)).astype("float32"))
    weights = rng.normal(size=(B, T, UNITS)).astype("float32")

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weights)
        return tape.gradient(loss, [x, *layer.trainable_variables])

    for e, g in zip(gradients(reference), gradients(fast)):
        np.testing.assert_allclose(g, e, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(go_backwards=True), dict(mask=True)])
def test_configurations_outside_the_fast_loop_still_equal_keras_lstm(rng, kwargs):
    mask = kwargs.pop("mask", None)
    reference, fast = _pair(rng, return_sequences=True, **kwargs)
    x = rng.normal(size=(B, T, D)).astype("float32")
    if mask:
        mask = np.arange(T)[None, :] < np.array([[T], [4], [2]])
    np.testing.assert_allclose(fast(x, mask=mask), reference(x, mask=mask), atol=1e-5)


def _casts_in_loop_bodies(layer, x):
    """Cast ops inside the functions of the traced graph (while-loop bodies among them)."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), "float32"))
        return tape.gradient(loss, layer.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec((None, None, D))).graph.as_graph_def()
    return sum(node.op == "Cast" for function in graph.library.function
               for node in function.node_def)


def test_bfloat16_casts_no_weight_inside_the_time_loop(rng):
    reference, fast = _pair(rng, return_sequences=True)
    reference_bf16 = keras.layers.LSTM(UNITS, return_sequences=True, dtype="mixed_bfloat16")
    reference_bf16.build((None, None, D))
    _, fast_bf16 = _pair(rng, dtype="mixed_bfloat16", return_sequences=True)
    x = rng.normal(size=(B, T, D)).astype("float32")
    # Keras' own loop casts its kernels at every step: the count this test would see if
    # kpvp's LSTM fell back to it.
    assert _casts_in_loop_bodies(reference_bf16, x) > 0
    assert _casts_in_loop_bodies(fast_bf16, x) == 0
    fast_bf16.set_weights(fast.get_weights())
    out = fast_bf16(x)
    assert out.dtype == "bfloat16"
    # bfloat16 keeps 8 bits of mantissa: about 2 decimal digits on outputs in (-1, 1).
    np.testing.assert_allclose(tf.cast(out, "float32"), fast(x), atol=0.05)


def _motion_model():
    model = MotionCVAE(num_keypoints=4, num_classes=2, units=8, num_layers=2, latent_dim=3,
                       encoder_fc=5, decoder_fc=6, num_steps=5, seed=1)
    model.build()
    return model


def test_weights_saved_with_keras_lstms_load_into_fast_lstms(tmp_path, monkeypatch):
    """`.keras` files and checkpoints written with Keras' LSTM load into today's M and D_seq."""
    with monkeypatch.context() as patch:
        patch.setattr(motion_cvae, "LSTM", keras.layers.LSTM)
        patch.setattr(discriminators, "LSTM", keras.layers.LSTM)
        old = _motion_model()
        old_discriminator = discriminators.SequenceDiscriminator(units=8, num_layers=2)
    assert type(old.encoder_lstm_0) is keras.layers.LSTM
    assert type(old_discriminator.lstms[0]) is keras.layers.LSTM
    rng = np.random.default_rng(1)
    old.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in old.get_weights()])
    old.save(tmp_path / "m.keras")
    checkpoint = tf.train.Checkpoint(model=old).save(str(tmp_path / "ckpt"))
    k_seq = rng.uniform(-0.8, 0.8, (2, 6, 4, 2)).astype("float32")
    labels = np.array([0, 1], "int32")
    expected = old([k_seq, labels])["keypoints"]

    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.encoder_lstm_0, lstm.LSTM)
    restored = _motion_model()
    assert isinstance(restored.decoder_lstm_1, lstm.LSTM)
    tf.train.Checkpoint(model=restored).restore(checkpoint).assert_existing_objects_matched()
    for model in (loaded, restored):
        np.testing.assert_allclose(model([k_seq, labels])["keypoints"], expected, atol=1e-5)

    discriminator = discriminators.SequenceDiscriminator(units=8, num_layers=2)
    old_discriminator(k_seq)
    discriminator(k_seq)
    assert isinstance(discriminator.lstms[1], lstm.LSTM)
    old_discriminator.save_weights(tmp_path / "d.weights.h5")
    discriminator.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_allclose(discriminator(k_seq), old_discriminator(k_seq), atol=1e-5)
