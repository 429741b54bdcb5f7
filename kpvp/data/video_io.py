"""Reading and writing videos as uint8 arrays `[T, H, W, 3]` (RGB).

Formats read by `read_video` (chosen by looking at the file's first bytes, not only its name):

- animated `.gif` (every frame, composed to full RGB frames by Pillow);
- `.mp4` / `.avi` / `.mov` / `.mkv` / `.webm` through imageio-ffmpeg;
- a still image holding a horizontal strip of frames (Siarohin et al.'s "stacked" format:
  frames of equal size laid left to right), e.g. `video.png`; files named `.jpg` that are really
  PNGs are read by content;
- a directory of frame images, in natural name order (`2.png` before `10.png`).

Anything unreadable raises `CorruptVideoError` (a `ValueError`) naming the file and the reason,
so data readers can skip it and carry on; so does a container whose frames stop well before the
count its header announces (a truncated download), instead of returning a shorter video.

Long videos: `max_frames` and `stride` choose the frames kept, and a video whose kept frames
would take more than `max_bytes` decoded raises `VideoTooLargeError` (from the header's size,
frame rate and duration before decoding where the format gives them, else as soon as the frames
read pass the budget), so one long file cannot exhaust the memory of a run.

Resizing and cropping frames for the networks is `kpvp.ops.images` (one road for every caller).
"""
import io
import os
import re
import struct

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from kpvp import errors, rundir
from kpvp.data.datasets import (CONTAINER_EXTENSIONS, IMAGE_EXTENSIONS,
                                WRITABLE_VIDEO_EXTENSIONS)

# Decoded bytes a video may take unless the caller says otherwise (config.data.max_video_mb).
DEFAULT_MAX_BYTES = 4096 * 2 ** 20
# A container may decode this many frames fewer than its header announces (rounded durations,
# an edit list) before it counts as truncated.
_MISSING_FRAMES_TOLERATED = (2, 0.1)  # frames, fraction of the announced count

# Pillow and ffmpeg report damaged input through these.
_DECODE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, IndexError, RuntimeError,
                  struct.error, Image.DecompressionBombError)


class CorruptVideoError(errors.InvalidInput):
    """A file or frame folder that cannot be read as a video; `path` and `reason` say why."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")


class VideoTooLargeError(CorruptVideoError):
    """A video whose kept frames would take more than the memory budget once decoded (a
    `CorruptVideoError`, so data readers skip it with the reason like an unreadable one)."""

    def __init__(self, path, what: str, need: int, max_bytes: int):
        super().__init__(
            path, f"{what} would take {_megabytes(need)} decoded, over the budget of "
                  f"{_megabytes(max_bytes)}; keep fewer frames (max_frames / stride: "
                  "config.data.max_video_frames, config.data.video_stride) or raise the budget "
                  "(config.data.max_video_mb)")


def _megabytes(n: int) -> str:
    return f"{n / 2 ** 20:.{1 if n >= 2 ** 20 else 3}f} MB"


class _Selection:
    """Which decoded frames are kept (every `stride`-th, at most `max_frames`) and the budget
    they must fit in."""

    def __init__(self, path, max_frames, stride, max_bytes):
        if stride < 1 or (max_frames or 0) < 0:
            raise ValueError(f"stride must be >= 1 and max_frames >= 0, got {stride}, "
                             f"{max_frames}")
        self.path, self.stride = path, int(stride)
        self.max_frames, self.max_bytes = int(max_frames or 0), int(max_bytes or 0)

    def kept(self, decoded: int) -> int:
        """How many of `decoded` frames are kept."""
        n = -(-decoded // self.stride)
        return min(n, self.max_frames) if self.max_frames else n

    def keeps(self, index: int) -> bool:
        return index % self.stride == 0

    def full(self, kept: int) -> bool:
        return bool(self.max_frames) and kept >= self.max_frames

    def check(self, decoded: int, height: int, width: int, estimated: bool = True) -> None:
        """Refuses when the frames kept from `decoded` frames of `height x width` exceed the
        budget."""
        kept = self.kept(decoded)
        if self.max_bytes and kept * height * width * 3 > self.max_bytes:
            what = f"{'about' if estimated else 'at least'} {kept} frames of {width}x{height}"
            raise VideoTooLargeError(self.path, what, kept * height * width * 3, self.max_bytes)


# === Reading ===

def read_video(path, frame_size=None, max_frames: int = 0, stride: int = 1,
               max_bytes: int | None = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Reads a video file or frame folder as uint8 `[T, H, W, 3]` RGB.

    Args:
      path: a `.gif`, a video container (`.mp4`, `.avi`, `.mov`, ...), a horizontal strip image
        (`.png`, `.jpg`, ...) or a directory of frame images.
      frame_size: strips only: the width of one frame (int) or its `(height, width)`; by default
        frames are square, `height x height`. Ignored for other formats.
      max_frames: keep at most this many frames (0: all); reading stops there.
      stride: keep frames 0, stride, 2 * stride, ...
      max_bytes: refuse a video whose kept frames take more bytes decoded (0 or None: no
        limit). A strip image counts whole, since it is decoded whole.

    Returns:
      uint8 array `[T, H, W, 3]` with T >= 1.

    Raises:
      FileNotFoundError: `path` does not exist (`kpvp.errors.InputNotFound`).
      CorruptVideoError: the file is truncated (also a container decoding well short of the
        frame count its header announces), empty, not a video or image, or a strip's width is
        not a multiple of the frame width.
      VideoTooLargeError: the kept frames exceed `max_bytes`.
    """
    path = os.fspath(path)
    selection = _Selection(path, max_frames, stride, max_bytes)
    if os.path.isdir(path):
        frames = _read_frame_folder(path, selection)
    elif not os.path.isfile(path):
        raise errors.InputNotFound(f"read_video: no such file or directory: {path!r}")
    else:
        kind = _sniff(path)
        if kind == "gif":
            frames = _read_animation(path, selection)
        elif kind == "container":
            frames = _read_container(path, selection)
        else:
            frames = _read_image(path, frame_size, selection)
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


