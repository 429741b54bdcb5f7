"""Test set-up: quiet TensorFlow; fixtures for a per-test random generator, the shared fixtures
and the I3D weights (each skips its tests with the reason when the files are missing)."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import SHARED_FIXTURES  # noqa: E402
from kpvp.models import i3d  # noqa: E402


@pytest.fixture(scope="session")
def shared_fixtures() -> pathlib.Path:
    """`../shared/fixtures` (real Siarohin-format samples); skips if it is not beside the repo."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture()
def rng() -> np.random.Generator:
    """A generator seeded per test: a test's draws do not depend on which tests ran before it
    in the same process (the suite runs with `-n 2`)."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def i3d_arrays() -> dict:
    """The I3D Kinetics-400 weights (`kpvp.models.i3d.load_i3d_arrays`); skips if absent."""
    try:
        return i3d.load_i3d_arrays()
    except FileNotFoundError as error:
        pytest.skip(f"I3D weights not available: {error}")
