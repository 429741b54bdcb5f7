"""D_im (images) and D_seq (keypoint sequences)."""
import numpy as np
import pytest

from kpvp import configs, losses
from kpvp.models.discriminators import (ImageDiscriminator, SequenceDiscriminator,
                                        build_image_discriminator)

from helpers import model_checks


def sequences(rng, batch, steps, num_keypoints):
    return rng.uniform(-1, 1, (batch, steps, num_keypoints, 2)).astype(np.float32)


# === D_im ===

def test_image_discriminator_shared_checks(rng, tmp_path):
    discriminator = ImageDiscriminator(filters=(8, 16, 32))
    images = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    # Padded by 1 before each 'same' conv: 32 -> 17 -> 10 -> 6, and 8 after the padded head.
    logits = model_checks.check_network(discriminator, images, (3, 8, 8, 1), tmp_path)["output"]
    # A patch map per image: each image's logits do not depend on the rest of the batch.
    alone = discriminator(images[1:2])
    np.testing.assert_allclose(np.asarray(alone), np.asarray(logits)[1:2], atol=1e-5)


def test_dense_image_discriminator_shared_checks(rng, tmp_path):
    discriminator = ImageDiscriminator(filters=(8, 16, 32), head="dense", pad=0)
    images = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    logits = model_checks.check_network(discriminator, images, (3, 1), tmp_path)["output"]
    alone = discriminator(images[1:2])
    np.testing.assert_allclose(np.asarray(alone), np.asarray(logits)[1:2], atol=1e-5)
    # Six unpadded stride-2 convs take 128 to 2: the dense layer sees 2 x 2 x 2048 features.
    ours = ImageDiscriminator(head="dense", pad=0)
    ours(np.zeros((1, 128, 128, 3), np.float32))
    assert ours.logit.get_weights()[0].shape == (2 * 2 * 2048, 1)


def test_image_discriminator_defaults_are_the_authors_design():
    discriminator = ImageDiscriminator()
    logits = discriminator(np.zeros((2, 128, 128, 3), np.float32))
    assert logits.shape == (2, 6, 6, 1)  # a patch map, not one global logit
    assert [conv.conv.kernel.shape for conv in discriminator.convs][:2] == [
        (4, 4, 3, 64), (4, 4, 64, 128)]
    assert all(conv.norm_layer is None and conv.negative_slope == 0.01 and conv.use_bias
               for conv in discriminator.convs)
    assert discriminator.logit.kernel.shape == (3, 3, 2048, 1)
    assert not discriminator.logit.use_bias


def test_build_image_discriminator_and_bad_input():
    config = configs.get_config("synthetic", "tiny")
    discriminator = build_image_discriminator(config)
    assert (discriminator.head, discriminator.pad) == ("dense", 0)  # as before the authors' head
    size = config.image_size
    assert discriminator(np.zeros((2, size, size, 3), np.float32)).shape == (2, 1)
    with pytest.raises(ValueError, match="images"):
        discriminator(np.zeros((2, size, size, 1), np.float32))
    with pytest.raises(ValueError, match="head"):
        ImageDiscriminator(head="global")
    full = build_image_discriminator(configs.get_config("penn"))
    assert (full.head, full.pad, full.filters) == ("patch", 1, (64, 128, 256, 512, 1024, 2048))


def test_discriminator_losses_on_a_patch_map_are_the_mean_bce_over_the_map():
    real = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32).reshape(1, 2, 2, 1)
    fake = np.array([[-3.0, 1.0], [0.25, -0.5]], np.float32).reshape(1, 2, 2, 1)
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x.astype(np.float64)))  # noqa: E731
    # BCE with label 1: -log sigmoid(x); with label 0: -log(1 - sigmoid(x)), per map cell.
    expected_d = np.mean(-np.log(sigmoid(real))) + np.mean(-np.log(1.0 - sigmoid(fake)))
    expected_g = np.mean(-np.log(sigmoid(fake)))
    np.testing.assert_allclose(float(losses.discriminator_loss(real, fake)), expected_d,
                               rtol=1e-6)
    np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake)), expected_g,
                               rtol=1e-6)


# === D_seq ===

def test_sequence_discriminator_conditional_shared_checks(rng, tmp_path):
    discriminator = SequenceDiscriminator(units=8, num_classes=3)
    labels = np.eye(3, dtype=np.float32)[[0, 2]]
    model_checks.check_network(discriminator, [sequences(rng, 2, 6, 5), labels], (2, 1), tmp_path)


def test_sequence_discriminator_unconditional_shared_checks(rng, tmp_path):
    discriminator = SequenceDiscriminator(units=8, num_layers=2)
    logits = model_checks.check_network(discriminator, sequences(rng, 2, 6, 5), (2, 1), tmp_path)
    assert logits["output"].shape == (2, 1)


def test_unconditional_sequence_discriminator_has_no_class_input(rng):
    # The paper's (eq. 5) and the authors' D_seq: the LSTM reads the 2K coordinates alone.
    discriminator = SequenceDiscriminator(units=8, num_layers=2)
    keypoints = sequences(rng, 2, 6, 5)
    discriminator(keypoints)
    assert tuple(discriminator.lstms[0].weights[0].shape) == (2 * 5, 4 * 8)
    with pytest.raises(ValueError, match="alone"):
        discriminator([keypoints, np.eye(3, dtype=np.float32)[:2]])


def test_class_condition_changes_the_logit_and_accepts_integer_labels(rng):
    discriminator = SequenceDiscriminator(units=16, num_classes=4)
    keypoints = np.repeat(sequences(rng, 1, 7, 3), 4, axis=0)
    one_hot = np.eye(4, dtype=np.float32)
    by_one_hot = np.asarray(discriminator([keypoints, one_hot]))
    by_integer = np.asarray(discriminator([keypoints, np.arange(4)]))
    np.testing.assert_allclose(by_integer, by_one_hot, atol=1e-6)
    # Same motion, four classes: four different logits.
    assert len(np.unique(np.round(by_one_hot[:, 0], 6))) == 4


def test_sequence_discriminator_reads_the_whole_sequence(rng):
    discriminator = SequenceDiscriminator(units=16)
    keypoints = sequences(rng, 1, 10, 4)
    changed = keypoints.copy()
    changed[0, 0] += 0.5  # only the FIRST step differs: the LSTM must carry it to the end
    first, second = discriminator(keypoints), discriminator(changed)
    assert abs(float(first[0, 0]) - float(second[0, 0])) > 1e-6
    # The length may change between calls.
    assert discriminator(sequences(rng, 3, 4, 4)).shape == (3, 1)


def test_sequence_discriminator_rejects_bad_input(rng):
    conditional = SequenceDiscriminator(units=4, num_classes=2)
    conditional([sequences(rng, 1, 3, 2), np.eye(2, dtype=np.float32)[:1]])
    with pytest.raises(ValueError, match="labels"):
        conditional(sequences(rng, 1, 3, 2))
    with pytest.raises(ValueError, match="labels"):
        conditional([sequences(rng, 1, 3, 2), np.ones((1, 3), np.float32)])
    unconditional = SequenceDiscriminator(units=4)
    unconditional(sequences(rng, 1, 3, 2))
    with pytest.raises(ValueError, match="keypoints"):
        unconditional(np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="num_classes"):
        SequenceDiscriminator(units=4, num_classes=-1)
