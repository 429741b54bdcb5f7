"""Data-set readers: Penn Action, video folders (MGIF / UvA-NEMO / own), the dispatcher."""
import collections
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from kpvp import configs
from kpvp.data import readers
from kpvp.data.datasets import NEMO_CLASSES, PENN_CLASSES
from kpvp.data.readers import PennAction, VideoFolder
from kpvp.data.video_io import CorruptVideoError, read_video, write_video

from helpers.videos import ACTIONS_FRAMES, few_colour_video, smooth_video

# === Penn Action ===

PENN_H, PENN_W, PENN_T = 48, 64, 4
# Joint 5 (l_wrist) of each video sits on a white blob at this pixel (row, column), frame t
# shifted right by 2 t columns.
BLOB_ROW, BLOB_COL = 20, 30


def make_penn_video(root, video_id, action, train, num_frames=PENN_T, num_label_rows=None):
    """Writes frames/<id>/%06d.jpg and labels/<id>.mat like the real data set."""
    frames_dir = root / "frames" / video_id
    frames_dir.mkdir(parents=True)
    (root / "labels").mkdir(exist_ok=True)
    x = np.tile(np.linspace(5, 60, 13), (num_frames, 1))
    y = np.tile(np.linspace(3, 45, 13), (num_frames, 1))
    for t in range(num_frames):
        frame = np.full((PENN_H, PENN_W, 3), 40, np.uint8)
        col = BLOB_COL + 2 * t
        frame[BLOB_ROW - 2:BLOB_ROW + 3, col - 2:col + 3] = 255
        Image.fromarray(frame).save(frames_dir / f"{t + 1:06d}.jpg", quality=98)
        x[t, 5], y[t, 5] = col, BLOB_ROW
    visibility = np.ones((num_frames, 13), np.uint8)
    visibility[:, 12] = 0  # right ankle hidden
    rows = num_label_rows or num_frames
    x, y, visibility = (np.resize(a, (rows, 13)) for a in (x, y, visibility))
    scipy.io.savemat(root / "labels" / f"{video_id}.mat", {
        "action": np.array([action]), "pose": np.array(["front"]), "x": x, "y": y,
        "visibility": visibility, "train": np.array([[1 if train else -1]]),
        "bbox": np.tile([1.0, 1.0, 60.0, 45.0], (rows, 1)),
        "dimensions": np.array([[PENN_H, PENN_W, num_frames]]),
        "nframes": np.array([[num_frames]])})


@pytest.fixture()
def penn_root(tmp_path):
    """Two videos of the paper's split (0001 train, 0150 test, both baseball_pitch, the authors'
    class 4) and one bench_press video (not one of the paper's 9 classes)."""
    root = tmp_path / "penn"
    make_penn_video(root, "0001", "baseball_pitch", train=True)
    make_penn_video(root, "0150", "baseball_pitch", train=False, num_frames=3,
                    num_label_rows=5)  # more label rows than frames, as in a few real videos
    make_penn_video(root, "0400", "bench_press", train=True)
    return root


def test_penn_paper_split(penn_root):
    train = PennAction(penn_root, "train")
    test = PennAction(penn_root, "test")
    assert (len(train), len(test)) == (1, 1)
    element = train[0]
    assert element["id"] == "0001" and element["label"] == PENN_CLASSES.index("baseball_pitch")
    assert element["label"] == 4  # the authors' id for baseball_pitch
    assert element["frames"].shape == (PENN_T, PENN_H, PENN_W, 3)
    assert element["frames"].dtype == np.uint8
    assert element["joints"].shape == (PENN_T, 13, 2) and element["joints"].dtype == np.float32
    assert element["visible"].dtype == bool
    assert element["visible"][:, :12].all() and not element["visible"][:, 12].any()
    assert train.has_joints and train.class_names == PENN_CLASSES
    # Listed videos absent from this small tree are recorded, not fatal.
    assert len(train.skipped) == 1171 and len(test.skipped) == 89
    assert test[0]["frames"].shape[0] == 3 and test[0]["joints"].shape[0] == 3


