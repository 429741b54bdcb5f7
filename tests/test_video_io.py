"""Video reading/writing round trips, corrupt-file errors, frame cap, stride and memory budget
(resizing: tests/test_images.py)."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from kpvp.data.video_io import CorruptVideoError, VideoTooLargeError, read_video, write_video

from helpers.videos import ACTIONS_FRAMES, few_colour_video, smooth_video


# === Round trips ===

def test_gif_round_trip_keeps_identical_frames(tmp_path):
    frames = few_colour_video()
    frames[2] = frames[3] = frames[1]  # Pillow's own writer would merge these three
    path = write_video(tmp_path / "v.gif", frames, fps=10)
    back = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    np.testing.assert_array_equal(back, frames)
    with Image.open(path) as image:  # what other decoders see
        assert image.n_frames == 6 and image.info["duration"] == 100


def test_gif_of_constant_frames_keeps_its_length(tmp_path):
    frames = np.full((15, 16, 16, 3), 200, np.uint8)
    back = read_video(write_video(tmp_path / "c.gif", frames))
    np.testing.assert_array_equal(back, frames)


def test_gif_many_colours_is_close(tmp_path):
    frames = smooth_video()
    back = read_video(write_video(tmp_path / "s.gif", frames))
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 6  # 256-colour quantisation


def test_mp4_round_trip(tmp_path):
    frames = smooth_video(num_frames=8, size=64)
    back = read_video(write_video(tmp_path / "s.mp4", frames, fps=8))
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 3  # H.264 at crf 5, yuv420p
    # Frame order survives: each decoded frame is closest to its own original.
    errors = np.abs(back[:, None].astype(int) - frames[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(errors.argmin(axis=1), np.arange(8))


def test_mp4_needs_even_size(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))


def test_png_strip_round_trip_is_exact(tmp_path):
    frames = smooth_video(num_frames=5, size=24)
    path = write_video(tmp_path / "strip.png", frames)
    with Image.open(path) as image:
        assert image.size == (5 * 24, 24)
    np.testing.assert_array_equal(read_video(path), frames)


def test_strip_with_frame_size(tmp_path):
    frames = few_colour_video(num_frames=4, height=10, width=16)
    path = write_video(tmp_path / "wide.png", frames)  # 64 x 10: square default would be 6.4
    np.testing.assert_array_equal(read_video(path, frame_size=16), frames)
    np.testing.assert_array_equal(read_video(path, frame_size=(10, 16)), frames)
    with pytest.raises(CorruptVideoError, match="multiple"):
        read_video(path)


def test_png_named_jpg_is_read_by_content(tmp_path):
    frames = few_colour_video(num_frames=3, height=8, width=8)
    strip = np.concatenate(list(frames), axis=1)
    alpha = np.full(strip.shape[:2] + (1,), 255, np.uint8)
    Image.fromarray(np.concatenate([strip, alpha], -1)).save(tmp_path / "v.jpg", format="PNG")
    back = read_video(tmp_path / "v.jpg")
    np.testing.assert_array_equal(back, frames)  # RGBA -> RGB, exact (not JPEG-decoded)


def test_frame_folder_natural_order(tmp_path):
    frames = few_colour_video(num_frames=12, height=6, width=7)
    folder = tmp_path / "video"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i + 1}.png")  # 1.png ... 12.png, not padded
    (folder / ".hidden.png").write_bytes(b"junk")
    back = read_video(folder)
    assert isinstance(back, np.ndarray) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, frames)


def test_write_video_checks_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.gif", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        write_video(tmp_path / "f.gif", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=".avi"):
        write_video(tmp_path / "f.avi", np.zeros((2, 8, 8, 3), np.uint8))


# === Real samples ===

@pytest.mark.parametrize("name", sorted(ACTIONS_FRAMES))
def test_shared_action_strips(shared_fixtures, name):
    frames = read_video(shared_fixtures / "actions" / "train" / f"{name}.jpg")
    assert frames.shape == (ACTIONS_FRAMES[name], 64, 64, 3) and frames.dtype == np.uint8


def test_shared_mgif_strips(shared_fixtures):
    driving = read_video(shared_fixtures / "mgif_like" / "driving.png")
    source = read_video(shared_fixtures / "mgif_like" / "source.png")
    assert driving.shape == (26, 128, 128, 3) and source.shape == (11, 128, 128, 3)
    # Frames are a walk cycle, not copies of one picture, and the background is white.
    assert np.abs(np.diff(driving.astype(int), axis=0)).mean() > 1
    assert (driving[:, 0, 0] > 240).all()


def test_shared_mirror_pair_is_a_horizontal_flip(shared_fixtures):
    left = read_video(shared_fixtures / "actions" / "train" / "00000026.jpg")
    right = read_video(shared_fixtures / "actions" / "train" / "00000027.jpg")
    np.testing.assert_array_equal(left[:, :, ::-1], right)  # each frame flipped, same order
    assert not np.array_equal(left, right)


# === Corrupt input ===

def truncate(src, dst, fraction):
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[:int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("ext", [".gif", ".mp4", ".png"])
def test_truncated_files_raise(tmp_path, ext):
    good = write_video(tmp_path / f"good{ext}", smooth_video(num_frames=6, size=32))
    bad = truncate(good, tmp_path / f"bad{ext}", 0.5)
    with pytest.raises(CorruptVideoError) as info:
        read_video(bad)
    assert info.value.path == os.fspath(bad) and info.value.reason
    assert isinstance(info.value, ValueError)


def test_unreadable_inputs_raise_with_path_and_reason(tmp_path):
    (tmp_path / "empty.gif").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "noframes").mkdir()
    for name, reason in [("empty.gif", "empty"), ("text.png", "not a GIF"),
                         ("noframes", "zero frames")]:
        with pytest.raises(CorruptVideoError, match=reason) as info:
            read_video(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.gif"):
        read_video(tmp_path / "missing.gif")


def test_frame_folder_with_mismatched_sizes_raises(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "0.png")
    Image.new("RGB", (9, 8)).save(folder / "1.png")
    with pytest.raises(CorruptVideoError, match="1.png"):
        read_video(folder)


# === Long videos: frame cap, stride, memory budget, truncated containers ===

def write_every_format(tmp_path, frames):
    """The same frames as .gif, .mp4, .png strip and frame folder."""
    paths = [write_video(tmp_path / f"v{ext}", frames) for ext in (".gif", ".mp4", ".png")]
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t}.png")
    return paths + [str(folder)]


def test_frame_cap_and_stride_keep_the_chosen_frames(tmp_path):
    for path in write_every_format(tmp_path, smooth_video(num_frames=11, size=16)):
        every = read_video(path)
        assert len(every) == 11, path
        np.testing.assert_array_equal(read_video(path, stride=3), every[::3])
        np.testing.assert_array_equal(read_video(path, max_frames=4, stride=2), every[:8:2])
        np.testing.assert_array_equal(read_video(path, max_frames=2), every[:2])
    with pytest.raises(ValueError, match="stride"):
        read_video(path, stride=0)


def test_a_video_over_the_memory_budget_is_refused_with_a_message(tmp_path):
    frames = smooth_video(num_frames=30, size=16)  # 30 x 16 x 16 x 3 = 23040 bytes
    for path in write_every_format(tmp_path, frames):
        with pytest.raises(VideoTooLargeError) as info:
            read_video(path, max_bytes=10_000)
        message = str(info.value)
        assert info.value.path == os.fspath(path) and os.fspath(path) in message
        assert "over the budget of 0.010 MB" in message and "config.data.max_video_mb" in message
        # The same budget holds the frames a cap or a stride keeps (not the strip: read whole).
        if not path.endswith(".png"):
            assert len(read_video(path, max_bytes=10_000, max_frames=13)) == 13
            assert len(read_video(path, max_bytes=10_000, stride=3)) == 10
        assert len(read_video(path, max_bytes=None)) == 30
    # Containers and frame folders are refused from their header / file count, before
    # decoding: the message gives the whole video's estimate, not the frames read so far.
    for path in (tmp_path / "v.mp4", tmp_path / "frames"):
        with pytest.raises(VideoTooLargeError, match="about 30 frames of 16x16"):
            read_video(path, max_bytes=10_000)
    with pytest.raises(VideoTooLargeError, match="at least 14 frames of 16x16"):  # GIF: as read
        read_video(tmp_path / "v.gif", max_bytes=10_000)


def test_a_partly_decodable_mp4_is_reported_not_shortened(tmp_path):
    good = write_video(tmp_path / "good.mp4", smooth_video(num_frames=30, size=32))
    assert len(read_video(good)) == 30
    bad = truncate(good, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(CorruptVideoError) as info:
        read_video(bad)
    assert info.value.path == os.fspath(bad)
    decoded = int(re.search(r"only (\d+) of the 30 frames", info.value.reason).group(1))
    assert 0 < decoded < 30  # the written index is first, so the cut file decodes in part
    # Asking for frames it still has is fine.
    assert len(read_video(bad, max_frames=decoded)) == decoded
