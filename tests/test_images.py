"""The one image road: model range, resize + centre crop, and Q seeing the same pixels on
every path a video takes to it (pipelines, readers, pseudo-labels, evaluation, generation,
predict's readers, the SavedModel's in-graph preprocessing)."""
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kpvp import configs, serving
from kpvp.evaluation import keypoints as eval_keypoints
from kpvp.data import pipelines, pseudo_labels, video_io
from kpvp.data.readers import VideoFolder
from kpvp.generation import VideoGenerator
from kpvp.models.keypoint_detector import KeypointDetector
from kpvp.ops import images as image_ops
from kpvp.ops import keypoints as kp_ops

# A non-square video: 48 x 80 -> short side 32 (53 columns), centre crop from column 10.
HEIGHT, WIDTH, SIZE, FRAMES = 48, 80, 32, 3


def _asymmetric_video(seed):
    """uint8 [FRAMES, 48, 80, 3]: a horizontal and a vertical ramp in two channels (so a flip,
    a transpose or a shifted crop all change it), noise in the third, an 'L' in the top left."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(FRAMES):
        frames[t, ..., 0] = (x * 3 + 7 * t) % 256
        frames[t, ..., 1] = (y * 5 + 11 * t) % 256
        frames[t, ..., 2] = rng.integers(0, 256, (HEIGHT, WIDTH))
        frames[t, 8:30, 22:26] = 255  # the L's stem, inside the crop
        frames[t, 26:30, 22:36] = 255  # its foot, to the right
    return frames


class PixelProbe:
    """Stands in for Q: returns the image it is given as `[B, S*S*3/2, 2]` "keypoints", so
    every road's output shows exactly the pixels Q saw."""

    image_size = SIZE

    def __call__(self, images, training=False):
        images = tf.convert_to_tensor(images)
        return tf.reshape(images, [tf.shape(images)[0], -1, 2])


def _seen(keypoints):
    """A PixelProbe's output `[N, K, 2]` -> the images `[N, S, S, 3]` it was given."""
    return np.asarray(keypoints, np.float32).reshape(-1, SIZE, SIZE, 3)


class _StillTranslator:
    """Stands in for T in `VideoGenerator.transfer` (its output is not looked at)."""

    image_size = SIZE

    def encode_source(self, x0, training=False):
        return x0

    def decode(self, features, x0, k0, targets, training=False):
        return {"image": tf.zeros_like(x0), "mask": tf.zeros_like(x0[..., :1])}


class _Source(list):
    name, class_names, has_joints = "probe", ("a",), False

    def __init__(self, elements):
        super().__init__(elements)
        self.skipped = []


def _config():
    config = configs.get_config("synthetic", "tiny")
    config.image_size = SIZE
    config.stage1.batch_size = 8
    config.data.num_parallel_calls = 1
    config.data.pair_offset_min = config.data.pair_offset_max = 1
    return config


def _stage1_test_images(config, source):
    """Every image (source and target) of the stage-1 test pairs, float32 [N, S, S, 3]."""
    out = []
    for batch in pipelines.stage1_dataset(config, "test", source=source).as_numpy_iterator():
        out += [batch["source"], batch["target"]]
    return np.concatenate(out)


def _frame_folder(root, frames):
    root.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(root / f"{t}.png")
    return root


