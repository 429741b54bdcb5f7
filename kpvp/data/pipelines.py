"""tf.data pipelines: stage-1 frame pairs, stage-2 keypoint sequences, whole evaluation videos.

Every pipeline reads "data elements" (one video each: `frames` uint8 [T, H, W, 3], `label`,
`id`, optionally `joints` [T, 13, 2] and `visible` [T, 13]) from a source, by default
`kpvp.data.readers.open_source(config, split)`.

Stage 1 decodes every video once and keeps it in memory as uint8 at the working resolution:
the short side resized to `image_size` (training; the random crop happens later) or the
centre square resized to `image_size` x `image_size` (test). The cost is T * S * S' * 3 bytes
per video: at 128 x 128, 49 152 bytes a frame, 2.36 MB for a 48-frame synthetic video, so the
512 synthetic training videos take about 1.2 GB (the tiny config's 96 videos at 64 x 64 and 40
frames about 47 MB); 1172 Penn Action videos of ~70 frames at 128 x 170 take about 5 GB, which
is why the cache holds one working resolution rather than the decoded originals (0.9 MB a
frame).

Randomness: a Python `np.random.default_rng(seed)` draws which video and which frames form each
pair (sequentially, so it is reproducible), and every augmentation draws from stateless ops
keyed by `(seed, element number)`, so a parallel map computes the same numbers for the same
element whatever the thread order. `config.data.deterministic` only decides whether the
parallel map may hand out elements out of order (faster when one is slow); with it on, the
whole stream of batches is a function of the seed.
"""
import numpy as np
import tensorflow as tf
from absl import logging

from kpvp.data import augment, readers
from kpvp.ops import images as image_ops

# Fixed evaluation pairs per test video (stage-1 test split), evenly spread over the video.
EVAL_PAIRS_PER_VIDEO = 4

# Decoded stage-1 videos kept for the life of the process (config.data.cache), keyed by what
# decides their content: training builds a fresh dataset per resumed `fit()` segment and should
# not decode the data set again each time.
_DECODED = {}


def clear_cache():
    """Forgets the decoded videos kept by `stage1_dataset` (frees their memory)."""
    _DECODED.clear()


def _decoded_key(config, split, crop):
    d = config.data
    return (split, crop, config.dataset, d.data_dir, int(config.image_size), int(config.seed),
            tuple(config.class_names), int(d.synthetic_num_train), int(d.synthetic_num_test),
            int(d.synthetic_num_frames))


# === Helpers ===

def _parallel_calls(config):
    n = int(config.data.num_parallel_calls)
    return tf.data.AUTOTUNE if n < 0 else max(n, 1)


def _options(deterministic: bool):
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return options


def _open_source(config, split, crop):
    return readers.open_source(config, split, crop=crop)


