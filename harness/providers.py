"""onnxruntime execution providers: `--provider NAME[:key=value,...]` specs, and what a run's placement says.

A provider is part of a measurement's identity (RunSpec.settings_key). Which providers a target's
onnxruntime offers is only known there: the runner checks the names and reads each node's provider
from a profiled call, and the summary row records the providers used and the nodes that fell back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from targets.errors import EdgebenchError

CPU = "CPUExecutionProvider"
SUFFIX = "ExecutionProvider"
# onnxruntime's provider names, so `openvino` or `cpu` can stand for the full name; others pass as given
KNOWN = ("CPU", "CUDA", "TensorRT", "OpenVINO", "DirectML", "Dml", "CoreML", "NNAPI", "QNN", "XNNPACK", "ACL",
         "ArmNN", "ROCm", "MIGraphX", "VitisAI", "Azure", "WebGPU", "SNPE", "Rknpu", "CANN", "Js")
PROVIDER_HELP = ("an onnxruntime execution provider, highest priority first, with its options: "
                 "OpenVINOExecutionProvider:device_type=CPU (or openvino); repeatable")


@dataclass(frozen=True)
class ProviderSpec:
    """One execution provider with its options (strings, as onnxruntime's provider_options take them)."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    def runner(self) -> dict[str, Any]:
        """The runner spec's form of this provider."""
        return {"name": self.name, "options": dict(self.options)}

    def text(self) -> str:
        """The flag's form: NAME[:key=value,...]."""
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in self.options) if self.options else "")


def canonical_name(name: str) -> str:
    """`openvino`, `OpenVINO` or `OpenVINOExecutionProvider` -> `OpenVINOExecutionProvider`."""
    short = name[:-len(SUFFIX)] if name.lower().endswith(SUFFIX.lower()) else name
    for known in KNOWN:
        if known.lower() == short.lower():
            return known + SUFFIX
    return name


def parse_provider(text: str, where: str = "--provider") -> ProviderSpec:
    """NAME[:key=value,...] -> ProviderSpec; a malformed spec is one line that shows the form."""
    name, _, rest = text.strip().partition(":")
    form = "write NAME[:key=value,...], e.g. OpenVINOExecutionProvider:device_type=CPU"
    if not name or not name.replace("_", "").isalnum():
        raise EdgebenchError(f"{where} {text!r}: {form}")
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise EdgebenchError(f"{where} {text!r}: option {part!r} is not key=value; {form}")
        options[key.strip()] = value.strip()
    return ProviderSpec(canonical_name(name), tuple(sorted(options.items())))


def parse_providers(texts: Iterable[str], where: str = "--provider") -> tuple[ProviderSpec, ...]:
    """Providers in priority order; CPU alone (without options) is the default and gives ()."""
    providers = tuple(parse_provider(t, where) for t in texts)
    names = [p.name for p in providers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EdgebenchError(f"{where} {dupes[0]} is given twice; give each provider once, highest priority first")
    return () if providers == (ProviderSpec(CPU),) else providers


def runner_providers(providers: Sequence[ProviderSpec]) -> dict[str, Any]:
    """A runner spec's providers entry; absent for CPU only (what every runner version does by itself)."""
    return {"providers": [p.runner() for p in providers]} if providers else {}


def used_cell(providers: Sequence[str], placement: dict[str, Any] | None) -> str:
    """The providers a process ran nodes on (its session's providers when no placement was read)."""
    used = (placement or {}).get("used") or providers
    return ";".join(used)


def fallback_of(placement: dict[str, Any] | None) -> tuple[int | None, str]:
    """(nodes that ran on a lower-priority provider, their op types) or (None, "") when not read."""
    if not placement or "fallback" not in placement:
        return None, ""
    nodes = placement["fallback"]
    return len(nodes), ",".join(sorted({str(n.get("op")) for n in nodes}))


def fallback_warning(asked: Sequence[ProviderSpec], placement: dict[str, Any] | None) -> str | None:
    """A warning when the first provider asked did not run every node (or the placement could not be read)."""
    if not asked or asked[0].name == CPU or placement is None:
        return None
    if placement.get("error"):
        return f"which provider ran each node is unknown ({placement['error']})"
    count, ops = fallback_of(placement)
    if not count:
        return None
    first = asked[0].name
    where = ", ".join(f"{p} ({n})" for p, n in sorted(placement.get("nodes", {}).items()) if p != first)
    if first not in placement.get("nodes", {}):
        return (f"{first} took no node of this model: all {count} ran elsewhere ({where}); "
                f"this is not a {first} figure")
    return (f"{first} could not take {count} node(s) ({ops}): they ran on {where}, so this figure mixes "
            f"providers; find a form of those ops {first} supports, or expect the same mix in deployment")
