"""What to ship on one target: the variant, its INT8 form and its thread count, each with the evidence.

Every choice here is made from one target's own rows (its latencies, its accuracy on the data it was
given) and states the interval and the verdict of `harness.compare_stats` between the choice and the
runner-up, so "ship this" never rests on a smaller median alone:

- **threads**: per variant, the measured thread count with the lowest median;
- **INT8 form**: per float parent (fp32, prune-ch:0.5, ...), among its static INT8 files, the accurate
  ones first (within the tolerance of the parent's accuracy *on this target*: the forms' integer kernels
  differ by CPU), then the fastest; two names for one file (fp32+int8 built as reduce, and
  fp32+int8:reduce) count once;
- **variant**: among every variant at its best thread count, the accurate ones first (within the
  tolerance of the baseline's accuracy here), then the fastest.

Rows are plain dicts (summary.csv rows); `groups(row)` gives a row's per-process latencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from export.int8 import DEFAULT_TOLERANCE
from export.variants import variant_or_none
from harness.compare_stats import Comparison, compare_samples
from targets.fileio import cell_number

Row = dict[str, Any]
Groups = Callable[[Row], list[list[float]]]


def _ok(row: Row) -> bool:
    return row.get("status") == "ok" and cell_number(row.get("latency_ms_median")) is not None


def threads_label(row: Row) -> str:
    threads = cell_number(row.get("threads"))
    return "onnxruntime's default threads" if not threads else f"{int(threads)} thread" + ("s" if threads > 1 else "")


@dataclass(frozen=True)
class Choice:
    """The row chosen, the runner-up it was set against (None when it stood alone), and how they compare."""

    kind: str  # "threads", "int8 form" or "variant"
    subject: str  # what was chosen for: a variant name, a float parent, or the target
    row: Row
    runner_up: Row | None
    comparison: Comparison | None
    note: str = ""  # e.g. which candidates were not accurate enough here

    def sentence(self) -> str:
        """One Markdown line: the choice, its median and interval, and the verdict against the runner-up."""
        r = self.row
        what = {"threads": threads_label(r), "int8 form": f"{r['variant']} ({r.get('int8_form') or 'form ?'})",
                "variant": f"{r['variant']} at {threads_label(r)}"}[self.kind]
        low, high = cell_number(r.get("latency_ms_ci95_low")), cell_number(r.get("latency_ms_ci95_high"))
        interval = f" (95% CI {low:.4g}–{high:.4g})" if low is not None and high is not None else ""
        text = f"**{what}**: median {float(r['latency_ms_median']):.4g} ms{interval}"
        accuracy = cell_number(r.get("accuracy"))
        if accuracy is not None:
            text += f", accuracy {accuracy:.2%}"
        if self.runner_up is None:
            text += "; the only candidate measured"
        else:
            other = self.runner_up
            name = {"threads": threads_label(other), "int8 form": f"{other['variant']}",
                    "variant": f"{other['variant']} at {threads_label(other)}"}[self.kind]
            text += f"; against {name}: " + _verdict_words(self.comparison)
        return text + (f". {self.note}" if self.note else ".")


def _verdict_words(c: Comparison | None) -> str:
    if c is None or not math.isfinite(c.ratio):
        return "no per-process samples to compare"
    if not (math.isfinite(c.ci_low) and math.isfinite(c.ci_high)):
        return f"ratio {c.ratio:.3f}, too few processes for an interval (4 per side): no verdict"
    speedup = f"{1 / c.ratio:.2f}× faster, 95% CI {1 / c.ci_high:.2f}–{1 / c.ci_low:.2f}×"
    return {"faster": f"{speedup} (faster)",
            "slower": f"ratio {c.ratio:.3f}, 95% CI {c.ci_low:.3f}–{c.ci_high:.3f} (slower; chosen for accuracy)",
            "same": f"same speed within {c.threshold:.0%} (ratio {c.ratio:.3f}, 95% CI {c.ci_low:.3f}–{c.ci_high:.3f})"
            }.get(c.verdict, f"ratio {c.ratio:.3f}, 95% CI {c.ci_low:.3f}–{c.ci_high:.3f}: inconclusive, "
                             "measure longer (more --processes) to decide")


def _pick(kind: str, subject: str, candidates: Sequence[Row], groups: Groups, note: str = "") -> Choice | None:
    """The fastest of `candidates` (by median), compared with the next fastest."""
    ranked = sorted((r for r in candidates if _ok(r)), key=lambda r: float(r["latency_ms_median"]))
    if not ranked:
        return None
    best = ranked[0]
    if len(ranked) == 1:
        return Choice(kind, subject, best, None, None, note)
    second = ranked[1]
    a, b = groups(second), groups(best)
    comparison = compare_samples(a, b, baseline=str(second["variant"]), candidate=str(best["variant"])) if a and b else None
    return Choice(kind, subject, best, second, comparison, note)


def best_threads(rows: Sequence[Row], groups: Groups) -> dict[str, Choice]:
    """Per variant measured at more than one thread count (one batch size: the first row's), the fastest."""
    out: dict[str, Choice] = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant and _ok(r)]
        batch = mine[0].get("batch_size") if mine else None
        mine = [r for r in mine if r.get("batch_size") == batch]
        if len({cell_number(r.get("threads")) for r in mine}) > 1:
            choice = _pick("threads", variant, mine, groups)
            if choice:
                out[variant] = choice
    return out


