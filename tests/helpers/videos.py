"""Small test videos, and the frame counts of the shared action strips."""
import numpy as np

# Frame counts of the shared `actions/train` strips (fixtures README table).
ACTIONS_FRAMES = {
    "00000000": 59, "00000016": 57, "00000020": 56, "00000022": 63, "00000024": 79,
    "00000026": 53, "00000027": 53, "00000032": 114, "00000036": 70, "00000038": 93,
    "00000040": 67, "00000042": 55, "00000044": 54, "00000046": 65, "00000048": 54,
    "00000050": 125, "00000052": 51, "00000054": 63, "00000056": 51, "00000062": 85,
    "00000066": 82, "00000068": 89, "00000070": 84,
}


def few_colour_video(num_frames=6, height=20, width=30, seed=0):
    """Random frames drawn from 5 colours (so a GIF stores them exactly)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    return palette[rng.integers(0, 5, (num_frames, height, width))]


def smooth_video(num_frames=8, size=64):
    """Gradients moving over time (many colours, compresses well)."""
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([np.stack([xx * 4, yy * 4, (xx + yy + 8 * t) % 256], -1)
                     for t in range(num_frames)]).astype(np.uint8)
