"""MGIF (Siarohin et al.): 1000 animated gifs of animals, single class, K = 60."""
from kpvp.configs import base
from kpvp.data.datasets import MGIF_CLASSES


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "mgif"
    c.num_keypoints = 60
    c.class_names = MGIF_CLASSES
    c.class_conditional = False
    return base.finalize(base.apply_variant(c, variant))
