"""A tiny stage-1 config and a fixed random feature network standing in for the perceptual one."""
import keras

from kpvp import configs


class TinyFeatures(keras.Model):
    """A fixed random 2-layer feature network standing in for VGG19 / deflated I3D."""

    def __init__(self):
        super().__init__()
        self.c1 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                                      kernel_initializer=keras.initializers.HeNormal(seed=1))
        self.c2 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                                      kernel_initializer=keras.initializers.HeNormal(seed=2))
        self.source = "random"

    def call(self, x):
        a = self.c1(x)
        return [a, self.c2(a)]


def tiny_config():
    c = configs.get_config("synthetic", "tiny")
    c.image_size = 32
    c.num_keypoints = 4
    c.stage1.gaussian_size = 8
    c.stage1.detector_filters = (8, 8, 8, 8)
    c.stage1.translator_filters = (8, 8, 8)
    c.stage1.discriminator_filters = (8, 8, 8)
    c.stage1.learning_rate = 1e-3
    # The paper's G loss; the tiny variant's coverage term has a test of its own.
    c.stage1.coverage_weight = 0.0
    return c
