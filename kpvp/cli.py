"""Flags shared by the absl apps (`kpvp.train`, `kpvp.evaluate`, `kpvp.predict`, `kpvp.export`).

`--dataset` picks a data set's config (the paper's settings), `--variant` a smaller variant or
the authors' code exactly (`--tiny` is short for `--variant=tiny`), and
`--config.<field>=value` overrides any field, checked against the common structure in
`kpvp/configs/base.py`::

    python -m kpvp.train --dataset=penn --config.stage1.batch_size=16

`run(main)` starts an app: a user error (`kpvp.errors.UserError`: a missing file, an unknown
action, a workdir made with another variant, corrupt media) is printed in one line and the
process exits with status 1, without a traceback; other exceptions keep theirs.
"""
import difflib
import functools
import json
import os
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from kpvp import configs, errors, rundir
from kpvp.configs import base
from kpvp.rundir import RunDir

FLAGS = flags.FLAGS
SHARED_FLAGS = ("workdir", "dataset", "variant", "tiny", "data_dir")


def run(main, argv=None) -> None:
    """`absl.app.run(main)` with user errors reported in one line on stderr (exit status 1),
    the same for `python -m kpvp.<app>` and its console script.

    `app.UsageError` keeps absl's behaviour (usage text, then the message). absl's --help shows
    `__main__`'s docstring and the key flags of the module that argv[0] names; under a console
    script both are pip's wrapper's, so the app lends it its own."""
    module = sys.modules[main.__module__]
    wrapper = sys.modules["__main__"]
    if module is not wrapper:
        wrapper.__doc__ = module.__doc__
        for flag in FLAGS.get_key_flags_for_module(module.__name__):
            FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(report_user_errors(main), argv=argv)


def report_user_errors(main):
    """`main`, with a `kpvp.errors.UserError` turned into `<app>: error: <message>` + exit 1."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except errors.UserError as e:
            message = " ".join(str(e).split("\n")).strip() or type(e).__name__
            print(f"{_program_name()}: error: {message}", file=sys.stderr)
            sys.exit(1)
    return wrapped


def _program_name() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec and spec.name else os.path.basename(sys.argv[0])


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def check_config_overrides(argv, config) -> None:
    """Exits with a clear message if `argv` overrides a field `config` does not have.

    Runs before the flag is defined: ml_collections resolves `--config.x` while defining it and
    would otherwise fail with a bare `KeyError`.
    """
    known = set(_flatten(config.to_dict()))
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("--config."):
            continue
        field = arg[len("--config."):].split("=", 1)[0]
        if field not in known:
            close = difflib.get_close_matches(field, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            sys.exit(f"Unknown config field --config.{field}.{hint} Every field is listed in "
                     "kpvp/configs/base.py.")


def define_flags() -> None:
    """Defines the shared flags: `--dataset`, `--variant`, `--tiny`, `--data_dir`, `--workdir`,
    `--config.*`. Apps call it when run as programs; importing this module defines nothing.
    A second call (two apps' flags in one process) is a no-op."""
    if "dataset" in FLAGS:
        return
    flags.DEFINE_enum("dataset", "synthetic", list(configs.DATASETS),
                      "Data set (and its config).")
    flags.DEFINE_enum("variant", "full", list(configs.VARIANTS),
                      "Config variant: full (the paper's settings), tiny (minutes on a laptop "
                      "CPU), paper_small (the full networks and losses at 64x64 with CPU-sized "
                      "batches and steps) or authors (full without kpvp's softmax temperature, "
                      "motion-coverage loss and warped source: the authors' code exactly).")
    flags.DEFINE_bool("tiny", False, "Short for --variant=tiny.")
    flags.DEFINE_string("data_dir", None,
                        "Root of the data set on disk (see datasets/README.md).")
    # No default: a silent `runs/default` mixed unrelated runs; apps that use it require it.
    flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, logs, exports, "
                        "samples, report (required by the apps that use a run).")
    check_config_overrides(sys.argv, base.get_base_config())
    config_flags.DEFINE_config_dict(
        "config", base.get_base_config(), "Overrides of config fields, e.g. --config.seed=1 "
        "(all fields: kpvp/configs/base.py).",
        lock_config=True)


