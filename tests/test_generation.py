"""Generation: image + class -> keypoints -> motion -> frames, from a workdir's exports."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpvp import configs
from kpvp.generation import VideoGenerator, render_frames
from kpvp.models.translator import MaskedTranslator

from helpers.tiny_run import K, SIZE, random_images, save_tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = save_tiny_run(workdir)
    return VideoGenerator.from_workdir(str(workdir), config.class_names), config


def test_generate_shapes_and_first_frame_is_the_input(run):
    generator, config = run
    images = random_images()
    out = generator.generate(images, [0, 1], seed=3)
    t = config.data.seq_len
    assert out["video"].shape == (2, t, SIZE, SIZE, 3) and out["video"].dtype == np.uint8
    assert out["keypoints"].shape == (2, t, K, 2)
    assert out["mask"].shape == (2, t, SIZE, SIZE, 1)
    np.testing.assert_array_equal(out["video"][:, 0], images)
    assert np.all(np.abs(out["keypoints"]) <= 1.0)


def test_same_seed_same_video_other_seed_or_class_differs(run):
    generator, _ = run
    images = random_images(1)
    a = generator.generate(images, [0], seed=5)
    b = generator.generate(images, [0], seed=5)
    np.testing.assert_array_equal(a["video"], b["video"])
    c = generator.generate(images, [0], seed=6)
    assert not np.allclose(a["keypoints"], c["keypoints"])
    d = generator.generate(images, [2], seed=5)
    assert not np.allclose(a["keypoints"], d["keypoints"])


def test_translator_that_never_redraws_returns_the_input_in_every_frame(tmp_path):
    # T's mask head is m of eq. 3 (the authors' form): saturated at 1 it keeps the source.
    config = save_tiny_run(tmp_path, mask_bias=1e4)
    generator = VideoGenerator.from_workdir(str(tmp_path), config.class_names)
    images = random_images(2)
    video = generator.generate(images, [1, 3], seed=0)["video"]
    for t in range(video.shape[1]):
        np.testing.assert_array_equal(video[:, t], images)


def test_any_image_size_is_resized_and_centre_cropped(run):
    generator, _ = run
    wide = np.zeros((1, SIZE, 2 * SIZE, 3), np.uint8)
    wide[:, :, SIZE // 2:SIZE // 2 + SIZE] = 200  # the centre square survives the crop
    x = generator.preprocess(wide).numpy()
    assert x.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(x, 200 / 127.5 - 1, atol=1e-5)


def test_bad_inputs_are_named(run, tmp_path):
    generator, _ = run
    with pytest.raises(ValueError, match="uint8"):
        generator.preprocess(np.zeros((1, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="Unknown action 'fly'"):
        generator.action_id("fly")
    with pytest.raises(ValueError, match="out of range"):
        generator.action_id(7)
    assert generator.action_id("squat") == 1 and generator.action_id("3") == 3
    with pytest.raises(FileNotFoundError, match="--stage=all"):
        VideoGenerator.from_workdir(str(tmp_path / "empty"))


def test_motion_transfer_with_own_keypoints_is_static(run):
    generator, _ = run
    image = random_images(1)[0]
    driving = np.repeat(image[None], 3, axis=0)  # a still "video" of the source itself
    out = generator.transfer(image, driving)
    assert out["video"].shape == (3, SIZE, SIZE, 3)
    np.testing.assert_allclose(out["keypoints"], np.repeat(out["keypoints"][:1], 3, 0), atol=1e-6)


def test_batched_rendering_equals_one_decoder_call_per_frame():
    keras.utils.set_random_seed(1)
    translator = MaskedTranslator(SIZE, K, (8, 8, 8), gaussian_size=8)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    k0 = rng.uniform(-0.8, 0.8, (2, K, 2)).astype(np.float32)
    keypoints = rng.uniform(-0.8, 0.8, (2, 5, K, 2)).astype(np.float32)
    # 5 frames in calls of 3 and 2: chunk boundaries and the remainder must keep the order.
    frames, masks = render_frames(translator, x0, k0, keypoints, frames_per_call=3)
    assert frames.shape == (2, 5, SIZE, SIZE, 3) and masks.shape == (2, 5, SIZE, SIZE, 1)
    for t in range(5):
        expected = translator([x0, k0, keypoints[:, t]], training=False)
        np.testing.assert_allclose(frames[:, t], np.clip(expected["image"], -1, 1), atol=1e-5)
        np.testing.assert_allclose(masks[:, t], expected["mask"], atol=1e-5)


class _JointLookup:
    """A perfect Q for known synthetic videos: each frame -> its ground-truth joints."""

    def __init__(self, frames, joints):
        self.frames = np.asarray(frames, np.float32) / 127.5 - 1.0  # as `preprocess` gives
        self.joints = np.asarray(joints, np.float32)

    def __call__(self, images, training=False):
        images = np.asarray(images)
        diffs = np.abs(images[:, None] - self.frames[None]).reshape(len(images), len(self.frames),
                                                                    -1).max(axis=-1)
        assert diffs.min(axis=1).max() < 1e-5, "a frame that is not in the lookup"
        return tf.constant(self.joints[diffs.argmin(axis=1)])


def test_motion_transfer_of_a_video_to_its_own_first_frame_beats_the_still_frame():
    """With true keypoints and T's blend saturated on the warped source, each synthetic test
    video driving its own first frame reproduces the video better than its first frame does:
    the relative motion and the warp move the figure the right way."""
    from kpvp.data import readers
    from kpvp.metrics import frame_metrics

    config = configs.get_config("synthetic", "tiny")
    translator = MaskedTranslator(config.image_size, 13, (8, 8, 8), gaussian_size=16,
                                  gaussian_inv_std=5.0, warp=True)
    source = readers.open_source(config, "test")
    errors = {"transfer": [], "still": []}
    for index in range(4):
        video = source[index]
        frames = video["frames"][:24]
        generator = VideoGenerator(_JointLookup(frames, video["joints"][:24]), None, translator)
        if index == 0:  # built now: the mask only ever takes the warped source
            generator.transfer(frames[0], frames[:2])
            kernel, _ = translator.mask_head.get_weights()
            translator.mask_head.set_weights([np.zeros_like(kernel),  # m = 1: the source
                                              np.full((1,), 1e4, np.float32)])
        out = generator.transfer(frames[0], frames)
        still = np.repeat(frames[:1], len(frames), axis=0)
        for name, predicted in (("transfer", out["video"]), ("still", still)):
            errors[name].append(frame_metrics.changed_region_l1(
                [(predicted[1:], frames[1:], still[1:])])["l1"])
        np.testing.assert_allclose(out["keypoints"], video["joints"][:24], atol=1e-3)
    # Measured: about half the still frame's error where each video changed.
    assert all(t < 0.7 * s for t, s in zip(errors["transfer"], errors["still"])), errors


def test_class_samples_start_from_test_videos_of_that_class():
    from kpvp.generation import sample_start_frames

    labels = [1, 1, 0, 2, 1]
    # Video i's first frame is filled with i, its later frames with 99.
    source = [{"frames": np.stack([np.full((4, 4, 3), i, np.uint8),
                                   np.full((4, 4, 3), 99, np.uint8)]), "label": c}
              for i, c in enumerate(labels)]
    starts = sample_start_frames(source, num_classes=4, per_class=2)
    first_values = {c: [int(f[0, 0, 0]) for f in frames] for c, frames in starts.items()}
    # Own-class videos first, in order; a class short of videos (2) or without any (3) is
    # filled with the first videos of the split.
    assert first_values == {0: [2, 0], 1: [0, 1], 2: [3, 0], 3: [0, 1]}
    # Scanning stops early when told to: only video 0 is seen.
    starts = sample_start_frames(source, num_classes=2, per_class=1, max_scanned=1)
    assert {c: int(f[0, 0, 0, 0]) for c, f in starts.items()} == {0: 0, 1: 0}
    with pytest.raises(ValueError, match="no readable video"):
        sample_start_frames([], num_classes=2, per_class=1)


def test_class_samples_with_unsafe_class_names_stay_in_the_samples_folder(tmp_path,
                                                                        monkeypatch):
    from kpvp import generation
    from kpvp.rundir import RunDir

    config = save_tiny_run(tmp_path)
    # Folder data sets take class names from disk: any of these could be a folder's name.
    config.class_names = ("../../escape", "a/b", "a_b", "tab\there")
    source = [{"frames": random_images(2, seed=i), "label": i} for i in range(4)]
    monkeypatch.setattr(generation.readers, "open_source", lambda config, split: source)
    paths = generation.write_class_samples(config, str(tmp_path), videos_per_class=1)
    samples = RunDir(tmp_path).samples
    assert sorted(os.listdir(samples)) == ["_._escape_0.gif", "a_b-2_0.gif", "a_b_0.gif",
                                           "tab_here_0.gif"]
    assert all(os.path.dirname(os.path.abspath(p)) == os.path.abspath(samples) for p in paths)
    assert sorted(os.listdir(tmp_path)) == ["samples", "stage1", "stage2"]


# bf16 generation may move a frame's pixels by at most this many grey levels (of 255).
BF16_MAX_GREY_LEVELS = 2


def test_bf16_generation_stays_within_stated_grey_levels_of_fp32(tmp_path):
    config = save_tiny_run(tmp_path)
    images = random_images(4, seed=1)
    out, generators = {}, {}
    for policy in ("float32", "mixed_bfloat16"):
        generators[policy] = VideoGenerator.from_workdir(str(tmp_path), config.class_names,
                                                         mixed_precision=policy)
        out[policy] = generators[policy].generate(images, [0, 1, 0, 1], seed=3)
    computes = {layer.compute_dtype for layer in generators["mixed_bfloat16"].translator
                ._flatten_layers()}
    assert "bfloat16" in computes  # T's convolutions run in bf16, its heads in float32
    assert generators["float32"].translator.layers[0].compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    fp32, bf16 = out["float32"], out["mixed_bfloat16"]
    assert bf16["video"].dtype == np.uint8 and bf16["keypoints"].dtype == np.float32
    grey = np.abs(fp32["video"].astype(int) - bf16["video"].astype(int))
    assert grey.max() <= BF16_MAX_GREY_LEVELS
    # Q ran in bf16 (its keypoints moved), by far less than a pixel (2 / SIZE).
    moved = np.abs(fp32["keypoints"] - bf16["keypoints"]).max()
    assert 0 < moved < 2 / SIZE
