"""FVD: Frechet distance against closed forms, preprocessing, batching, published sanity values."""
import numpy as np
import pytest
import scipy.linalg

from kpvp.metrics import fvd


def _random_covariance(rng, dim, samples=50):
    x = rng.normal(size=(samples, dim))
    return np.cov(x, rowvar=False)


@pytest.fixture(scope="module")
def extractor(i3d_arrays):  # skips when the I3D weights are absent
    return fvd.I3DFeatureExtractor(batch_size=8)


# === Frechet distance ===


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=6), _random_covariance(rng, 6)
    assert fvd.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_covariances_match_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # sum((m1-m2)^2) + sum((sqrt(s1)-sqrt(s2))^2) = (1 + 0 + 6.25) + (4 + 1 + 0) = 12.25
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert expected == pytest.approx(12.25)
    value = fvd.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert value == pytest.approx(expected, rel=1e-12)


def test_full_covariances_match_the_sqrtm_formula():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = _random_covariance(rng, 5), _random_covariance(rng, 5)
    reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    assert fvd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    # Symmetric in its two distributions.
    assert fvd.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(reference, rel=1e-9)


def test_rank_deficient_covariances_as_in_small_sets():
    # 4 samples in 10 dimensions: singular covariances, as with a few videos and 400 logits.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 10)), rng.normal(size=(4, 10))
    value = fvd.fvd_from_features(a, b)
    mu1, s1 = fvd.feature_statistics(a)
    mu2, s2 = fvd.feature_statistics(b)
    reference = (np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2)
                 - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    assert value == pytest.approx(reference, rel=1e-6)
    assert fvd.fvd_from_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError, match="positive semi-definite"):
        fvd.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sigma2"):
        fvd.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="N >= 2"):
        fvd.feature_statistics(np.zeros((1, 400)))


# === Preprocessing and batching ===


def test_preprocess_scales_resizes_and_keeps_orientation():
    videos = np.zeros((2, 3, 16, 32, 3), np.uint8)
    videos[:, :, :, :16] = 255  # left half white
    videos[1, :, :8, :, 0] = 0  # second video: top rows without red
    out = fvd.preprocess(videos).numpy()
    assert out.shape == (2, 3, 224, 224, 3) and out.dtype == np.float32
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)
    np.testing.assert_allclose(out[0, :, :, :100], 1.0, atol=1e-6)  # left stays left
    np.testing.assert_allclose(out[:, :, :, 124:], -1.0, atol=1e-6)
    # Top stays top, and red is channel 0.
    assert np.all(out[1, :, :96, :96, 0] == pytest.approx(-1.0))
    assert np.all(out[1, :, 124:, :100, 0] == pytest.approx(1.0))
    with pytest.raises(TypeError, match="uint8"):
        fvd.preprocess(videos.astype(np.float32))


def _moving_gradient(num_videos=2, num_frames=10, size=64):
    """uint8 `[N, T, size, size, 3]`: diagonal colour ramps that shift by 3 px a frame."""
    y, x = np.mgrid[:size, :size]
    videos = np.empty((num_videos, num_frames, size, size, 3), np.uint8)
    for n in range(num_videos):
        for t in range(num_frames):
            phase = x + 2 * y + 3 * t + 17 * n
            videos[n, t] = np.stack([(phase * 5) % 256, (x * 4 + t) % 256, (y * 7) % 256], -1)
    return videos


def _reference_preprocess(videos, size=224):
    """The reference FVD code's preprocessing, written out here: TF1 `resize_bilinear`, then
    `2 * x / 255 - 1`."""
    import tensorflow as tf

    frames = tf.reshape(videos, (-1,) + videos.shape[2:])
    resized = tf.compat.v1.image.resize_bilinear(frames, (size, size))
    resized = tf.reshape(resized, (videos.shape[0], -1, size, size, 3))
    return (2.0 * tf.cast(resized, tf.float32) / 255.0 - 1.0).numpy()


def test_preprocess_is_the_reference_tf1_bilinear_resize_on_a_moving_gradient():
    import tensorflow as tf

    videos = _moving_gradient()
    expected = _reference_preprocess(videos)
    np.testing.assert_allclose(fvd.preprocess(videos).numpy(), expected, atol=2e-6)
    # The test can tell the two resizes apart: TF2's half-pixel resize differs by grey levels.
    half_pixel = tf.image.resize(tf.cast(videos[0], tf.float32), (224, 224)).numpy() / 127.5 - 1
    assert np.abs(half_pixel - expected[0]).max() > 0.05


