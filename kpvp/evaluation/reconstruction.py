"""Stage 1 on its own: SSIM / PSNR / L1 of reconstructions T(s, Q(s), Q(v)) of test pairs
(`evaluate_ssim`), and video reconstruction by motion transfer, each test video driving its own
first frame (`evaluate_transfer`), each beside a trivial prediction."""
from __future__ import annotations

import numpy as np

from kpvp.data import pipelines
from kpvp.evaluation import report
from kpvp.evaluation.trained_run import TrainedRun
from kpvp.metrics import frame_metrics
from kpvp.models.keypoint_detector import locate


def evaluate_ssim(run: TrainedRun) -> dict:
    """SSIM/PSNR/L1 of stage-1 reconstructions on fixed test pairs, and of v_hat = s."""
    detector, translator = run.stage1.detector, run.stage1.translator

    def translate(batch):
        source_kp, source_jac = locate(detector, batch["source"])
        target_kp, target_jac = locate(detector, batch["target"])
        # A first-order T takes both frames' Jacobians too, as in training.
        jacobians = [] if source_jac is None else [source_jac, target_jac]
        return translator([batch["source"], source_kp, target_kp] + jacobians)

    result = frame_metrics.reconstruction_metrics(
        pipelines.stage1_dataset(run.config, split="test"), translate)
    rec, base = result["reconstruction"], result["copy_source_baseline"]
    crude = result.get("crude_changed_l1")  # a first-order T has no crude image
    print(f"Stage-1 reconstruction: SSIM {rec['ssim']:.4f}, PSNR {rec['psnr']:.2f} dB, L1 where "
          f"the frame changed {rec['changed_l1']:.4f} (copying the source frame: SSIM "
          f"{base['ssim']:.4f}, PSNR {base['psnr']:.2f} dB, L1 {base['changed_l1']:.4f}) on "
          f"{rec['num_frames']} test pairs; mean mask {result['mean_mask']:.3f}"
          + ("" if crude is None else f", crude image L1 where changed {crude:.4f}"))
    return report.jsonable(result)


def evaluate_transfer(run: TrainedRun) -> dict:
    """Video reconstruction by motion transfer: every test video drives its own first frame.

    Q's keypoints in each frame move the first frame through T (`VideoGenerator.transfer`,
    relative motion); frames 1.. are compared with the real ones, next to the first frame
    repeated (what a translator that ignores the keypoints would give). Needs stage 1 only.
    """
    videos = run.test_videos()
    real = videos["frames"]
    transferred = np.stack([run.stage1.transfer(video[0], video)["video"] for video in real])
    static = np.repeat(real[:, :1], real.shape[1], axis=1)
    future = real[:, 1:]
    future_unit = frame_metrics.to_unit_range(future)

    def scores(videos):
        videos = videos[:, 1:]
        # A frame equal to the real one (a still moment copied by the static baseline) counts
        # as one grey level off everywhere (48.1 dB), not as +inf.
        result = frame_metrics.frame_metrics([(videos, future)],
                                             max_psnr=frame_metrics.UINT8_MAX_PSNR)
        result["l1"] = float(np.mean(np.abs(frame_metrics.to_unit_range(videos) - future_unit)))
        result["changed_l1"] = frame_metrics.changed_region_l1(
            [(videos, future, static[:, 1:])])["l1"]
        return result

    result = {"transfer": scores(transferred), "static_baseline": scores(static),
              "num_videos": int(len(real)), "num_frames": int(real.shape[1]),
              "per_class": per_class_changed_l1(transferred, real, videos["labels"],
                                                run.config.class_names)}
    t, b = result["transfer"], result["static_baseline"]
    print(f"Motion transfer, each test video driving its own first frame: L1 {t['l1']:.4f}, "
          f"L1 where the video changed {t['changed_l1']:.4f}, SSIM {t['ssim']:.4f}, PSNR "
          f"{t['psnr']:.2f} dB (first frame repeated: L1 {b['l1']:.4f}, {b['changed_l1']:.4f}, "
          f"SSIM {b['ssim']:.4f}, PSNR {b['psnr']:.2f} dB) on {len(real)} videos of "
          f"{real.shape[1]} frames")
    return report.jsonable(result)


def per_class_changed_l1(predicted, real, labels, class_names) -> dict:
    """Each class's L1 where the video changed (frames 1.. against frame 0), predicted and copied.

    Args:
      predicted, real: `[N, T, H, W, 3]` videos (uint8 or [-1, 1] float), frame 0 the input.
      labels: `[N]` class ids; class_names: their names.
    Returns:
      `{class name: {"transfer": L1, "static_baseline": L1, "num_videos": n}}` for the classes
      present, pooled over each class's changed pixels as the overall numbers are.
    """
    result = {}
    for label in sorted(set(int(x) for x in labels)):
        pick = np.asarray(labels) == label
        clips = real[pick]
        source = np.repeat(clips[:, :1], clips.shape[1] - 1, axis=1)
        target = clips[:, 1:]
        result[class_names[label]] = {
            "transfer": frame_metrics.changed_region_l1(
                [(predicted[pick][:, 1:], target, source)])["l1"],
            "static_baseline": frame_metrics.changed_region_l1(
                [(source, target, source)])["l1"],
            "num_videos": len(clips)}
    return result
