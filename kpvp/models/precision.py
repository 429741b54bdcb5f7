"""Which Keras dtype policy and XLA setting a stage's config asks for, and the policy's scope.

`config.stageN.mixed_precision` names the policy the stage's networks are built under:

* "float32" (or False): everything in float32;
* "mixed_bfloat16" (or True, "bf16"): bfloat16 compute, float32 variables; keypoint layers,
  output heads and losses stay float32 (`kpvp.models.layers`); no loss scaling is needed;
* "mixed_float16" ("fp16"): float16 compute for GPUs without bfloat16; the optimizers are
  wrapped in `keras.optimizers.LossScaleOptimizer` (`needs_loss_scaling`);
* "auto": mixed_bfloat16 on a GPU that has bfloat16 units (compute capability >= 8.0),
  mixed_float16 on an older GPU, float32 on a CPU-only machine (bfloat16 training is not
  made a CPU default before a learning comparison; experiments/README.md).

`config.stageN.jit_compile` is Keras' `compile(jit_compile=...)`: "auto" (Keras' choice: XLA on
a GPU, never on a CPU-only machine), or on / off.

`hardware_warning` says when a policy will run slower than float32 on this machine: a CPU
without bfloat16 units emulates bf16 arithmetic, and a CPU has no float16 units at all.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
from absl import logging

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
_ALIASES = {"false": "float32", "fp32": "float32", "off": "float32", "none": "float32",
            "true": "mixed_bfloat16", "bf16": "mixed_bfloat16", "bfloat16": "mixed_bfloat16",
            "fp16": "mixed_float16", "float16": "mixed_float16"}
_JIT = {"auto": "auto", "true": True, "on": True, "1": True, "false": False, "off": False,
        "0": False}


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """(major, minor) compute capability of each visible GPU (empty on a CPU-only machine)."""
    capabilities = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


# /proc/cpuinfo flags of CPUs with bfloat16 arithmetic (dot products, AMX tiles).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags (a set of names), or None where the OS does not list them."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def cpu_has_bf16_units(flags=None):
    """True / False from the CPU flags (default: this machine's), None if unknown."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    return any(name in flags for name in CPU_BF16_FLAGS)


def cpu_bf16_summary(flags=None) -> str:
    """One line for benchmark headers: whether this CPU computes in bfloat16 natively."""
    has = cpu_has_bf16_units(flags)
    if has is None:
        return "CPU bfloat16 units: unknown (no CPU flags to read)"
    if has:
        return "CPU bfloat16 units: yes"
    return "CPU bfloat16 units: no (bf16 is emulated here: expect it slower than fp32)"


def hardware_warning(policy: str, capabilities=None, flags=None):
    """A sentence if `policy` will likely be slower than float32 on this machine, else None.

    `capabilities`: GPUs' compute capabilities (default: the visible GPUs'); `flags`: CPU flags
    (default: this machine's). Only CPU-only machines are judged.
    """
    capabilities = gpu_compute_capabilities() if capabilities is None else list(capabilities)
    if capabilities or policy == "float32":
        return None
    if policy == "mixed_float16":
        return ("mixed_float16 on a CPU-only machine: CPUs have no float16 arithmetic, so it "
                "runs slower than float32; use float32 (or mixed_bfloat16 on a CPU with "
                "AVX512_BF16 or AMX)")
    if policy == "mixed_bfloat16" and cpu_has_bf16_units(flags) is False:
        return ("mixed_bfloat16 on a CPU without bfloat16 units (no avx512_bf16 or amx_bf16 "
                "in its flags): bf16 is emulated there and runs slower than float32")
    return None


def warn_if_slow(policy: str, what: str) -> None:
    """Logs `hardware_warning(policy)` for `what` (e.g. "Stage 1"), if there is one."""
    message = hardware_warning(policy)
    if message:
        logging.warning("%s: %s", what, message)


def auto_policy(capabilities=None) -> str:
    """The policy "auto" stands for on GPUs of these compute capabilities (default: visible)."""
    capabilities = gpu_compute_capabilities() if capabilities is None else list(capabilities)
    if not capabilities:
        return "float32"
    return "mixed_bfloat16" if min(capabilities) >= (8, 0) else "mixed_float16"


def policy_name(setting) -> str:
    """The Keras policy name of a `mixed_precision` setting (a name, an alias, a bool, "auto").

    Raises ValueError naming the setting if it is none of these.
    """
    if isinstance(setting, bool):
        return "mixed_bfloat16" if setting else "float32"
    text = str(setting).strip().lower()
    if text == "auto":
        return auto_policy()
    name = _ALIASES.get(text, text)
    if name not in POLICIES:
        raise ValueError(f"mixed_precision={setting!r}: expected one of {POLICIES}, 'auto' or an "
                         f"alias {sorted(_ALIASES)}")
    return name


def stage_policy(stage_config) -> str:
    """The policy of a stage's config section (`mixed_precision`; float32 if it has none)."""
    return policy_name(stage_config.get("mixed_precision", "float32"))


def needs_loss_scaling(policy: str) -> bool:
    """float16's 5 exponent bits underflow small gradients; bfloat16 has float32's 8."""
    return policy == "mixed_float16"


def jit_setting(stage_config):
    """`stage_config.jit_compile` as Keras' `compile()` takes it: True, False or "auto"."""
    setting = stage_config.get("jit_compile", "auto")
    if isinstance(setting, bool):
        return setting
    value = _JIT.get(str(setting).strip().lower())
    if value is None:
        raise ValueError(f"jit_compile={setting!r}: expected 'auto', 'true' or 'false'")
    return value


@contextlib.contextmanager
def policy_scope(policy: str):
    """Networks made inside compute under `policy` (the policy is read when a layer is made);
    the global policy is restored afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)
