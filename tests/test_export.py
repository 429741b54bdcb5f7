"""SavedModel export: `python -m kpvp.export` on a tiny run, reloaded in a fresh process."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny_run import K, SIZE, random_images, save_tiny_run, tiny_config
from kpvp import cli, serving
from kpvp.generation import VideoGenerator
from kpvp.models import motion_cvae
from kpvp.ops import images as image_ops

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}

# Runs in a fresh Python process: loads the export with nothing of kpvp imported and calls its
# signatures the way a serving client does (by name, with named inputs).
FRESH_PROCESS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    assert "kpvp" not in sys.modules
    model_dir, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path)
    model = tf.saved_model.load(model_dir)
    serve = model.signatures["serving_default"]
    outputs = {}
    for run in ("wide", "square"):
        result = serve(images=tf.constant(inputs[run + "_images"]),
                       actions=tf.constant(inputs[run + "_actions"]),
                       seed=tf.constant(inputs[run + "_seed"]))
        outputs.update({f"{run}_{k}": v.numpy() for k, v in result.items()})
    outputs["detected"] = model.signatures["detect_keypoints"](
        images=tf.constant(inputs["wide_images"]))["keypoints"].numpy()
    outputs["class_names"] = model.class_names.numpy().astype(str)
    np.savez(outputs_path, **outputs)
""")

RUNS = {  # one run through the resize + crop branch, one through the no-resize branch
    "wide": (random_images(2, 40, 57, seed=1), np.array([0, 3], np.int32), 5),
    "square": (random_images(1, SIZE, SIZE, seed=2), np.array([2], np.int32), 6),
}


def save_built_tiny_run(workdir):
    """The tiny untrained run of `save_tiny_run` with its config.json, as `kpvp.train` leaves
    it (every network is built, so its .keras file holds its weights)."""
    config = save_tiny_run(workdir)
    cli.save_config(config, str(workdir))
    return config


def saved_model_cli():
    tool = shutil.which("saved_model_cli")
    return [tool] if tool else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


