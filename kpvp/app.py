"""A local web page to play with a trained model: image + action -> videos, and motion transfer.

    pip install -e ".[app]"      # Flask, the one extra the page needs
    python -m kpvp.app --workdir=runs/demo [--port=7860]
    python -m kpvp.app --saved_model=exported/kpvp/1 [--workdir=runs/demo]

Serves on 127.0.0.1 only and prints the URL (`--port=0` takes a free port). The page takes an
uploaded image or a start frame of the run's test set, an action, a seed and 1-4 samples, and
shows the videos side by side (with a keypoint and mask overlay switch) with GIF and MP4
downloads; its second tab animates the image with an uploaded driving video. One generation
runs at a time; the page logic is `kpvp/web.py`. With --saved_model, --workdir only supplies
the start frames, and motion transfer is off (the SavedModel has no transfer signature).
"""
from __future__ import annotations

import shutil
import tempfile

from absl import app, flags

from kpvp import cli, errors, web
from kpvp.rundir import RunDir

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The shared flags (`kpvp.cli`: --workdir is the trained run) and this app's; defined
    only when run as a program."""
    cli.define_flags()
    for name in cli.SHARED_FLAGS:  # listed by --help, not only by --helpfull
        flags.declare_key_flag(name)
    flags.DEFINE_string("saved_model", None, "A SavedModel of kpvp.export to serve instead of "
                        "the run's networks (generation only).")
    flags.DEFINE_integer("port", 7860, "Port on 127.0.0.1 (0: any free port).", lower_bound=0)
    flags.DEFINE_integer("fps", 8, "Frames per second of the videos.", lower_bound=1)
    flags.DEFINE_integer("max_driving_frames", web.MAX_DRIVING_FRAMES, "Longest driving video "
                         "accepted (frames).", lower_bound=1)


def create_app(studio: web.Studio):
    """The Flask application: routes only, the work is `studio`'s."""
    import flask  # the optional extra: imported only when the page is served

    server = flask.Flask("kpvp")
    server.config["MAX_CONTENT_LENGTH"] = web.MAX_UPLOAD_MB * 2 ** 20

    def page(tab, job=None, message="", status=200):
        return web.render_page(studio, tab, job, message), status

    def image_of(request):
        """(uint8 image, start frame index or None): an upload wins over a start frame."""
        upload = request.files.get("image")
        if upload and upload.filename:
            return web.decode_image(upload.read(), upload.filename), None
        index = studio.start_frame(request.form.get("start"))
        return studio.start_frames[index][1], index

    def start(tab, make_job):
        try:
            job = make_job(flask.request)
        except web.Busy as e:
            return page(tab, message=str(e), status=429)
        except errors.UserError as e:
            return page(tab, message=str(e), status=400)
        return flask.redirect(f"/job/{job.id}", 303)

    def generate_job(request):
        form = request.form
        action = web.parse_action(form.get("action"), studio.model.class_names)
        seed = web.parse_int(form.get("seed"), "The seed", 0, 2 ** 31 - 1, 0)
        samples = web.parse_int(form.get("samples"), "Samples", 1, web.MAX_SAMPLES, 1)
        image, start_index = image_of(request)
        return studio.generate(image, action, seed, samples, start=start_index)

    def transfer_job(request):
        image, start_index = image_of(request)
        upload = request.files.get("driving")
        if not upload or not upload.filename:
            raise errors.InvalidInput("No driving video: choose a video file")
        driving = web.decode_video(upload.read(), upload.filename, studio.max_driving_frames,
                                   studio.model.video_limits)
        return studio.transfer(image, driving, relative=not request.form.get("absolute"),
                               start=start_index)

    server.add_url_rule("/", "index", lambda: page("generate"))
    server.add_url_rule("/transfer", "transfer_tab", lambda: page("transfer"))
    server.add_url_rule("/generate", "generate", lambda: start("generate", generate_job),
                        methods=["POST"])
    server.add_url_rule("/transfer", "transfer", lambda: start("transfer", transfer_job),
                        methods=["POST"])

    @server.get("/job/<job_id>")
    def job_page(job_id):
        job = studio.jobs.get(job_id)
        if job is None:
            return page("generate", message="This result is gone: generate again", status=404)
        return page(job.kind, job)

    @server.get("/files/<job_id>/<name>")
    def files(job_id, name):
        if job_id not in studio.jobs:
            flask.abort(404)
        return flask.send_from_directory(f"{studio.out_dir}/{job_id}", name,
                                         as_attachment=flask.request.args.get("download") == "1")

    @server.get("/start/<int:index>.png")
    def start_png(index):
        if not 0 <= index < len(studio.start_frames):
            flask.abort(404)
        return flask.Response(web.png_bytes(studio.start_frames[index][1]), mimetype="image/png")

    @server.errorhandler(413)
    def too_large(_):
        return page("generate", message=f"The upload is larger than {web.MAX_UPLOAD_MB} MB",
                    status=413)

    return server


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir and not FLAGS.saved_model:
        raise app.UsageError("Give --workdir (a trained run) or --saved_model")
    try:
        from werkzeug import serving as http
    except ImportError as e:
        raise errors.UserError('The page needs Flask: pip install -e ".[app]"') from e
    config = None
    if FLAGS.workdir:
        if not RunDir(FLAGS.workdir).has_config():
            raise errors.InputNotFound(f"--workdir={FLAGS.workdir!r} holds no trained run "
                                       f"({RunDir(FLAGS.workdir).config_file} missing)")
        config = cli.resolve_config(FLAGS.workdir)
    model = (web.SavedModelModel(FLAGS.saved_model) if FLAGS.saved_model
             else web.RunModel(FLAGS.workdir, config))
    out_dir = tempfile.mkdtemp(prefix="kpvp_app_")
    try:
        studio = web.Studio(model, out_dir, web.start_frames(config) if config else [],
                            fps=FLAGS.fps, max_driving_frames=FLAGS.max_driving_frames)
        try:
            server = http.make_server("127.0.0.1", FLAGS.port, create_app(studio), threaded=True)
        except OSError as e:
            raise errors.InvalidInput(f"--port={FLAGS.port}: cannot serve on 127.0.0.1 ({e}); "
                                      "choose another port, or --port=0 for any free one") from e
        print(f"kpvp page: http://127.0.0.1:{server.server_port}/", flush=True)
        web.stop_on_sigterm()
        server.serve_forever()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def run():
    define_flags()
    cli.run(main)


if __name__ == "__main__":
    run()
