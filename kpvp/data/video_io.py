"""Reading and writing videos as uint8 arrays `[T, H, W, 3]` (RGB).

Formats read by `read_video` (chosen by looking at the file's first bytes, not only its name):

- animated `.gif` (every frame, composed to full RGB frames by Pillow);
- `.mp4` / `.avi` / `.mov` / `.mkv` / `.webm` through imageio-ffmpeg;
- a still image holding a horizontal strip of frames (Siarohin et al.'s "stacked" format:
  frames of equal size laid left to right), e.g. `video.png`; files named `.jpg` that are really
  PNGs are read by content;
- a directory of frame images, in natural name order (`2.png` before `10.png`).

Anything unreadable raises `CorruptVideoError` (a `ValueError`) naming the file and the reason,
so data readers can skip it and carry on.

Resizing and cropping frames for the networks is `kpvp.ops.images` (one road for every caller).
"""
import io
import os
import re
import struct

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from kpvp import errors
from kpvp.data.datasets import (CONTAINER_EXTENSIONS, IMAGE_EXTENSIONS,
                                WRITABLE_VIDEO_EXTENSIONS)

# Pillow and ffmpeg report damaged input through these.
_DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, IndexError, RuntimeError,
                  struct.error, Image.DecompressionBombError)


class CorruptVideoError(errors.InvalidInput):
    """A file or frame folder that cannot be read as a video; `path` and `reason` say why."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")


# === Reading ===

def read_video(path, frame_size=None) -> np.ndarray:
    """Reads a video file or frame folder as uint8 `[T, H, W, 3]` RGB.

    Args:
      path: a `.gif`, a video container (`.mp4`, `.avi`, `.mov`, ...), a horizontal strip image
        (`.png`, `.jpg`, ...) or a directory of frame images.
      frame_size: strips only: the width of one frame (int) or its `(height, width)`; by default
        frames are square, `height x height`. Ignored for other formats.

    Returns:
      uint8 array `[T, H, W, 3]` with T >= 1.

    Raises:
      FileNotFoundError: `path` does not exist.
      CorruptVideoError: the file is truncated, empty, not a video or image, or a strip's width is
        not a multiple of the frame width.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        frames = _read_frame_folder(path)
    elif not os.path.isfile(path):
        raise errors.InputNotFound(f"read_video: no such file or directory: {path!r}")
    else:
        kind = _sniff(path)
        if kind == "gif":
            frames = _read_animation(path)
        elif kind == "container":
            frames = _read_container(path)
        else:
            frames = _read_image(path, frame_size)
    if len(frames) == 0:
        raise CorruptVideoError(path, "zero frames")
    return np.ascontiguousarray(np.stack(frames).astype(np.uint8, copy=False))


