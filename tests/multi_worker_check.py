"""`python -m kpvp.train` run as one worker of a multi-worker cluster (or alone), which also
writes a digest of the trained weights, so that a test can compare the workers' copies.

Usage (from the repository root, `TF_CONFIG` set per worker for `--strategy=multi_worker`):
`PYTHONPATH=. python tests/multi_worker_check.py DIGEST.json <kpvp.train flags>`

After each `kpvp.trainers.loop.fit_stage` returns, DIGEST.json gets `{"step", "resumed_from",
"is_chief", "replicas", "trainable", "all", "before_training", "variables", "generator",
"logs"}`: SHA-256 digests of this worker's local copy of the trainer's trainable weights, of all
its weights, of all its weights when `fit()` was first called (just after the restore), of each
weight by path and of the weights of its `generator` (M in stage 2; None in stage 1), and the
last logs of `fit()` (the losses). No assertion here: the test judges.
"""
from __future__ import annotations

import hashlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402

from kpvp import rundir, train  # noqa: E402
from kpvp.trainers import loop  # noqa: E402


def digest(weights) -> str:
    h = hashlib.sha256()
    for w in weights:
        value = w.numpy()
        h.update(str((value.dtype, value.shape)).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def main():
    digest_path = sys.argv.pop(1)
    fit_stage = loop.fit_stage

    def fit_and_digest(trainer, *args, **kwargs):
        restored = {}
        fit = trainer.fit

        def fit_once_seen(*fit_args, **fit_kwargs):
            # The first fit() call comes right after the restore: what the checkpoint held.
            restored.setdefault("digest", digest(trainer.weights))
            return fit(*fit_args, **fit_kwargs)

        trainer.fit = fit_once_seen
        result = fit_stage(trainer, *args, **kwargs)
        rundir.write_json(digest_path, {
            "step": result["step"], "resumed_from": result["resumed_from"],
            "is_chief": loop.is_chief(trainer.distribute_strategy),
            "replicas": trainer.distribute_strategy.num_replicas_in_sync,
            "trainable": digest(trainer.trainable_weights),
            "all": digest(trainer.weights),
            "before_training": restored.get("digest"),
            "variables": {v.path: digest([v]) for v in trainer.weights},
            "generator": (digest(trainer.generator.weights)
                          if hasattr(trainer, "generator") else None),
            "logs": result["logs"]}, indent=1)
        return result

    loop.fit_stage = fit_and_digest  # kpvp.stages calls it as loop.fit_stage
    train.define_flags()
    app.run(train.main)


if __name__ == "__main__":
    main()
