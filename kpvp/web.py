"""The logic of the local web page (`python -m kpvp.app`): models, input checks, jobs, HTML.

The page generates videos from an image and an action, or animates an image with the motion
of a driving video, with the library's own functions (`VideoGenerator.generate`/`transfer`, or
the SavedModel's `serving_default` signature from `kpvp.serving`, and `video_io.write_video`
for the GIF/MP4 files, as `kpvp.predict` does). Nothing here needs a web framework:
`kpvp/app.py` binds these functions to Flask routes.

* `RunModel`, `SavedModelModel`: one interface (`class_names`, `generate`, `transfer`).
* `decode_image`, `decode_video`, `parse_*`: bad input raises `kpvp.errors.InvalidInput` with a
  message for the page (a non-image, an image over the SavedModel's size limits, a driving
  video over `max_driving_frames`, an unknown action, too many samples).
* `Studio`: one generation at a time in a worker thread, so the server stays free for other
  requests; a second request while one runs is refused with `Busy` (a message, not a queue).
* `render_page`: the HTML (two tabs; results side by side with an overlay switch).
"""
from __future__ import annotations

import html
import io
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, UnidentifiedImageError

from kpvp import errors, rundir, serving, visualize
from kpvp.data import readers, video_io
from kpvp.generation import VideoGenerator, sample_start_frames
from kpvp.ops import images as image_ops

MAX_SAMPLES = 4
MAX_DRIVING_FRAMES = 64
MAX_UPLOAD_MB = 64
MAX_DRIVING_MB = 1024  # decoded: a short 4K clip, not a film
KEPT_JOBS = 20  # older results are deleted from disk


class Busy(errors.UserError):
    """A generation is running already: the page allows one at a time."""


# === Models ===

class RunModel:
    """A trained run's `.keras` networks: generation and motion transfer."""

    def __init__(self, workdir: str, config):
        self.class_names = tuple(config.class_names)
        self.generator = VideoGenerator.from_workdir(workdir, self.class_names)
        self.image_size = self.generator.image_size
        self.can_transfer = True
        self.video_limits = readers.video_limits(config)

    def generate(self, images, actions, seed: int) -> dict:
        return self.generator.generate(images, actions, seed=seed)

    def transfer(self, image, driving, relative: bool = True) -> dict:
        return self.generator.transfer(image, driving, relative=relative)


class SavedModelModel:
    """A SavedModel written by `kpvp.export`: generation only (it has no transfer signature)."""

    def __init__(self, model_dir: str):
        info = rundir.read_json(os.path.join(model_dir, serving.METADATA_FILE))
        if not info:
            raise errors.InputNotFound(f"--saved_model={model_dir!r} has no "
                                       f"{serving.METADATA_FILE}: export one with kpvp.export")
        self.model = tf.saved_model.load(model_dir)
        self.class_names = tuple(info["class_names"])
        self.image_size = int(info["image_size"])
        self.can_transfer = False
        self.video_limits = {}

    def generate(self, images, actions, seed: int) -> dict:
        out = self.model.signatures["serving_default"](
            images=tf.constant(images, tf.uint8), actions=tf.constant(actions, tf.int32),
            seed=tf.constant(seed, tf.int32))
        return {name: value.numpy() for name, value in out.items()}

    def transfer(self, image, driving, relative: bool = True) -> dict:
        raise errors.InvalidInput("Motion transfer needs the run's networks: start the page "
                                  "with --workdir instead of --saved_model")


def stop_on_sigterm() -> None:
    """SIGTERM (a service manager, a test stopping the page) ends the process as Ctrl-C does,
    through its `finally` blocks, so that the page's temporary files are removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def start_frames(config, per_class: int = 1, limit: int = 8) -> list:
    """`[(class name, uint8 [H, W, 3])]`: first frames of test videos (`sample_start_frames`);
    [] with a logged reason when the test data is not there."""
    try:
        groups = sample_start_frames(readers.open_source(config, "test"),
                                     len(config.class_names), per_class, max_scanned=limit * 4)
    except (OSError, ValueError) as e:
        logging.warning("No test-set start frames on the page: %s", e)
        return []
    return [(config.class_names[c], frame) for c, frames in groups.items()
            for frame in frames][:limit]


# === Input checks ===

def decode_image(data: bytes, name: str = "image", max_side: int = serving.MAX_SIDE,
                 max_aspect_ratio: float = serving.MAX_ASPECT_RATIO) -> np.ndarray:
    """uint8 `[H, W, 3]` from an uploaded file (first frame of an animation), with the
    SavedModel's size limits checked before the pixels are decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if min(width, height) < 1 or max(width, height) > max_side:
                raise errors.InvalidInput(f"{name!r} is {width}x{height}: each side must be "
                                          f"between 1 and {max_side} pixels")
            if max(width, height) > max_aspect_ratio * min(width, height):
                raise errors.InvalidInput(f"{name!r} is {width}x{height}: the long side may be "
                                          f"at most {max_aspect_ratio:g} times the short one")
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise errors.InvalidInput(f"{name!r} is not an image that can be read "
                                  f"({type(e).__name__})") from e


