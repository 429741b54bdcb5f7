"""The networks (no training logic). Importing this package registers every network with Keras,
so `keras.models.load_model("detector.keras")` needs no `custom_objects`.

* `KeypointDetector` (Q): hourglass + spatial softmax -> keypoints.
* `MaskedTranslator` (T): masked U-Net redrawing the source image at target keypoints.
* `FirstOrderTranslator` (T, `stage1.translator=first_order`): Siarohin et al.'s local affine
  keypoints, dense motion with occlusion (`dense_motion`) and warping generator.
* `LightTranslator` (T, `stage1.translator=light`): the source warped by the keypoints plus a
  small correction U-Net, for fast generation.
* `ImageDiscriminator` (D_im), `SequenceDiscriminator` (D_seq).
* `MotionCVAE` (M): class-conditional LSTM cVAE over keypoint sequences.
* `layers`: the keypoint and conv-block layers the networks are made of.
* `lstm.LSTM`: `keras.layers.LSTM` with its kernels cast once per call (M and D_seq).
* `i3d.InceptionI3D`: I3D for FVD, and deflated to 2D for `perceptual.PerceptualNetwork`, the
  feature network of stage 1's perceptual loss.

Keras finds saved networks by their registered names (`kpvp>ClassName`), not by module path,
so `.keras` files saved before a network moved between modules still load.
"""
from kpvp.models import i3d, layers, perceptual  # noqa: F401  (registers their classes)
from kpvp.models.discriminators import ImageDiscriminator, SequenceDiscriminator
from kpvp.models.first_order import FirstOrderTranslator
from kpvp.models.keypoint_detector import KeypointDetector
from kpvp.models.light_translator import LightTranslator
from kpvp.models.motion_cvae import MotionCVAE
from kpvp.models.translator import MaskedTranslator

__all__ = ["FirstOrderTranslator", "ImageDiscriminator", "KeypointDetector", "LightTranslator",
           "MaskedTranslator", "MotionCVAE", "SequenceDiscriminator"]