def _read_animation(path: str, selection: _Selection) -> list:
    # Pillow composes partial frames (disposal, sub-rectangles, local palettes) when seeking, so
    # each converted frame is the full picture a viewer would show.
    frames = []
    try:
        with Image.open(path) as image:
            width, height = image.size
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if not selection.keeps(index):
                    continue
                # Counting frames would decode them all: check as they come instead.
                selection.check(index + 1, height, width, estimated=False)
                frames.append(np.asarray(frame.convert("RGB")))
                if selection.full(len(frames)):
                    break
    except VideoTooLargeError:
        raise
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        raise CorruptVideoError(path, f"{type(e).__name__}: {e}") from e
    return frames


def _read_image(path: str, frame_size, selection: _Selection) -> list:
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:  # animated PNG / WebP
                return _read_animation(path, selection)
            width, height = image.size  # from the header: the strip is decoded whole
            if selection.max_bytes and height * width * 3 > selection.max_bytes:
                raise VideoTooLargeError(path, f"a {width}x{height} image",
                                         height * width * 3, selection.max_bytes)
            rgb = np.asarray(image.convert("RGB"))  # drops the alpha channel
    except (CorruptVideoError, VideoTooLargeError):
        raise
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        raise CorruptVideoError(path, f"{type(e).__name__}: {e}") from e
    frames = split_strip(rgb, frame_size, path=path)[::selection.stride]
    return list(frames[:selection.max_frames or None])


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


def _read_container(path: str, selection: _Selection) -> list:
    import imageio_ffmpeg  # pylint: disable=import-outside-toplevel

    try:
        reader = imageio_ffmpeg.read_frames(path)
        meta = next(reader)
        width, height = meta["size"]
        announced = _announced_frames(meta)
        if announced:
            selection.check(announced, height, width)  # before decoding anything
        frame_bytes = width * height * 3
        frames, decoded = [], 0
        try:
            for data in reader:
                if len(data) != frame_bytes:
                    raise CorruptVideoError(path, f"frame {decoded} is incomplete")
                decoded += 1
                if selection.keeps(decoded - 1):
                    selection.check(decoded, height, width, estimated=False)
                    frames.append(np.frombuffer(data, np.uint8).reshape(height, width, 3))
                    if selection.full(len(frames)):
                        return frames
        finally:
            reader.close()  # stops ffmpeg when reading ends early
        few, fraction = _MISSING_FRAMES_TOLERATED
        if announced and announced - decoded > max(few, fraction * announced):
            raise CorruptVideoError(
                path, f"only {decoded} of the {announced} frames its header announces could be "
                      "decoded (truncated file?)")
        return frames
    except (CorruptVideoError, VideoTooLargeError):
        raise
    except (StopIteration, *_DECODE_ERRORS) as e:
        last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        raise CorruptVideoError(
            path, f"ffmpeg could not decode it ({type(e).__name__}: {last_line})") from e


def _announced_frames(meta: dict) -> int:
    """The frame count a container's header implies (duration x frame rate), 0 if unknown."""
    fps, duration = meta.get("fps") or 0, meta.get("duration") or 0
    try:
        return int(round(float(fps) * float(duration)))
    except (TypeError, ValueError):
        return 0


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str) -> list:
    """The frame image files of a frame folder, in natural name order (hidden files ignored)."""
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _read_frame_folder(folder: str, selection: _Selection) -> list:
    files = list_frame_files(folder)
    if not files:
        raise CorruptVideoError(folder, "zero frames (no image files in the folder)")
    try:
        with Image.open(files[0]) as first:  # the header only: its size
            width, height = first.size
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        raise CorruptVideoError(folder, f"frame {os.path.basename(files[0])}: "
                                        f"{type(e).__name__}: {e}") from e
    selection.check(len(files), height, width)
    files = files[::selection.stride][:selection.max_frames or None]
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
    with rundir.atomic_path(path) as tmp:  # a killed writer leaves no truncated video
        if ext == ".gif":
            _write_gif(tmp, frames, fps)
        elif ext == ".mp4":
            _write_mp4(tmp, frames, fps)
        else:
            Image.fromarray(np.concatenate(list(frames), axis=1)).save(tmp, format="PNG")
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
        pix_fmt_out="yuv420p", ffmpeg_log_level="error",
        # The index first: players stream it, and a cut file still decodes up to the cut.
        output_params=["-movflags", "+faststart"])
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