def at_best_threads(rows: Sequence[Row], groups: Groups) -> list[Row]:
    """One ok row per variant: at its smallest batch size measured, the one at its fastest thread count."""
    chosen = best_threads(rows, groups)
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant and _ok(r)]
        if variant in chosen:
            out.append(chosen[variant].row)
        elif mine:
            batch = mine[0].get("batch_size")
            out.append(min((r for r in mine if r.get("batch_size") == batch),
                           key=lambda r: float(r["latency_ms_median"])))
    return out


def _accurate(row: Row, reference: float | None, tolerance: float) -> bool | None:
    """Within `tolerance` points of `reference`; None when either is unknown."""
    accuracy = cell_number(row.get("accuracy"))
    if accuracy is None or reference is None:
        return None
    return accuracy >= reference - tolerance / 100


def _filter_accurate(candidates: list[Row], reference: float | None, tolerance: float) -> tuple[list[Row], str]:
    """The candidates accurate enough (all of them when accuracy is unknown), and a note saying on what
    evidence: this target's own accuracy, or the build machine's (when the target was given no --data)."""
    verdicts = [(_accurate(r, reference, tolerance), r) for r in candidates]
    if any(v is None for v, _ in verdicts):
        return candidates, "Accuracy is unknown for some candidates: chosen by speed only"
    kept = [r for v, r in verdicts if v]
    dropped = [r for v, r in verdicts if not v]
    notes = []
    if dropped:
        notes.append(f"Left out for losing more than {tolerance:g} point(s): " + ", ".join(
            f"{r['variant']} ({(float(r['accuracy']) - reference) * 100:+.1f})" for r in dropped))
    if any(r.get("accuracy_where") != "target" for r in candidates):
        notes.append("Accuracy as measured on the build machine: give this target --data to measure it here, "
                     "where INT8 kernels can differ")
    return kept, ". ".join(notes)


def int8_forms(rows: Sequence[Row], groups: Groups, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Choice]:
    """Per float parent with more than one static INT8 file measured here, the form to ship."""
    best = at_best_threads(rows, groups)
    by_name = {r["variant"]: r for r in best}
    families: dict[str, list[Row]] = {}
    for r in best:
        v = variant_or_none(str(r["variant"]))
        if v is not None and v.quant == "int8":
            families.setdefault(str(r["variant"]).split("+")[0], []).append(r)
    out: dict[str, Choice] = {}
    for parent, members in families.items():
        unique: dict[str, Row] = {}
        for r in sorted(members, key=lambda r: (":" in str(r["variant"]), str(r["variant"]))):
            unique.setdefault(str(r.get("artifact_sha256") or r["variant"]), r)  # one file, one candidate
        if len(unique) < 2:
            continue
        reference = cell_number(by_name[parent].get("accuracy")) if parent in by_name else None
        kept, note = _filter_accurate(list(unique.values()), reference, tolerance)
        choice = _pick("int8 form", parent, kept, groups, note)
        if choice:
            out[parent] = choice
    return out


def ship(rows: Sequence[Row], groups: Groups, baseline: str = "fp32",
         tolerance: float = DEFAULT_TOLERANCE) -> Choice | None:
    """The variant to ship on this target: accurate within `tolerance` of the baseline here, then fastest."""
    best = at_best_threads(rows, groups)
    base = next((r for r in best if r["variant"] == baseline), None)
    reference = cell_number(base.get("accuracy")) if base else None
    kept, note = _filter_accurate(best, reference, tolerance)
    return _pick("variant", "target", kept, groups, note)