def _sniff(path: str) -> str:
    """'gif', 'container' or 'image' from the file's magic bytes (extension as a fallback)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CorruptVideoError(path, "empty file")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    is_image = (head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff"
                or head[:2] == b"BM" or head[:4] in (b"II*\x00", b"MM\x00*")
                or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))
    if is_image:
        return "image"
    is_container = (head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
                    or head[:4] == b"\x1a\x45\xdf\xa3")
    if is_container or path.lower().endswith(CONTAINER_EXTENSIONS):
        return "container"
    raise CorruptVideoError(path, "not a GIF, video container or image (unknown file header)")


def _read_animation(path: str) -> list:
    # Pillow composes partial frames (disposal, sub-rectangles, local palettes) when seeking, so
    # each converted frame is the full picture a viewer would show.
    try:
        with Image.open(path) as image:
            return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        raise CorruptVideoError(path, f"{type(e).__name__}: {e}") from e


def _read_image(path: str, frame_size) -> list:
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:  # animated PNG / WebP
                return _read_animation(path)
            rgb = np.asarray(image.convert("RGB"))  # drops the alpha channel
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        raise CorruptVideoError(path, f"{type(e).__name__}: {e}") from e
    return list(split_strip(rgb, frame_size, path=path))


def split_strip(strip: np.ndarray, frame_size=None, path="strip") -> np.ndarray:
    """Cuts a horizontal strip `[h, n * w, 3]` into frames `[n, h, w, 3]` (left to right).

    `frame_size` is `w` (int) or `(h, w)`; by default `w = h` (square frames).
    """
    height, width = strip.shape[:2]
    if frame_size is None:
        frame_h, frame_w = height, height
    elif np.ndim(frame_size) == 0:
        frame_h, frame_w = height, int(frame_size)
    else:
        frame_h, frame_w = (int(v) for v in frame_size)
    if frame_h != height:
        raise CorruptVideoError(path, f"strip height {height} != frame height {frame_h}")
    if frame_w <= 0 or width % frame_w:
        raise CorruptVideoError(
            path, f"strip width {width} is not a multiple of the frame width {frame_w}")
    n = width // frame_w
    return strip.reshape(height, n, frame_w, strip.shape[2]).transpose(1, 0, 2, 3)


def _read_container(path: str) -> list:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel

    try:
        reader = imageio_ffmpeg.read_frames(path)
        width, height = next(reader)["size"]
        frame_bytes = width * height * 3
        frames = []
        for data in reader:
            if len(data) != frame_bytes:
                raise CorruptVideoError(path, f"frame {len(frames)} is incomplete")
            frames.append(np.frombuffer(data, np.uint8).reshape(height, width, 3))
        return frames
    except CorruptVideoError:
        raise
    except (StopIteration, *_DECODE_ERRORS) as e:
        last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        raise CorruptVideoError(
            path, f"ffmpeg could not decode it ({type(e).__name__}: {last_line})") from e


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str) -> list:
    """The frame image files of a frame folder, in natural name order (hidden files ignored)."""
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _read_frame_folder(folder: str) -> list:
    files = list_frame_files(folder)
    if not files:
        raise CorruptVideoError(folder, "zero frames (no image files in the folder)")
    frames = []
    for file in files:
        try:
            with Image.open(file) as image:
                frame = np.asarray(image.convert("RGB"))
        except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
            raise CorruptVideoError(folder, f"frame {os.path.basename(file)}: "
                                            f"{type(e).__name__}: {e}") from e
        if frames and frame.shape != frames[0].shape:
            raise CorruptVideoError(
                folder, f"frame {os.path.basename(file)} is {frame.shape[1]}x{frame.shape[0]}, "
                        f"the first frame is {frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(frame)
    return frames


# === Writing ===

def write_video(path, frames, fps: float = 10.0) -> str:
    """Writes uint8 `frames` `[T, H, W, 3]` to `path`; returns the path.

    The format follows the extension: `.gif` (every frame kept, even identical neighbours;
    colours quantised to 256 per frame), `.mp4` (H.264 through imageio-ffmpeg, near-lossless,
    H and W must be even) or `.png` (lossless horizontal strip, `read_video` reads it back).
    """
    path = os.fspath(path)
    frames = _check_frames(frames, "frames")
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITABLE_VIDEO_EXTENSIONS:
        raise ValueError(f"write_video: unsupported extension {ext!r} of {path!r}; "
                         "expected .gif, .mp4 or .png")
    if fps <= 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps}")
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if ext == ".gif":
        _write_gif(path, frames, fps)
    elif ext == ".mp4":
        _write_mp4(path, frames, fps)
    else:
        Image.fromarray(np.concatenate(list(frames), axis=1)).save(path, format="PNG")
    return path


def _check_frames(frames, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 [T, H, W, 3], got dtype {frames.dtype} "
                         "(convert images in [-1, 1] with kpvp.ops.images.to_uint8 first)")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        raise ValueError(f"{name} must have shape [T, H, W, 3] with T, H, W >= 1, "
                         f"got {frames.shape}")
    return frames


def _write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel

    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"write_video: .mp4 (yuv420p) needs even height and width, got "
                         f"{height}x{width} for {path!r}; crop or pad the frames, or write .gif")
    # macro_block_size=1: imageio-ffmpeg would otherwise silently rescale to multiples of 16.
    writer = imageio_ffmpeg.write_frames(
        path, (width, height), fps=fps, codec="libx264", quality=9, macro_block_size=1,
        pix_fmt_out="yuv420p", ffmpeg_log_level="error")
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _write_gif(path: str, frames: np.ndarray, fps: float) -> None:
    """Writes an animated GIF with one image block per frame.

    Pillow's multi-frame GIF writer drops a frame identical to its predecessor (adding its
    duration to the previous one), which changes the frame count. So each frame is encoded
    alone by Pillow and the image blocks are assembled here (GIF89a: logical screen, NETSCAPE
    loop extension, then per frame a graphic control extension + image with its own palette).
    """
    height, width = frames.shape[1:3]
    delay = max(1, int(round(100.0 / fps)))  # GIF delays are in 1/100 s
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", width, height, 0, 0, 0)  # no global colour table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for frame in frames:
        table_bits, table, image_data = _encode_gif_frame(frame)
        # Disposal 1 (keep) with full-size opaque frames: every frame replaces the last.
        out += struct.pack("<BBBBHBB", 0x21, 0xF9, 4, 1 << 2, delay, 0, 0)
        out += struct.pack("<BHHHHB", 0x2C, 0, 0, width, height, 0x80 | table_bits)
        out += table + image_data
    out += b"\x3b"
    with open(path, "wb") as f:
        f.write(bytes(out))


def _encode_gif_frame(frame: np.ndarray):
    """(colour-table size bits, colour table, LZW image data) of one frame encoded by Pillow."""
    image = Image.fromarray(frame).quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="GIF", interlace=False)
    data = buffer.getvalue()
    packed, pos = data[10], 13
    table_bits, table = packed & 7, b""
    if packed & 0x80:
        size = 3 << (table_bits + 1)
        table, pos = data[pos:pos + size], pos + size
    while data[pos] == 0x21:  # extensions: skip, each frame gets its own control block
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if data[pos] != 0x2C:
        raise RuntimeError("unexpected GIF layout from Pillow: no image descriptor")
    local = data[pos + 9]
    pos += 10
    if local & 0x80:
        table_bits = local & 7
        size = 3 << (table_bits + 1)
        table, pos = data[pos:pos + size], pos + size
    start = pos
    pos += 1  # LZW minimum code size, then data sub-blocks up to a zero-length block
    while data[pos]:
        pos += data[pos] + 1
    return table_bits, table, data[start:pos + 1]