def test_every_road_gives_q_the_same_pixels(tmp_path):
    video = _asymmetric_video(0)
    expected = image_ops.model_input(video, SIZE).numpy()  # [FRAMES, S, S, 3]
    assert expected.shape == (FRAMES, SIZE, SIZE, 3)
    # The crop is not the squash the pseudo-labels used to make, nor the left of the frame.
    squashed = tf.image.resize(image_ops.to_model_range(video), (SIZE, SIZE), antialias=True)
    assert np.abs(expected - squashed.numpy()).max() > 0.5
    element = {"frames": video, "label": 0, "id": "probe"}
    config = _config()
    probe = PixelProbe()

    def assert_frames_of_the_video(images, road):
        images = np.asarray(images, np.float32)
        assert len(images), road
        for image in images:
            assert any(np.array_equal(image, e) for e in expected), f"{road}: other pixels"

    # Stage-1 pipeline, test split (no augmentation), from the decoded frames...
    assert_frames_of_the_video(_stage1_test_images(config, _Source([element])), "stage 1")
    # ... and from a reader (a frame folder in the MGIF/folder layout) resizing on reading.
    _frame_folder(tmp_path / "data" / "train" / "probe", video)
    reader = VideoFolder(tmp_path / "data", "train", image_size=SIZE, layout="flat")
    read = reader[0]["frames"]
    np.testing.assert_array_equal(image_ops.to_model_range(read).numpy(), expected)
    assert_frames_of_the_video(_stage1_test_images(config, reader), "reader + stage 1")

    # Pseudo-labelling.
    pseudo_labels.label_videos(probe, _Source([element]), str(tmp_path / "pl"), "probe",
                               batch_size=2, image_size=SIZE)
    labels = pseudo_labels.load_pseudo_labels(str(tmp_path / "pl"), "probe")
    np.testing.assert_array_equal(_seen(labels[0]["keypoints"]), expected)

    # Evaluation: the test videos (resized in a tf.data map, run-time shapes) and Q on them.
    eval_video = next(pipelines.eval_videos(config, num_frames=FRAMES,
                                            source=_Source([element])).as_numpy_iterator())
    np.testing.assert_array_equal(image_ops.to_model_range(eval_video["frames"]).numpy(),
                                  expected)
    np.testing.assert_array_equal(_seen(eval_keypoints.detect(probe, video, SIZE)),
                                  expected)

    # Generation's preprocess, and predict's road: files read as predict reads them (a frame
    # folder for --driving, an image for --image) through VideoGenerator.transfer.
    generator = VideoGenerator(probe, None, _StillTranslator())
    np.testing.assert_array_equal(generator.preprocess(video).numpy(), expected)
    driving = video_io.read_video(_frame_folder(tmp_path / "driving", video))
    image_path = tmp_path / "image.png"
    Image.fromarray(video[0]).save(image_path)
    with Image.open(image_path) as image:
        source_image = np.asarray(image.convert("RGB"))
    result = generator.transfer(source_image, driving)
    np.testing.assert_array_equal(_seen(result["driving_keypoints"]), expected)

    # The SavedModel's detect_keypoints signature: its graph code on [B, H, W, 3] known only
    # at run time. Bound: 0 grey levels (the geometry and the resize kernel are the eager ones).
    served = _served_detector_input()(video)
    assert np.abs(image_ops.to_uint8(served).numpy().astype(int)
                  - image_ops.to_uint8(expected).numpy()).max() == 0
    np.testing.assert_array_equal(served, expected)


# === Model range ===

def test_model_range_round_trips_every_grey_level():
    levels = np.arange(256, dtype=np.uint8)
    x = image_ops.to_model_range(levels).numpy()
    assert x.dtype == np.float32 and x[0] == -1.0 and x[-1] == 1.0
    np.testing.assert_array_equal(image_ops.to_uint8(x).numpy(), levels)
    graph = tf.function(image_ops.to_model_range)
    np.testing.assert_array_equal(graph(tf.constant(levels)).numpy(), x)


def test_to_uint8_rounds_half_to_even_and_clips():
    pixels = np.array([0.5, 1.5, 2.5, 254.5, -3.0, 300.0], np.float32)
    np.testing.assert_array_equal(image_ops.round_to_uint8(pixels).numpy(),
                                  [0, 2, 2, 254, 0, 255])
    np.testing.assert_array_equal(image_ops.to_uint8(np.array([-2.0, 2.0])).numpy(), [0, 255])


# === Resize + crop ===

def test_crop_and_short_side_geometry_by_hand():
    assert image_ops.crop_geometry(100, 200) == (0, 50, 100)
    assert image_ops.crop_geometry(480, 640) == (0, 80, 480)
    assert image_ops.crop_geometry(201, 100) == (50, 0, 100)  # the odd row at the bottom
    assert image_ops.crop_geometry(64, 64) == (0, 0, 64)
    assert image_ops.short_side_geometry(100, 200, 50) == (50, 100)
    assert image_ops.short_side_geometry(480, 640, 128) == (128, 171)
    with pytest.raises(ValueError, match="height=0"):
        image_ops.crop_geometry(0, 5)


def test_run_time_geometry_equals_the_static_one():
    sizes = [(h, w) for h in range(1, 140, 3) for w in range(1, 140, 5)] + [(64, 129), (64, 131)]
    heights = tf.constant([h for h, _ in sizes])
    widths = tf.constant([w for _, w in sizes])
    dynamic = np.stack([t.numpy() for t in image_ops._crop_geometry_tensors(heights, widths)],
                       -1)
    np.testing.assert_array_equal(dynamic, [image_ops.crop_geometry(h, w) for h, w in sizes])
    for (h, w) in sizes[::7]:
        for size in (16, 32):
            static = image_ops.resize_crop_matrix(h, w, size).numpy()
            run_time = image_ops.resize_crop_matrix(tf.constant(h), tf.constant(w), size)
            np.testing.assert_array_equal(run_time.numpy(), static)


