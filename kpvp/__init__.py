"""kpvp: Unsupervised Keypoint Learning for Guiding Class-Conditional Video Prediction.

Kim et al., NeurIPS 2019. Stage 1 learns a keypoint detector Q with a masked translator T;
stage 2 learns a class-conditional motion generator M on Q's pseudo-labels; generation
turns one image and an action class into a video.
"""
import os

# TensorFlow's default CPU allocator hands large buffers back to the operating system after
# every op, and the next step faults them in again: on 2-core machines 40 % of a stage-1 step
# went to the kernel. The BFC allocator keeps and reuses them. It is read when TensorFlow first
# allocates, so this must run before any TensorFlow op; set TF_CPU_ALLOCATOR_USE_BFC=false to
# keep the default. Measured in experiments/README.md ("Training speed").
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.1.0"
