"""What a CPU's instruction-set features mean for the integer (INT8) kernels onnxruntime picks there.

The runner reports the features (``cpu_features`` in its machine facts, read with cpuid / hwcap);
this module interprets them, for `doctor`, the INT8 build and the target-side accuracy check.
"""

from __future__ import annotations

from typing import Any

VNNI_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8")


def u8s8_may_saturate(arch: str | None, features: list[str] | None) -> bool | None:
    """True on x86 without VNNI, where onnxruntime's U8S8 kernels sum u8 x s8 pairs in 16 bits (and so
    can saturate); False where they do not; None when the features are unknown."""
    if not arch or features is None:
        return None
    if arch.lower() in ("x86_64", "amd64", "i686", "x86"):
        return not any(f in features for f in VNNI_FEATURES)
    return False


def describe_cpu(machine: dict[str, Any]) -> str:
    """``x86_64 Intel Core (Haswell): avx, avx2, fma; no avx512_vnni, avx_vnni or amx_int8``."""
    arch, features = machine.get("arch") or "?", machine.get("cpu_features")
    where = f"{arch} {machine.get('cpu_model') or ''}".strip()
    if features is None:
        return f"{where} (CPU features unknown)"
    text = f"{where}: {', '.join(features) or 'no SIMD integer features'}"
    if u8s8_may_saturate(arch, features):
        text += f"; no {', '.join(VNNI_FEATURES[:-1])} or {VNNI_FEATURES[-1]}"
    return text


def features_text(features: list[str] | None) -> str:
    """CPU features as one spreadsheet cell (empty when unknown)."""
    return " ".join(features) if features is not None else ""


def int8_kernels(machine: dict[str, Any]) -> str:
    """One line on what INT8 does on this CPU, for `doctor`."""
    features = machine.get("cpu_features")
    if features is None:
        return "CPU features unknown: check INT8 accuracy on this target (bench --data)"
    saturates = u8s8_may_saturate(machine.get("arch"), features)
    head = ", ".join(features) or "none of the integer SIMD features"
    if saturates:
        return (f"{head}: no VNNI, so U8S8 INT8 sums can saturate here; a plain +int8 build measured on this "
                f"target (--int8-select-on) ships a form that holds")
    if any(f in features for f in VNNI_FEATURES):
        return f"{head}: VNNI integer kernels"
    return f"{head}" + (": dot-product integer kernels" if "asimddp" in features else "")
