"""Generates videos from an image and an action class, or animates an image with a video.

    python -m kpvp.predict --workdir=runs/demo --image=cat.png --action=walk \
        --num_samples=4 --output=out.gif
    python -m kpvp.predict --workdir=runs/demo --image=photos/ --action=0 --output=out_dir/
    python -m kpvp.predict --workdir=runs/demo --image=face.png --driving=smile.mp4 --output=t.gif

Any image size is accepted: the short side is resized to the model's size and the centre is
cropped (`kpvp.ops.images`, the road every frame takes to the networks). `--overlay` writes
keypoints and masks side by side with the frames. Existing outputs are never replaced unless
`--overwrite`; in batch mode `a.png` and `a.jpg` write `a_png.gif` and `a_jpg.gif`.

Any config field can be set with --config.<field>=value; the fields are listed in
kpvp/configs/base.py (and with their values by --helpfull).
"""
from __future__ import annotations

import os

import numpy as np
from absl import app, flags, logging
from PIL import Image, UnidentifiedImageError

from kpvp import cli, errors, output_paths, visualize
from kpvp.data import readers, video_io
from kpvp.data.datasets import GIF_EXTENSIONS, IMAGE_EXTENSIONS, WRITABLE_VIDEO_EXTENSIONS
from kpvp.generation import VideoGenerator
from kpvp.ops import images as image_ops
from kpvp.rundir import RunDir

FLAGS = flags.FLAGS

# Start images: stills, or the first frame of an animation.
START_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS + GIF_EXTENSIONS


def define_flags() -> None:
    """The shared flags (`kpvp.cli`: --workdir is the trained run) and this app's; defined
    only when run as a program."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        flags.declare_key_flag(name)
    flags.mark_flag_as_required("workdir")
    flags.DEFINE_string("image", None, "Input image file, or a folder of images (batch mode).",
                        required=True)
    flags.DEFINE_string("action", "0", "Action class: name (e.g. 'squat') or id.")
    flags.DEFINE_string("driving", None, "Driving video: motion transfer instead of generation "
                        "(needs only stage 1).")
    flags.DEFINE_bool("absolute", False, "Motion transfer with the driving keypoints as they are, "
                      "not their displacements from the first driving frame.")
    flags.DEFINE_integer("num_samples", 1, "Videos per image (different z).", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of z: the same seed gives the same videos.")
    flags.DEFINE_string("output", "out.gif", "Output .gif/.mp4/.png file, or a folder in batch "
                        "mode.")
    flags.DEFINE_enum("format", "gif", ["gif", "mp4", "png"], "File type written in batch mode "
                      "(png: a lossless strip of frames side by side).")
    flags.DEFINE_bool("overlay", False, "Also show keypoints on the frames and the masks, side "
                      "by side.")
    flags.DEFINE_integer("fps", 8, "Frames per second of the output.", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Replace output files that exist already.")


def read_image(path: str) -> np.ndarray:
    """uint8 `[H, W, 3]` from an image file (first frame of an animation); clear errors."""
    if not os.path.isfile(path):
        raise errors.InputNotFound(f"--image: no such file {path!r}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise errors.InvalidInput(f"--image: cannot read {path!r} as an image: {e}") from e


def list_images(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(START_IMAGE_EXTENSIONS))
        if not files:
            raise errors.InputNotFound(f"--image: folder {path!r} has no images "
                                       f"{START_IMAGE_EXTENSIONS}")
        return files
    return [path]


def compose(result: dict, index: int, overlay: bool) -> np.ndarray:
    """The frames of video `index`, with keypoints and mask panels when `overlay`."""
    video = result["video"][index]
    if not overlay:
        return video
    panels = [video, visualize.draw_keypoints(video, result["keypoints"][index])]
    if "mask" in result:
        panels.append(visualize.gray_to_rgb(result["mask"][index]))
    return visualize.side_by_side(*panels)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not RunDir(FLAGS.workdir).has_config():
        raise errors.InputNotFound(f"--workdir={FLAGS.workdir!r} holds no trained run "
                                   f"({RunDir(FLAGS.workdir).config_file} missing)")
    config = cli.resolve_config(FLAGS.workdir)
    images = list_images(FLAGS.image)
    batch = os.path.isdir(FLAGS.image)
    if not batch and not FLAGS.output.lower().endswith(WRITABLE_VIDEO_EXTENSIONS):
        raise app.UsageError(f"--output must end with one of {WRITABLE_VIDEO_EXTENSIONS}: "
                             f"{FLAGS.output!r}")
    samples = 1 if FLAGS.driving else FLAGS.num_samples
    outputs = output_paths.predict_outputs(images, FLAGS.output, samples, batch, FLAGS.format,
                                           overwrite=FLAGS.overwrite)
    if batch:
        os.makedirs(FLAGS.output, exist_ok=True)
    elif os.path.dirname(FLAGS.output):
        os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)

    if FLAGS.driving:
        generator = VideoGenerator.from_workdir(FLAGS.workdir, config.class_names,
                                                stage1_only=True)
        driving = video_io.read_video(FLAGS.driving, **readers.video_limits(config))
        for path in images:
            result = generator.transfer(read_image(path), driving, relative=not FLAGS.absolute)
            size = generator.image_size
            source = image_ops.resize_crop(read_image(path)[None], size).numpy()
            panels = [image_ops.resize_crop(driving, size).numpy(),
                      np.repeat(source, len(driving), axis=0), result["video"]]
            if FLAGS.overlay:
                panels[0] = visualize.draw_keypoints(panels[0], result["driving_keypoints"])
                panels.append(visualize.draw_keypoints(result["video"], result["keypoints"]))
            out = outputs[path][0]
            video_io.write_video(out, visualize.side_by_side(*panels), fps=FLAGS.fps)
            logging.info("Wrote %s (driving | source | result, %dx%d)", out, size, size)
            print(out)
        return

    generator = VideoGenerator.from_workdir(FLAGS.workdir, config.class_names)
    action = generator.action_id(FLAGS.action)
    for path in images:
        image = read_image(path)
        result = generator.generate(np.repeat(image[None], FLAGS.num_samples, axis=0),
                                    [action] * FLAGS.num_samples, seed=FLAGS.seed)
        for i in range(FLAGS.num_samples):
            out = outputs[path][i]
            video_io.write_video(out, compose(result, i, FLAGS.overlay), fps=FLAGS.fps)
            print(out)
        logging.info("%s: %d video(s) of %d frames for action %s", path, FLAGS.num_samples,
                     result["video"].shape[1], config.class_names[action]
                     if action < len(config.class_names) else action)


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
