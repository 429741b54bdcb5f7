"""SSIM / PSNR: identities, hand-computed PSNR, monotonicity in noise, streaming means."""
import keras
import numpy as np
import pytest

from kpvp.metrics import frame_metrics as fm


def _images(seed=0, shape=(4, 32, 32, 3), high=200):
    rng = np.random.default_rng(seed)
    # Smooth-ish content so SSIM's structure term has something to compare.
    base = rng.integers(0, high, size=shape[:-3] + (shape[-3] // 4, shape[-2] // 4, 3))
    return np.repeat(np.repeat(base, 4, axis=-3), 4, axis=-2).astype(np.uint8)


def test_identical_frames_give_ssim_one_and_psnr_inf_or_cap():
    video = _images(shape=(2, 3, 32, 32, 3))  # [B, T, H, W, 3]
    s = fm.ssim(video, video).numpy()
    p = fm.psnr(video, video).numpy()
    assert s.shape == (2, 3) and p.shape == (2, 3)
    np.testing.assert_allclose(s, 1.0, atol=1e-6)
    assert np.all(np.isposinf(p))
    np.testing.assert_array_equal(fm.psnr(video, video, max_psnr=100.0).numpy(), 100.0)


def test_psnr_of_a_constant_offset_matches_hand_computation():
    target = _images(high=200)
    pred = target + np.uint8(10)  # no overflow: target < 200
    # MSE = (10 / 255)^2 on the [0, 1] scale -> PSNR = 20 log10(255 / 10) = 28.1308 dB.
    np.testing.assert_allclose(fm.psnr(pred, target).numpy(), 20 * np.log10(25.5), atol=1e-3)
    # Float inputs are in [-1, 1]: an offset of 0.2 is 0.1 on [0, 1] -> 20 dB.
    f = target.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(fm.psnr(f + 0.2, f).numpy(), 20.0, atol=1e-3)


def test_uint8_and_float_encodings_agree_and_can_be_mixed():
    a, b = _images(0), _images(1)
    fa, fb = a / 127.5 - 1.0, b.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(fm.ssim(fa, fb).numpy(), fm.ssim(a, b).numpy(), atol=1e-5)
    np.testing.assert_allclose(fm.psnr(fa, b).numpy(), fm.psnr(a, b).numpy(), atol=1e-3)
    # Out-of-range float predictions are clipped like a uint8 export would clip them.
    np.testing.assert_allclose(fm.psnr(fa * 3.0, a).numpy(),
                               fm.psnr(np.clip(fa * 3.0, -1, 1), a).numpy(), atol=1e-4)


def test_ssim_and_psnr_fall_as_noise_grows():
    target = _images(2, shape=(3, 48, 48, 3))
    rng = np.random.default_rng(0)
    ssims, psnrs = [], []
    for sigma in (2, 10, 30, 80):
        noisy = np.clip(target + rng.normal(scale=sigma, size=target.shape), 0, 255)
        noisy = noisy.astype(np.uint8)
        ssims.append(float(np.mean(fm.ssim(noisy, target))))
        psnrs.append(float(np.mean(fm.psnr(noisy, target))))
    assert all(a > b for a, b in zip(ssims, ssims[1:])), ssims
    assert all(a > b for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert ssims[0] > 0.9 and ssims[-1] < 0.5


def test_small_images_use_a_smaller_window():
    a, b = _images(0, shape=(2, 8, 8, 3)), _images(1, shape=(2, 8, 8, 3))
    s = fm.ssim(a, b).numpy()
    assert s.shape == (2,) and np.all(s < 1.0)
    np.testing.assert_allclose(fm.ssim(a, a).numpy(), 1.0, atol=1e-6)


def test_streaming_mean_equals_mean_over_all_frames():
    preds = [_images(i, shape=(n, 16, 16, 3)) for i, n in enumerate((3, 5, 1))]
    targets = [_images(10 + i, shape=(n, 16, 16, 3)) for i, n in enumerate((3, 5, 1))]
    out = fm.frame_metrics(zip(preds, targets))
    all_p, all_t = np.concatenate(preds), np.concatenate(targets)
    assert out["num_frames"] == 9
    assert out["ssim"] == pytest.approx(float(np.mean(fm.ssim(all_p, all_t))), abs=1e-6)
    assert out["psnr"] == pytest.approx(float(np.mean(fm.psnr(all_p, all_t))), abs=1e-4)
    # One identical batch: the mean is inf unless the per-frame PSNR is capped.
    pairs = [(preds[0], targets[0]), (targets[1], targets[1])]
    assert np.isposinf(fm.frame_metrics(pairs)["psnr"])
    capped = fm.frame_metrics(pairs, max_psnr=100.0)["psnr"]
    expected = (np.sum(fm.psnr(preds[0], targets[0])) + 5 * 100.0) / 8
    assert capped == pytest.approx(float(expected), abs=1e-4)


def test_keras_metric_reset_weights_and_config_round_trip():
    a, b = _images(0), _images(1)
    m = fm.MeanPSNR(max_psnr=60.0)
    m.update_state(a, b)
    first = float(m.result())
    m.update_state(a, a, sample_weight=np.zeros(4))  # weight 0 frames do not count
    assert float(m.result()) == pytest.approx(first)
    m.reset_state()
    assert float(m.result()) == 0.0
    clone = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert isinstance(clone, fm.MeanPSNR) and clone.max_psnr == 60.0
    s = fm.MeanSSIM(name="val_ssim")
    assert keras.metrics.deserialize(keras.metrics.serialize(s)).name == "val_ssim"


def test_bad_inputs_name_the_argument():
    a = _images()
    with pytest.raises(ValueError, match="predictions and targets must have the same shape"):
        fm.psnr(a[:2], a)
    with pytest.raises(ValueError, match="targets must be uint8"):
        fm.ssim(a, a.astype(np.int32))
    with pytest.raises(ValueError, match=r"predictions must have shape \[\.\.\., H, W, C\]"):
        fm.psnr(a[0, 0], a[0, 0])
    with pytest.raises(ValueError, match="no frames"):
        fm.frame_metrics([])


def test_changed_region_l1_hand_values_and_copy_baseline():
    # 4x4 frames; the target differs from the source in 2 pixels (one by 0.5, one by 1.0 in
    # [0, 1] units on every channel) and in a third by only 0.02, below the threshold.
    source = np.zeros((1, 4, 4, 3), np.uint8)
    target = source.copy()
    target[0, 0, 0] = 255
    target[0, 1, 2] = 127
    target[0, 3, 3] = 5
    copy = fm.changed_region_l1([(source, target, source)])
    assert copy["changed_fraction"] == pytest.approx(2 / 16)
    assert copy["l1"] == pytest.approx((1.0 + 127 / 255) / 2)
    assert copy["num_frames"] == 1
    # A prediction that redraws the changed pixels scores 0, whatever it does elsewhere
    # outside them (here it gets the sub-threshold pixel wrong).
    redrawn = target.copy()
    redrawn[0, 3, 3] = 0
    assert fm.changed_region_l1([(redrawn, target, source)])["l1"] == pytest.approx(0.0)
    # Float [-1, 1] predictions against uint8 frames, streamed over two batches.
    half = target.astype(np.float32) / 127.5 - 1.0
    half[0, 0, 0] = 0.0  # 0.5 in [0, 1] units: error 0.5 on one of the two pixels
    both = fm.changed_region_l1([(half, target, source), (source, target, source)])
    assert both["l1"] == pytest.approx((0.5 + 0.0 + copy["l1"] * 2) / 4, abs=1e-3)
    assert both["num_frames"] == 2
    unchanged = fm.changed_region_l1([(source, source, source)])
    assert np.isnan(unchanged["l1"]) and unchanged["changed_fraction"] == 0
    with pytest.raises(ValueError, match="no frames"):
        fm.changed_region_l1([])


def test_reconstruction_metrics_against_copying_the_source():
    rng = np.random.default_rng(3)
    batches = [{"source": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32),
                "target": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)}
               for _ in range(2)]

    def copying(batch):  # T with its mask shut: the source frame
        return {"image": batch["source"], "mask": np.zeros((2, 16, 16, 1), np.float32)}

    def perfect(batch):  # and a crude image that is the source's negative
        return {"image": batch["target"], "mask": np.full((2, 16, 16, 1), 0.5, np.float32),
                "crude": -batch["source"]}

    shut = fm.reconstruction_metrics(batches, copying)
    assert shut["reconstruction"] == shut["copy_source_baseline"]
    assert shut["mean_mask"] == 0 and shut["reconstruction"]["num_frames"] == 4
    assert "crude_changed_l1" not in shut  # no crude image among the outputs
    assert shut["changed_fraction"] > 0.9  # random frames differ almost everywhere
    best = fm.reconstruction_metrics(batches, perfect)
    assert best["reconstruction"]["changed_l1"] == 0 and best["mean_mask"] == 0.5
    assert best["copy_source_baseline"]["changed_l1"] > 0.2
    assert best["reconstruction"]["ssim"] == pytest.approx(1.0, abs=1e-5)
    # By hand: mean |-s - t| / 2 ([0, 1] units) over the pixels where s and t differ.
    source = np.concatenate([b["source"] for b in batches])
    target = np.concatenate([b["target"] for b in batches])
    changed = np.abs(target - source).max(-1) > fm.CHANGED_THRESHOLD * 2
    expected = (np.abs(-source - target).mean(-1) / 2)[changed].mean()
    assert best["crude_changed_l1"] == pytest.approx(expected, rel=1e-5)


def test_reconstruction_metrics_cap_the_psnr_of_an_exact_copy():
    frame = np.random.default_rng(4).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    batches = [{"source": frame, "target": frame}]  # nothing moved: copying is exact

    def copying(batch):
        return {"image": batch["source"], "mask": np.zeros((2, 16, 16, 1), np.float32)}

    capped = fm.reconstruction_metrics(batches, copying)
    assert capped["copy_source_baseline"]["psnr"] == pytest.approx(fm.UINT8_MAX_PSNR)
    assert fm.UINT8_MAX_PSNR == pytest.approx(48.13, abs=0.01)
    assert fm.reconstruction_metrics(batches, copying, max_psnr=None)[
        "copy_source_baseline"]["psnr"] == np.inf
