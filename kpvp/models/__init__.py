"""The networks (no training logic). Importing this package registers every network with Keras,
so `keras.models.load_model("detector.keras")` needs no `custom_objects`.

* `KeypointDetector` (Q): hourglass + spatial softmax -> keypoints.
* `MaskedTranslator` (T): masked U-Net redrawing the source image at target keypoints.
* `ImageDiscriminator` (D_im), `SequenceDiscriminator` (D_seq).
* `MotionCVAE` (M): class-conditional LSTM cVAE over keypoint sequences.
"""
from kpvp.models.discriminators import ImageDiscriminator, SequenceDiscriminator
from kpvp.models.keypoint_detector import KeypointDetector
from kpvp.models.motion_cvae import MotionCVAE
from kpvp.models.translator import MaskedTranslator

__all__ = ["ImageDiscriminator", "KeypointDetector", "MaskedTranslator", "MotionCVAE",
           "SequenceDiscriminator"]
