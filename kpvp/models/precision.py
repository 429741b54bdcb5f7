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
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

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
