"""Checks every kpvp network and layer goes through (`from helpers import model_checks`).

`check_network`: output shapes and dtypes, finite outputs, every constructor argument in
`get_config`, a `from_config` round trip, and a `.keras` save + `keras.models.load_model`
WITHOUT `custom_objects` that reproduces the outputs.
`check_layer`: the same for a layer, with `keras.saving` (de)serialisation instead of a file.
"""
import inspect
import json

import keras
import numpy as np


def _as_dict(outputs):
    if isinstance(outputs, dict):
        return outputs
    if isinstance(outputs, (list, tuple)):
        return {str(i): value for i, value in enumerate(outputs)}
    return {"output": outputs}


def _expected_dict(expected_shapes):
    if isinstance(expected_shapes, dict):
        return expected_shapes
    if all(isinstance(d, int) or d is None for d in expected_shapes):
        return {"output": tuple(expected_shapes)}
    return {str(i): shape for i, shape in enumerate(expected_shapes)}


def _check_outputs(outputs, expected_shapes, dtype, what):
    outputs = _as_dict(outputs)
    expected = _expected_dict(expected_shapes)
    assert sorted(outputs) == sorted(expected), f"{what}: outputs {sorted(outputs)}"
    for key, value in outputs.items():
        assert tuple(value.shape) == tuple(expected[key]), (
            f"{what}[{key}]: shape {tuple(value.shape)}, expected {tuple(expected[key])}")
        assert keras.backend.standardize_dtype(value.dtype) == dtype, (
            f"{what}[{key}]: dtype {value.dtype}, expected {dtype}")
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(value))), f"{what}[{key}]: not finite"
    return outputs


def _check_config(obj):
    """Every constructor argument is in the JSON-serialisable config; returns the config."""
    config = obj.get_config()
    json.dumps(config)
    params = inspect.signature(type(obj).__init__).parameters
    arguments = [name for name, p in params.items()
                 if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [name for name in arguments if name not in config]
    assert not missing, f"{type(obj).__name__}.get_config() lacks constructor args {missing}"
    return config


def _assert_same(first, second, what, atol):
    first, second = _as_dict(first), _as_dict(second)
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(first[key]), keras.ops.convert_to_numpy(second[key]),
            rtol=0, atol=atol, err_msg=f"{what}[{key}]")


def check_network(model, inputs, expected_shapes, tmp_path, dtype="float32", atol=1e-6):
    """Runs the shared checks on a `keras.Model`; returns its (inference) outputs.

    `expected_shapes`: one shape tuple, or a dict / tuple of them matching the outputs.
    """
    what = type(model).__name__
    outputs = _check_outputs(model(inputs, training=False), expected_shapes, dtype, what)

    config = _check_config(model)
    clone = type(model).from_config(config)
    assert clone.get_config() == config, f"{what}: from_config(get_config()) changed the config"
    _check_outputs(clone(inputs, training=False), expected_shapes, dtype, what + " clone")
    assert len(clone.weights) == len(model.weights)

    path = tmp_path / f"{what}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # no custom_objects: registration must suffice
    assert type(reloaded) is type(model), f"{what}: reloaded as {type(reloaded).__name__}"
    assert reloaded.get_config() == config
    _assert_same(outputs, reloaded(inputs, training=False), what + " reloaded", atol)
    return outputs


def check_layer(layer, inputs, expected_shapes, dtype="float32", atol=1e-6):
    """Runs the shared checks on a `keras.layers.Layer`; returns its outputs."""
    what = type(layer).__name__
    outputs = _check_outputs(layer(inputs), expected_shapes, dtype, what)
    config = _check_config(layer)
    assert type(layer).from_config(config).get_config() == config

    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    restored = keras.saving.deserialize_keras_object(serialized)  # no custom_objects
    assert type(restored) is type(layer)
    restored(inputs)
    restored.set_weights(layer.get_weights())
    _assert_same(outputs, restored(inputs), what + " restored", atol)
    return outputs
