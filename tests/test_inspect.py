"""Data inspection tool: counts per class and split, skipped files, contact sheet, CLI errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kpvp import configs
from kpvp.data import inspection
from kpvp.data.video_io import write_video

from helpers import REPO
from helpers.videos import ACTIONS_FRAMES

# Ten colours that GIFs and PNG strips store exactly; frame t of a test video is one colour.
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                    [210, 245, 60], [0, 0, 128]], np.uint8)


def solid_video(num_frames, height, width, offset=0):
    """Frame t is filled with PALETTE[(t + offset) % 10]."""
    colours = PALETTE[(np.arange(num_frames) + offset) % len(PALETTE)]
    return np.broadcast_to(colours[:, None, None, :], (num_frames, height, width, 3)).copy()


# Two classes, train and test, plus one corrupt file in train/jump.
TRAIN_VIDEOS = {"jump": {"a.gif": (4, 0), "b.gif": (7, 1), "c.gif": (10, 2)},
                "wave": {"d.png": (5, 3), "e.png": (6, 4)}}
TEST_VIDEOS = {"jump": {"f.gif": (3, 5)}, "wave": {"g.png": (8, 6)}}
GIF_SIZE, STRIP_SIZE = (20, 30), (16, 16)  # (H, W)


@pytest.fixture()
def class_folder(tmp_path):
    root = tmp_path / "videos"
    for split, videos in (("train", TRAIN_VIDEOS), ("test", TEST_VIDEOS)):
        for cls, files in videos.items():
            for name, (length, offset) in files.items():
                h, w = GIF_SIZE if name.endswith(".gif") else STRIP_SIZE
                write_video(root / split / cls / name, solid_video(length, h, w, offset))
    broken = root / "train" / "jump" / "broken.gif"
    broken.write_bytes(b"GIF89a" + b"\x00\x13garbage" * 3)
    return root, broken


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "kpvp.inspect_data", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_on_class_folder(class_folder, tmp_path):
    root, broken = class_folder
    sheet_path, json_path = tmp_path / "out" / "sheet.png", tmp_path / "out" / "stats.json"
    vpc, columns, cell = 2, 3, 24
    result = run_cli("--dataset=folder", f"--data_dir={root}", f"--output={sheet_path}",
                     f"--json={json_path}", f"--videos_per_class={vpc}",
                     f"--frames_per_video={columns}", f"--cell_size={cell}")
    assert result.returncode == 0, result.stderr

    report = json.loads(json_path.read_text())
    train, test = report["splits"]["train"], report["splits"]["test"]
    assert train["class_names"] == ["jump", "wave"]  # from disk, not the config's 'default'
    assert train["per_class"] == {"jump": 3, "wave": 2}
    assert test["per_class"] == {"jump": 1, "wave": 1}
    assert (train["videos"], train["read"], test["read"]) == (6, 5, 2)
    assert train["frames"] == {"min": 4, "median": 6.0, "max": 10, "mean": 6.4, "total": 32}
    assert train["frame_sizes"] == [{"height": 16, "width": 16, "videos": 2},
                                    {"height": 20, "width": 30, "videos": 3}]
    assert not train["has_joints"]
    assert train["num_skipped"] == 1 and train["skipped"][0]["path"] == str(broken)
    assert train["skipped"][0]["reason"]
    assert test["num_skipped"] == 0 and test["error"] is None

    out = result.stdout
    assert str(broken) in out and "unreadable / skipped files: 1" in out
    assert "jump" in out and "wave" in out and "median 6" in out and "20x30" in out

    # Rows: 2 of jump's 3 videos, both of wave's; columns: 3 frames of 24 px beside the labels.
    sheet = np.asarray(Image.open(sheet_path).convert("RGB"))
    assert sheet.shape == (4 * cell, inspection.LABEL_WIDTH + columns * cell, 3)
    assert report["sheet"]["rows"] == 4
    # Each cell shows the frame picked evenly from its video: its colour at the cell's centre.
    shown = [TRAIN_VIDEOS["jump"]["a.gif"], TRAIN_VIDEOS["jump"]["b.gif"],
             TRAIN_VIDEOS["wave"]["d.png"], TRAIN_VIDEOS["wave"]["e.png"]]
    for row, (length, offset) in enumerate(shown):
        for col, t in enumerate(np.linspace(0, length - 1, columns).round().astype(int)):
            x = inspection.LABEL_WIDTH + col * cell + cell // 2
            centre = sheet[row * cell + cell // 2, x]
            np.testing.assert_array_equal(centre, PALETTE[(t + offset) % len(PALETTE)])


def test_importing_the_app_defines_no_flags():
    code = ("import kpvp.inspect_data; from absl import flags; "
            "assert 'sheet_split' not in flags.FLAGS, 'flags defined at import'")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_missing_data_dir_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_dir"
    result = run_cli("--dataset=mgif", f"--data_dir={missing}", f"--json={tmp_path / 's.json'}")
    assert result.returncode == 1
    assert "--dataset=mgif" in result.stderr and "MGIF" in result.stderr
    assert str(missing) in result.stderr and "datasets/README.md" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_synthetic_tiny_counts_match_the_config():
    config = configs.get_config("synthetic", "tiny")
    report, samples = inspection.inspect_dataset(config, videos_per_class=1, frames_per_video=2)
    for split, size in (("train", config.data.synthetic_num_train),
                        ("test", config.data.synthetic_num_test)):
        stats = report["splits"][split]
        assert stats["videos"] == stats["read"] == size
        assert sum(stats["per_class"].values()) == size
        assert set(stats["per_class"]) == set(config.class_names)
        assert all(n > 0 for n in stats["per_class"].values())
        assert stats["has_joints"] and stats["num_skipped"] == 0
        n, s = config.data.synthetic_num_frames, config.image_size
        assert (stats["frames"]["min"], stats["frames"]["max"]) == (n, n)
        assert stats["frame_sizes"] == [{"height": s, "width": s, "videos": size}]
        # One sample per class, with 2 frames of joints each.
        assert sorted(x["label"] for x in samples[split]) == list(range(len(config.class_names)))
        assert all(x["joints"].shape == (2, 13, 2) for x in samples[split])
    text = inspection.format_report(report)
    assert "[train] 96 readable of 96 videos, 4 classes" in text and "joints: yes" in text


def test_shared_action_strips(shared_fixtures, tmp_path):
    root = tmp_path / "actions"
    (root / "train").mkdir(parents=True)
    for name in ACTIONS_FRAMES:
        os.symlink(shared_fixtures / "actions" / "train" / f"{name}.jpg",
                   root / "train" / f"{name}.jpg")
    config = configs.get_config("folder", "tiny")
    config.data.data_dir = str(root)
    report, samples = inspection.inspect_dataset(config, videos_per_class=2, frames_per_video=4)
    train = report["splits"]["train"]
    lengths = sorted(ACTIONS_FRAMES.values())
    assert train["class_names"] == ["actions"]  # a flat folder is one class named after it
    assert train["per_class"] == {"actions": len(ACTIONS_FRAMES)}
    assert train["frames"]["total"] == sum(lengths)
    assert (train["frames"]["min"], train["frames"]["max"]) == (lengths[0], lengths[-1])
    assert train["frames"]["median"] == float(np.median(lengths))
    assert train["frame_sizes"] == [{"height": 64, "width": 64, "videos": len(ACTIONS_FRAMES)}]
    # No test/ folder: that split is reported, the train split still inspected.
    assert "test/" in report["splits"]["test"]["error"]
    assert [s["id"] for s in samples["train"]] == ["train/00000000", "train/00000016"]
    assert "test] not available" in inspection.format_report(report)

    # As the pipelines see them: resized to config.image_size.
    resized, _ = inspection.inspect_dataset(config, splits=("train",), native_size=False,
                                         max_videos=3, videos_per_class=1, frames_per_video=1)
    stats = resized["splits"]["train"]
    assert stats["read"] == 3 and not stats["complete"]
    size = config.image_size
    assert stats["frame_sizes"] == [{"height": size, "width": size, "videos": 3}]


def test_fit_in_cell_moves_joints_with_the_pixels():
    frame = np.zeros((30, 60, 3), np.uint8)
    frame[10, 45] = 255  # row 10, column 45
    joint = np.array([[(2 * 45 + 1) / 60 - 1, (2 * 10 + 1) / 30 - 1]], np.float32)
    tile, moved = inspection.fit_in_cell(frame, 120, joint)
    # Scale 2 (60 -> 120 wide), 30 rows of padding on top: the pixel lands on rows 50-51,
    # columns 90-91, whose centre is (91, 51) in pixel-corner units.
    assert tile.shape == (120, 120, 3)
    np.testing.assert_allclose(moved[0], [91 / 60 - 1, 51 / 60 - 1], atol=1e-6)
    assert tile[51, 91].max() > 100 and tile[20, 91].max() < 100
    assert tuple(tile[5, 5]) == inspection._CELL_BACKGROUND  # padding above the frame


def test_contact_sheet_draws_visible_joints_only():
    gray = np.full((2, 32, 32, 3), 128, np.uint8)
    joints = np.zeros((2, 13, 2), np.float32)
    joints[:, 0] = (-0.5, -0.5)  # visible
    joints[:, 1] = (0.5, 0.5)  # hidden, as are the others (at the centre)
    visible = np.zeros((2, 13), bool)
    visible[:, 0] = True
    sample = {"frames": gray, "joints": joints, "visible": visible, "label": 1, "id": "v",
              "num_frames": 9}
    cell = 64
    sheet = inspection.contact_sheet([sample], ("empty", "shown"), frames_per_video=2,
                                  cell_size=cell)
    # Class 0 has no video: an empty row; class 1 one row.
    assert sheet.shape == (2 * cell, inspection.LABEL_WIDTH + 2 * cell, 3)
    for col in range(2):
        x0 = inspection.LABEL_WIDTH + col * cell
        visible_px = sheet[cell + cell // 4, x0 + cell // 4]
        hidden_px = sheet[cell + 3 * cell // 4, x0 + 3 * cell // 4]
        assert tuple(visible_px) != (128, 128, 128)
        assert tuple(hidden_px) == (128, 128, 128)
        assert tuple(sheet[cell + cell // 2, x0 + cell // 2]) == (128, 128, 128)
    background = sheet[cell // 2, inspection.LABEL_WIDTH + cell // 2]
    assert tuple(background) == inspection._CELL_BACKGROUND
