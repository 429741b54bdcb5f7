"""The evaluation report: report.json (every number) and report.md (Markdown tables) in the
run directory, read back and updated metric by metric. Imports no evaluator."""
from __future__ import annotations


import numpy as np

from kpvp import rundir
from kpvp.metrics import frame_metrics

PERCEPTUAL_NOTES = {
    "vgg19": "VGG19 ImageNet features, as in the paper",
    "i3d2d": ("the deflated I3D's Kinetics-400 features (offline fallback): trained against I3D "
              "features, so this FVD is not independent of the training loss and is not "
              "comparable with the paper's"),
    "random": "a VGG19 with random weights (not the paper's loss)",
}


def read_report(workdir) -> dict:
    """The run's report.json as a dict ({} when there is none yet)."""
    return rundir.read_json(rundir.RunDir(workdir).report_json)


def write_report(workdir, report: dict) -> None:
    """Writes `report` to the run's report.json and, formatted, report.md."""
    run = rundir.RunDir(workdir)
    rundir.write_json(run.report_json, jsonable(report), indent=2)
    rundir.write_text(run.report_md, format_markdown(report))


def jsonable(value):
    """`value` with NumPy scalars and arrays made plain Python (for `json.dump`)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _fmt(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value, baseline):
    return None if value is None or not baseline else value / baseline


def format_markdown(report: dict) -> str:
    """The report as Markdown tables (what `report.md` holds)."""
    m = report.get("metrics", {})
    lines = [f"# kpvp evaluation: {report.get('dataset')} ({report.get('variant')})", "",
             f"Image size {report.get('image_size')}, K = {report.get('num_keypoints')}, "
             f"seed {report.get('seed')}, translator "
             f"{report.get('translator', 'masked')}.", ""]
    if "fvd" in m:
        f = m["fvd"]
        lines += ["## FVD (lower is better)", "",
                  "| videos compared with real test videos | FVD |", "|---|---|",
                  f"| generated (kpvp) | {_fmt(f['fvd'], 1)} |",
                  f"| real train videos (other videos of the actions) | "
                  f"{_fmt(f['fvd_real_train_vs_test'], 1)} |",
                  f"| input image repeated (static baseline) | "
                  f"{_fmt(f['fvd_static_baseline'], 1)} |",
                  "", f"{f['num_videos']} test videos; frames {f.get('frames', f['num_frames'])} "
                  "of each clip (the predicted frames against the real frames at the same "
                  f"stride), {f['resolution']}x{f['resolution']} upsampled to 224x224 for I3D."]
        network = f.get("perceptual_network")
        if network:
            note = PERCEPTUAL_NOTES.get(network, network)
            lines += [f"Stage 1 was trained against {note}."]
        lines += [""]
    if "action" in m and "skipped" not in m["action"]:
        a = m["action"]
        lines += ["## Action recognition (accuracy, higher is better)", "",
                  "| classifier | real test videos | generated | generated, random class "
                  "condition (vs true class) | generated follows random condition |",
                  "|---|---|---|---|---|"]
        for key, label in (("keypoint_classifier", "keypoint-sequence classifier"),
                           ("i3d_linear_probe", "linear probe on I3D features")):
            r = a[key]
            lines.append(f"| {label} | {_fmt(r['real'])} | {_fmt(r['generated'])} | "
                         f"{_fmt(r.get('generated_unconditional'))} | "
                         f"{_fmt(r.get('generated_follows_random_condition'))} |")
        lines += ["", f"Chance {_fmt(a['chance'])}. The keypoint classifier is trained on Q's "
                  f"keypoints of {a['num_train_videos']} real training videos"
                  + (" and sees only how they move from the first frame"
                     if a["keypoint_classifier"].get("motion_only") else "")
                  + f", the probe on I3D features of {a['num_probe_train_videos']}.", ""]
        k = a["keypoint_classifier"]
        if "motion_samples" in k:
            ms = k["motion_samples"]
            lines += [f"Keypoint sequences sampled by M (no rendering) from every test video's "
                      f"first frame with every class condition "
                      f"({ms['num_own'] + ms['num_other']} sequences), classified as their "
                      f"condition: {_fmt(ms['follows_condition'])} (chance "
                      f"{_fmt(a['chance'])}, also for an M that ignores the class); under the "
                      f"video's own class {_fmt(ms['own_class'])} (the first frame held still: "
                      f"{_fmt(k.get('first_frame_held'))}); under another class "
                      f"{_fmt(ms['other_follows_condition'])}, classified as the first frame's "
                      f"class instead {_fmt(ms['other_follows_first_frame'])}.", ""]
        if "real_ground_truth_joints" in k:
            lines += [f"The same classifier trained and tested on the ground-truth joints of "
                      f"the real videos (what the actions allow; the gap to the real test "
                      f"videos is what Q's keypoints lose): "
                      f"{_fmt(k['real_ground_truth_joints'])}.", ""]
    if "keypoints" in m and "skipped" not in m["keypoints"]:
        k = m["keypoints"]
        lines += ["## Keypoints -> ground-truth joints (linear regression, test error)", "",
                  "| detector | mean error (fraction of image side) | mean error (pixels) |",
                  "|---|---|---|",
                  f"| trained Q | {_fmt(k['trained']['mean_error'], 4)} | "
                  f"{_fmt(k['trained']['mean_error_px'], 2)} |",
                  f"| untrained Q | {_fmt(k['untrained']['mean_error'], 4)} | "
                  f"{_fmt(k['untrained']['mean_error_px'], 2)} |", ""]
        seeds = k.get("untrained_seeds")
        if seeds and len(seeds["mean_errors"]) > 1:
            verdict = ("beats every one of them" if k["trained_beats_every_untrained"] else
                       "does not beat all of them: no evidence of learned keypoints")
            lines += [f"Untrained Q over {len(seeds['mean_errors'])} seeds: "
                      f"{_fmt(seeds['min'], 4)}-{_fmt(seeds['max'], 4)} (mean "
                      f"{_fmt(seeds['mean'], 4)}); the trained Q {verdict}.", ""]
        lines += [f"{k['num_train_frames']} train / {k['num_test_frames']} test frames.", ""]
    if "ssim" in m:
        s = m["ssim"]
        rows = [(name, s[key]) for name, key in (("T(s, Q(s), Q(v))", "reconstruction"),
                                                  ("the source frame s", "copy_source_baseline"))]
        lines += ["## Stage-1 reconstruction of test pairs", "",
                  "| prediction of the target frame | SSIM | PSNR (dB) | L1 where s and v differ |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {_fmt(r['ssim'], 4)} | {_fmt(r['psnr'], 2)} | "
                  f"{_fmt(r.get('changed_l1'), 4)} |" for name, r in rows]
        if "crude_changed_l1" in s:
            lines.append(f"| T's crude image before the blend | | | "
                         f"{_fmt(s['crude_changed_l1'], 4)} |")
        lines += ["", f"{s['reconstruction']['num_frames']} test pairs. L1 in [0, 1] units over "
                  f"the pixels where source and target differ by more than "
                  f"{frame_metrics.CHANGED_THRESHOLD:g} "
                  f"({_fmt(100 * s.get('changed_fraction', float('nan')), 1)} % of the pixels), "
                  f"where copying the source makes its whole error; T's mean mask "
                  f"{_fmt(s.get('mean_mask'), 3)}.", ""]
    if "transfer" in m:
        t = m["transfer"]
        rows = (("motion transfer from the video itself", t["transfer"]),
                ("the first frame repeated", t["static_baseline"]))
        lines += ["## Video reconstruction by motion transfer", "",
                  "| frames 1.. of each test video predicted by | L1 | L1 where the video "
                  "changed | SSIM | PSNR (dB) |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {_fmt(r['l1'], 4)} | {_fmt(r['changed_l1'], 4)} | "
                  f"{_fmt(r['ssim'], 4)} | {_fmt(r['psnr'], 2)} |" for name, r in rows]
        lines += ["", f"{t['num_videos']} test videos of {t['num_frames']} frames; each drives "
                  f"its own first frame through Q and T (relative keypoint motion). L1 in [0, 1] "
                  f"units; \"where the video changed\": pixels that differ from the first "
                  f"frame.", ""]
        if t.get("per_class"):
            lines += ["| class | test videos | L1 where the video changed: transfer | "
                      "first frame repeated | ratio |", "|---|---|---|---|---|"]
            lines += [f"| {name} | {r['num_videos']} | {_fmt(r['transfer'], 4)} | "
                      f"{_fmt(r['static_baseline'], 4)} | "
                      f"{_fmt(_ratio(r['transfer'], r['static_baseline']), 3)} |"
                      for name, r in t["per_class"].items()]
            lines.append("")
    skipped = [f"- {name}: {r['skipped']}" for name, r in m.items() if "skipped" in r]
    if skipped:
        lines += ["## Not applicable", ""] + skipped + [""]
    return "\n".join(lines)


def format_summary(report: dict) -> str:
    """What an evaluation prints at the end: where the report is, and the report."""
    return f"Report written to {rundir.REPORT_MD}:\n\n" + format_markdown(report)