def decode_video(data: bytes, name: str, max_frames: int = MAX_DRIVING_FRAMES,
                 limits: dict | None = None) -> np.ndarray:
    """uint8 `[T, H, W, 3]` from an uploaded video (`video_io.read_video`, any format it reads);
    refuses one of more than `max_frames` frames, or over `MAX_DRIVING_MB` (or the config's
    smaller budget, `limits['max_bytes']`) decoded."""
    limits = dict(limits or {})
    suffix = os.path.splitext(name)[1].lower()[:8] or ".bin"
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "driving" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        budget = min(limits.get("max_bytes") or MAX_DRIVING_MB * 2 ** 20,
                     MAX_DRIVING_MB * 2 ** 20)
        frames = video_io.read_video(path, max_frames=max_frames + 1,
                                     stride=limits.get("stride", 1), max_bytes=budget)
    if len(frames) > max_frames:
        raise errors.InvalidInput(f"The driving video {name!r} is too long: more than "
                                  f"{max_frames} frames (trim it, or start the page with a "
                                  "larger --max_driving_frames)")
    return frames


def parse_action(value, class_names) -> int:
    """An action name (or id) from the form -> id; a single-class model takes none."""
    if len(class_names) <= 1:
        return 0
    value = (value or "").strip()
    if value in class_names:
        return class_names.index(value)
    if value.isdigit() and int(value) < len(class_names):
        return int(value)
    raise errors.InvalidInput(f"Unknown action {value!r}; choose one of {', '.join(class_names)}")