@pytest.mark.parametrize("hw", [(48, 80), (80, 48), (SIZE, SIZE), (SIZE, 45), (17, 20),
                                (45, SIZE), (33, 34)])
def test_resize_crop_in_a_graph_of_any_shape_equals_the_eager_one(hw):
    frames = np.random.default_rng(hw[0] * 100 + hw[1]).integers(0, 256, (2, *hw, 3), np.uint8)
    graph = tf.function(lambda x: image_ops.resize_crop(x, SIZE),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    eager = image_ops.resize_crop(frames, SIZE).numpy()
    assert eager.shape == (2, SIZE, SIZE, 3) and eager.dtype == np.uint8
    np.testing.assert_array_equal(graph(frames).numpy(), eager)


def test_resize_crop_keeps_the_centre():
    frames = np.zeros((2, 40, 80, 3), np.uint8)
    frames[:, :, :20] = (255, 0, 0)  # left quarter red: cropped away at size 20
    frames[:, :, 20:60] = (0, 255, 0)  # centre half green: all that remains
    out = image_ops.resize_crop(frames, 20).numpy()
    assert out.shape == (2, 20, 20, 3) and out.dtype == np.uint8
    assert (out[..., 1] > 200).all() and (out[..., 0] < 50).all()
    same = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3), np.uint8)
    np.testing.assert_array_equal(image_ops.resize_crop(same, 16).numpy(), same)


def _served_detector_input():
    """The SavedModel's detect_keypoints graph code (bounds, then `model_input` on [B, H, W, 3]
    known only at run time) with a PixelProbe for Q: images -> the float32 pixels Q sees."""
    probe = PixelProbe()
    module = types.SimpleNamespace(_nets=types.SimpleNamespace(detector=probe), _size=SIZE,
                                   _max_side=serving.MAX_SIDE,
                                   _max_aspect=serving.MAX_ASPECT_RATIO)
    module._bounded = lambda images: serving.ServingModule._bounded(module, images)
    signature = tf.function(
        lambda images: serving.ServingModule.detect_keypoints.python_function(module, images),
        input_signature=[serving.IMAGES_SPEC])
    return lambda images: _seen(signature(images)["keypoints"])


