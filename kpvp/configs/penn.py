"""Penn Action: the paper's 9 classes, 1172 train / 90 test videos, K = 40."""
from kpvp.configs import base

# Class ids of the authors' code (PAPER_NOTES.md).
PENN_CLASSES = ("tennis_serve", "pullup", "clean_and_jerk", "tennis_forehand",
                "baseball_pitch", "jumping_jacks", "golf_swing", "squat", "baseball_swing")


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "penn"
    c.num_keypoints = 40
    c.class_names = PENN_CLASSES
    return base.finalize(base.apply_variant(c, variant))
