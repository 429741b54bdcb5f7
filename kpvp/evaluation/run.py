"""Runs a list of metrics on a trained run and writes the report: the registry of evaluators
(the only module that imports every one of them)."""
from __future__ import annotations

import time

from absl import logging

from kpvp import errors

from kpvp.evaluation import report as report_io
from kpvp.evaluation.action import evaluate_action
from kpvp.evaluation.fvd import evaluate_fvd
from kpvp.evaluation.keypoints import evaluate_keypoints
from kpvp.evaluation.reconstruction import evaluate_ssim, evaluate_transfer
from kpvp.evaluation.trained_run import TrainedRun

EVALUATORS = {"fvd": evaluate_fvd, "action": evaluate_action, "keypoints": evaluate_keypoints,
              "ssim": evaluate_ssim, "transfer": evaluate_transfer}
METRICS = tuple(EVALUATORS)


def parse_metrics(text: str) -> tuple[str, ...]:
    """`"all"` or a comma-separated subset of `METRICS` -> the metric names; clear errors."""
    names = METRICS if text == "all" else tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise errors.InvalidInput(f"--metric: unknown {unknown or text!r}; expected 'all' or a "
                         f"comma-separated subset of {METRICS}")
    return names


def run_evaluation(config, workdir: str, metrics=METRICS, num_videos: int | None = None,
                   seed: int = 0) -> dict:
    """Runs `metrics` on the trained run in `workdir`; writes report.json and report.md there
    after each metric (keeping the other metrics of an earlier report)."""
    num_videos = int(config.eval.num_videos if num_videos is None else num_videos)
    run = TrainedRun(config, workdir, num_videos, seed)
    report = report_io.read_report(workdir)
    report.update(dataset=config.dataset, variant=config.variant, seed=seed,
                  image_size=int(config.image_size), num_keypoints=int(config.num_keypoints),
                  translator=str(config.stage1.get("translator", "masked")))
    results = report.setdefault("metrics", {})
    for name in metrics:
        start = time.time()
        logging.info("Evaluating %s", name)
        results[name] = EVALUATORS[name](run)
        results[name]["seconds"] = round(time.time() - start, 1)
        report_io.write_report(workdir, report)
    return report
