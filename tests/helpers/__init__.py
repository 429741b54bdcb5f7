"""Helpers shared by the test files (`from helpers import ...`), so that no test file imports
another. pytest puts `tests/` on `sys.path`; `tests/distributed_check.py`, run as a script,
has it there too.

* `REPO`, `SHARED_FIXTURES`: the repository and `../shared/fixtures` beside it.
* `model_checks`: the checks every network and layer goes through.
* `videos`: small test videos and the frame counts of the shared action strips.
* `tiny_run`: an untrained tiny run (Q, T, M exports) for generation, export and predict.
* `stage1`: a tiny stage-1 config and a stand-in perceptual network.
"""
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
