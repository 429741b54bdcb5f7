"""The config structure shared by every data set.

Every data-set config (`synthetic.py`, `penn.py`, `nemo.py`, `mgif.py`) starts from
`get_base_config()` and changes values only, never keys, so that `--config.x=...` on the
command line is checked against one structure whatever `--dataset` is.

Numbers without a comment are the paper's (Kim et al. 2019, Sec. 4); `(code)` marks values
from the authors' TF1 release where the paper is silent; "ours" / "not in the paper" marks
kpvp's own choices. In the stage-1 section every field says where it comes from.
"""
import ml_collections

from kpvp.data.datasets import SYNTHETIC_CLASSES


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "synthetic"
    c.variant = "full"
    c.seed = 0
    c.image_size = 128
    c.num_keypoints = 40
    c.class_names = SYNTHETIC_CLASSES
    # Filled from class_names by `finalize()`; kept as a field so it is logged and overridable.
    c.num_classes = 4
    c.class_conditional = True

    # === Data ===
    d = c.data = ml_collections.ConfigDict()
    d.data_dir = ""  # empty: the data set's default location (see datasets/README.md)
    d.pair_offset_min = 8  # (code) target = source + randint(8, 11), both ends included
    d.pair_offset_max = 11
    # (code) target index mod T: pairs wrap around the end of the video. False (ours): the
    # source is drawn among the frames that have a target within the video.
    d.pair_wrap = True
    d.rotate_degrees = 10.0  # (code) stage-1 rotation about the centre (theirs in whole degrees)
    d.zoom_max = 1.0  # (code) no zoom: short side resized to image_size, random crop
    d.fill_mode = "CONSTANT"  # (code) PIL's rotate paints black corners; ours: "REFLECT"
    d.flip = True  # (code) horizontal flip in both stages
    d.pil_filters = True  # (code) one of ten PIL filters per pair
    d.seq_len = 33  # (code) k0 + 32 future keypoint frames
    d.seq_rotate_degrees = 15.0  # (code) stage-2 keypoint rotation (theirs in whole degrees)
    d.seq_scale_min = 0.7  # (code) scale U[0.7, 1.2] (theirs in steps of 0.01)
    d.seq_scale_max = 1.2
    # (code) False: rotate, flip, scale about the image centre (0, 0). True (ours): about the
    # first frame's keypoint centroid, so the figure keeps its place.
    d.seq_about_centroid = False
    d.seq_clip = False  # (code) no clipping; True (ours): clip keypoints to [-1, 1]
    d.eval_num_frames = 33  # k0 / x0 + 32 predicted frames
    # Long videos (ours): frames kept per video read from disk (0: all), every n-th frame, and
    # the decoded size past which a video is refused (skipped with its reason) rather than read.
    d.max_video_frames = 0
    d.video_stride = 1
    d.max_video_mb = 4096.0
    d.shuffle_buffer = 256
    d.deterministic = False
    d.num_parallel_calls = -1  # tf.data.AUTOTUNE
    d.cache = True
    # Synthetic data set only.
    d.synthetic_num_train = 512
    d.synthetic_num_test = 64
    d.synthetic_num_frames = 48

    # === Stage 1: keypoint detector Q + masked translator T vs D_im ===
    s1 = c.stage1 = ml_collections.ConfigDict()
    s1.batch_size = 16  # authors' code (paper: 32)
    s1.num_steps = 200_000  # ours: the paper trains "until convergence", the authors' code 30M
    s1.learning_rate = 1e-4  # paper
    s1.beta_1 = 0.5  # paper
    s1.beta_2 = 0.999  # paper
    s1.lr_decay_rate = 0.95  # paper
    s1.lr_decay_steps = 20_000  # paper
    s1.lr_staircase = False  # (code) continuous decay (tf.train.exponential_decay); True: floor
    s1.perceptual_weight = 1.0  # paper: lambda1
    s1.adversarial_weight = 1.0  # authors' code: G loss = perceptual + adversarial, 1:1
    # auto: VGG19 ImageNet (paper; local file, Keras cache or download), falling back to i3d2d
    # with a warning only when the download fails. vgg19: no fallback.
    s1.perceptual_network = "auto"  # auto | vgg19 | i3d2d | random (paper, code: vgg19)
    s1.vgg19_weights = ""  # ours: path to a local VGG19 ImageNet .h5
    # Authors' code: IMM-style marginal softmaxes over rows and columns ("marginal"); paper
    # eq. 1: one softmax over the whole heatmap ("joint").
    s1.softmax_mode = "marginal"
    # Divides Q's heatmap logits before the softmax (SpatialSoftmax). Ours; paper and authors'
    # code: 1, at which a fresh authors' Q puts every keypoint within 2 px of the centre.
    s1.softmax_temperature = 0.1
    # Normalisation in Q and T: "batch" (authors' code), "instance" (ours; GroupNormalization(
    # groups=-1): the same result on several replicas, where batch statistics are per replica),
    # "none".
    s1.norm = "batch"
    s1.bn_momentum = 0.999  # authors' code: tf.contrib batch_norm decay (Keras's default: 0.99)
    s1.bn_epsilon = 1e-5  # authors' code (Keras's default: 1e-3)
    s1.conv_bias = True  # authors' code: every conv of Q and T has a bias, also before its norm
    # Ours: before export, Q's and T's batch-norm statistics are averaged over this many
    # training batches (0 = keep the moving averages, which at momentum 0.999 lag a short run).
    s1.bn_recalibration_batches = 100
    s1.gaussian_size = 32  # authors' code: gaussian maps rendered at 32x32
    s1.gaussian_inv_std = 14.3  # authors' code: exp(-d^2 * 14.3^2), d in [-1, 1] units
    s1.detector_filters = (32, 64, 128, 256)  # authors' code: Q's encoder widths
    # Q's decoder: "authors" (authors' code: 4 convs per level at half the encoder's width) or
    # "light" (ours: 1 conv per level); kpvp/models/keypoint_detector.py.
    s1.detector_decoder = "authors"
    # Which translator T is: "masked" (paper eq. 3, kpvp/models/translator.py); other designs
    # register themselves in kpvp.models.translator.TRANSLATORS.
    s1.translator = "masked"
    # "first_order" (Siarohin et al., not the paper's T; kpvp/models/first_order.py): Q also
    # gives each keypoint a 2x2 Jacobian; widths of its encoder (decoder mirrors), residual
    # blocks, dense-motion hourglass widths, the dense motion's resolution (image_size / this)
    # and its keypoint gaussians' inv_std ([-1, 1] units); warped_skips: every encoder level,
    # warped, feeds the decoder (ours, the tiny variant's); False: Siarohin et al.'s generator.
    s1.first_order_filters = (64, 128, 256)
    s1.first_order_residual = 2
    s1.first_order_motion_filters = (64, 128, 256)
    s1.first_order_motion_downscale = 4
    s1.first_order_kp_inv_std = 7.0
    s1.first_order_warped_skips = False
    # "light" (ours, for serving; kpvp/models/light_translator.py): the source warped by the
    # keypoints (warp_inv_std, warp_background) plus a small U-Net's correction, its widths at
    # image_size / 2, / 4, ... (the gaussian maps join at gaussian_size), its normalisation
    # (none: nothing to recalibrate, fewer ops per frame) and the correction's initial share.
    s1.light_filters = (16, 32, 64)
    s1.light_norm = "none"
    s1.light_initial_crude_share = 0.1
    s1.translator_filters = (64, 128, 256)  # authors' code: T's decoder widths (encoder: half)
    # T's decoder: "plain" (authors' code: no skip connections) or "unet" (ours: a U-Net at
    # gaussian_size); kpvp/models/translator.py.
    s1.translator_decoder = "plain"
    s1.translator_crude_activation = "linear"  # authors' code (ours: "tanh")
    # What T's sigmoid mask head weighs in eq. 3, v_hat = m * s + (1 - m) * v_crude: "source"
    # (paper, authors' code: the head is m) or "crude" (ours: the head is 1 - m).
    s1.translator_mask_weighs = "source"
    # The share of v_crude in eq. 3 at initialisation, set through the mask head's bias: 0.5 is
    # a zero bias (the authors' code); experiments/README.md, "Paper-small: an open mask".
    s1.translator_initial_crude_share = 0.5
    # Ours, not in the paper: T blends its crude image with the source warped by the keypoints
    # instead of the source itself (kpvp/ops/warping.py); without it the authors' T copied the
    # source on a CPU budget (experiments/README.md, "Paper-small: what makes it learn").
    s1.translator_warp = True
    s1.warp_inv_std = 10.0  # ours: reach of each keypoint in the warp, [-1, 1] units
    s1.warp_background = 0.01  # ours: weight of the still background against a keypoint's peak
    # Ours, not in the paper: Minderer et al.'s temporal separation loss on (k_s, k_v), weight
    # and gaussian radius in [-1, 1] units (0 = off; their Human3.6M settings were 10 and 0.1).
    s1.separation_weight = 0.0
    s1.separation_sigma = 0.1
    # Ours, not in the paper: a loss on the share of the motion between the two frames of a
    # pair that no keypoint is near (`kpvp.losses.motion_coverage_loss`; 0 = off), and the
    # keypoints' gaussian radius in it, in [-1, 1] units. It pulls keypoints onto moving parts;
    # without it (and the temperature above) the authors' Q learned no keypoints on a CPU
    # budget (experiments/README.md, "Paper-small: what makes it learn").
    s1.coverage_weight = 50.0
    s1.coverage_sigma = 0.08
    # Ours, not in the paper: Q's keypoints of a target frame seen through a random affine map
    # should be the map's image of the target's keypoints (`kpvp.losses.equivariance_loss`;
    # 0 = off); the maps rotate within +-degrees, scale within 1 +- scale, shift within +-shift.
    s1.equivariance_weight = 0.0
    s1.equivariance_rotate_degrees = 15.0
    s1.equivariance_scale = 0.1
    s1.equivariance_shift = 0.1
    # With Jacobians (translator "first_order"): the equivariance term adds this times the
    # Jacobians' own equivariance error (`kpvp.losses.jacobian_equivariance_loss`).
    s1.equivariance_jacobian_weight = 1.0
    # Ours, not in the paper: the mean pixel L1 between the target and T's image (0 = off),
    # beside the perceptual loss (experiments/README.md, "A decaying learning rate and a pixel
    # L1 term").
    s1.pixel_l1_weight = 0.0
    # Image scales of the perceptual loss (Siarohin et al.: a pyramid); each scale's image side
    # must stay a multiple of 32 for the feature network. (1.0,): the paper's single scale.
    s1.perceptual_scales = (1.0,)
    s1.discriminator_filters = (64, 128, 256, 512, 1024, 2048)  # authors' code: stride-2 convs
    # D_im's output: "patch" (authors' code: a conv3x3 to a patch logit map, BCE averaged over
    # it) or "dense" (ours: one global logit from a dense layer).
    s1.discriminator_head = "patch"
    s1.discriminator_pad = 1  # authors' code: zero padding before each D_im conv (ours: 0)
    # Ours: the networks' dtype policy (`kpvp.models.precision`: float32, mixed_bfloat16,
    # mixed_float16 with loss scaling, or auto). float32, as bfloat16 is faster only on hardware
    # with bf16 units and not yet compared for learning (experiments/README.md).
    s1.mixed_precision = "float32"
    s1.jit_compile = "auto"  # ours: Keras' compile(jit_compile=): auto (XLA on a GPU), true, false
    s1.checkpoint_every = 1000  # ours
    s1.log_every = 100  # ours
    s1.image_summary_every = 1000  # ours
    s1.keep_checkpoints = 3  # ours
    # Ours: end the stage early (with a checkpoint) after this many minutes of training in one
    # invocation; rerunning resumes it. 0: train to num_steps.
    s1.max_minutes = 0.0

    # === Stage 2: motion cVAE M vs D_seq ===
    s2 = c.stage2 = ml_collections.ConfigDict()
    s2.batch_size = 16  # authors' code (paper: 32)
    s2.num_steps = 100_000  # ours: the paper trains "until convergence", the authors' code 30M
    s2.learning_rate = 1e-4
    s2.beta_1 = 0.5
    s2.beta_2 = 0.999
    s2.lr_decay_rate = 0.95
    s2.lr_decay_steps = 20_000
    s2.lr_staircase = False  # (code) continuous decay (tf.train.exponential_decay); True: floor
    # Paper eq. 5: L_M = KL + lambda2 * L1 - lambda3 * log D_seq, lambda2 = 1000, lambda3 = 2.
    s2.l1_weight = 1000.0  # lambda2 (paper and authors' code)
    s2.kl_weight = 1.0  # KL has no lambda in eq. 5 (the authors' code also uses 1)
    s2.mixed_precision = "float32"  # ours: as stage1.mixed_precision
    s2.jit_compile = "auto"  # ours: as stage1.jit_compile
    s2.adversarial_weight = 1.0  # lambda3: authors' code 1 (paper: 2)
    # Not in the paper: the KL weight rises from 0 over this many steps (0: off).
    s2.kl_warmup_steps = 0
    s2.lstm_units = 1024  # (code) 2 x 1024 LSTM
    s2.lstm_layers = 2
    s2.latent_dim = 64  # (code) z is 64-d
    # (code) the encoder LSTM reads k_1..k_T; [k_0, a] join its last state in the posterior
    # layer ("head"). Ours: "every_step" feeds [k_t, k_0, a] to the LSTM at every step.
    s2.encoder_condition = "head"
    s2.encoder_fc = 0  # (code) no hidden layer before the posterior; ours: a ReLU FC this wide
    # How the posterior gives sigma (kpvp/models/motion_cvae.py): "softplus" (ours: the authors'
    # one layer, softplus(.) + 1e-4 for their ReLU), "relu" (code, as written) or "log_var"
    # (ours: two linear heads, mu and log sigma^2).
    s2.posterior = "softplus"
    s2.decoder_fc = 32  # (code) FC32 input at step 1
    s2.decoder_fc_activation = "relu"  # (code) tf.contrib's default; ours: "linear"
    # Not in the paper: M decodes each keypoint's displacement from k_0 instead of absolute
    # coordinates (kpvp/models/motion_cvae.py; experiments/README.md).
    s2.offsets = False
    # The paper conditions the decoder LSTM on [z, k_0, a]; the authors' code feeds FC([z, k_0,
    # a]) at step 1 only (False). True feeds it at every step (kpvp/models/motion_cvae.py).
    s2.condition_every_step = False
    s2.discriminator_units = 1024  # (code) 2 x 1024 LSTM
    s2.discriminator_layers = 2  # (code)
    # Paper eq. 5 and the authors' code: D_seq never sees the class; ours: True adds it per step.
    s2.discriminator_conditional = False
    s2.checkpoint_every = 1000
    s2.log_every = 100
    s2.image_summary_every = 1000
    s2.keep_checkpoints = 3
    s2.max_minutes = 0.0

    # === Distillation (ours): a light T trained to redraw a trained run's T ===
    # `python -m kpvp.train --stage=distill --teacher=RUN`: the student `stage1.translator`
    # ("light") learns the teacher's output on training pairs, with the teacher's Q frozen.
    ds = c.distill = ml_collections.ConfigDict()
    ds.teacher = ""  # the teacher's run directory (set by --teacher, kept for resuming)
    ds.batch_size = 16
    ds.num_steps = 20_000
    ds.learning_rate = 1e-3  # a small network regressing a fixed target
    ds.beta_1 = 0.9
    ds.beta_2 = 0.999
    ds.lr_decay_rate = 0.5
    ds.lr_decay_steps = 10_000
    ds.lr_staircase = False
    ds.l1_weight = 1.0  # L1 between the student's and the teacher's images
    # The perceptual loss against the teacher's image (stage1.perceptual_network; 0 = off: it
    # costs the feature network's forward and backward passes every step).
    ds.perceptual_weight = 0.0
    ds.mixed_precision = "float32"  # as stage1.mixed_precision
    ds.jit_compile = "auto"
    ds.checkpoint_every = 1000
    ds.log_every = 100
    ds.image_summary_every = 1000
    ds.keep_checkpoints = 3
    ds.max_minutes = 0.0

    # === Evaluation ===
    e = c.eval = ml_collections.ConfigDict()
    e.num_videos = 0  # 0: every test video
    e.num_train_videos = 0  # real train videos for the I3D action probe and FVD floor; 0: all
    # (code) FVD compares frames 1..32 of the strided test clip (x0 excluded) on both sides.
    e.fvd_num_frames = 32
    e.batch_size = 8
    # Keypoint sequences M samples per test video and per class condition for the action
    # metric (keypoints only, no rendering; many more than the rendered videos).
    e.motion_samples = 4
    # The keypoint-sequence action classifier sees only how the keypoints move from the first
    # frame, not the poses: a first pose alone (a walker's side view) would otherwise tell the
    # class, and a generator that holds it still would score high (experiments/README.md).
    e.classifier_motion_only = True
    # Untrained detectors (seeds seed, seed + 1, ...) whose keypoint-regression errors give the
    # baseline's spread: a trained Q is only better if it beats all of them.
    e.untrained_seeds = 3
    return c


