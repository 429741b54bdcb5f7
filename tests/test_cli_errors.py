"""The apps' command line: --help shows the key flags, --workdir is required, user errors give
one line on stderr and a non-zero exit without a traceback, real bugs keep their traceback;
file names made from names read from disk stay inside their folder."""
import json
import os
import subprocess
import sys

import pytest

from kpvp import cli, errors, output_paths
from kpvp.configs import base

from helpers import REPO

APPS = ("train", "evaluate", "predict", "export", "inspect_data")


def run_app(app, *args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", f"kpvp.{app}", *args], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def assert_one_line_error(proc, *needles):
    """Exit != 0; the message names `needles` on one line of stderr; no traceback."""
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if all(n in line for n in needles)]
    assert lines, proc.stderr[-3000:]


# === --help ===

@pytest.mark.parametrize("app", APPS)
def test_help_lists_the_key_flags_and_says_how_to_set_config_fields(app):
    proc = run_app(app, "--help")  # (absl exits with 1 after --help)
    text = proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for name in ("--dataset:", "--[no]tiny:", "--data_dir:", "--variant:"):
        assert name in text, (app, name)
    # inspect_data reads no run, so it does not offer --workdir.
    assert ("--workdir:" in text) == (app != "inspect_data")
    assert "--config.<field>=value" in text and "kpvp/configs/base.py" in text


# === --workdir has no default ===

@pytest.mark.parametrize("app,args", [("train", ["--stage=1", "--tiny"]),
                                      ("export", ["--output=x"]),
                                      ("predict", ["--image=x.png"]),
                                      ("evaluate", ["--metric=ssim"])])
def test_workdir_is_required_and_the_error_names_it(app, args, tmp_path):
    proc = run_app(app, *args, cwd=tmp_path)
    assert_one_line_error(proc, "--workdir")
    assert not (tmp_path / "runs").exists()  # the old silent default


def test_evaluate_between_folders_needs_no_workdir(tmp_path):
    proc = run_app("evaluate", f"--real={tmp_path / 'none'}", f"--generated={tmp_path / 'no'}")
    assert_one_line_error(proc, "kpvp.evaluate: error:", "--real: no such file or folder")


# === One line per user error ===

def test_unknown_metric_and_unknown_config_field(tmp_path):
    proc = run_app("evaluate", f"--workdir={tmp_path}", "--metric=fvd,bogus")
    assert_one_line_error(proc, "--metric: unknown", "bogus")
    proc = run_app("evaluate", f"--workdir={tmp_path}", "--config.stage1.batchsize=3")
    assert_one_line_error(proc, "Unknown config field --config.stage1.batchsize",
                          "stage1.batch_size")


def test_bad_flag_value_and_a_workdir_without_a_run(tmp_path):
    proc = run_app("predict", f"--workdir={tmp_path}", "--image=x.png", "--num_samples=0")
    assert_one_line_error(proc, "--num_samples")
    proc = run_app("predict", f"--workdir={tmp_path}", "--image=x.png", "--num_samples=two")
    assert_one_line_error(proc, "--num_samples")
    proc = run_app("predict", f"--workdir={tmp_path}", "--image=x.png")
    assert_one_line_error(proc, "kpvp.predict: error:", "holds no trained run")


def test_tiny_on_a_workdir_made_without_it(tmp_path):
    cli.save_config(base.finalize(base.get_base_config()), str(tmp_path))  # a 'full' run
    proc = run_app("train", "--stage=1", "--tiny", f"--workdir={tmp_path}")
    assert_one_line_error(proc, "kpvp.train: error:", "--variant=tiny", "'full' run")
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # nothing written


def test_corrupt_media_is_one_line(tmp_path):
    for name in ("a.gif", "b.gif"):
        (tmp_path / name).write_bytes(b"GIF89a" + b"\x00garbage" * 4)
    proc = run_app("evaluate", f"--real={tmp_path}", f"--generated={tmp_path}")
    assert_one_line_error(proc, "kpvp.evaluate: error:", "FVD needs at least 2 videos",
                          "2 unreadable")