def test_penn_joints_are_pixel_centres_in_unit_coordinates(penn_root):
    joints = PennAction(penn_root, "train")[0]["joints"]
    # Pixel column i has its centre at x = (2 i + 1) / W - 1; rows likewise with H.
    for t in range(PENN_T):
        expected = [(2 * (BLOB_COL + 2 * t) + 1) / PENN_W - 1, (2 * BLOB_ROW + 1) / PENN_H - 1]
        np.testing.assert_allclose(joints[t, 5], expected, atol=1e-6)
    np.testing.assert_allclose(joints[0, 0], [11 / 64 - 1, 7 / 48 - 1], atol=1e-6)


def blob_centre(frame):
    """(x, y) in keypoint units of the bright blob's intensity centroid."""
    weight = np.clip(frame[..., 0].astype(np.float64) - 100, 0, None)
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    x = (xs * weight).sum() / weight.sum()
    y = (ys * weight).sum() / weight.sum()
    return np.array([(2 * x + 1) / frame.shape[1] - 1, (2 * y + 1) / frame.shape[0] - 1])


@pytest.mark.parametrize("crop", [True, False])
def test_penn_joints_follow_resize_and_crop(penn_root, crop):
    element = PennAction(penn_root, "train", image_size=24, crop=crop)[0]
    expected_shape = (24, 24) if crop else (24, 32)
    assert element["frames"].shape == (PENN_T,) + expected_shape + (3,)
    for t in range(PENN_T):
        # The keypoint stays on its blob (to a tenth of an output pixel).
        np.testing.assert_allclose(element["joints"][t, 5], blob_centre(element["frames"][t]),
                                   atol=0.2 / 24)
    if crop:  # by hand, t = 0: the blob centre, 30.5 of 64 pixel widths from the left edge,
        # is 15.25 of 32 after resizing and 11.25 of 24 after cropping 4 columns per side.
        assert element["joints"][0, 5, 0] == pytest.approx(11.25 / 24 * 2 - 1, abs=1e-6)


def test_penn_official_split_uses_the_train_flag(penn_root):
    train = PennAction(penn_root, "train", split_file="official")
    test = PennAction(penn_root, "test", split_file="official")
    assert [e["id"] for e in train] == ["0001"] and [e["id"] for e in test] == ["0150"]
    both = PennAction(penn_root, "train", split_file="official",
                      classes=("bench_press", "baseball_pitch"))
    assert [(e["id"], e["label"]) for e in both] == [("0001", 1), ("0400", 0)]


def test_penn_explicit_split_file(penn_root, tmp_path):
    split_file = tmp_path / "mine.txt"
    split_file.write_text("# my split\nframes/0150 4\n400\n")
    source = PennAction(penn_root, "train", split_file=split_file,
                        classes=PENN_CLASSES + ("bench_press",))
    assert [e["id"] for e in source] == ["0150", "0400"]
    assert [e["label"] for e in source] == [4, 9]
    assert not source.skipped


def test_penn_finds_the_unpacked_tarball_folder(penn_root, tmp_path):
    os.rename(penn_root, tmp_path / "Penn_Action")
    assert len(PennAction(tmp_path, "train")) == 1


def test_penn_corrupt_video_is_skipped_and_counted(penn_root):
    frame = penn_root / "frames" / "0001" / "000002.jpg"
    frame.write_bytes(frame.read_bytes()[:100])
    source = PennAction(penn_root, "train", split_file="official",
                        classes=("bench_press", "baseball_pitch"))
    with pytest.raises(CorruptVideoError, match="000002.jpg"):
        source[0]
    assert [e["id"] for e in source] == ["0400"]  # iteration goes on
    assert os.path.join("frames", "0001") in source.skipped[0][0]
    assert "1 unreadable" in readers.skip_summary(source)


