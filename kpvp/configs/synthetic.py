"""Built-in synthetic data set: articulated 13-joint figures doing 4 actions (no download)."""
from kpvp.configs import base
from kpvp.data.datasets import SYNTHETIC_CLASSES


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "synthetic"
    c.num_keypoints = 20
    c.class_names = SYNTHETIC_CLASSES
    # A CPU-sized default; the paper's step counts are for the real data sets on GPUs.
    c.stage1.batch_size = 16
    c.stage1.num_steps = 20_000
    c.stage2.num_steps = 20_000
    return base.finalize(base.apply_variant(c, variant))