def test_saved_config_of_another_version_is_one_line(tmp_path):
    path = cli.save_config(base.finalize(base.get_base_config()), str(tmp_path))
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    values["stage1"]["no_such_field"] = 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(values, f)
    proc = run_app("export", f"--workdir={tmp_path}", f"--output={tmp_path / 'out'}")
    assert_one_line_error(proc, "kpvp.export: error:", "stage1.no_such_field")


def test_the_wrapper_reports_user_errors_and_lets_bugs_through(capsys):
    def user_mistake(argv):
        raise errors.InputNotFound("--image: no such file 'x.png'\nsecond line")

    with pytest.raises(SystemExit) as info:
        cli.report_user_errors(user_mistake)(["prog"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --image: no such file 'x.png' second line" in err

    def bug(argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):  # not swallowed: its traceback is shown
        cli.report_user_errors(bug)(["prog"])


def test_user_errors_keep_their_builtin_types():
    assert issubclass(errors.InputNotFound, FileNotFoundError)
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.OutputExists, FileExistsError)


# === Names read from disk become safe file names ===

@pytest.mark.parametrize("name", ["../../etc/passwd", "..", ".", "a/b", "a\\b", "tab\there",
                                  "new\nline", "nul\x00", "C:evil", ".hidden", "   ", "",
                                  "a" * 300, "x/../../y"])
def test_safe_file_name_stays_one_component_inside_its_folder(name, tmp_path):
    safe = output_paths.safe_file_name(name)
    assert safe and "/" not in safe and "\\" not in safe and ".." not in safe
    assert not safe.startswith(".") and safe.isprintable()
    assert len(safe) <= output_paths.MAX_NAME_LENGTH
    path = tmp_path / f"{safe}_0.gif"
    assert path.resolve().parent == tmp_path.resolve()
    path.write_bytes(b"")  # the file system takes it


def test_safe_names_leave_ordinary_names_alone_and_stay_unique():
    assert output_paths.safe_file_name("jumping jacks-2") == "jumping jacks-2"
    assert output_paths.safe_file_names(["a/b", "a_b", "A_B", "walk"]) == [
        "a_b", "a_b-1", "A_B-2", "walk"]


def test_predict_outputs_disambiguate_refuse_clashes_and_existing_files(tmp_path):
    inputs = [str(tmp_path / "in" / n) for n in ("a.png", "a.jpg", "b.png")]
    plan = output_paths.predict_outputs(inputs, str(tmp_path / "out"), 2, batch=True)
    names = [os.path.basename(p) for outs in plan.values() for p in outs]
    assert names == ["a_png_0.gif", "a_png_1.gif", "a_jpg_0.gif", "a_jpg_1.gif",
                     "b_0.gif", "b_1.gif"]
    # Two inputs whose names clash even after disambiguation are refused.
    clash = [str(tmp_path / "in" / n) for n in ("a_png.gif", "a.png", "a.gif")]
    with pytest.raises(errors.InvalidInput, match="same output file"):
        output_paths.predict_outputs(clash, str(tmp_path / "out"), 1, batch=True)
    # An existing output is refused unless overwrite.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b_1.gif").write_bytes(b"old")
    with pytest.raises(errors.OutputExists, match="b_1.gif exists.*--overwrite"):
        output_paths.predict_outputs(inputs, str(tmp_path / "out"), 2, batch=True)
    assert output_paths.predict_outputs(inputs, str(tmp_path / "out"), 2, batch=True,
                                        overwrite=True) == plan
    # An output that is an input is refused even with overwrite.
    with pytest.raises(errors.InvalidInput, match="is an input"):
        output_paths.predict_outputs([inputs[2]], str(tmp_path / "in"), 1, batch=True,
                                     fmt="png", overwrite=True)
    # One input: the output file itself, or numbered per sample.
    single = output_paths.predict_outputs([inputs[0]], str(tmp_path / "v.mp4"), 2, batch=False)
    assert single[inputs[0]] == [str(tmp_path / "v_0.mp4"), str(tmp_path / "v_1.mp4")]
