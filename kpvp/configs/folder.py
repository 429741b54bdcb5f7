"""Your own videos: a folder (one class, or one sub-folder per class). Classes come from disk."""
from kpvp.configs import base
from kpvp.data.datasets import FOLDER_CLASSES


def get_config(variant: str = "full"):
    c = base.get_base_config()
    c.dataset = "folder"
    c.num_keypoints = 40
    # Replaced by the sub-folder names found under data_dir when the data set is opened.
    c.class_names = FOLDER_CLASSES
    return base.finalize(base.apply_variant(c, variant))
