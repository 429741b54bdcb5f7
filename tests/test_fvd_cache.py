"""FVD's real-set I3D features cached in the run directory: a second evaluation reads them and
gives the same FVD; a changed protocol, other clips or other I3D weights miss the cache."""
import os

import numpy as np

from kpvp import configs
from kpvp.evaluation import fvd as eval_fvd
from kpvp.evaluation import trained_run

N, T, S = 6, 5, 8


class _CountingI3D:
    """An I3D stand-in: features from the clips' pixels; counts the videos it extracts."""

    def __init__(self, sha256="a" * 64):
        self.weights_sha256 = sha256
        self.videos = 0

    def extract(self, clips, progress=True, desc="I3D", batch_size=None):
        clips = np.asarray(clips, np.float64)
        self.videos += len(clips)
        flat = clips.reshape(len(clips), clips.shape[1], -1)
        return np.concatenate([flat.mean(axis=2), flat.std(axis=2)], axis=1), clips.size


class _Run(trained_run.TrainedRun):
    """A `TrainedRun` on fixed random videos with a counting I3D (no trained networks)."""

    def __init__(self, config, workdir, i3d_sha256="a" * 64, shift=0):
        super().__init__(config, str(workdir), num_videos=0, seed=0)
        rng = np.random.default_rng(0)
        self.sets = {split: {"frames": rng.integers(0, 256, (N, T, S, S, 3), np.uint8) + shift,
                             "ids": [f"{split}_{i}" for i in range(N)]}
                     for split in ("train", "test")}
        self._cache["i3d"] = _CountingI3D(i3d_sha256)
        noisy = self.sets["test"]["frames"] // 2 + rng.integers(0, 128, (N, T, S, S, 3), np.uint8)
        self._cache[("generated", False)] = {"frames": noisy}

    def videos(self, split, limit):
        return self.sets[split]


def _config(fvd_num_frames=3):
    config = configs.get_config("synthetic", "tiny")
    config.eval.fvd_num_frames = fvd_num_frames
    return config


def test_second_evaluation_reads_the_cache_and_gives_the_same_fvd(tmp_path):
    first = _Run(_config(), tmp_path)
    result = eval_fvd.evaluate_fvd(first)
    # real, generated, train and the static baseline: four sets of N videos.
    assert first.i3d.videos == 4 * N
    cached = sorted(os.listdir(tmp_path / "fvd_features"))
    assert len(cached) == 2 and cached[0].startswith("real-") and cached[1].startswith("train-")

    second = _Run(_config(), tmp_path)
    again = eval_fvd.evaluate_fvd(second)
    assert second.i3d.videos == 2 * N  # only the generated videos and the static baseline
    for name in ("fvd", "fvd_real_train_vs_test", "fvd_static_baseline"):
        assert again[name] == result[name], name
    assert result["fvd"] > 0


def test_changed_protocol_clips_or_weights_miss_the_cache(tmp_path):
    eval_fvd.evaluate_fvd(_Run(_config(), tmp_path))
    for run in (_Run(_config(fvd_num_frames=4), tmp_path),  # another protocol
                _Run(_config(), tmp_path, shift=1),  # other frames under the same ids
                _Run(_config(), tmp_path, i3d_sha256="b" * 64)):  # other I3D weights
        eval_fvd.evaluate_fvd(run)
        assert run.i3d.videos == 4 * N
    assert len(os.listdir(tmp_path / "fvd_features")) == 2 * 4


def test_a_stored_file_with_another_key_is_not_used(tmp_path):
    run = _Run(_config(), tmp_path)
    features = run.cached_features("real", run.test_videos)
    path, = (tmp_path / "fvd_features").iterdir()
    np.savez(path, features=features + 1, key=np.array("something else"))
    other = _Run(_config(), tmp_path)
    np.testing.assert_array_equal(other.cached_features("real", other.test_videos), features)
    assert other.i3d.videos == N
