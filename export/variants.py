"""Variant specs: the small language users write after `--variants` (see CONTRACT.md).

A spec is ``BASE[@iter=N][+int8[:FORM]|+int8dyn]`` where BASE is ``fp32``, ``prune-l1:S``, ``prune-ch:R``,
``cluster:K`` (one codebook of K values per layer) or ``cluster-ch:K`` (K values per output channel).
Parsing is strict and happens before any long work, so a typo fails in a second, not after ten
minutes of fine-tuning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from export.int8 import FORMS
from targets.errors import EdgebenchError

VALID_FORMS = (
    "fp32",
    "prune-l1:S (S = target sparsity, 0 < S < 1)",
    "prune-l1:S@iter=N",
    "prune-ch:R (R = ratio of channels removed, 0 < R < 1)",
    "prune-ch:R@iter=N",
    "cluster:K (K = 2..256 shared values per layer)",
    "cluster-ch:K (K = 2..256 shared values per output channel)",
    "any of these + '+int8' (static QDQ, the INT8 form chosen by accuracy then speed), "
    "'+int8:FORM' (FORM = reduce, u8s8 or s8s8, pinned) or '+int8dyn' (dynamic)",
)

_METHODS = ("fp32", "prune-l1", "prune-ch", "cluster")
_QUANT = ("int8", "int8dyn")
_RE = re.compile(
    r"^(?P<method>fp32|prune-l1|prune-ch|cluster-ch|cluster)"
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

    method: str  # fp32 | prune-l1 | prune-ch | cluster
    amount: float | None = None  # sparsity (prune-l1), channel ratio (prune-ch)
    clusters: int | None = None  # K (cluster)
    iterations: int = 1  # @iter=N; 1 means one-shot
    quant: str | None = None  # None | int8 | int8dyn
    int8_form: str | None = None  # +int8:FORM pins a form; None lets the build choose
    codebook: str = "layer"  # cluster: one codebook per "layer" (cluster:K) or per output "channel" (cluster-ch:K)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise _reject(self.method, f"unknown method {self.method!r}")
        if self.quant not in (None, *_QUANT):
            raise _reject(str(self.quant), f"unknown quantization {self.quant!r}")
        if self.int8_form is not None and (self.quant != "int8" or self.int8_form not in FORMS):
            raise _reject(f"+{self.quant}:{self.int8_form}", f"an INT8 form follows +int8 and is one of "
                                                             f"{', '.join(FORMS)}")
        if self.method in ("prune-l1", "prune-ch"):
            if self.amount is None or not 0.0 < self.amount < 1.0:
                raise _reject(f"{self.method}:{self.amount}", "the ratio must be strictly between 0 and 1")
        elif self.amount is not None:
            raise _reject(self.method, "this method takes no ratio")
        if self.method == "cluster":
            if self.clusters is None or not 2 <= self.clusters <= 256:
                raise _reject(f"cluster:{self.clusters}", "K must be an integer from 2 to 256")
        elif self.clusters is not None:
            raise _reject(self.method, "only cluster takes K")
        if self.codebook not in ("layer", "channel") or (self.codebook == "channel" and self.method != "cluster"):
            raise _reject(f"{self.method}/{self.codebook}", "only cluster has a per-channel codebook (cluster-ch:K)")
        if self.iterations < 1:
            raise _reject(f"@iter={self.iterations}", "N must be at least 1")
        if self.iterations > 1 and self.method not in ("prune-l1", "prune-ch"):
            raise _reject(f"{self.method}@iter={self.iterations}", "only pruning can be iterative")

    def __str__(self) -> str:
        text = "cluster-ch" if self.codebook == "channel" else self.method
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
    def dir_name(self) -> str:
        """Filesystem-safe folder name, e.g. ``prune-ch_0.5+int8`` (no ':' or '=' for Windows/zip)."""
        return str(self).replace(":", "_").replace("@iter=", "@iter")

    @property
    def base(self) -> "Variant":
        """The same variant without quantization (the float model that quantization starts from)."""
        return Variant(self.method, self.amount, self.clusters, self.iterations, None, codebook=self.codebook)


def parse_variant(text: str) -> Variant:
    """Parse one spec such as ``prune-ch:0.5@iter=3+int8``; raise EdgebenchError listing valid forms."""
    t = text.strip().lower()
    m = _RE.match(t)
    if not m:
        raise _reject(text, "not recognised")
    method, arg, iters, quant, form = m.group("method", "arg", "iters", "quant", "form")
    if form is not None and (quant != "int8" or form not in FORMS):
        raise _reject(text, f"an INT8 form follows +int8 and is one of {', '.join(FORMS)}")
    codebook = "layer"
    if method == "cluster-ch":
        method, codebook = "cluster", "channel"
    amount: float | None = None
    clusters: int | None = None
    if method == "fp32":
        if arg is not None:
            raise _reject(text, "fp32 takes no argument")
    elif arg is None:
        raise _reject(text, f"{method} needs a value after ':'")
    elif method == "cluster":
        if not arg.isdigit():
            raise _reject(text, "K must be an integer")
        clusters = int(arg)
    else:
        try:
            amount = float(arg)
        except ValueError:
            raise _reject(text, f"{arg!r} is not a number") from None
    return Variant(method, amount, clusters, int(iters) if iters else 1, quant, form, codebook)


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
