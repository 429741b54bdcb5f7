"""Action recognition: keypoint-sequence classifier, linear probe, Table-2 style report."""
import keras
import numpy as np
import pytest

from kpvp.metrics import action_recognition as ar


def _toy_motion(n, seed, t=33, k=12):
    """Class 0: a random point cloud moving up; class 1: moving right.

    Each sequence has its own position, size and speed, so only the direction of motion
    tells the classes apart.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    shape = rng.uniform(-0.3, 0.3, (n, 1, k, 2)) * rng.uniform(0.3, 1.5, (n, 1, 1, 1))
    offset = rng.uniform(-0.5, 0.5, (n, 1, 1, 2))
    travel = rng.uniform(0.005, 0.02, (n, 1)) * np.arange(t)  # [n, t]
    motion = np.zeros((n, t, 1, 2))
    motion[..., 0, 0] = np.where(labels[:, None] == 1, travel, 0.0)
    motion[..., 0, 1] = np.where(labels[:, None] == 0, -travel, 0.0)  # y grows downwards
    seq = shape + offset + motion + rng.normal(scale=0.005, size=(n, t, k, 2))
    return seq.astype(np.float32), labels


@pytest.fixture(scope="module")
def toy_data():
    return _toy_motion(300, seed=0), _toy_motion(200, seed=1)


@pytest.fixture(scope="module")
def trained(toy_data):
    (x, y), _ = toy_data
    return ar.train_sequence_classifier(x, y, num_classes=2, epochs=20, seed=0)


def test_normalization_matches_hand_computation_and_is_invariant():
    # Two points at (0, 0) and (0.2, 0); in frame 1 both move up by 0.1.
    seq = np.array([[[[0.0, 0.0], [0.2, 0.0]], [[0.0, -0.1], [0.2, -0.1]]]], np.float32)
    out = keras.ops.convert_to_numpy(ar.KeypointSequenceNormalization()(seq))
    s = np.sqrt(0.005)  # RMS distance of the points from their centre
    expected = np.array([[[-0.1, 0, 0.1, 0, 0, 0], [-0.1, 0, 0.1, 0, 0, -0.1]]]) / s
    np.testing.assert_allclose(out, expected, atol=1e-5)
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (3, 7, 5, 2)).astype(np.float32)
    moved = x * 0.4 + np.array([0.3, -0.2], np.float32)
    layer = ar.KeypointSequenceNormalization()
    np.testing.assert_allclose(layer(moved), layer(x), atol=1e-4)
    # A collapsed keypoint set is divided by min_scale, not by ~0.
    still = np.zeros((1, 4, 3, 2), np.float32)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(layer(still))))


def test_motion_only_normalization_keeps_the_movement_and_drops_the_pose():
    # The two points of the hand-computed case; in frame 1 the right one also moves by 0.1.
    seq = np.array([[[[0.0, 0.0], [0.2, 0.0]], [[0.0, -0.1], [0.3, -0.1]]]], np.float32)
    out = keras.ops.convert_to_numpy(ar.KeypointSequenceNormalization(motion_only=True)(seq))
    # Centred poses (-0.1, 0), (0.1, 0) then (-0.15, 0), (0.15, 0): RMS over the sequence.
    s = np.sqrt((0.01 + 0.01 + 0.0225 + 0.0225) / 8)
    expected = np.array([[[0, 0, 0, 0, 0, 0], [-0.05, 0, 0.05, 0, 0.05, -0.1]]]) / s
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # A held pose gives zeros, whatever the pose; the classifier then says the same for all.
    rng = np.random.default_rng(1)
    held = np.repeat(rng.uniform(-0.8, 0.8, (6, 1, 5, 2)), 9, axis=1).astype(np.float32)
    np.testing.assert_allclose(ar.KeypointSequenceNormalization(motion_only=True)(held), 0,
                               atol=1e-6)
    model = ar.KeypointSequenceClassifier(3, motion_only=True)
    logits = keras.ops.convert_to_numpy(model(held))
    np.testing.assert_allclose(logits, np.broadcast_to(logits[:1], logits.shape), atol=1e-6)
    assert ar.KeypointSequenceClassifier.from_config(model.get_config()).motion_only


def test_sequence_classifier_separates_motion_directions(toy_data, trained):
    _, (xt, yt) = toy_data
    assert ar.accuracy(trained, xt, yt) >= 0.95


def test_sequence_classifier_is_at_chance_on_shuffled_labels(toy_data):
    (x, y), (xt, yt) = toy_data
    shuffled = np.random.default_rng(5).permutation(y)
    model = ar.train_sequence_classifier(x, shuffled, num_classes=2, epochs=10, seed=0)
    # 200 test sequences: chance is 0.5 with a standard deviation of about 0.035.
    assert 0.35 <= ar.accuracy(model, xt, yt) <= 0.65


def test_same_seed_same_model_and_keras_reload(toy_data, trained, tmp_path):
    (x, y), (xt, _) = toy_data
    again = ar.train_sequence_classifier(x, y, num_classes=2, epochs=20, seed=0)
    np.testing.assert_array_equal(again.predict(xt, verbose=0), trained.predict(xt, verbose=0))
    # Another seed starts from other weights.
    fresh = [ar.KeypointSequenceClassifier(2, seed=s) for s in (3, 3, 4)]
    out = [keras.ops.convert_to_numpy(m(xt[:8])) for m in fresh]
    np.testing.assert_array_equal(out[0], out[1])
    assert np.abs(out[0] - out[2]).max() > 1e-3

    path = tmp_path / "classifier.keras"
    trained.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, ar.KeypointSequenceClassifier)
    assert reloaded.get_config() == trained.get_config()
    np.testing.assert_array_equal(reloaded.predict(xt, verbose=0),
                                  trained.predict(xt, verbose=0))


def test_classifier_output_shape_and_any_length():
    model = ar.KeypointSequenceClassifier(num_classes=5, filters=8)
    logits = model(np.zeros((2, 9, 4, 2), np.float32))
    assert tuple(logits.shape) == (2, 5)
    assert tuple(model(np.zeros((3, 1, 4, 2), np.float32)).shape) == (3, 5)


def _blobs(rng, centres, n):
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + rng.normal(size=(n, centres.shape[1])), labels


def test_linear_probe_separates_blobs_and_is_at_chance_on_random_labels(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)) * 3
    x, y = _blobs(rng, centres, 400)
    xt, yt = _blobs(rng, centres, 400)
    # Large, shifted feature scales (as logits of a network may have) are standardised away.
    probe = ar.fit_linear_probe(x * 1e4 + 7, y, num_classes=4, seed=0)
    assert probe.accuracy(xt * 1e4 + 7, yt) >= 0.98
    proba = probe.predict_proba(xt * 1e4 + 7)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)

    noise = rng.normal(size=(400, 64))
    random_labels = rng.integers(0, 4, 400)
    memoriser = ar.fit_linear_probe(noise, random_labels, 4)
    held_out = ar.accuracy(memoriser, rng.normal(size=(2000, 64)), rng.integers(0, 4, 2000))
    assert abs(held_out - 0.25) < 0.05  # std of the estimate is ~0.01

    again = ar.fit_linear_probe(noise, random_labels, 4, seed=1)
    np.testing.assert_array_equal(again.weights, memoriser.weights)
    path = tmp_path / "probe.npz"
    probe.save(path)
    np.testing.assert_array_equal(ar.LinearProbe.load(path).logits(xt), probe.logits(xt))


def test_linear_probe_on_uninformative_features_predicts_class_frequencies():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    probe = ar.fit_linear_probe(np.ones((10, 3)), labels, 3)
    np.testing.assert_allclose(probe.predict_proba(np.ones((1, 3)))[0], [0.6, 0.3, 0.1],
                               atol=1e-5)


def test_report_structure_and_values():
    rng = np.random.default_rng(1)
    centres = np.eye(4) * 10
    x, y = _blobs(rng, centres, 200)
    probe = ar.fit_linear_probe(x, y, 4)
    real = _blobs(rng, centres, 40)
    gen_labels = np.repeat(np.arange(4), 10)
    generated = (centres[gen_labels], gen_labels)
    # Without the condition, every video of class 0 comes out looking like class 1.
    uncond_inputs = centres[np.where(gen_labels == 0, 1, gen_labels)]
    report = ar.action_recognition_report(probe, real, generated,
                                          (uncond_inputs, gen_labels))
    assert report["real"] == 1.0
    assert report["generated"] == 1.0
    assert report["generated_unconditional"] == 0.75
    assert report["per_class"]["generated_unconditional"] == [0.0, 1.0, 1.0, 1.0]
    assert report["num_real"] == 40 and report["num_generated_unconditional"] == 40
    assert report["num_classes"] == 4 and report["chance"] == 0.25
    short = ar.action_recognition_report(probe, real, generated)
    assert "generated_unconditional" not in short and short["generated"] == 1.0


def test_report_works_with_the_sequence_classifier(toy_data, trained):
    _, (xt, yt) = toy_data
    report = ar.action_recognition_report(trained, (xt, yt), (xt[:50], 1 - yt[:50]))
    assert report["real"] >= 0.95
    assert report["generated"] <= 0.05
    assert report["num_classes"] == 2


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"sequences must have shape \[N, T, K, 2\]"):
        ar.train_sequence_classifier(np.zeros((4, 5, 3)), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ar.train_sequence_classifier(np.zeros((4, 5, 3, 2)), np.array([0, 1, 2, 0]), 2)
    with pytest.raises(ValueError, match="labels must have shape"):
        ar.fit_linear_probe(np.zeros((4, 3)), np.zeros(5, int), 2)
    with pytest.raises(ValueError, match="features contains NaN"):
        ar.fit_linear_probe(np.full((4, 3), np.nan), np.zeros(4, int), 2)
    probe = ar.fit_linear_probe(np.eye(4), np.array([0, 1, 0, 1]), 2)
    with pytest.raises(ValueError, match="features must have 4 values"):
        probe.predict(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="generated labels"):
        ar.action_recognition_report(probe, (np.eye(4), [0, 1, 0, 1]), (np.eye(4), [0, 1, 2, 3]))
    with pytest.raises(TypeError, match="LinearProbe or a keras.Model"):
        ar.accuracy(object(), np.eye(4), [0, 1, 0, 1])


def test_condition_report_counts_by_hand():
    # Two first frames (classes 0 and 1) under conditions 0, 1, 2.
    cond = np.array([0, 0, 1, 1, 2, 2])
    own = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 1, 1, 0, 2])
    r = ar.condition_report(pred, cond, own)
    assert r["num_own"] == 2 and r["num_other"] == 4
    assert r["follows_condition"] == pytest.approx(4 / 6)  # rows 0, 2, 3, 5
    assert r["own_class"] == 1.0  # rows 0 and 3
    assert r["other_follows_condition"] == pytest.approx(2 / 4)  # rows 2, 5 of 1, 2, 4, 5
    assert r["other_follows_first_frame"] == pytest.approx(2 / 4)  # rows 1, 4
    # Ignoring the condition: one prediction per first frame.
    ignore = ar.condition_report(own, cond, own)
    assert ignore["own_class"] == ignore["other_follows_first_frame"] == 1.0
    assert ignore["other_follows_condition"] == 0.0
    assert np.isnan(ar.condition_report([1], [1], [1])["other_follows_condition"])
    with pytest.raises(ValueError, match="one length"):
        ar.condition_report([0, 1], [0], [0, 1])
