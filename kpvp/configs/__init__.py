"""One config per data set, each with `tiny`, `paper_small` and `authors` variants:
`get_config("penn", "tiny")` (see `kpvp.configs.base` for what each variant changes)."""
import importlib

import ml_collections

DATASETS = ("synthetic", "penn", "nemo", "mgif", "folder")
VARIANTS = ("full", "tiny", "paper_small", "authors")


def get_config(dataset: str = "synthetic", variant: str = "full") -> ml_collections.ConfigDict:
    """Returns the resolved config of `dataset` ('synthetic', 'penn', ...) and `variant`."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown config variant {variant!r}; expected one of {VARIANTS}")
    module = importlib.import_module(f"kpvp.configs.{dataset}")
    return module.get_config(variant)
