"""Perceptual networks: deflated I3D equals I3D on static video; VGG19 loading and fallback."""
import json
import logging
import math
import zipfile

import keras
import numpy as np
import pytest

from kpvp.data import synthetic
from kpvp.models import i3d, perceptual


@pytest.fixture(scope="module")
def arrays(i3d_arrays):
    return i3d_arrays


@pytest.fixture(scope="module")
def frame():
    """A 64x64 synthetic frame (a figure on a textured background) in [-1, 1]: [1, 64, 64, 3].

    Made here, so the checks run on a fresh clone without `../shared`."""
    video = synthetic.SyntheticVideos("test", 1, image_size=64, num_frames=1, seed=0)[0]
    return (video["frames"][0].astype(np.float32) / 127.5 - 1.0)[None]


def _boundary_free_steps(num_frames):
    """Per endpoint, the output time steps whose receptive field never reaches the zero padding.

    Convolutions read the zeros padded in time; max pooling ignores padded positions, so its
    outputs are clean when every real input in the window is clean.
    """
    def layer(clean, kernel, stride, pool):
        length, out = len(clean), math.ceil(len(clean) / stride)
        before = max((out - 1) * stride + kernel - length, 0) // 2
        windows = [range(i * stride - before, i * stride - before + kernel) for i in range(out)]
        if pool:
            return [all(clean[j] for j in w if 0 <= j < length) for w in windows]
        return [all(0 <= j < length and clean[j] for j in w) for w in windows]

    clean, steps = [True] * num_frames, {}
    for name, kind, args in i3d._BLOCKS:
        if kind == "unit":
            clean = layer(clean, args[1][0], args[2][0], pool=False)
        elif kind == "max_pool":
            clean = layer(clean, args[0][0], args[1][0], pool=True)
        else:  # 3x3x3 conv branches and the 3x3x3 max-pool branch
            conv, pool = layer(clean, 3, 1, False), layer(clean, 3, 1, True)
            clean = [a and b and c for a, b, c in zip(conv, pool, clean)]
        steps[name] = [t for t, ok in enumerate(clean) if ok]
    return steps


# === Deflated I3D ===


def test_deflated_i3d_equals_i3d_on_a_static_video(arrays, frame):
    network = perceptual.make_perceptual_network("i3d2d", i3d_weights=None)
    assert network.source == "i3d2d"
    features = [f.numpy() for f in network(frame)]
    num_frames = 128  # long enough for Mixed_5c to have time steps free of the padding
    video = np.repeat(frame[:, None], num_frames, axis=1)
    full = i3d.load_i3d_weights(i3d.InceptionI3D(endpoints=perceptual.I3D2D_LAYERS), arrays)
    steps = _boundary_free_steps(num_frames)
    for name, flat, volume in zip(perceptual.I3D2D_LAYERS, features, full(video)):
        volume = volume.numpy()
        interior = volume[:, steps[name]]
        assert len(steps[name]) >= 4, name
        scale = np.abs(flat).max()
        np.testing.assert_allclose(interior, np.broadcast_to(flat[:, None], interior.shape),
                                   atol=1e-4 * scale, err_msg=name)
        # The first time step sees the zero padding and differs: the comparison has teeth.
        assert np.abs(volume[:, 0] - flat).max() > 0.05 * scale, name


def test_i3d2d_feature_shapes_and_size_check(arrays):
    network = perceptual.PerceptualNetwork("i3d2d")
    i3d.load_i3d_weights(network.backbone, arrays)
    shapes = [tuple(f.shape) for f in network(np.zeros((2, 128, 96, 3), np.float32))]
    assert shapes == [(2, 64, 48, 64), (2, 32, 24, 192), (2, 16, 12, 480), (2, 8, 6, 832),
                      (2, 4, 3, 1024)]
    with pytest.raises(ValueError, match="multiples of 32"):
        network(np.zeros((1, 100, 128, 3), np.float32))
    # Its loss is calibrated to the paper's VGG19-on-[0, 255] scale; VGG19 needs no factor.
    assert network.loss_scale == perceptual.I3D2D_LOSS_SCALE == 100.0
    assert perceptual.PerceptualNetwork("random").loss_scale == 1.0


