"""Action recognition (paper Table 2) on real and generated test videos: a keypoint-sequence
classifier on Q's keypoints and a linear probe on I3D features, both trained on real training
videos; generated videos scored under their true class condition and under a random other one."""
from __future__ import annotations

import numpy as np

from kpvp.data import tracks as data_tracks
from kpvp.evaluation import report
from kpvp.evaluation.trained_run import TrainedRun
from kpvp.metrics import action_recognition as ar


def _joint_sequences(config, seq_len: int, num_test: int) -> dict | None:
    """Ground-truth joint sequences `{"train": (x, y), "test": (x, y)}`, or None."""
    out = {}
    for split, limit in (("train", 0), ("test", num_test)):
        tracks = data_tracks.joint_tracks(config, split, limit)
        if tracks is None:
            return None
        out[split] = data_tracks.fixed_length_sequences(tracks, seq_len)
    return out


def evaluate_action(run: TrainedRun) -> dict:
    """Action-recognition accuracy of real and generated test videos (paper Table 2)."""
    config = run.config
    if config.num_classes < 2:
        return {"skipped": f"{config.dataset} has a single class"}
    seq_len = int(config.data.seq_len)
    train_x, train_y = data_tracks.fixed_length_sequences(run.pseudo_labels("train"), seq_len)
    test_pseudo = run.pseudo_labels("test")[:run.num_videos or None]
    test_x, test_y = data_tracks.fixed_length_sequences(test_pseudo, seq_len)
    generated = run.generated()
    shuffled = run.generated(shuffled=True)
    motion_only = bool(config.eval.classifier_motion_only)
    classifier = ar.train_sequence_classifier(train_x, train_y, config.num_classes,
                                              seed=run.seed, motion_only=motion_only)
    keypoint_report = ar.action_recognition_report(
        classifier, (test_x, test_y), (generated["keypoints"], generated["labels"]),
        (shuffled["keypoints"], run.test_videos()["labels"]))
    keypoint_report["generated_follows_random_condition"] = ar.accuracy(
        classifier, shuffled["keypoints"], shuffled["labels"])
    # The first frame alone tells part of the class (a pose, a view): the classifier on each
    # test video's first keypoints held still is what ignoring the condition can score.
    held = np.repeat(test_x[:, :1], seq_len, axis=1)
    keypoint_report["first_frame_held"] = ar.accuracy(classifier, held, test_y)
    # Many more generated sequences than videos (M only, every class from every first frame):
    # whether M follows its condition, without the noise of a few rendered videos.
    motion = run.motion_samples()
    own = run.test_videos()["labels"][motion["videos"]]
    keypoint_report["motion_samples"] = ar.condition_report(
        ar.predict_labels(classifier, motion["keypoints"]), motion["labels"], own)
    joints = _joint_sequences(config, seq_len, run.num_videos)
    if joints is not None:
        # The same classifier on the ground-truth joints: what the actions allow; the gap
        # to `real` is what Q's keypoints lose.
        joint_classifier = ar.train_sequence_classifier(*joints["train"], config.num_classes,
                                                        seed=run.seed, motion_only=motion_only)
        keypoint_report["real_ground_truth_joints"] = ar.accuracy(joint_classifier,
                                                                  *joints["test"])

    train = run.train_videos()
    probe = ar.fit_linear_probe(run.cached_features("train", lambda: train), train["labels"],
                                config.num_classes, seed=run.seed)
    features = {"real": run.cached_features("real", run.test_videos),
                "generated": run.features("generated", lambda: generated["frames"]),
                "shuffled": run.features("shuffled", lambda: shuffled["frames"])}
    video_report = ar.action_recognition_report(
        probe, (features["real"], run.test_videos()["labels"]),
        (features["generated"], generated["labels"]),
        (features["shuffled"], run.test_videos()["labels"]))
    video_report["generated_follows_random_condition"] = probe.accuracy(
        features["shuffled"], shuffled["labels"])
    keypoint_report["motion_only"] = motion_only
    result = {"keypoint_classifier": keypoint_report, "i3d_linear_probe": video_report,
              "num_train_videos": int(len(train_y)),
              "num_probe_train_videos": int(len(train["labels"])),
              "chance": 1.0 / config.num_classes}
    for name, rep in (("keypoint classifier", keypoint_report), ("I3D probe", video_report)):
        print(f"Action recognition ({name}): real {rep['real']:.3f}, generated "
              f"{rep['generated']:.3f}, random condition {rep['generated_unconditional']:.3f} "
              f"(chance {1.0 / config.num_classes:.3f})")
    m = keypoint_report["motion_samples"]
    print(f"Keypoint classifier: {m['num_own'] + m['num_other']} sequences of M follow their "
          f"class condition {m['follows_condition']:.3f} (own class {m['own_class']:.3f}, "
          f"another class {m['other_follows_condition']:.3f}); first frame held still "
          f"{keypoint_report['first_frame_held']:.3f}"
          + (f"; on ground-truth joints of real test videos "
             f"{keypoint_report['real_ground_truth_joints']:.3f}"
             if "real_ground_truth_joints" in keypoint_report else ""))
    return report.jsonable(result)