def test_iterate_batches_regroups_videos_and_checks_them():
    video = np.zeros((10, 8, 8, 3), np.uint8)
    singles = [video] * 5 + [{"frames": np.zeros((12, 8, 8, 3), np.uint8)}] * 2
    sizes = [b.shape for b in fvd.iterate_batches(singles, batch_size=2)]
    assert sizes == [(2, 10, 8, 8, 3), (2, 10, 8, 8, 3), (1, 10, 8, 8, 3), (2, 12, 8, 8, 3)]
    batches = [b.shape[0] for b in fvd.iterate_batches(np.zeros((7, 10, 8, 8, 3), np.uint8), 3)]
    assert batches == [3, 3, 1]
    with pytest.raises(ValueError, match="at least 9 frames"):
        list(fvd.iterate_batches([np.zeros((8, 8, 8, 3), np.uint8)], 2))
    with pytest.raises(TypeError, match="uint8"):
        list(fvd.iterate_batches([np.zeros((10, 8, 8, 3), np.float32)], 2))


# === I3D features ===


def test_fvd_of_a_set_with_itself_is_zero_and_differs_from_another(extractor):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 10, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 60, 0, 255).astype(np.uint8)  # brighter copies
    # One batch shape for every call: a single graph trace keeps the test fast.
    same = fvd.compute_fvd(a, list(a), batch_size=3, progress=False, extractor=extractor)
    assert same == pytest.approx(0.0, abs=1e-3)
    assert fvd.compute_fvd(a, b, batch_size=3, progress=False, extractor=extractor) > 1.0


@pytest.mark.slow
def test_constant_videos_reproduce_published_sanity_values(extractor, capsys):
    # 8 all-0 vs 8 all-255 videos of 30 frames at 64x64: 151.39244 with the original TF-Hub
    # FVD code; 16 vs 16 of 15 frames: about 133.9.
    zeros = np.zeros((8, 30, 64, 64, 3), np.uint8)
    full = np.full((8, 30, 64, 64, 3), 255, np.uint8)
    assert fvd.compute_fvd(zeros, full, extractor=extractor) == pytest.approx(151.39244, abs=2e-3)
    printed = capsys.readouterr().out
    assert "8 real videos (240 frames) vs 8 generated videos (240 frames)" in printed
    zeros = np.zeros((16, 15, 64, 64, 3), np.uint8)
    full = np.full((16, 15, 64, 64, 3), 255, np.uint8)
    assert fvd.compute_fvd(zeros, full, batch_size=16, progress=False,
                           extractor=extractor) == pytest.approx(133.9, abs=0.05)


@pytest.mark.slow
def test_fvd_between_folders_of_real_clips_equals_the_reference_computation(
        extractor, shared_fixtures, tmp_path):
    """FVD of `kpvp.evaluate --real=A --generated=B` on real 64x64 clips (upsampled to 224)
    against FVD from I3D logits of reference-preprocessed clips and the sqrtm formula."""
    import shutil

    import tensorflow as tf

    from kpvp.evaluation import fvd as evaluation_fvd

    clips = sorted((shared_fixtures / "actions" / "train").glob("*.jpg"))[:12]
    for i, clip in enumerate(clips):
        folder = tmp_path / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        shutil.copy(clip, folder / clip.name)
    num_frames = 16
    ours = evaluation_fvd.fvd_between(str(tmp_path / "a"), str(tmp_path / "b"), num_frames,
                                batch_size=6)["fvd"]

    def reference_features(folder, resize):
        videos = evaluation_fvd.load_video_set(str(folder), num_frames, pad=False)
        return extractor.model(resize(videos)).numpy().astype(np.float64)

    def reference_fvd(resize):
        a, b = (reference_features(tmp_path / name, resize) for name in "ab")
        mu1, mu2 = a.mean(0), b.mean(0)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return (np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2)
                - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))

    reference = reference_fvd(_reference_preprocess)
    assert ours == pytest.approx(reference, rel=1e-3)

    def half_pixel(videos):
        frames = tf.image.resize(tf.cast(videos.reshape((-1,) + videos.shape[2:]), tf.float32),
                                 (224, 224))
        return tf.reshape(frames, (videos.shape[0], -1, 224, 224, 3)) / 127.5 - 1.0

    # The half-pixel resize moves this FVD by more than the tolerance above.
    assert abs(reference_fvd(half_pixel) - reference) > 1e-2 * reference