def test_save_and_reload_keep_source_and_outputs(arrays, frame, tmp_path):
    network = perceptual.PerceptualNetwork("i3d2d",
                                           feature_layers=("Conv3d_1a_7x7", "Conv3d_2c_3x3"))
    i3d.load_i3d_weights(network.backbone, arrays)
    network.save(tmp_path / "perceptual.keras")
    reloaded = keras.saving.load_model(tmp_path / "perceptual.keras")
    assert reloaded.source == "i3d2d"
    for a, b in zip(network(frame), reloaded(frame)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_file_saved_under_the_old_module_path_reloads(tmp_path):
    # Runs saved before the network moved from kpvp.perceptual to kpvp.models.perceptual.
    network = perceptual.PerceptualNetwork("i3d2d", feature_layers=("Conv3d_1a_7x7",))
    image = np.linspace(-1, 1, 32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3)
    expected = network(image)[0].numpy()
    network.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as new, \
            zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                assert config["module"] == "kpvp.models.perceptual"
                config["module"] = "kpvp.perceptual"
                data = json.dumps(config).encode()
            old.writestr(item, data)
    reloaded = keras.saving.load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(reloaded(image)[0].numpy(), expected)


# === VGG19 ===


def test_vgg19_preprocessing_matches_keras_caffe_mode():
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    expected = keras.applications.vgg19.preprocess_input(rgb.copy())
    ours = keras.ops.convert_to_numpy(perceptual.vgg19_preprocess(rgb / 127.5 - 1.0))
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    # Pure red becomes channel 2 (BGR) on the 0..255 scale minus the mean.
    red = np.array([[[[1.0, -1.0, -1.0]]]], np.float32)
    caffe_red = keras.ops.convert_to_numpy(perceptual.vgg19_preprocess(red))[0, 0, 0]
    np.testing.assert_allclose(caffe_red, [-103.939, -116.779, 255 - 123.68], atol=1e-3)


def test_auto_uses_cached_vgg19_weights_by_name(tmp_path, monkeypatch, frame):
    reference = keras.applications.VGG19(include_top=False, weights=None)
    (tmp_path / "models").mkdir()
    reference.save(tmp_path / "models" / perceptual.VGG19_WEIGHTS_FILE)  # an .h5 like Keras' cache
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    network = perceptual.make_perceptual_network("auto")
    assert network.source == "vgg19" and not network.trainable
    images = np.concatenate([frame, -frame])
    features = network(images)
    assert [tuple(f.shape) for f in features] == [(2, 64, 64, 64), (2, 32, 32, 128),
                                                  (2, 16, 16, 256), (2, 8, 8, 512), (2, 4, 4, 512)]
    caffe = keras.applications.vgg19.preprocess_input((images + 1.0) * 127.5)
    expected = keras.Model(reference.input, reference.get_layer("block5_conv4").output)(caffe)
    np.testing.assert_allclose(features[-1].numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_auto_downloads_vgg19_when_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache
    asked = []
    monkeypatch.setattr(perceptual, "_load_vgg19_weights",
                        lambda network, weights: asked.append(weights))
    network = perceptual.make_perceptual_network("auto")
    assert asked == ["imagenet"]  # Keras' download, not a silent fallback
    assert network.source == "vgg19" and not network.trainable


_VGG19 = keras.applications.VGG19


def _offline_vgg19(*args, weights="imagenet", **kwargs):
    if weights is None:
        return _VGG19(*args, weights=None, **kwargs)
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: "
                    "[Errno -2] Name or service not known")


def test_auto_falls_back_to_i3d2d_only_when_the_download_fails(tmp_path, monkeypatch, caplog,
                                                                i3d_arrays):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache
    monkeypatch.setattr(keras.applications, "VGG19", _offline_vgg19)
    with caplog.at_level(logging.WARNING):
        network = perceptual.make_perceptual_network("auto", vgg19_weights="")
    assert network.source == "i3d2d"
    # The warning names the reason and what the fallback means for FVD.
    assert "Name or service not known" in caplog.text and "FALLING BACK" in caplog.text
    assert "not independent" in caplog.text
    with pytest.raises(RuntimeError, match="could not load VGG19"):
        perceptual.make_perceptual_network("vgg19")


def test_explicit_missing_vgg19_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        perceptual.make_perceptual_network("auto", vgg19_weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="kind"):
        perceptual.make_perceptual_network("alexnet")


def test_random_weights_warn_and_are_seeded(caplog, frame):
    with caplog.at_level(logging.WARNING):
        first = perceptual.make_perceptual_network("random", seed=3)
    assert first.source == "random"
    assert "RANDOM WEIGHTS" in caplog.text
    again = perceptual.make_perceptual_network("random", seed=3)
    other = perceptual.make_perceptual_network("random", seed=4)
    a, b, c = (net(frame)[2].numpy() for net in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