# Fields added after runs were saved, with the values those runs were built with: a saved
# config.json that lacks one gets this value (`kpvp.cli.load_saved_config`), not the default.
LEGACY_VALUES = {
    "stage1.bn_recalibration_batches": 0,
    "stage1.lr_staircase": True,
    "stage2.lr_staircase": True,
    "stage2.encoder_condition": "every_step",
    "stage2.posterior": "log_var",
    "stage2.decoder_fc_activation": "linear",
    "stage2.discriminator_layers": 1,
    "stage2.discriminator_conditional": True,
    "data.pair_wrap": False,
    "data.zoom_max": 1.1,
    "data.fill_mode": "REFLECT",
    "data.seq_about_centroid": True,
    "data.seq_clip": True,
    "stage1.bn_momentum": 0.99,
    "stage1.bn_epsilon": 1e-3,
    "stage1.conv_bias": False,
    "stage1.detector_decoder": "light",
    "stage1.translator_decoder": "unet",
    "stage1.translator_crude_activation": "tanh",
    "stage1.translator_mask_weighs": "crude",
    "stage1.discriminator_head": "dense",
    "stage1.discriminator_pad": 0,
}


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Derives dependent fields after overrides; validates what can be checked cheaply."""
    c.num_classes = len(c.class_names)
    if c.image_size % 32:
        raise ValueError(f"config.image_size must be a multiple of 32, got {c.image_size}")
    if not 1 <= c.data.pair_offset_min <= c.data.pair_offset_max:
        raise ValueError(
            "config.data.pair_offset_min/max must satisfy 1 <= min <= max, got "
            f"{c.data.pair_offset_min}, {c.data.pair_offset_max}")
    if c.num_keypoints < 1:
        raise ValueError(f"config.num_keypoints must be >= 1, got {c.num_keypoints}")
    return c


def make_tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A variant that runs every part in minutes on a 2-core CPU (tests, the README's demo)."""
    c.variant = "tiny"
    c.image_size = 64
    c.num_keypoints = min(c.num_keypoints, 12)
    c.data.shuffle_buffer = 64
    c.data.synthetic_num_train = 96
    c.data.synthetic_num_test = 16
    c.data.synthetic_num_frames = 40
    # Our sampling variants, which the README's demo numbers were measured with.
    c.data.pair_wrap = False
    c.data.zoom_max = 1.1
    c.data.fill_mode = "REFLECT"
    c.data.seq_about_centroid = True
    c.data.seq_clip = True
    c.stage1.batch_size = 8
    c.stage1.num_steps = 1000  # minutes on 2 CPU cores (experiments/README.md)
    c.stage1.gaussian_size = 16
    # The paper's 14.3 (sigma 0.05) would be narrower than a cell of these 16x16 maps.
    c.stage1.gaussian_inv_std = 5.0
    c.stage1.detector_filters = (16, 32, 64, 64)
    c.stage1.translator_filters = (32, 64, 64)
    c.stage1.discriminator_filters = (32, 64, 128, 128)
    # Ours: the lighter networks and Keras defaults the README's demo numbers were measured with.
    c.stage1.softmax_mode = "joint"
    c.stage1.bn_momentum = 0.99
    c.stage1.bn_epsilon = 1e-3
    c.stage1.conv_bias = False
    c.stage1.detector_decoder = "light"
    c.stage1.translator_decoder = "unet"
    c.stage1.translator_crude_activation = "tanh"
    c.stage1.translator_mask_weighs = "crude"
    c.stage1.discriminator_head = "dense"
    c.stage1.discriminator_pad = 0
    c.stage1.bn_recalibration_batches = 0  # the demo exports the moving averages
    # The first-order T (when chosen) at a CPU size: dense motion at half resolution, every
    # encoder level warped into the decoder (experiments/README.md).
    c.stage1.first_order_filters = (32, 64, 128)
    c.stage1.first_order_motion_filters = (32, 64, 128)
    c.stage1.first_order_motion_downscale = 2
    c.stage1.first_order_warped_skips = True
    c.stage1.checkpoint_every = 100
    c.stage1.log_every = 20
    c.stage1.image_summary_every = 100
    c.stage2.batch_size = 16
    c.stage2.adversarial_weight = 2.0  # the paper's lambda3, which the tiny runs were tuned with
    c.stage2.num_steps = 3000
    c.stage2.learning_rate = 1e-3  # at 1e-4 the periodic actions' samples barely move
    # At this budget the paper's M ignores its class; these two make it follow the class.
    c.stage2.offsets = True
    c.stage2.condition_every_step = True
    c.stage2.lstm_units = 128
    c.stage2.latent_dim = 16
    # kpvp's M and D_seq before they followed the authors' code; the demo's numbers come from
    # these (encoder and D_seq conditioned at every step, log-variance head, linear decoder FC).
    c.stage2.encoder_condition = "every_step"
    c.stage2.encoder_fc = 64
    c.stage2.posterior = "log_var"
    c.stage2.decoder_fc_activation = "linear"
    c.stage2.discriminator_units = 64
    c.stage2.discriminator_layers = 1
    c.stage2.discriminator_conditional = True
    c.stage1.lr_staircase = c.stage2.lr_staircase = True  # the demo's schedule (staircase)
    c.stage2.checkpoint_every = 100
    c.stage2.log_every = 20
    c.stage2.image_summary_every = 100
    c.distill.batch_size = 8
    c.distill.num_steps = 1000
    c.distill.lr_decay_steps = 500
    c.distill.checkpoint_every = 100
    c.distill.log_every = 20
    c.distill.image_summary_every = 100
    c.eval.num_videos = 16
    c.eval.num_train_videos = 48
    c.eval.batch_size = 4
    c.eval.untrained_seeds = 5
    return c