def _check_element(element, index):
    frames = element.get("frames") if isinstance(element, dict) else None
    if frames is None:
        raise ValueError(f"data element {index}: expected a dict with 'frames', got "
                         f"{type(element).__name__}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(
            f"data element {index} ({element.get('id', '?')}): 'frames' must be uint8 "
            f"[T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    return frames


def _joint_arrays(element, num_frames):
    joints = np.asarray(element["joints"], np.float32)
    if joints.ndim != 3 or joints.shape[0] != num_frames or joints.shape[2] != 2:
        raise ValueError(f"data element {element.get('id', '?')}: 'joints' must be float32 "
                         f"[{num_frames}, J, 2], got {joints.shape}")
    visible = element.get("visible")
    visible = (np.ones(joints.shape[:2], bool) if visible is None
               else np.asarray(visible, bool).reshape(joints.shape[:2]))
    return joints, visible


def _cache_videos(source, size: int, crop: bool, split: str):
    """Decodes every video of `source` once, one at a time, keeping only the working size.

    Returns `(cache, with_joints)`: a list of dicts (`frames` uint8, `joints`, `visible`,
    `label`, `id`) and whether joints are present (the source's `has_joints`, else whether the
    first element has them).
    """
    with_joints = getattr(source, "has_joints", None)
    cache = []
    for index, element in enumerate(source):
        frames = _check_element(element, index)
        if with_joints is None:
            with_joints = element.get("joints") is not None
        entry = {"label": int(element.get("label", 0)), "id": str(element.get("id", index))}
        joints = visible = None
        if with_joints:
            joints, visible = _joint_arrays(element, len(frames))
        if min(frames.shape[1:3]) != size or (crop and frames.shape[1:3] != (size, size)):
            frames, joints = image_ops.resize_with_keypoints(frames, size, joints, crop)
            frames = frames.numpy()
            joints = None if joints is None else joints.numpy()
        entry["frames"] = np.ascontiguousarray(frames)
        if with_joints:
            entry["joints"], entry["visible"] = joints, visible
        cache.append(entry)
    if not cache:
        raise ValueError(f"The {split!r} source holds no usable videos "
                         f"(skipped: {len(getattr(source, 'skipped', None) or [])}); check "
                         "config.data.data_dir and the data set layout in datasets/README.md")
    megabytes = sum(e["frames"].nbytes for e in cache) / 2**20
    logging.info("Cached %d %s videos in memory (%.1f MB)", len(cache), split, megabytes)
    return cache, bool(with_joints)


# === Stage 1 ===

def stage1_dataset(config, split: str = "train", seed=None, source=None) -> tf.data.Dataset:
    """Batches of stage-1 pairs (source s, target v = a later frame of the same video).

    Args:
      config: the run config (`config.image_size`, `config.data.*`, `config.stage1.batch_size`).
      split: "train" (augmented, endless, drop_remainder) or "test" (fixed pairs, one pass).
      seed: int; defaults to `config.seed`.
      source: a sequence of data elements; defaults to `readers.open_source(config, split)`,
        whose decoded videos are then kept for later calls when `config.data.cache` is on
        (`clear_cache()` frees them).
    Returns:
      A dataset of dicts `source`, `target`: float32 [B, S, S, 3] in [-1, 1] (S =
      config.image_size) and, when the data set has joints, `source_joints`, `target_joints`
      float32 [B, 13, 2] (same transform as the images; they may leave [-1, 1] after a rotation)
      and `source_visible`, `target_visible` bool [B, 13].

    Pairs: the offset d is drawn from [pair_offset_min, pair_offset_max]. `data.pair_wrap`
    (authors): the source index is uniform over all T frames and the target is (source + d) mod
    T, so pairs near the end wrap around to the start. Otherwise (ours): d is shortened to T - 1
    for videos too short for it and the source drawn among the frames that have a target d
    frames later. Each epoch visits every video once in a fresh random order.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seed = int(config.seed if seed is None else seed)
    size = int(config.image_size)
    training = split == "train"
    # Training keeps the whole short-side-resized frame: the random crop happens per pair.
    crop = not training
    key = _decoded_key(config, split, crop) if source is None and config.data.cache else None
    if key in _DECODED:
        cache, with_joints = _DECODED[key]
    else:
        if source is None:
            source = _open_source(config, split, crop=crop)
        cache, with_joints = _cache_videos(source, size, crop=crop, split=split)
        if key is not None:
            _DECODED[key] = cache, with_joints
    lo, hi = int(config.data.pair_offset_min), int(config.data.pair_offset_max)
    if not 1 <= lo <= hi:
        raise ValueError(f"config.data.pair_offset_min/max must satisfy 1 <= min <= max, got "
                         f"{lo}, {hi}")
    batch_size = int(config.stage1.batch_size)

    signature = {"frames": tf.TensorSpec([2, None, None, 3], tf.uint8)}
    if with_joints:
        signature["joints"] = tf.TensorSpec([2, None, 2], tf.float32)
        signature["visible"] = tf.TensorSpec([2, None], tf.bool)

    def pair(entry, s, t):
        element = {"frames": entry["frames"][[s, t]]}
        if with_joints:
            element["joints"] = entry["joints"][[s, t]]
            element["visible"] = entry["visible"][[s, t]]
        return element

    wrap = bool(config.data.pair_wrap)

    def train_pairs():
        rng = np.random.default_rng(seed)
        while True:
            for v in rng.permutation(len(cache)):
                entry = cache[v]
                length = len(entry["frames"])
                d = int(rng.integers(lo, hi + 1))
                if wrap:
                    s = int(rng.integers(0, length))
                    yield pair(entry, s, (s + d) % length)
                else:
                    d = min(d, length - 1)
                    s = int(rng.integers(0, length - d))
                    yield pair(entry, s, s + d)

    def test_pairs():
        d_fixed = (lo + hi) // 2
        for entry in cache:
            d = min(d_fixed, len(entry["frames"]) - 1)
            last = len(entry["frames"]) - 1 - d
            for s in sorted(set(np.linspace(0, last, EVAL_PAIRS_PER_VIDEO).round().astype(int))):
                yield pair(entry, int(s), int(s) + d)

    ds = tf.data.Dataset.from_generator(train_pairs if training else test_pairs,
                                        output_signature=signature)
    data = config.data

    def to_batch_element(element, images, joints):
        out = {"source": images[0], "target": images[1]}
        if with_joints:
            out.update(source_joints=joints[0], target_joints=joints[1],
                       source_visible=element["visible"][0],
                       target_visible=element["visible"][1])
        return out

    def augment_fn(index, element):
        images, joints = augment.augment_pair(
            element["frames"], tf.stack([tf.constant(seed, tf.int64), index]), size,
            joints=element.get("joints"), rotate_degrees=float(data.rotate_degrees),
            flip=bool(data.flip), pil_filters=bool(data.pil_filters),
            zoom_max=float(data.zoom_max), fill_mode=str(data.fill_mode))
        return to_batch_element(element, images, joints)

    def plain_fn(element):
        images = image_ops.to_model_range(element["frames"])
        images = tf.ensure_shape(images, [2, size, size, 3])
        return to_batch_element(element, images, element.get("joints"))

    if training:
        ds = ds.enumerate().map(augment_fn, num_parallel_calls=_parallel_calls(config))
    else:
        ds = ds.map(plain_fn, num_parallel_calls=_parallel_calls(config))
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(data.deterministic if training else True))


# === Stage 2 ===

def temporal_sample(keypoints, seq_len: int, start=0):
    """Samples `seq_len` frames of a keypoint track `[T, K, 2]` -> `[seq_len, K, 2]`.

    The authors' rule (data/sequence_dataloader.py), `start` in [0, max_start(T, seq_len)]:
    T >= seq_len: frames start, start + stride, ... with stride = floor(T / seq_len).
    T < seq_len: frames start, start + 1/2, start + 1, ... (the next seq_len // 2 + 1 frames at
    half speed, the half steps the mean of their neighbours). For T < seq_len // 2 + 1, where
    the authors' loader fails, positions past the last frame repeat it (a still ending).
    """
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    length = tf.shape(keypoints)[0]

    def strided():
        stride = length // seq_len
        return tf.gather(keypoints, start + stride * tf.range(seq_len))

    def half_speed():
        position = tf.cast(start, tf.float32) + 0.5 * tf.range(seq_len, dtype=tf.float32)
        position = tf.minimum(position, tf.cast(length - 1, tf.float32))
        low = tf.cast(tf.floor(position), tf.int32)
        high = tf.minimum(low + 1, length - 1)
        weight = (position - tf.cast(low, tf.float32))[:, tf.newaxis, tf.newaxis]
        return (1.0 - weight) * tf.gather(keypoints, low) + weight * tf.gather(keypoints, high)

    out = tf.cond(length >= seq_len, strided, half_speed)
    return tf.ensure_shape(out, [seq_len] + keypoints.shape[1:].as_list())


def max_start(length, seq_len: int):
    """Largest `start` of `temporal_sample` the authors draw for a track of `length` frames.

    T >= seq_len: T - seq_len * stride; T < seq_len: T - (seq_len // 2 + 1) (0 if negative).
    """
    stride = length // seq_len
    span = tf.where(stride >= 1, seq_len * stride, seq_len // 2 + 1)
    return tf.maximum(length - span, 0)


def _check_sequences(sequences):
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError("sequences must be a non-empty list of dicts {keypoints: float32 "
                         "[T, K, 2], label: int}")
    arrays, labels = [], []
    for i, item in enumerate(sequences):
        if not isinstance(item, dict) or "keypoints" not in item:
            raise ValueError(f"sequences[{i}] must be a dict with 'keypoints' and 'label'")
        kp = np.asarray(item["keypoints"], np.float32)
        if kp.ndim != 3 or kp.shape[-1] != 2 or kp.shape[0] < 1:
            raise ValueError(f"sequences[{i}]['keypoints'] must be [T, K, 2] with T >= 1, got "
                             f"{kp.shape}")
        if arrays and kp.shape[1] != arrays[0].shape[1]:
            raise ValueError(f"sequences[{i}]['keypoints'] has K={kp.shape[1]}, expected "
                             f"K={arrays[0].shape[1]} like sequences[0]")
        arrays.append(kp)
        labels.append(int(item.get("label", 0)))
    return arrays, np.asarray(labels, np.int32)


def stage2_dataset(sequences, config, training: bool = True, seed=None) -> tf.data.Dataset:
    """Batches of keypoint sequences for the motion generator M (stage 2).

    Args:
      sequences: list of dicts `{keypoints: float32 [T_i, K, 2], label: int}` (pseudo-labels).
      config: the run config (`config.data.seq_len`, `seq_*` augmentation, stage2.batch_size).
      training: random start, keypoint augmentation, endless shuffled epochs, drop_remainder;
        otherwise start 0, no augmentation, one pass in the given order.
      seed: int; defaults to `config.seed`.
    Returns:
      A dataset of dicts `keypoints` float32 [B, seq_len, K, 2], `label` int32 [B].
    """
    arrays, labels = _check_sequences(sequences)
    seed = int(config.seed if seed is None else seed)
    seq_len = int(config.data.seq_len)
    num_keypoints = arrays[0].shape[1]
    lengths = np.asarray([len(a) for a in arrays], np.int64)
    tracks = tf.RaggedTensor.from_row_lengths(np.concatenate(arrays), lengths)
    count = len(arrays)
    data = config.data

    def fetch(video):
        keypoints = tf.ensure_shape(tracks[video], [None, num_keypoints, 2])
        return keypoints, tf.gather(labels, video)

    def train_fn(index):
        epoch, position = index // count, index % count
        # A fresh permutation of all sequences per epoch, without a shuffle buffer.
        video = tf.random.experimental.index_shuffle(
            position, seed=tf.stack([tf.constant(seed, tf.int64), epoch]),
            max_index=count - 1)
        keypoints, label = fetch(video)
        seeds = augment.split_seed(tf.stack([tf.constant(seed, tf.int64), index]), 2)
        limit = max_start(tf.shape(keypoints)[0], seq_len)
        start = tf.random.stateless_uniform([], seed=seeds[0], maxval=limit + 1, dtype=tf.int32)
        keypoints = temporal_sample(keypoints, seq_len, start)
        keypoints = augment.augment_keypoint_sequence(
            keypoints, seeds[1], rotate_degrees=float(data.seq_rotate_degrees),
            scale_range=(float(data.seq_scale_min), float(data.seq_scale_max)),
            flip=bool(data.flip), about_centroid=bool(data.seq_about_centroid),
            clip=bool(data.seq_clip))
        return {"keypoints": keypoints, "label": label}

    def eval_fn(video):
        keypoints, label = fetch(video)
        return {"keypoints": temporal_sample(keypoints, seq_len, 0), "label": label}

    batch_size = int(config.stage2.batch_size)
    if training:
        ds = tf.data.Dataset.counter(dtype=tf.int64)
        ds = ds.map(train_fn, num_parallel_calls=_parallel_calls(config))
    else:
        ds = tf.data.Dataset.range(count)
        ds = ds.map(eval_fn, num_parallel_calls=_parallel_calls(config))
    ds = ds.batch(batch_size, drop_remainder=training)
    if data.cache and not training:
        ds = ds.cache()
    ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(data.deterministic if training else True))


# === Evaluation videos ===

def eval_frame_indices(length, num_frames: int):
    """The frames of a test clip: `[num_frames]` int32 indices into a video of `length` frames.

    The authors' evaluation rule, the same stride M is trained at (`temporal_sample`): with
    gap = floor(length / num_frames) >= 1, frames 0, gap, 2 gap, ...; a shorter video plays its
    first frames at half speed (0, 1, 1, 2, 2, ...), as their loader repeats each frame twice;
    indices past the end repeat the last frame.
    """
    length = tf.convert_to_tensor(length, tf.int32)
    steps = tf.range(num_frames)
    gap = length // num_frames
    index = tf.where(gap >= 1, steps * tf.maximum(gap, 1), (steps + 1) // 2)
    return tf.minimum(index, length - 1)


def prepare_eval_video(frames, num_frames: int, size: int, joints=None):
    """Fixed-length, fixed-size test video.

    Args:
      frames: uint8 [T, H, W, 3]; joints: optional float32 [T, J, 2].
    Returns:
      `(frames, joints)`: uint8 [num_frames, size, size, 3] (the frames `eval_frame_indices`
      picks through `kpvp.ops.images.resize_crop`) and float32 [num_frames, J, 2] in the
      crop's coordinates. Frame 0 is the input x0 of generation; frames 1.. are what the
      predicted frames are compared with, at the stride M learned.
    """
    frames = tf.convert_to_tensor(frames)
    index = eval_frame_indices(tf.shape(frames)[0], num_frames)
    frames = tf.gather(frames, index)
    if joints is not None:
        joints = tf.gather(tf.convert_to_tensor(joints, tf.float32), index)
    frames, joints = image_ops.resize_with_keypoints(frames, size, joints)
    return tf.ensure_shape(frames, [num_frames, size, size, 3]), joints


def eval_videos(config, split: str = "test", num_frames=None, source=None) -> tf.data.Dataset:
    """Whole evaluation videos, unbatched, in the source's order.

    Returns a dataset of dicts `frames` uint8 [T, S, S, 3] (T = num_frames or
    config.data.eval_num_frames, S = config.image_size; see `prepare_eval_video`), `label`
    int32, `id` string and, when the data set has joints, `joints` float32 [T, 13, 2] and
    `visible` bool [T, 13].
    """
    num_frames = int(config.data.eval_num_frames if num_frames is None else num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    size = int(config.image_size)
    source = _open_source(config, split, crop=True) if source is None else source
    with_joints = getattr(source, "has_joints", None)
    if with_joints is None:
        first = next(iter(source), None)
        if first is None:
            raise ValueError(f"The {split!r} source holds no usable videos")
        with_joints = first.get("joints") is not None

    signature = {"frames": tf.TensorSpec([None, None, None, 3], tf.uint8),
                 "label": tf.TensorSpec([], tf.int32), "id": tf.TensorSpec([], tf.string)}
    if with_joints:
        signature["joints"] = tf.TensorSpec([None, None, 2], tf.float32)
        signature["visible"] = tf.TensorSpec([None, None], tf.bool)

    def videos():
        for index, element in enumerate(source):
            frames = _check_element(element, index)
            out = {"frames": frames, "label": np.int32(element.get("label", 0)),
                   "id": str(element.get("id", index))}
            if with_joints:
                out["joints"], out["visible"] = _joint_arrays(element, len(frames))
            yield out

    def prepare(element):
        frames, joints = prepare_eval_video(element["frames"], num_frames, size,
                                            element.get("joints"))
        out = {"frames": frames, "label": element["label"], "id": element["id"]}
        if with_joints:
            index = eval_frame_indices(tf.shape(element["visible"])[0], num_frames)
            out["joints"] = joints
            out["visible"] = tf.gather(element["visible"], index)
        return out

    ds = tf.data.Dataset.from_generator(videos, output_signature=signature)
    ds = ds.map(prepare, num_parallel_calls=_parallel_calls(config))
    if config.data.cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(True))

