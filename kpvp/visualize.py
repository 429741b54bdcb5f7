"""Drawing helpers: keypoints on images, image grids (TensorBoard, sample videos, tools)."""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from kpvp.ops import images as image_ops


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1] (any shape `[..., 3]`) -> uint8 numpy (`kpvp.ops.images`)."""
    return image_ops.to_uint8(images).numpy()


def keypoint_colors(num_keypoints: int) -> np.ndarray:
    """`[K, 3]` uint8 distinct hues, fixed per keypoint index."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(i / max(1, num_keypoints), 0.9, 1.0)]
                     for i in range(num_keypoints)], dtype=np.uint8)


def draw_keypoints(images, keypoints, radius: float | None = None) -> np.ndarray:
    """Draws keypoints as coloured dots.

    Args:
      images: uint8 `[B, H, W, 3]` (or `[H, W, 3]`).
      keypoints: `[B, K, 2]` (or `[K, 2]`), (x, y) in [-1, 1], pixel-corner convention.
    Returns:
      uint8 images of the same shape with the dots drawn.
    """
    images = np.asarray(images)
    single = images.ndim == 3
    if single:
        images, keypoints = images[None], np.asarray(keypoints)[None]
    keypoints = np.asarray(keypoints, dtype=np.float32)
    out = np.empty_like(images)
    colors = keypoint_colors(keypoints.shape[1])
    for b, (image, kps) in enumerate(zip(images, keypoints)):
        h, w = image.shape[:2]
        r = radius if radius is not None else max(1.0, w / 64)
        pil = Image.fromarray(image)
        draw = ImageDraw.Draw(pil)
        for (x, y), color in zip(kps, colors):
            # PIL puts pixel i's centre at coordinate i (not i + 0.5): shift by half a pixel.
            px, py = (x + 1) * w / 2 - 0.5, (y + 1) * h / 2 - 0.5
            draw.ellipse([px - r, py - r, px + r, py + r], fill=tuple(int(c) for c in color),
                         outline=(0, 0, 0))
        out[b] = np.asarray(pil)
    return out[0] if single else out


def side_by_side(*videos) -> np.ndarray:
    """Concatenates uint8 images/videos `[..., H, W, 3]` along the width (equal heights)."""
    return np.concatenate([np.asarray(v) for v in videos], axis=-2)


def gray_to_rgb(mask) -> np.ndarray:
    """`[..., H, W, 1]` in [0, 1] -> uint8 `[..., H, W, 3]`."""
    mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
    return np.repeat(np.round(mask * 255).astype(np.uint8), 3, axis=-1)
