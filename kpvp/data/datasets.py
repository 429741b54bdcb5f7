"""Facts about the data sets, defined once: class names, joint names, media file extensions.

The configs (`kpvp/configs/*.py`), the readers, the synthetic renderer and the keypoint metric
import them from here. This module imports nothing from kpvp, so any layer may import it.
"""

# === Joints ===
# Penn Action's joint order (the data set's README); `joints[..., j, :]` is PENN_JOINTS[j].
# The synthetic figures have the same 13 joints in the same order.
PENN_JOINTS = ("head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
               "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")

# === Classes ===
# The paper's 9 Penn Action classes, in the order of the authors' class ids (PAPER_NOTES.md).
PENN_CLASSES = ("tennis_serve", "pullup", "clean_and_jerk", "tennis_forehand",
                "baseball_pitch", "jumping_jacks", "golf_swing", "squat", "baseball_swing")
# All 15 Penn Action actions.
PENN_ALL_CLASSES = ("baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk",
                    "golf_swing", "jump_rope", "jumping_jacks", "pullup", "pushup", "situp",
                    "squat", "strum_guitar", "tennis_forehand", "tennis_serve")
NEMO_CLASSES = ("spontaneous", "posed")
MGIF_CLASSES = ("mgif",)
SYNTHETIC_CLASSES = ("jumping_jacks", "squat", "arm_wave", "walk")
# Placeholder of the 'folder' config: the sub-folders found on disk replace it.
FOLDER_CLASSES = ("default",)

# === Media files ===
GIF_EXTENSIONS = (".gif",)
CONTAINER_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# Still images: frames of a frame folder, horizontal strips of frames, start images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Every file name `video_io.read_video` accepts as one video (directories are accepted as well).
VIDEO_EXTENSIONS = GIF_EXTENSIONS + CONTAINER_EXTENSIONS + IMAGE_EXTENSIONS
# What `video_io.write_video` writes: GIF, H.264 MP4, or a lossless PNG strip.
WRITABLE_VIDEO_EXTENSIONS = (".gif", ".mp4", ".png")
