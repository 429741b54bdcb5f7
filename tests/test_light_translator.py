"""The light translator (`stage1.translator=light`) and its distillation from a trained T
(`python -m kpvp.train --stage=distill`)."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kpvp.models  # noqa: F401  (registers the networks for load_model)
from helpers import REPO
from helpers import tiny_run
from helpers.stage1 import TinyFeatures, tiny_config
from kpvp import cli, errors, serving, stages
from kpvp.configs import base
from kpvp.generation import VideoGenerator
from kpvp.models import keypoint_detector, light_translator, translator as translator_lib
from kpvp.ops import warping
from kpvp.trainers import distill, loop, stage1

SIZE = 32


def light_config():
    config = tiny_config()  # 32x32, K = 4, gaussian maps at 8x8
    config.stage1.translator = "light"
    config.stage1.light_filters = (8, 8, 8)
    return config


def inputs(rng, batch=2, k=4):
    images = rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
    source_kp = rng.uniform(-0.7, 0.7, (batch, k, 2)).astype(np.float32)
    return images, source_kp, source_kp + rng.normal(0, 0.1, source_kp.shape).astype(np.float32)


def test_the_option_builds_it_with_t_outputs_and_it_reloads_equal(rng, tmp_path):
    config = light_config()
    cli.save_config(config, str(tmp_path))
    reloaded = cli.load_saved_config(str(tmp_path / "config.json"))
    assert reloaded.stage1.translator == "light"
    assert tuple(reloaded.stage1.light_filters) == (8, 8, 8)
    keras.utils.set_random_seed(0)
    translator = translator_lib.build_translator(reloaded)
    assert isinstance(translator, light_translator.LightTranslator)
    assert translator.level_sizes == (16, 8, 4)
    batch = inputs(rng)
    out = translator(list(batch))
    shapes = {name: tuple(value.shape) for name, value in out.items()}
    assert shapes == {"image": (2, SIZE, SIZE, 3), "crude": (2, SIZE, SIZE, 3),
                      "mask": (2, SIZE, SIZE, 1), "warped": (2, SIZE, SIZE, 3)}
    mask = out["mask"].numpy()
    assert 0 <= mask.min() and mask.max() <= 1
    # At initialisation the mask gives the correction its configured share.
    np.testing.assert_allclose(mask.mean(), config.stage1.light_initial_crude_share, atol=0.05)
    translator.save(tmp_path / "t.keras")
    loaded = keras.models.load_model(tmp_path / "t.keras")
    assert loaded.get_config() == translator.get_config()
    for name, value in loaded(list(batch)).items():
        np.testing.assert_allclose(value.numpy(), out[name].numpy(), atol=1e-6)


def test_stage1_trains_it_from_scratch_with_q(rng):
    keras.utils.set_random_seed(0)
    config = light_config()
    trainer = stage1.build_trainer(config, TinyFeatures())
    trainer.compile(*loop.make_optimizers(config.stage1))
    images, _, _ = inputs(rng)
    nets = (trainer.detector, trainer.translator)
    before = [[w.numpy().copy() for w in net.trainable_weights] for net in nets]
    logs = trainer.train_step({"source": tf.constant(images),
                               "target": tf.constant(images[::-1])})
    assert np.isfinite(float(logs["g_loss"]))
    for net, old in zip(nets, before):  # Q learns through the light T's warp too
        assert any(not np.array_equal(o, w.numpy()) for o, w in zip(old, net.trainable_weights))


def test_space_to_depth_and_back_is_the_identity_in_tf_order(rng):
    images = rng.normal(size=(2, 8, 6, 3)).astype(np.float32)
    blocks = light_translator.space_to_depth(images)
    np.testing.assert_array_equal(blocks, tf.nn.space_to_depth(images, 2))
    np.testing.assert_array_equal(light_translator.depth_to_space(blocks), images)


def blob(centre, size=SIZE, sigma=0.08):
    """A bright gaussian blob at `centre` (x, y) on a dark background, `[1, S, S, 3]`."""
    centres = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(centres, centres)
    bump = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((2 * bump - 1)[None, :, :, None], 3, axis=-1).astype(np.float32)


def brightness_near(image, point, radius=0.25):
    """The (x, y) centroid of the image's brightness above the dark background within `radius`
    of `point`, and the brightness at the pixel nearest `point`."""
    weight = np.clip(np.asarray(image)[0, :, :, 0] + 1, 0, None)
    centres = (np.arange(image.shape[1]) + 0.5) / image.shape[1] * 2 - 1
    x, y = np.meshgrid(centres, centres)
    weight = weight * ((x - point[0]) ** 2 + (y - point[1]) ** 2 < radius ** 2)
    row, col = np.argmin(np.abs(centres - point[1])), np.argmin(np.abs(centres - point[0]))
    centroid = np.array([(weight * x).sum(), (weight * y).sum()]) / max(weight.sum(), 1e-9)
    return centroid, np.asarray(image)[0, row, col, 0]


def test_with_no_correction_the_keypoint_carries_the_blob_along():
    keras.utils.set_random_seed(0)
    translator = light_translator.LightTranslator(SIZE, 1, (8, 8, 8), gaussian_size=8,
                                                  gaussian_inv_std=5.0)
    start, end = np.array([[[-0.4, 0.0]]], np.float32), np.array([[[0.3, 0.2]]], np.float32)
    source = blob(start[0, 0])
    translator([source, start, start])
    # A mask head that never draws: the output is the warped source alone.
    translator.mask_head.kernel.assign(np.zeros(translator.mask_head.kernel.shape, np.float32))
    translator.mask_head.bias.assign(np.full(translator.mask_head.bias.shape, -30.0, np.float32))
    out = translator([source, start, end])
    np.testing.assert_allclose(out["image"], out["warped"], atol=1e-5)
    assert float(tf.reduce_max(out["mask"])) < 1e-6
    # The blob has come with its keypoint to a place that was dark: centred on the target
    # keypoint (within a pixel, 2 / 32). (The warp moves what is near the target keypoints;
    # the still background, the blob's old place included, stays: the correction's job.)
    assert brightness_near(source, end[0, 0])[1] < -0.99
    centroid, peak = brightness_near(out["image"], end[0, 0])
    np.testing.assert_allclose(centroid, end[0, 0], atol=0.0625)
    assert peak > 0.8
    # The same warp as the masked T's, up to the light T's upsampled flow.
    reference = warping.keypoint_warp(source, start, end, translator.warp_inv_std,
                                      translator.warp_background)
    assert float(tf.reduce_mean(tf.abs(out["warped"] - reference))) < 0.02
    # Without motion nothing moves.
    np.testing.assert_allclose(translator([source, start, start])["image"], source, atol=1e-5)


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="gaussian_size"):
        light_translator.LightTranslator(SIZE, 4, (8, 8, 8), gaussian_size=32)
    with pytest.raises(ValueError, match="at least two"):
        light_translator.LightTranslator(SIZE, 4, (8,), gaussian_size=16)
    translator = light_translator.LightTranslator(SIZE, 4, (8, 8), gaussian_size=8)
    translator([np.zeros((1, SIZE, SIZE, 3)), np.zeros((1, 4, 2)), np.zeros((1, 4, 2))])
    with pytest.raises(ValueError, match="source_image must be"):
        translator([np.zeros((1, 16, 16, 3)), np.zeros((1, 4, 2)), np.zeros((1, 4, 2))])
    with pytest.raises(ValueError, match="target_kp must be"):
        translator([np.zeros((1, SIZE, SIZE, 3)), np.zeros((1, 4, 2)), np.zeros((1, 3, 2))])


def tiny_teacher(workdir):
    """An untrained tiny run (Q, masked T, M, config.json) to distil from."""
    config = tiny_run.save_tiny_run(workdir)
    cli.save_config(config, str(workdir))
    return config


def test_distillation_lowers_the_student_teacher_l1(tmp_path, rng):
    tiny_teacher(tmp_path)
    paths = stages.teacher_networks(str(tmp_path))
    assert set(paths) == {"detector", "translator", "motion_generator"}
    detector = keras.models.load_model(paths["detector"])
    teacher = keras.models.load_model(paths["translator"])
    config = tiny_run.tiny_config()
    config.stage1.translator = "light"
    config.distill.learning_rate = 3e-3
    keras.utils.set_random_seed(0)
    student = translator_lib.build_translator(config)
    trainer = distill.DistillationTrainer(detector, teacher, student, config.distill)
    trainer.compile(loop.make_optimizers(config.distill)[0])
    images = rng.uniform(-1, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    batch = {"source": tf.constant(images), "target": tf.constant(images[::-1])}
    frozen = [w.numpy().copy() for w in detector.weights + teacher.weights]
    before = float(trainer.losses_of(batch, training=False)[1]["l1"])
    for _ in range(30):
        logs = trainer.train_step(batch)
    after = float(trainer.losses_of(batch, training=False)[1]["l1"])
    assert after < 0.7 * before, (before, after)
    assert np.isfinite(float(logs["warped_l1"])) and np.isfinite(float(logs["target_l1"]))
    for old, new in zip(frozen, detector.weights + teacher.weights):
        np.testing.assert_array_equal(old, new.numpy())  # the teacher's Q and T stay as they were


def test_distillation_refuses_what_it_cannot_distil(tmp_path):
    with pytest.raises(errors.InputNotFound, match="no such run directory"):
        stages.teacher_networks(str(tmp_path / "missing"))
    cli.save_config(tiny_run.tiny_config(), str(tmp_path))  # a run that never trained
    with pytest.raises(errors.InputNotFound, match="no trained stage 1.*--stage=1"):
        stages.teacher_networks(str(tmp_path))
    config = tiny_run.tiny_config()
    config.stage1.translator = "first_order"
    jacobian_q = keypoint_detector.build_detector(config)
    student = light_translator.LightTranslator(SIZE, tiny_run.K, gaussian_size=16)
    with pytest.raises(ValueError, match="Jacobians"):
        distill.DistillationTrainer(jacobian_q, student, student, config.distill)
    config.stage1.translator = "masked"
    other_k = light_translator.LightTranslator(SIZE, tiny_run.K + 1, gaussian_size=16)
    with pytest.raises(ValueError, match="keypoints"):
        distill.DistillationTrainer(keypoint_detector.build_detector(config), student, other_k,
                                    config.distill)


def run_train(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "kpvp.train", "--stage=distill", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_distill_command_makes_a_run_that_generates_and_resumes(tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    config = tiny_teacher(teacher)
    for workdir, other in ((student, tmp_path / "nothing"), (teacher, teacher)):
        refused = run_train(f"--workdir={workdir}", f"--teacher={other}")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "--teacher" in refused.stderr.splitlines()[-1]
    saved_teacher = json.loads((teacher / "config.json").read_text())
    assert saved_teacher["stage1"]["translator"] == "masked"
    del saved_teacher["distill"]  # a teacher trained before distillation existed
    (teacher / "config.json").write_text(json.dumps(saved_teacher))
    args = [f"--workdir={student}", "--config.distill.batch_size=2",
            "--config.distill.checkpoint_every=2", "--config.data.synthetic_num_train=4"]
    first = run_train(*args, f"--teacher={teacher}", "--num_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    saved = json.loads((student / "config.json").read_text())
    assert saved["stage1"]["translator"] == "light"
    assert saved["distill"]["teacher"] == str(teacher)
    tiny = base.make_tiny(base.get_base_config()).distill  # its variant's, not the full config's
    assert saved["distill"]["lr_decay_steps"] == tiny.lr_decay_steps != \
        base.get_base_config().distill.lr_decay_steps
    # Resumed without --teacher: the run remembers it.
    second = run_train(*args, "--num_steps=4")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from" in second.stderr and "(step 2)" in second.stderr
    for name in ("detector", "motion_generator"):
        path = f"stage{1 if name == 'detector' else 2}/{name}.keras"
        assert (student / path).read_bytes() == (teacher / path).read_bytes()
    generator = VideoGenerator.from_workdir(str(student), config.class_names)
    assert isinstance(generator.translator, light_translator.LightTranslator)
    video = generator.generate(tiny_run.random_images(1), [1], seed=0)
    assert video["video"].shape == (1, config.data.seq_len, SIZE, SIZE, 3)
    module = serving.ServingModule(generator)
    served = module.generate(tf.constant(tiny_run.random_images(1)), tf.constant([1]),
                             tf.constant(0))
    assert served["mask"].shape == (1, config.data.seq_len, SIZE, SIZE, 1)
