"""An untrained tiny run laid out as `kpvp.train` writes it, for generation, export and predict."""
import os

import keras
import numpy as np

from kpvp import configs
from kpvp.models import motion_cvae
from kpvp.models.keypoint_detector import KeypointDetector
from kpvp.models.translator import MaskedTranslator

SIZE, K = 32, 4


def tiny_config():
    c = configs.get_config("synthetic", "tiny")
    c.image_size, c.num_keypoints = SIZE, K
    c.data.seq_len = 10  # x0 + 9 predicted frames, the fewest I3D takes
    c.stage2.lstm_units, c.stage2.latent_dim, c.stage2.encoder_fc = 16, 4, 8
    return c


def untrained_motion_generator(config):
    """A built, untrained M of `config`. The tiny config's M decodes displacements from k0,
    whose zero-initialised output layer would hold k0 whatever z and the class: a random one
    (as any trained M has) makes samples depend on them."""
    generator = motion_cvae.build_motion_generator(config)
    generator.build()  # sampling alone does not build M: its weights would not be saved
    if generator.offsets:
        kernel = generator.output_dense.kernel
        kernel.assign(np.random.default_rng(0).normal(0, 0.1, kernel.shape).astype(np.float32))
    return generator


def save_tiny_run(workdir, mask_bias=None):
    """Writes untrained tiny Q, T, M exports the way `kpvp.train` lays them out."""
    keras.utils.set_random_seed(0)
    config = tiny_config()
    detector = KeypointDetector(K, (8, 8, 8, 8))
    translator = MaskedTranslator(SIZE, K, (8, 8, 8), gaussian_size=8)
    generator = untrained_motion_generator(config)
    images = np.zeros((1, SIZE, SIZE, 3), np.float32)
    kp = detector(images)
    translator([images, kp, kp])
    if mask_bias is not None:  # a mask head that never redraws: every frame is the source
        translator.mask_head.bias.assign(np.full((1,), mask_bias, np.float32))
    os.makedirs(workdir / "stage1")
    os.makedirs(workdir / "stage2")
    detector.save(workdir / "stage1" / "detector.keras")
    translator.save(workdir / "stage1" / "translator.keras")
    generator.save(workdir / "stage2" / "motion_generator.keras")
    return config


def random_images(n=2, h=SIZE, w=SIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