class Child:
    """A program run in the background, its output kept in files (no pipe to fill up)."""

    def __init__(self, args, folder, name):
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=out, stderr=err)

    def result(self):
        """Waits for the program; (return code, stdout, stderr)."""
        code = self.process.wait(timeout=600)
        return code, self.out.read_text(), self.err.read_text()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny untrained run exported through the command line: (workdir, model dir, config)."""
    workdir = tmp_path_factory.mktemp("run")
    config = save_built_tiny_run(workdir)
    model_dir = workdir / "export" / "1"
    result = subprocess.run([sys.executable, "-m", "kpvp.export", f"--workdir={workdir}",
                             f"--output={model_dir}"], cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(model_dir) in result.stdout
    return workdir, model_dir, config


@pytest.fixture(scope="module")
def children(exported, tmp_path_factory):
    """Starts, in the background, a fresh process that runs the export on `RUNS` and
    `saved_model_cli show`; they overlap with the in-process tests. ({name: Child}, folder)."""
    _, model_dir, _ = exported
    folder = tmp_path_factory.mktemp("fresh")
    inputs = {}
    for name, (images, actions, seed) in RUNS.items():
        inputs.update({f"{name}_images": images, f"{name}_actions": actions,
                       f"{name}_seed": np.int32(seed)})
    np.savez(folder / "inputs.npz", **inputs)
    (folder / "serve.py").write_text(FRESH_PROCESS_SCRIPT)
    started = {
        "fresh": Child([sys.executable, str(folder / "serve.py"), str(model_dir),
                        str(folder / "inputs.npz"), str(folder / "outputs.npz")], folder, "fresh"),
        "show": Child(saved_model_cli() + ["show", "--dir", str(model_dir), "--all"], folder,
                      "show"),
    }
    yield started, folder
    for child in started.values():
        if child.process.poll() is None:
            child.process.kill()


@pytest.fixture(scope="module")
def generator(exported, children):
    workdir, _, config = exported
    return VideoGenerator.from_workdir(str(workdir), config.class_names)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported[1]))


def in_process(generator, images, actions, seed):
    """The same video from the in-process networks and the same seed (no z passed: the
    in-process generator must draw the export's z itself, or the web page's --workdir and
    --saved_model would show different videos for one seed)."""
    return generator.generate(images, actions, seed=seed)


def serve(loaded, images, actions, seed):
    result = loaded.signatures["serving_default"](
        images=tf.constant(images), actions=tf.constant(actions, tf.int32),
        seed=tf.constant(seed, tf.int32))
    return {k: v.numpy() for k, v in result.items()}


def test_latent_noise_is_a_pure_function_of_the_seed():
    a = motion_cvae.latent_noise(3, 2000, 64).numpy()
    np.testing.assert_array_equal(a, motion_cvae.latent_noise(3, 2000, 64).numpy())
    assert a.shape == (2000, 64) and a.dtype == np.float32
    assert not np.allclose(a, motion_cvae.latent_noise(4, 2000, 64).numpy())
    # N(0, I): the standard error of the mean over 128000 draws is 0.003.
    assert abs(a.mean()) < 0.015 and abs(a.std() - 1.0) < 0.015


@pytest.mark.parametrize("hw", [(SIZE, SIZE), (40, 57), (100, 33), (64, 129), (64, 131),
                                (SIZE, 2 * SIZE), (17, 20)])
def test_model_input_in_the_graph_equals_preprocess(generator, hw):
    # (64, 129) and (64, 131) scale to 64.5 and 65.5 columns: both must round half to even,
    # as Python's round() in VideoGenerator.preprocess does.
    graph = tf.function(lambda x: image_ops.model_input(x, SIZE),
                        input_signature=[serving.IMAGES_SPEC])
    images = random_images(2, *hw, seed=hw[0] * 1000 + hw[1])
    np.testing.assert_array_equal(graph(images).numpy(), generator.preprocess(images).numpy())


def test_cli_writes_savedmodel_and_metadata(exported):
    _, model_dir, config = exported
    assert (model_dir / "saved_model.pb").is_file()
    info = json.loads((model_dir / serving.METADATA_FILE).read_text())
    assert info["class_names"] == list(config.class_names)
    assert (info["image_size"], info["num_keypoints"]) == (SIZE, K)
    assert info["num_frames"] == config.data.seq_len and info["dataset"] == "synthetic"
    assert set(info["signatures"]) == {"serving_default", "detect_keypoints"}


def test_the_export_holds_q_t_and_only_the_decoder_of_m(exported, loaded, generator):
    def size(variables):
        return sum(int(np.prod(v.shape)) for v in variables)

    m = generator.motion_generator
    expected = (size(generator.detector.variables) + size(m.decoder_variables)
                + size(generator.translator.variables))
    assert size(m.variables) > size(m.decoder_variables) > 0  # M's encoder is not empty
    assert size(loaded.network_variables) == expected
    # The SavedModel's variables file holds these once each, besides the metadata.
    metadata = ("_CHECKPOINTABLE_OBJECT_GRAPH", "class_names", "image_size", "num_keypoints",
                "num_steps")
    saved = sum(int(np.prod(shape))
                for name, shape in tf.train.list_variables(str(exported[1] / "variables" /
                                                               "variables"))
                if not name.startswith(metadata))
    assert saved == expected


def test_fresh_process_gives_the_in_process_videos(exported, children, generator):
    _, _, config = exported
    started, folder = children
    code, _, err = started["fresh"].result()
    assert code == 0, err[-3000:]
    served = np.load(folder / "outputs.npz")

    for name, (images, actions, seed) in RUNS.items():
        expected = in_process(generator, images, actions, seed)
        assert served[f"{name}_video"].dtype == np.uint8
        assert served[f"{name}_video"].shape == (len(images), config.data.seq_len, SIZE, SIZE, 3)
        np.testing.assert_array_equal(served[f"{name}_video"], expected["video"])
        np.testing.assert_allclose(served[f"{name}_keypoints"], expected["keypoints"],
                                   atol=1e-6)
        np.testing.assert_allclose(served[f"{name}_mask"], expected["mask"], atol=1e-6)
    # An S x S input is not resampled: frame 0 is the image itself.
    np.testing.assert_array_equal(served["square_video"][:, 0], RUNS["square"][0])
    k0 = in_process(generator, *RUNS["wide"])["keypoints"][:, 0]
    assert served["detected"].shape == (2, K, 2)
    np.testing.assert_allclose(served["detected"], k0, atol=1e-6)
    assert list(served["class_names"]) == list(config.class_names)


def test_same_seed_same_video_other_seed_differs(loaded):
    images, actions, _ = RUNS["wide"]
    a = serve(loaded, images, actions, 11)
    b = serve(loaded, images, actions, 11)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = serve(loaded, images, actions, 12)
    np.testing.assert_array_equal(c["keypoints"][:, 0], a["keypoints"][:, 0])  # same k0
    assert not np.allclose(c["keypoints"][:, 1:], a["keypoints"][:, 1:])
    np.testing.assert_array_equal(a["video"][:, 0], c["video"][:, 0])  # frame 0 is x0


def test_saved_model_cli_lists_both_signatures(exported, children):
    _, _, config = exported
    code, out, err = children[0]["show"].result()
    assert code == 0, err[-3000:]
    serving = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    detect = out.split("signature_def['detect_keypoints']")[1].split("signature_def[")[0]
    for name, dtype in (("images", "DT_UINT8"), ("actions", "DT_INT32"), ("seed", "DT_INT32")):
        assert f"inputs['{name}']" in serving
        assert dtype in serving.split(f"inputs['{name}']")[1].split("name:")[0]
    frames = config.data.seq_len
    assert f"shape: (-1, {frames}, {SIZE}, {SIZE}, 3)" in serving
    assert "outputs['video']" in serving and "outputs['keypoints']" in serving
    assert "inputs['images']" in detect and f"shape: (-1, {K}, 2)" in detect


def test_wrong_dtype_or_shape_is_rejected(loaded):
    serving = loaded.signatures["serving_default"]
    actions, seed = tf.constant([0], tf.int32), tf.constant(0, tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
        serving(images=tf.zeros((1, SIZE, SIZE, 3), tf.float32), actions=actions, seed=seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not compatible with expected "
                       r"shape \[\?,\?,\?,3\]"):
        serving(images=tf.zeros((SIZE, SIZE, 3), tf.uint8), actions=actions, seed=seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="int32"):
        serving(images=tf.zeros((1, SIZE, SIZE, 3), tf.uint8),
                actions=tf.constant([0], tf.int64), seed=seed)
    # The restored tf.functions check their TensorSpecs before running anything.
    with pytest.raises(TypeError, match=r"dtype=tf.uint8"):
        loaded.detect_keypoints(tf.zeros((1, SIZE, SIZE, 3), tf.float32))
    with pytest.raises(TypeError, match=r"shape=\(None, None, None, 3\)"):
        loaded.generate(tf.zeros((SIZE, SIZE, 3), tf.uint8), actions, seed)


def test_out_of_range_action_is_an_error(loaded):
    images = random_images(2)
    for bad in ([0, 4], [-1, 0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"action ids must lie in "
                           r"\[0, 4\)"):
            serve(loaded, images, bad, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one id per image"):
        serve(loaded, images, [0], 0)
    assert serve(loaded, images, [3, 0], 0)["video"].shape[0] == 2  # the edges are fine


def test_export_refuses_a_non_empty_folder_and_a_stage1_run(exported, generator, tmp_path):
    workdir, model_dir, config = exported
    with pytest.raises(FileExistsError, match="not empty"):
        serving.export_run(str(workdir), str(model_dir), config)
    stage1 = VideoGenerator(generator.detector, None, generator.translator, config.class_names)
    with pytest.raises(ValueError, match="stage 1 only"):
        serving.export(stage1, str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="lacks trained networks"):
        serving.export_run(str(tmp_path / "nothing"), str(tmp_path / "out"), config)
    wrong = config.copy_and_resolve_references()
    wrong.image_size = 64
    with pytest.raises(ValueError, match="image_size=64"):
        serving.export_run(str(workdir), str(tmp_path / "out"), wrong)


@pytest.mark.filterwarnings("ignore:You are saving a model that has not yet been built")
def test_a_network_saved_unbuilt_is_refused(tmp_path):
    # M saved after sample() only is unbuilt: its .keras file holds no weights, and exporting it
    # would serve whatever random weights tracing creates.
    config = save_tiny_run(tmp_path)
    unbuilt = motion_cvae.build_motion_generator(tiny_config())
    unbuilt.sample(np.zeros((1, K, 2), np.float32), np.zeros(1, np.int32), seed=0)
    unbuilt.save(tmp_path / "stage2" / "motion_generator.keras")
    generator = VideoGenerator.from_workdir(str(tmp_path), config.class_names)
    with pytest.raises(ValueError, match="motion generator M has no weights"):
        serving.export(generator, str(tmp_path / "out"))


def test_the_served_model_bounds_its_inputs(exported, loaded):
    _, model_dir, _ = exported
    info = json.loads((model_dir / serving.METADATA_FILE).read_text())
    assert info["input_limits"] == {"min_side": 1, "max_side": serving.MAX_SIDE,
                                    "max_aspect_ratio": serving.MAX_ASPECT_RATIO}
    limits = {
        (1, SIZE, 0, 3): "non-zero height and width",
        (1, 0, SIZE, 3): "non-zero height and width",
        (1, 10, 41, 3): "at most 4 times the short one",  # 4.1 : 1
        (1, serving.MAX_SIDE + 1, 1100, 3): f"at most {serving.MAX_SIDE}",
    }
    for shape, message in limits.items():
        images = tf.zeros(shape, tf.uint8)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(loaded, images, [0], 0)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["detect_keypoints"](images=images)
    # At the limits: served.
    assert serve(loaded, random_images(1, 10, 40), [0], 0)["video"].shape[2:4] == (SIZE, SIZE)


def test_limits_are_set_at_export_and_checked_in_process(generator):
    module = serving.ServingModule(generator, max_side=64, max_aspect_ratio=2)
    assert module.metadata()["input_limits"] == {"min_side": 1, "max_side": 64,
                                                 "max_aspect_ratio": 2.0}
    actions, seed = tf.constant([0], tf.int32), tf.constant(0, tf.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 64"):
        module.generate(tf.constant(random_images(1, 65, 40)), actions, seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 2 times"):
        module.detect_keypoints(tf.constant(random_images(1, 30, 61)))
    assert module.generate(tf.constant(random_images(1, 40, 64)), actions,
                           seed)["video"].shape[2:4] == (SIZE, SIZE)
    with pytest.raises(ValueError, match="max_side"):
        serving.ServingModule(generator, max_side=SIZE - 1)
