"""Variant specs: the small language users write after `--variants` (see CONTRACT.md).

A spec is ``BASE[@iter=N][+int8[:FORM]|+int8dyn]`` where BASE is a method of export/methods.py with its
argument: ``fp32``, ``prune-l1:S``, ``prune-ch:R``, ``cluster:K`` (one codebook of K values per layer) or
``cluster-ch:K`` (K values per output channel).
Parsing is strict and happens before any long work, so a typo fails in a second, not after ten
minutes of fine-tuning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from export.int8 import FORMS
from export.methods import METHODS
from targets.errors import EdgebenchError

VALID_FORMS = (
    *(form for m in METHODS.values() for form in m.spec_forms()),
    "any of these + '+int8' (static QDQ, the INT8 form chosen by accuracy then speed), "
    "'+int8:FORM' (FORM = reduce, u8s8 or s8s8, pinned) or '+int8dyn' (dynamic)",
)

_QUANT = ("int8", "int8dyn")
_RE = re.compile(
    r"^(?P<method>[a-z0-9-]+?)"
    r"(?::(?P<arg>[0-9.eE+-]+?))?"
    r"(?:@iter=(?P<iters>[0-9]+))?"
    r"(?:\+(?P<quant>int8dyn|int8)(?::(?P<form>[a-z0-9]+))?)?$"
)


def _reject(text: str, why: str) -> EdgebenchError:
    forms = "; ".join(VALID_FORMS)
    return EdgebenchError(f"bad variant spec {text!r}: {why}. Valid forms: {forms}")


@dataclass(frozen=True)
class Variant:
    """One compressed variant. ``str(v)`` gives back the canonical spec text."""

    method: str  # a name in export.methods.METHODS
    amount: float | None = None  # the ratio of a "ratio" method: sparsity (prune-l1), channels removed (prune-ch)
    clusters: int | None = None  # the K of a "count" method (cluster, cluster-ch)
    iterations: int = 1  # @iter=N; 1 means one-shot
    quant: str | None = None  # None | int8 | int8dyn
    int8_form: str | None = None  # +int8:FORM pins a form; None lets the build choose

    def __post_init__(self) -> None:
        m = METHODS.get(self.method)
        if m is None:
            raise _reject(self.method, f"unknown method {self.method!r}")
        if self.quant not in (None, *_QUANT):
            raise _reject(str(self.quant), f"unknown quantization {self.quant!r}")
        if self.int8_form is not None and (self.quant != "int8" or self.int8_form not in FORMS):
            raise _reject(f"+{self.quant}:{self.int8_form}", f"an INT8 form follows +int8 and is one of "
                                                             f"{', '.join(FORMS)}")
        if m.arg == "ratio":
            if self.amount is None or not 0.0 < self.amount < 1.0:
                raise _reject(f"{self.method}:{self.amount}", "the ratio must be strictly between 0 and 1")
        elif self.amount is not None:
            raise _reject(self.method, "this method takes no ratio")
        if m.arg == "count":
            if self.clusters is None or not 2 <= self.clusters <= 256:
                raise _reject(f"{self.method}:{self.clusters}", "K must be an integer from 2 to 256")
        elif self.clusters is not None:
            raise _reject(self.method, "this method takes no K")
        if self.iterations < 1:
            raise _reject(f"@iter={self.iterations}", "N must be at least 1")
        if self.iterations > 1 and not m.iterative:
            raise _reject(f"{self.method}@iter={self.iterations}", "only pruning can be iterative")

    def __str__(self) -> str:
        text = self.method
        if self.amount is not None:
            text += f":{self.amount:g}"
        if self.clusters is not None:
            text += f":{self.clusters}"
        if self.iterations > 1:
            text += f"@iter={self.iterations}"
        if self.quant:
            text += f"+{self.quant}"
        if self.int8_form:
            text += f":{self.int8_form}"
        return text

    @property
    def codebook(self) -> str:
        """A clustered variant's codebook: one per "layer" (cluster:K) or per output "channel" (cluster-ch:K)."""
        return "channel" if self.method == "cluster-ch" else "layer"

    @property
    def dir_name(self) -> str:
        """Filesystem-safe folder name, e.g. ``prune-ch_0.5+int8`` (no ':' or '=' for Windows/zip)."""
        return str(self).replace(":", "_").replace("@iter=", "@iter")

    @property
    def base(self) -> "Variant":
        """The same variant without quantization (the float model that quantization starts from)."""
        return Variant(self.method, self.amount, self.clusters, self.iterations)

    def describe(self) -> str:
        """What this variant did to the model, in plain words."""
        steps = [METHODS[self.method].describe(self)]
        if self.iterations > 1:
            steps.append(f"in {self.iterations} prune/fine-tune steps")
        elif METHODS[self.method].recipe:
            steps.append("fine-tuned")
        if self.quant == "int8":
            steps.append(f"INT8 static QDQ, form {self.int8_form} (pinned)" if self.int8_form else
                         "INT8 static QDQ, the form chosen by accuracy then speed")
        elif self.quant == "int8dyn":
            steps.append("INT8 dynamic")
        return ", ".join(steps)


def parse_variant(text: str) -> Variant:
    """Parse one spec such as ``prune-ch:0.5@iter=3+int8``; raise EdgebenchError listing valid forms."""
    t = text.strip().lower()
    m = _RE.match(t)
    if not m:
        raise _reject(text, "not recognised")
    name, arg, iters, quant, form = m.group("method", "arg", "iters", "quant", "form")
    method = METHODS.get(name)
    if method is None:
        raise _reject(text, f"unknown method {name!r}")
    if form is not None and (quant != "int8" or form not in FORMS):
        raise _reject(text, f"an INT8 form follows +int8 and is one of {', '.join(FORMS)}")
    amount: float | None = None
    clusters: int | None = None
    if method.arg is None:
        if arg is not None:
            raise _reject(text, f"{name} takes no argument")
    elif arg is None:
        raise _reject(text, f"{name} needs a value after ':'")
    elif method.arg == "count":
        if not arg.isdigit():
            raise _reject(text, "K must be an integer")
        clusters = int(arg)
    else:
        try:
            amount = float(arg)
        except ValueError:
            raise _reject(text, f"{arg!r} is not a number") from None
    return Variant(name, amount, clusters, int(iters) if iters else 1, quant, form)


def variant_or_none(text: str) -> Variant | None:
    """The parsed spec, or None for a name that is not one (a bare ONNX file's name)."""
    try:
        return parse_variant(str(text))
    except EdgebenchError:
        return None


def parse_variants(text_or_list: str | Iterable[str]) -> list[Variant]:
    """Parse a comma-separated string or a list of specs; duplicates are rejected (same output folder)."""
    items = text_or_list.split(",") if isinstance(text_or_list, str) else list(text_or_list)
    items = [s for s in (i.strip() for i in items) if s]
    if not items:
        raise _reject("", "no variant given")
    out = [parse_variant(s) for s in items]
    seen: set[str] = set()
    for v in out:
        if str(v) in seen:
            raise EdgebenchError(f"variant {v} is listed twice; list each variant once")
        seen.add(str(v))
    return out