def test_a_huge_allowed_image_is_cropped_before_it_is_resized(monkeypatch):
    """4096 x 1024 (the largest side and aspect the SavedModel accepts): the resize reads only
    the centre 1024 x 1024 square, eagerly and in the served graph."""
    height, width = serving.MAX_SIDE, int(serving.MAX_SIDE / serving.MAX_ASPECT_RATIO)
    huge = np.random.default_rng(5).integers(0, 256, (1, height, width, 3), np.uint8)
    top = (height - width) // 2
    square = huge[:, top:top + width]
    resize, seen_shapes = tf.image.resize, []
    expected = image_ops.round_to_uint8(resize(square, (SIZE, SIZE), antialias=True)).numpy()

    def square_only_resize(images, size, **kwargs):
        seen_shapes.append(tuple(images.shape))
        shape = tf.shape(images)
        check = tf.debugging.assert_equal(  # run-time shapes: checked when the graph runs
            shape[1:3], tf.stack([width, width]), message="resize saw more than the crop")
        with tf.control_dependencies([check]):
            return resize(tf.identity(images), size, **kwargs)

    monkeypatch.setattr(tf.image, "resize", square_only_resize)
    eager = image_ops.resize_crop(huge, SIZE).numpy()
    assert seen_shapes == [(1, width, width, 3)]
    np.testing.assert_array_equal(eager, expected)
    served = _served_detector_input()(huge)
    np.testing.assert_array_equal(image_ops.to_uint8(served).numpy(), expected)
    # Turned sideways (1024 x 4096) the centre columns are kept.
    wide = np.ascontiguousarray(huge.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(image_ops.to_uint8(_served_detector_input()(wide)).numpy(),
                                  expected.transpose(0, 2, 1, 3))


def test_keypoints_follow_resize_and_crop_by_hand():
    # 100 x 200 -> 50 x 100, crop columns 25..75: x = -0.5 (column edge 50 of 200 -> 25 after
    # resize -> the left edge of the crop) maps to -1; the centre stays; y is only scaled.
    points = np.array([[-0.5, 0.0], [0.0, 0.5], [0.5, -1.0]], np.float32)
    matrix = image_ops.resize_crop_matrix(100, 200, 50)
    out = kp_ops.transform_keypoints(points, matrix, (100, 200), 50).numpy()
    np.testing.assert_allclose(out, [[-1.0, 0.0], [0.0, 0.5], [1.0, -1.0]], atol=1e-6)
    same = kp_ops.transform_keypoints(points, image_ops.resize_crop_matrix(32, 32, 32), 32, 32)
    np.testing.assert_allclose(same.numpy(), points, atol=1e-6)
    # The run-time matrix is the static one.
    dynamic = image_ops.resize_crop_matrix(tf.constant(100), tf.constant(200), 50)
    np.testing.assert_allclose(dynamic.numpy(), matrix.numpy(), atol=1e-6)


def test_keypoints_follow_the_pixels():
    """A bright blob and its keypoint end up at the same place after resize + crop."""
    height, width, size = 60, 100, 30
    frame = np.zeros((1, height, width, 3), np.uint8)
    row, col = 21, 67  # blob centred on pixel (row, col)
    frame[0, row - 2:row + 3, col - 2:col + 3] = 255
    point = kp_ops.pixel_indices_to_keypoints([[[col, row]]], (height, width))
    out, moved = image_ops.resize_with_keypoints(frame, size, point)
    out = out.numpy()[0, ..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:size, 0:size]
    centroid = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
    expected = (moved.numpy()[0, 0] + 1) / 2 * size - 0.5
    # In output pixels; a half-pixel slip in the convention would be off by 0.25.
    np.testing.assert_allclose(centroid, expected, atol=0.05)


def test_resize_short_side_and_center_crop_keep_a_joint_on_its_blob():
    v, u = np.mgrid[0:40, 0:80].astype(np.float32) + 0.5
    blob = 255.0 * np.exp(-((u - 62.0) ** 2 + (v - 14.0) ** 2) / (2 * 2.0**2))
    frames = np.repeat(np.round(blob).astype(np.uint8)[None, ..., None], 3, -1)
    joints = np.array([[[62.0 / 80 * 2 - 1, 14.0 / 40 * 2 - 1]]], np.float32)
    resized, same = image_ops.resize_with_keypoints(frames, 20, joints, crop=False)
    assert resized.shape == (1, 20, 40, 3)
    np.testing.assert_allclose(same.numpy(), joints, atol=1e-6)  # a whole-frame resize
    cropped, moved = image_ops.resize_with_keypoints(frames, 20, joints)
    assert cropped.shape == (1, 20, 20, 3)
    # Crop first (columns 20..60 of 80), then resize that square only.
    square = image_ops.center_crop(frames, 40)
    np.testing.assert_array_equal(
        cropped.numpy(), image_ops.round_to_uint8(tf.image.resize(square, (20, 20),
                                                                  antialias=True)).numpy())
    # By hand: crop -> (42, 14) of 40, scale 0.5 -> (21, 7) of 20: x = 1.1, y = -0.3.
    np.testing.assert_allclose(moved.numpy()[0, 0], [1.1, -0.3], atol=1e-6)
    image = resized.numpy()[0, ..., 0].astype(np.float64)
    rows, cols = np.mgrid[0:20, 0:40] + 0.5
    centroid = [(cols * image).sum() / image.sum() / 40 * 2 - 1,
                (rows * image).sum() / image.sum() / 20 * 2 - 1]
    np.testing.assert_allclose(centroid, joints[0, 0], atol=0.03)


def test_a_keras_detector_sees_the_same_input_on_the_pipeline_and_generation_roads():
    """The same check with a real (untrained) Q's keypoints rather than a probe."""
    keras.utils.set_random_seed(0)
    detector = KeypointDetector(num_keypoints=4, filters=(8, 8, 8))
    video = _asymmetric_video(1)
    generator = VideoGenerator(detector, None, _StillTranslator())
    by_generation = detector(generator.preprocess(video), training=False).numpy()
    by_labels = pseudo_labels.detect_video(detector, video, SIZE, batch_size=2)
    np.testing.assert_allclose(by_labels, by_generation, atol=1e-5)