def make_paper_small(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The full config's networks and losses exactly, with only what a CPU forces changed: image
    size 64, smaller batches, fewer steps. It shows on a CPU whether the paper's configuration
    learns before GPU days are spent on it (experiments/README.md, "paper-small")."""
    c.variant = "paper_small"
    c.image_size = 64
    # T's inputs live at a quarter of the image size; the gaussian keeps its width in map cells.
    c.stage1.gaussian_size = c.image_size // 4
    c.stage1.gaussian_inv_std = c.stage1.gaussian_inv_std * c.stage1.gaussian_size / 32
    c.stage1.batch_size = 8
    c.stage1.num_steps = 2000
    c.stage1.checkpoint_every = 200
    c.stage1.log_every = 50
    c.stage1.image_summary_every = 500
    c.stage2.num_steps = 5000
    c.stage2.checkpoint_every = 500
    c.stage2.log_every = 100
    c.stage2.image_summary_every = 1000
    c.data.synthetic_num_train = 128
    c.data.synthetic_num_test = 32
    c.eval.num_videos = 32
    c.eval.num_train_videos = 64
    return c


def make_authors(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The full config without kpvp's three additions to stage 1 (the softmax temperature 0.1,
    the motion-coverage loss, T's warped source): the authors' code exactly, to compare with
    their runs."""
    c.variant = "authors"
    c.stage1.softmax_temperature = 1.0
    c.stage1.coverage_weight = 0.0
    c.stage1.translator_warp = False
    return c


VARIANT_MAKERS = {"tiny": make_tiny, "paper_small": make_paper_small, "authors": make_authors}


def apply_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
    """`c` (a data set's full config) turned into `variant`: full, tiny, paper_small or
    authors."""
    if variant == "full":
        return c
    if variant not in VARIANT_MAKERS:
        raise ValueError(f"Unknown config variant {variant!r}; expected full or one of "
                         f"{sorted(VARIANT_MAKERS)}")
    return VARIANT_MAKERS[variant](c)