def test_penn_broken_label_file_is_skipped(penn_root):
    (penn_root / "labels" / "0001.mat").write_bytes(b"MATLAB junk")
    source = PennAction(penn_root, "train", split_file="official",
                        classes=("bench_press", "baseball_pitch"))
    assert [e["id"] for e in source] == ["0400"]
    assert source.skipped[0][0].endswith("0001.mat")


def test_penn_missing_data_names_the_data_set_and_flag(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        PennAction(tmp_path / "nowhere", "train")
    message = str(info.value)
    assert "Penn Action" in message and "--data_dir" in message
    assert "dreamdragon.github.io/PennAction" in message and "labels" in message


def test_penn_bad_arguments(penn_root):
    with pytest.raises(ValueError, match="split"):
        PennAction(penn_root, "val")
    with pytest.raises(ValueError, match="dancing"):
        PennAction(penn_root, "train", classes=("dancing",))


def test_shipped_penn_split_is_the_papers():
    train = readers.read_split_file(readers.default_penn_split_file("train"))
    test = readers.read_split_file(readers.default_penn_split_file("test"))
    assert (len(train), len(test)) == (1172, 90)  # paper Sec. 4
    assert len(set(train)) == 1172 and not set(train) & set(test)
    # Class ids of the lists against PENN_CLASSES: Penn Action numbers its videos by action in
    # alphabetical order, so ordering the authors' ids by their first video must sort the names.
    first_video = collections.defaultdict(lambda: 10_000)
    counts = collections.Counter()
    for split, name in (("train", "penn_train.txt"), ("test", "penn_test.txt")):
        with open(os.path.join(readers.SPLITS_DIR, name), encoding="utf-8") as f:
            for line in f:
                video, class_id = line.split()
                class_id = int(class_id)
                first_video[class_id] = min(first_video[class_id], int(video.split("/")[1]))
                counts[split, class_id] += split == "test"
    by_first_video = sorted(range(9), key=lambda c: first_video[c])
    names = [PENN_CLASSES[c] for c in by_first_video]
    assert names == sorted(names) and set(by_first_video) == set(range(9))
    assert all(counts["test", c] == 10 for c in range(9))


# === Video folders ===

def write_some(path, seed, num_frames=4, size=16):
    frames = few_colour_video(num_frames, size, size, seed=seed)
    write_video(path, frames)
    return frames


def test_folder_every_format(tmp_path):
    root = tmp_path / "mgif"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    expected = {"train/a": write_some(root / "train" / "a.gif", 1),
                "train/b": write_some(root / "train" / "b.png", 2),
                "test/c": write_some(root / "test" / "c.gif", 3)}
    mp4 = smooth_video(num_frames=5, size=16)
    write_video(root / "train" / "d.mp4", mp4)
    (root / "train" / "e").mkdir()
    expected["train/e"] = few_colour_video(3, 16, 16, seed=5)
    for i, frame in enumerate(expected["train/e"]):
        Image.fromarray(frame).save(root / "train" / "e" / f"{i:04d}.png")
    train, test = VideoFolder(root, "train"), VideoFolder(root, "test")
    assert (len(train), len(test)) == (4, 1) and train.class_names == ("mgif",)
    got = {e["id"]: e for e in list(train) + list(test)}
    assert sorted(got) == ["test/c", "train/a", "train/b", "train/d", "train/e"]
    for key, frames in expected.items():
        np.testing.assert_array_equal(got[key]["frames"], frames)
        assert got[key]["label"] == 0
    assert np.abs(got["train/d"]["frames"].astype(int) - mp4).mean() < 4
    resized = VideoFolder(root, "train", image_size=8)
    assert all(e["frames"].shape[1:] == (8, 8, 3) for e in resized)


def test_folder_classes_from_sub_folders(tmp_path):
    root = tmp_path / "own"
    for split in ("train", "test"):
        for cls, seed in (("walk", 1), ("jump", 2)):
            (root / split / cls).mkdir(parents=True)
            write_some(root / split / cls / f"{split}_{cls}.gif", seed)
    frames_dir = root / "train" / "walk" / "frames_video"  # a frame folder inside a class
    frames_dir.mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(frames_dir / "0.png")
    source = VideoFolder(root, "train")
    assert source.class_names == ("jump", "walk")  # sorted sub-folder names
    labels = {e["id"]: e["label"] for e in source}
    assert labels == {"train/jump/train_jump": 0, "train/walk/frames_video": 1,
                      "train/walk/train_walk": 1}
    chosen = VideoFolder(root, "test", class_names=("walk", "jump"))  # order given
    assert {e["id"]: e["label"] for e in chosen} == {"test/walk/test_walk": 0,
                                                     "test/jump/test_jump": 1}


def test_folder_of_frame_folders_is_flat(tmp_path):
    """Siarohin's preferred layout: train/<video>/<frame>.png, one folder per video."""
    expected = {}
    for name, seed in (("clip_a", 1), ("clip_b", 2)):
        folder = tmp_path / "train" / name
        folder.mkdir(parents=True)
        expected[f"train/{name}"] = few_colour_video(3, 12, 20, seed=seed)  # 20 x 12 frames
        for i, frame in enumerate(expected[f"train/{name}"]):
            Image.fromarray(frame).save(folder / f"{i:07d}.png")
    source = VideoFolder(tmp_path, "train", name="frames")
    assert source.class_names == (tmp_path.name,) and len(source) == 2
    for element in source:
        np.testing.assert_array_equal(element["frames"], expected[element["id"]])
        assert element["label"] == 0


def test_nemo_classes_from_file_names(tmp_path):
    root = tmp_path / "nemo" / "train"
    root.mkdir(parents=True)
    for i, name in enumerate(["001_spontaneous_smile_1", "002_deliberate_smile_2",
                              "003_posed_smile", "004_unknown"]):
        write_some(root / f"{name}.gif", i)
    source = VideoFolder(root.parent, "train", class_names=NEMO_CLASSES,
                         label_fn=readers.nemo_label)
    assert [(e["id"].split("/")[1], e["label"]) for e in source] == [
        ("001_spontaneous_smile_1", 0), ("002_deliberate_smile_2", 1), ("003_posed_smile", 1)]
    assert len(source.skipped) == 1 and source.skipped[0][0].endswith("004_unknown.gif")


def test_classes_from_labels_csv(tmp_path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    for i, name in enumerate(["x", "y", "z"]):
        write_some(root / "train" / f"{name}.gif", i)
    (root / "labels.csv").write_text("name,class\nx.gif,posed\ny,spontaneous\nz,posed\n")
    source = VideoFolder(root, "train")
    assert source.class_names == ("posed", "spontaneous")
    assert [e["label"] for e in source] == [0, 1, 0]


def test_seeded_split_is_deterministic_disjoint_and_stratified(tmp_path):
    root = tmp_path / "flat"
    for cls, count in (("a", 12), ("b", 7)):
        (root / cls).mkdir(parents=True)
        for i in range(count):  # 2-frame strips: the sub-folders are classes, not frames
            write_some(root / cls / f"{i:02d}.png", i, num_frames=2, size=4)
    train, test = VideoFolder(root, "train"), VideoFolder(root, "test")
    again = VideoFolder(root, "test")
    assert test.paths == again.paths  # same files, same seed: same split
    assert not set(train.paths) & set(test.paths)
    assert len(train) + len(test) == 19
    per_class = collections.Counter(label for _, label in test._items)
    assert per_class == {0: 2, 1: 1}  # ceil(10 %) of 12 and of 7
    other = VideoFolder(root, "test", seed=3)
    assert sorted(other.paths) != sorted(test.paths)


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    root = tmp_path / "bad" / "train"
    root.mkdir(parents=True)
    good = write_some(root / "a_good.gif", 0)
    write_some(root / "b_truncated.gif", 1)
    data = (root / "b_truncated.gif").read_bytes()
    (root / "b_truncated.gif").write_bytes(data[:len(data) // 2])
    (root / "c_text.mp4").write_text("not a video")
    (root / "d_empty").mkdir()
    write_some(root / "e_good.png", 2)
    source = VideoFolder(root.parent, "train")
    with pytest.raises(CorruptVideoError):
        source[1]
    elements = list(source)  # never stops for a bad file
    assert [e["id"] for e in elements] == ["train/a_good", "train/e_good"]
    np.testing.assert_array_equal(elements[0]["frames"], good)
    assert sorted(os.path.basename(p) for p, _ in source.skipped) == [
        "b_truncated.gif", "c_text.mp4", "d_empty"]
    assert all(reason for _, reason in source.skipped)
    list(source)  # a second pass does not count them twice
    assert len(source.skipped) == 3
    summary = readers.skip_summary(source)
    assert "3 unreadable" in summary and "\n" not in summary


def test_shared_actions_folder(shared_fixtures):
    source = VideoFolder(shared_fixtures / "actions", "train", image_size=32)
    assert len(source) == 23 and source.class_names == ("actions",)
    lengths = {e["id"].split("/")[1]: e["frames"].shape for e in source}
    assert lengths == {k: (n, 32, 32, 3) for k, n in ACTIONS_FRAMES.items()}
    assert not source.skipped


def test_shared_mgif_like_folder_split(shared_fixtures):
    train = VideoFolder(shared_fixtures / "mgif_like", "train", class_names=("mgif",))
    test = VideoFolder(shared_fixtures / "mgif_like", "test", class_names=("mgif",))
    assert (len(train), len(test)) == (1, 1)  # seeded 90/10 of two files: one each
    lengths = sorted(len(e["frames"]) for e in list(train) + list(test))
    assert lengths == [11, 26]


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="MGIF"):
        VideoFolder(tmp_path / "nowhere", "train", name="mgif")
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="test/"):
        VideoFolder(tmp_path / "only_train", "test")
    flat = tmp_path / "flat"
    flat.mkdir()
    write_some(flat / "a.gif", 0)
    with pytest.raises(ValueError, match="label_fn"):
        VideoFolder(flat, "train", class_names=("x", "y"))


# === Dispatcher ===

def config_for(dataset, data_dir=""):
    config = configs.get_config(dataset, "tiny")
    config.data.data_dir = os.fspath(data_dir)
    return config


@pytest.mark.parametrize("dataset, title", [("penn", "Penn Action"), ("nemo", "UvA-NEMO"),
                                            ("mgif", "MGIF"), ("folder", "video folder")])
def test_open_source_missing_data_message(tmp_path, dataset, title):
    with pytest.raises(FileNotFoundError) as info:
        readers.open_source(config_for(dataset, tmp_path / "absent"), "train")
    message = str(info.value)
    assert title in message and "--data_dir" in message and "absent" in message


def test_open_source_default_location_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=os.path.join("datasets", "mgif")):
        readers.open_source(config_for("mgif"), "train")
    (tmp_path / "datasets" / "mgif" / "train").mkdir(parents=True)
    write_some(tmp_path / "datasets" / "mgif" / "train" / "a.gif", 0, size=80)
    source = readers.open_source(config_for("mgif"), "train")
    assert source[0]["frames"].shape == (4, 64, 64, 3)  # tiny config: image_size 64


def test_open_source_penn_and_nemo(penn_root, tmp_path):
    penn = readers.open_source(config_for("penn", penn_root), "test")
    assert penn.name == "penn" and [e["id"] for e in penn] == ["0150"]
    assert penn[0]["frames"].shape[1:] == (64, 64, 3)
    wide = readers.open_source(config_for("penn", penn_root), "test", crop=False)
    assert wide[0]["frames"].shape[1:] == (64, 85, 3)  # 48 x 64 -> short side 64
    nemo_dir = tmp_path / "nemo" / "test"
    nemo_dir.mkdir(parents=True)
    write_some(nemo_dir / "010_deliberate_smile_1.gif", 0)
    write_some(nemo_dir / "011_spontaneous_smile_2.gif", 1)
    nemo = readers.open_source(config_for("nemo", nemo_dir.parent), "test")
    assert nemo.class_names == ("spontaneous", "posed")
    assert [e["label"] for e in nemo] == [1, 0]


def test_open_source_folder_takes_classes_from_disk(tmp_path):
    for cls in ("wave", "clap", "bow"):
        (tmp_path / "mine" / "train" / cls).mkdir(parents=True)
        write_some(tmp_path / "mine" / "train" / cls / "v.gif", 0)
    source = readers.open_source(config_for("folder", tmp_path / "mine"), "train")
    assert source.class_names == ("bow", "clap", "wave")
    assert sorted(e["label"] for e in source) == [0, 1, 2]


def test_open_source_synthetic_and_unknown():
    pytest.importorskip("kpvp.data.synthetic")
    config = config_for("synthetic")
    config.data.synthetic_num_test = 2
    config.data.synthetic_num_frames = 3
    config.image_size = 32
    source = readers.open_source(config, "test")
    assert len(source) == 2 and source[0]["frames"].shape == (3, 32, 32, 3)
    config.dataset = "kinetics"
    with pytest.raises(ValueError, match="kinetics"):
        readers.open_source(config, "test")


@pytest.mark.slow
def test_from_generator_with_element_signature(penn_root):
    tf = pytest.importorskip("tensorflow")
    source = PennAction(penn_root, "train", image_size=16)
    signature = readers.element_signature(source)
    dataset = tf.data.Dataset.from_generator(lambda: iter(source), output_signature=signature)
    element = next(iter(dataset))
    assert element["frames"].shape == (PENN_T, 16, 16, 3)
    np.testing.assert_array_equal(element["frames"].numpy(), source[0]["frames"])
    assert element["id"].numpy() == b"0001" and element["joints"].shape == (PENN_T, 13, 2)


def test_read_video_agrees_with_folder_reader(tmp_path):
    frames = write_some(tmp_path / "train" / "v.gif", 7)
    np.testing.assert_array_equal(read_video(tmp_path / "train" / "v.gif"), frames)
    np.testing.assert_array_equal(VideoFolder(tmp_path, "train")[0]["frames"], frames)


# === Long videos ===

def test_sources_apply_the_configs_frame_cap_stride_and_budget(tmp_path, penn_root):
    root = tmp_path / "videos" / "train"
    write_video(root / "short.gif", smooth_video(num_frames=6, size=16))
    write_video(root / "long.gif", smooth_video(num_frames=40, size=16))
    config = configs.get_config("folder", "tiny")
    config.data.data_dir = str(tmp_path / "videos")
    config.image_size = 16
    # 16 x 16 x 3 bytes a frame: a budget of 20 frames.
    config.data.max_video_mb = 20 * 16 * 16 * 3 / 2 ** 20
    source = readers.open_source(config, "train")
    elements = list(source)
    assert [len(e["frames"]) for e in elements] == [6]  # long.gif refused, not read
    assert [os.path.basename(p) for p, _ in source.skipped] == ["long.gif"]
    assert "over the budget" in source.skipped[0][1]
    config.data.video_stride = 2
    assert sorted(len(e["frames"]) for e in readers.open_source(config, "train")) == [3, 20]
    config.data.max_video_frames = 5
    assert sorted(len(e["frames"]) for e in readers.open_source(config, "train")) == [3, 5]

    # Penn Action: the joints follow the frames kept.
    every = PennAction(penn_root, "train")[0]
    strided = PennAction(penn_root, "train", limits={"stride": 2, "max_frames": 1})[0]
    assert len(strided["frames"]) == len(strided["joints"]) == len(strided["visible"]) == 1
    np.testing.assert_array_equal(strided["joints"], every["joints"][:1])
    strided = PennAction(penn_root, "train", limits={"stride": 3})[0]
    np.testing.assert_array_equal(strided["joints"], every["joints"][::3])
    np.testing.assert_array_equal(strided["frames"], every["frames"][::3])
