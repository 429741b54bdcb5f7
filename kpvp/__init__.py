"""kpvp: Unsupervised Keypoint Learning for Guiding Class-Conditional Video Prediction.

Kim et al., NeurIPS 2019. Stage 1 learns a keypoint detector Q with a masked translator T;
stage 2 learns a class-conditional motion generator M on Q's pseudo-labels; generation
turns one image and an action class into a video.
"""
import os

# The BFC allocator reuses large CPU buffers that the default one returns to the OS after every
# op (experiments/README.md); read at TensorFlow's first allocation, so set before any op.
# TF_CPU_ALLOCATOR_USE_BFC=false keeps the default.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.1.0"
