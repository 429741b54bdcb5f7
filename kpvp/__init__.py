"""kpvp: Unsupervised Keypoint Learning for Guiding Class-Conditional Video Prediction.

Kim et al., NeurIPS 2019. Stage 1 learns a keypoint detector Q with a masked translator T;
stage 2 learns a class-conditional motion generator M on Q's pseudo-labels; generation
turns one image and an action class into a video.
"""

__version__ = "0.1.0"
