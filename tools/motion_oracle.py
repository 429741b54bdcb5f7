"""Can the motion generator M learn the actions at all? Trains stage 2 on ground-truth joints.

    python tools/motion_oracle.py --tiny --steps=3000 --eval_every=500

Generated sequences that do not follow their class can come from two places: Q's keypoints
carry no class information (stage 1), or M does not learn class-conditional motion from
keypoints that do (stage 2). This tool separates them. It trains M and D_seq exactly as stage
2 does (`MotionGenerationTrainer`, the config's losses, weights and augmentation) on the data
set's ground-truth joint tracks of the training videos instead of Q's pseudo-labels (an oracle
Q), and every `--eval_every` steps samples M from the true first pose of every test video under
every class condition. A sequence classifier trained on the joint sequences of the training
videos (the one `--metric=action` uses) then reports how many samples follow their class
condition, next to its accuracy on the real test sequences (the ceiling) and chance.
It also prints the L1 of M's reconstructions of the test sequences (z = mu).

Any stage-2 setting can be changed as in training, e.g. `--config.stage2.kl_weight=10`; the
seed is `--config.seed`. Needs a data set with joints (synthetic, penn). `--output=m.keras`
keeps the trained M (its keypoints are the data set's joints, not a Q's).
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from kpvp import cli  # noqa: E402
from kpvp.data import pipelines  # noqa: E402
from kpvp.data import tracks as data_tracks  # noqa: E402
from kpvp.evaluation.trained_run import sample_motions  # noqa: E402
from kpvp.metrics import action_recognition as ar  # noqa: E402
from kpvp.trainers import loop, stage2  # noqa: E402


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """The tool's own flags; --dataset, --tiny, --data_dir and --config.* are kpvp's."""
    if fv is flags.FLAGS:
        cli.define_flags()
    flags.DEFINE_integer("steps", 3000, "Training steps.", flag_values=fv)
    flags.DEFINE_integer("eval_every", 500, "Evaluate every N steps.", flag_values=fv)
    flags.DEFINE_integer("samples", None, "Samples per test video and class condition "
                         "(default: config.eval.motion_samples).", flag_values=fv)
    flags.DEFINE_integer("num_test", None, "Test videos (default: config.eval.num_videos; "
                         "0 for all).", flag_values=fv)
    flags.DEFINE_string("output", None, "Save the trained M here (a .keras file).",
                        flag_values=fv)
    return fv


def load_joints(config, num_test: int) -> dict:
    """Ground-truth joint tracks of all training videos and of the first `num_test` test
    videos (0: all): `{"train": [...], "test": [...]}`; K of `config` becomes the joint
    count."""
    tracks = {"train": data_tracks.joint_tracks(config, "train"),
              "test": data_tracks.joint_tracks(config, "test", num_test)}
    if tracks["train"] is None:
        raise ValueError(f"{config.dataset} has no ground-truth joints; the oracle needs them")
    config.num_keypoints = int(tracks["train"][0]["keypoints"].shape[1])
    return tracks


def evaluate_motion(generator, classifier, test_x, test_y, num_classes: int, samples: int,
                    seed: int = 0) -> dict:
    """Samples M from the first pose of every test sequence under every class condition and
    classifies the samples: `action_recognition.condition_report` of them, how often each
    class is predicted (`predicted_counts`) and how far the samples move from k_0."""
    motion = sample_motions(generator, test_x[:, 0], num_classes, samples, seed)
    pred = ar.predict_labels(classifier, motion["keypoints"])
    report = ar.condition_report(pred, motion["labels"], np.asarray(test_y)[motion["videos"]])
    return dict(report, predicted_counts=np.bincount(pred, minlength=num_classes).tolist(),
                samples_movement=_movement(motion["keypoints"]), num_samples=int(len(pred)),
                num_videos=int(len(test_x)))


def _movement(sequences) -> float:
    """Mean distance of the keypoints from where they were in the first frame."""
    x = np.asarray(sequences)
    return float(np.mean(np.linalg.norm(x - x[:, :1], axis=-1)))


def train(config, tracks, steps: int, eval_every: int, samples: int, report=print,
          output: str | None = None) -> list:
    """Trains stage 2 on the joint tracks; returns the evaluations. Saves M to `output`
    (a `.keras` path) when given."""
    if output is not None and not output.endswith(".keras"):
        raise ValueError(f"--output must be a .keras file, got {output!r}")
    seq_len = int(config.data.seq_len)
    train_x, train_y = data_tracks.fixed_length_sequences(tracks["train"], seq_len)
    test_x, test_y = data_tracks.fixed_length_sequences(tracks["test"], seq_len)
    classifier = ar.train_sequence_classifier(
        train_x, train_y, config.num_classes, seed=config.seed,
        motion_only=bool(config.eval.classifier_motion_only))
    ceiling = ar.accuracy(classifier, test_x, test_y)
    report(f"classifier on the joints of {len(train_y)} training videos: real test sequences "
           f"{ceiling:.3f} ({len(test_y)} videos), chance {1 / config.num_classes:.3f}")
    keras.utils.set_random_seed(config.seed)
    trainer = stage2.build_trainer(config)
    trainer.compile(*loop.make_optimizers(config.stage2))
    real_movement = _movement(test_x)
    results, start, done = [], time.time(), 0
    while done < steps:
        chunk = min(eval_every, steps - done)
        # A new data order per chunk, seeded by the step (as `loop.fit_stage` does).
        data = pipelines.stage2_dataset(tracks["train"], config, training=True,
                                        seed=config.seed + done)
        history = trainer.fit(data, steps_per_epoch=chunk, epochs=1, verbose=0, shuffle=False)
        logs = {k: v[-1] for k, v in history.history.items()}
        done += chunk
        recon = np.asarray(trainer.generator([test_x, test_y], training=False)["keypoints"])
        l1 = float(np.mean(np.abs(recon - test_x[:, 1:])))
        recon = np.concatenate([test_x[:, :1], recon], axis=1)
        motion = evaluate_motion(trainer.generator, classifier, test_x, test_y, config.num_classes,
                                 samples, seed=config.seed)
        # Reconstructions from the posterior mean: is the decoder, or the prior, what fails?
        motion["reconstructions_classified"] = ar.accuracy(classifier, recon, test_y)
        motion["movement"] = {"real": real_movement, "reconstructions": _movement(recon),
                              "samples": motion.pop("samples_movement")}
        results.append(dict(step=done, seconds=round(time.time() - start, 1),
                            test_l1=l1, ceiling=ceiling, **motion,
                            train_logs={k: float(v) for k, v in logs.items()}))
        report(f"step {done:6d} ({results[-1]['seconds']:.0f} s): {motion['num_samples']} "
               f"samples follow their condition {motion['follows_condition']:.3f}; own class "
               f"{motion['own_class']:.3f}; other class: condition "
               f"{motion['other_follows_condition']:.3f}, first pose's class "
               f"{motion['other_follows_first_frame']:.3f}; predicted classes "
               f"{motion['predicted_counts']}; reconstructions (z = mu) classified "
               f"{motion['reconstructions_classified']:.3f}; movement from k_0: "
               + ", ".join(f"{k} {v:.3f}" for k, v in motion["movement"].items())
               + f" | test reconstruction L1 {l1:.4f} | "
               + ", ".join(f"{k} {float(v):.4g}" for k, v in logs.items()))
    if output is not None:
        trainer.generator.save(output)
        report(f"saved M to {output}")
    return results


def main(argv):
    del argv
    f = flags.FLAGS
    config = cli.resolve_config()
    num_test = int(config.eval.num_videos if f.num_test is None else f.num_test)
    tracks = load_joints(config, num_test)
    samples = int(config.eval.motion_samples if f.samples is None else f.samples)
    s2 = config.stage2
    print(f"M on ground-truth joints: {config.dataset}{' (tiny)' if f.tiny else ''}, K "
          f"{config.num_keypoints}, seq_len {config.data.seq_len}, batch {s2.batch_size}, lr "
          f"{s2.learning_rate:g}, LSTM {s2.lstm_layers} x {s2.lstm_units}, latent "
          f"{s2.latent_dim}, weights L1 {s2.l1_weight:g} / KL {s2.kl_weight:g} / adversarial "
          f"{s2.adversarial_weight:g}", flush=True)
    train(config, tracks, f.steps, f.eval_every, samples,
          report=lambda line: print(line, flush=True), output=f.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
