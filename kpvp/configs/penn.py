"""Penn Action: the paper's 9 classes, 1172 train / 90 test videos, K = 40."""
from kpvp.configs import base
from kpvp.data.datasets import PENN_CLASSES


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "penn"
    c.num_keypoints = 40
    c.class_names = PENN_CLASSES
    return base.finalize(base.apply_variant(c, variant))