def load_saved_config(path: str):
    """The config a run saved as JSON in `path`; a clear error for fields kpvp does not know."""
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    values = _flatten(saved)
    config = base.get_base_config()
    unknown = sorted(set(values) - set(_flatten(config.to_dict())))
    if unknown:
        raise errors.InvalidInput(
            f"{path} sets config fields this version of kpvp does not have: "
            f"{', '.join(unknown)}. It was written by another version: delete those fields "
            "from the file to resume, or start a new --workdir.")
    # A whole section the file lacks (saved before it existed) takes the run's variant's values.
    missing = [name for name, value in config.items()
               if isinstance(value, ml_collections.ConfigDict) and name not in saved]
    if missing:
        variant = base.apply_variant(base.get_base_config(), saved.get("variant", "full"))
        for name in missing:
            config[name] = variant[name]
    # A run saved before a field existed was built with the field's legacy value.
    values = {**base.LEGACY_VALUES, **values}
    config.update_from_flattened_dict(values)
    return config


def resolve_config(workdir: str | None = None):
    """The config of this run: saved one in `workdir` if any, else from --dataset/--tiny.

    Command-line overrides (`--config.x=...`) are applied on top either way, so a resumed run
    keeps its settings unless told otherwise.
    """
    overrides = config_flags.get_override_values(FLAGS["config"])
    saved = RunDir(workdir).config_file if workdir else None
    if saved and os.path.exists(saved):
        config = load_saved_config(saved)
        if FLAGS["dataset"].present and FLAGS.dataset != config.dataset:
            raise errors.InvalidInput(
                f"--dataset={FLAGS.dataset} but workdir {workdir!r} holds a run on "
                f"{config.dataset!r}; use another --workdir")
        if ((FLAGS["variant"].present or FLAGS.tiny)
                and requested_variant() != config.variant):
            raise errors.InvalidInput(
                f"--variant={requested_variant()} but workdir {workdir!r} holds a "
                f"{config.variant!r} run; use another --workdir")
        logging.info("Resuming with the config saved in %s", saved)
    else:
        config = configs.get_config(FLAGS.dataset, requested_variant())
    config.update_from_flattened_dict(overrides)
    if FLAGS.data_dir:
        config.data.data_dir = FLAGS.data_dir
    return base.finalize(config)


def resolve_distill_config(workdir: str, teacher: str | None):
    """The config of a distillation run (`kpvp.train --stage=distill`): the one saved in
    `workdir` when resuming, else the `teacher` run's, with `stage1.translator` "light" and
    `distill.teacher` set; command-line overrides on top either way."""
    saved = RunDir(workdir).config_file
    if teacher and os.path.abspath(teacher) == os.path.abspath(workdir):
        raise errors.InvalidInput("--teacher and --workdir are the same run: distil into a new "
                                  "--workdir")
    if os.path.exists(saved):
        config = load_saved_config(saved)
        stored = config.distill.teacher
        if not stored:  # its T and config would be replaced by the student's
            raise errors.InvalidInput(
                f"--workdir={workdir} holds a run that was not distilled: distil into a new "
                "--workdir")
        if teacher and stored and os.path.abspath(teacher) != stored:
            raise errors.InvalidInput(
                f"--teacher={teacher} but {workdir!r} was distilled from {stored!r}; use "
                "another --workdir")
        teacher = teacher or stored
    else:
        if not teacher:
            raise errors.InvalidInput("--stage=distill needs --teacher=<a trained run "
                                      "directory> (its T is the teacher)")
        teacher_config = RunDir(teacher).config_file
        if not os.path.exists(teacher_config):
            raise errors.InputNotFound(
                f"--teacher={teacher}: no kpvp run there ({teacher_config} missing)")
        config = load_saved_config(teacher_config)
    for name in ("dataset", "variant", "tiny"):
        if FLAGS[name].present:
            raise errors.InvalidInput(f"--{name}: a distilled run keeps its teacher's data set "
                                      "and variant; leave it out")
    overrides = config_flags.get_override_values(FLAGS["config"])
    if overrides.get("stage1.translator", "light") != "light":
        raise errors.InvalidInput("--config.stage1.translator: the distilled student is the "
                                  "light translator")
    config.update_from_flattened_dict(overrides)
    config.stage1.translator = "light"
    config.distill.teacher = os.path.abspath(teacher)
    if FLAGS.data_dir:
        config.data.data_dir = FLAGS.data_dir
    return base.finalize(config)


def requested_variant() -> str:
    """The variant the command line asks for (`--variant`, or `--tiny`)."""
    if FLAGS.tiny:
        if FLAGS["variant"].present and FLAGS.variant != "tiny":
            raise errors.InvalidInput(
                f"--tiny and --variant={FLAGS.variant} contradict each other")
        return "tiny"
    return FLAGS.variant


def save_config(config, workdir: str) -> str:
    """Writes the resolved config as JSON into `workdir`; returns the path."""
    path = RunDir(workdir).makedirs().config_file
    return rundir.write_json(path, config.to_dict(), indent=2, default=list)