def parse_int(value, name: str, low: int, high: int, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise errors.InvalidInput(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise errors.InvalidInput(f"{name} must be between {low} and {high}, got {number}")
    return number


# === Jobs ===

class Job:
    """One generation: `status` is 'running', 'done' or 'failed' (then `message` says why);
    `videos` lists `{'label', 'gif', 'overlay', 'mp4'}` file names in the job's folder."""

    def __init__(self, kind: str, values: dict | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.values = dict(values or {})  # the form's choices, shown again with the results
        self.kind, self.status, self.message = kind, "running", ""
        self.progress, self.videos, self.started = "starting", [], time.monotonic()

    def seconds(self) -> int:
        return int(time.monotonic() - self.started)


class Studio:
    """The model, the page's start frames and the jobs; runs one generation at a time."""

    def __init__(self, model, out_dir: str, frames=(), fps: int = 8,
                 max_driving_frames: int = MAX_DRIVING_FRAMES):
        self.model, self.out_dir, self.fps = model, out_dir, fps
        self.start_frames = list(frames)
        self.max_driving_frames = max_driving_frames
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._running: Job | None = None

    def start_frame(self, value) -> int:
        """The index of a start frame chosen on the form (its pixels: `start_frames[i][1]`)."""
        if not self.start_frames:
            raise errors.InvalidInput("No image: upload an image file")
        return parse_int(value, "The start frame", 0, len(self.start_frames) - 1, 0)

    def submit(self, kind: str, work, values: dict | None = None) -> Job:
        """Runs `work(job)` (it returns the job's videos) in a worker thread; `Busy` if one runs."""
        with self._lock:
            if self._running is not None:
                raise Busy(f"A generation is running (for {self._running.seconds()} s): one runs "
                           "at a time; wait until it has finished and try again")
            job = self._running = Job(kind, values)
            self.jobs[job.id] = job
            for old in list(self.jobs)[:-KEPT_JOBS]:
                shutil.rmtree(os.path.join(self.out_dir, self.jobs.pop(old).id), True)
        threading.Thread(target=self._run, args=(job, work), daemon=True).start()
        return job

    def _run(self, job: Job, work) -> None:
        try:
            job.videos = work(job)
            job.status = "done"
        except errors.UserError as e:
            job.status, job.message = "failed", str(e)
        except Exception as e:  # noqa: BLE001  (the page shows it; the log keeps the trace)
            logging.exception("Job %s failed", job.id)
            job.status, job.message = "failed", f"Generation failed: {type(e).__name__}: {e}"
        finally:
            with self._lock:
                self._running = None

    def _write(self, job: Job, name: str, plain, overlay) -> dict:
        folder = os.path.join(self.out_dir, job.id)
        files = {"label": name, "gif": f"{name}.gif", "mp4": f"{name}.mp4",
                 "overlay": f"{name}_overlay.gif"}
        video_io.write_video(os.path.join(folder, files["gif"]), plain, fps=self.fps)
        video_io.write_video(os.path.join(folder, files["mp4"]), plain, fps=self.fps)
        video_io.write_video(os.path.join(folder, files["overlay"]), overlay, fps=self.fps)
        return files

    def generate(self, image, action: int, seed: int, num_samples: int,
                 start: int | None = None) -> Job:
        """Generates `num_samples` videos; `start` (the start frame used, if any) is only
        remembered for the form."""
        def work(job):
            job.progress = f"generating {num_samples} video(s)"
            result = self.model.generate(np.repeat(image[None], num_samples, axis=0),
                                         [action] * num_samples, seed)
            videos = []
            for i in range(num_samples):
                job.progress = f"writing video {i + 1} of {num_samples}"
                video = result["video"][i]
                overlay = visualize.side_by_side(
                    visualize.draw_keypoints(video, result["keypoints"][i]),
                    visualize.gray_to_rgb(result["mask"][i]))
                videos.append(self._write(job, f"sample_{i}", video, overlay))
            return videos
        return self.submit("generate", work, {"action": action, "seed": seed,
                                              "samples": num_samples, "start": start})

    def transfer(self, image, driving, relative: bool = True, start: int | None = None) -> Job:
        """driving | source | result side by side, as `kpvp.predict --driving`."""
        def work(job):
            job.progress = f"animating the image with {len(driving)} driving frames"
            result = self.model.transfer(image, driving, relative=relative)
            size = self.model.image_size
            drive = image_ops.resize_crop(driving, size).numpy()
            source = np.repeat(image_ops.resize_crop(image[None], size).numpy(), len(driving), 0)
            plain = visualize.side_by_side(drive, source, result["video"])
            overlay = visualize.side_by_side(
                visualize.draw_keypoints(drive, result["driving_keypoints"]), source,
                visualize.draw_keypoints(result["video"], result["keypoints"]))
            return [self._write(job, "transfer", plain, overlay)]
        return self.submit("transfer", work, {"start": start})


# === HTML ===

STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:90em;color:#222}
main{display:flex;gap:1em;align-items:flex-start}
main>form,main>p{flex:0 0 22em}main>div{flex:1}
nav a{padding:.4em 1em;border:1px solid #999;border-bottom:none;text-decoration:none;color:#222}
nav a.active{background:#e8eef8;font-weight:bold}
form,.results{border:1px solid #999;padding:1em;margin-bottom:1em}
label{display:block;margin:.5em 0}
.starts label{display:inline-block;margin-right:.6em;text-align:center;font-size:small}
.starts img,.video img{image-rendering:pixelated;display:block}
.starts img{width:64px;height:64px}
.video{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
.video img{height:160px;width:auto}
.message{background:#fde8e8;border:1px solid #c33;padding:.6em}
.video img.overlay{display:none}
.show-overlay .video img.overlay{display:block}.show-overlay .video img.plain{display:none}
"""


def _escape(value) -> str:
    return html.escape(str(value), quote=True)


def _start_choices(studio: Studio, values: dict) -> str:
    if not studio.start_frames:
        return ""
    chosen = values.get("start") or 0
    items = "".join(
        f'<label><input type="radio" name="start" value="{i}"{" checked" if i == chosen else ""}>'
        f'<img src="/start/{i}.png" alt="start frame {i}">{_escape(name)}</label>'
        for i, (name, _) in enumerate(studio.start_frames))
    return (f'<div class="starts">or a start frame from the test set (used when no file is '
            f'chosen):<br>{items}</div>')


def _generate_form(studio: Studio, values: dict) -> str:
    names = studio.model.class_names
    if len(names) > 1:
        options = "".join(
            f'<option value="{_escape(n)}"{" selected" if i == values.get("action") else ""}>'
            f'{_escape(n)}</option>' for i, n in enumerate(names))
        action = f'<label>Action <select name="action" id="action">{options}</select></label>'
    else:
        action = f'<p>Action: {_escape(names[0]) if names else "(none)"} (one class)</p>'
    chosen = values.get("samples", 1)
    samples = "".join(f'<option{" selected" if n == chosen else ""}>{n}</option>'
                      for n in range(1, MAX_SAMPLES + 1))
    return (
        '<form method="post" action="/generate" enctype="multipart/form-data">'
        '<label>Image <input type="file" name="image" id="image" accept="image/*"></label>'
        f'{_start_choices(studio, values)}{action}'
        '<label>Seed <input type="number" name="seed" id="seed" '
        f'value="{values.get("seed", 0)}" min="0"></label>'
        f'<label>Samples <select name="samples" id="samples">{samples}</select></label>'
        '<button type="submit" id="generate">Generate</button></form>')


def _transfer_form(studio: Studio, values: dict) -> str:
    if not studio.model.can_transfer:
        return ('<p class="message">Motion transfer needs the run\'s networks: start the page '
                'with --workdir instead of --saved_model.</p>')
    return (
        '<form method="post" action="/transfer" enctype="multipart/form-data">'
        '<label>Image <input type="file" name="image" id="image" accept="image/*"></label>'
        f'{_start_choices(studio, values)}'
        '<label>Driving video (GIF, MP4, ...; at most '
        f'{studio.max_driving_frames} frames) <input type="file" name="driving" id="driving">'
        '</label><label><input type="checkbox" name="absolute" value="1"> absolute keypoints '
        '(default: the driving keypoints\' displacements from its first frame)</label>'
        '<button type="submit" id="animate">Animate</button></form>')


def _results(studio: Studio, job: Job) -> str:
    if job.status == "running":
        return (f'<div class="results" id="progress">Working: {_escape(job.progress)} '
                f'({job.seconds()} s). One generation runs at a time; this page reloads '
                'itself.</div>')
    if job.status == "failed":
        return f'<p class="message" id="message">{_escape(job.message)}</p>'
    if job.kind == "transfer":
        caption = "driving | source | result"
    else:
        names, action = studio.model.class_names, job.values.get("action", 0)
        caption = (f"{names[action] if action < len(names) else action}, seed "
                   f"{job.values.get('seed', 0)}; overlay: keypoints | mask")
    videos = "".join(
        f'<div class="video"><img class="plain" src="/files/{job.id}/{v["gif"]}" '
        f'alt="{_escape(v["label"])}"><img class="overlay" '
        f'src="/files/{job.id}/{v["overlay"]}" alt="{_escape(v["label"])} with overlays">'
        f'{_escape(v["label"])}: <a class="download-gif" download '
        f'href="/files/{job.id}/{v["gif"]}">GIF</a> <a class="download-mp4" download '
        f'href="/files/{job.id}/{v["mp4"]}">MP4</a> <a download '
        f'href="/files/{job.id}/{v["overlay"]}">overlay GIF</a></div>' for v in job.videos)
    return (
        f'<div class="results" id="results"><label><input type="checkbox" id="overlay" '
        'onchange="document.body.classList.toggle(\'show-overlay\', this.checked)"> '
        'show keypoints and masks</label>'
        f'<p>{caption}</p>{videos}</div>')


def render_page(studio: Studio, tab: str = "generate", job: Job | None = None,
                message: str = "") -> str:
    """The whole page: tabs, the tab's form, a message (bad input, busy) and a job's results."""
    refresh = ('<meta http-equiv="refresh" content="1">'
               if job is not None and job.status == "running" else "")
    tabs = "".join(f'<a href="{url}" class="{"active" if name == tab else ""}">{title}</a>'
                   for name, url, title in (("generate", "/", "Generate"),
                                            ("transfer", "/transfer", "Motion transfer")))
    values = job.values if job is not None else {}
    form = (_generate_form if tab == "generate" else _transfer_form)(studio, values)
    note = f'<p class="message" id="message">{_escape(message)}</p>' if message else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{refresh}<title>kpvp</title>'
        f'<style>{STYLE}</style></head><body><h1>kpvp: image + action &rarr; video</h1>'
        f'<nav>{tabs}</nav><main>{form}<div>{note}{_results(studio, job) if job else ""}'
        '</div></main></body></html>')


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
