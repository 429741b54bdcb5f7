"""UvA-NEMO smiles: 2 classes (spontaneous / posed), K = 15."""
from kpvp.configs import base
from kpvp.data.datasets import NEMO_CLASSES


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "nemo"
    c.num_keypoints = 15
    c.class_names = NEMO_CLASSES
    # Paper Sec. 4: NEMO and MGIF condition the motion on k0 only (one action per data set).
    c.class_conditional = False
    return base.finalize(base.apply_variant(c, variant))
