"""Training: the two stages' trainers and the loop that runs them.

* `adversarial.AdversarialTrainer`: the alternating D / G `train_step` both stages share.
* `stage1.KeypointTranslationTrainer`: Q + T against D_im (perceptual + adversarial loss).
* `stage2.MotionGenerationTrainer`: M against D_seq (L1 + KL + adversarial loss).
* `loop`: `fit()` in checkpointed chunks, resume, NaN guard, LR schedule, strategies.
"""
