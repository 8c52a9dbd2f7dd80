"""`compare` as a CI gate: pass, fail or inconclusive per comparison, an exit code, and the two formats CI
systems already display (a Markdown job summary and a JUnit XML report).

The rule reads only the interval `compare` reports (the one its verdict was taken from):
- `--max-slowdown X`: fail when the whole interval lies above 1 + X (slower by more than X, and sure of it);
  pass when the whole interval lies at or below 1 + X; otherwise inconclusive.
- `--fail-if slower` alone: fail on the verdict `slower`, pass on `faster` and `same`, inconclusive on
  `inconclusive`.
An inconclusive comparison is neither: it has its own exit code, so a pipeline can retry it.
"""

from __future__ import annotations

import argparse
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from targets.fileio import atomic_write_text

if TYPE_CHECKING:
    from harness.compare import ComparisonRow

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
EXIT_GATE_FAILED = 4  # a candidate is slower than allowed (1: a measurement failed, 2: bad input, 3: target)
EXIT_INCONCLUSIVE = 5  # no failure, but some comparison could not decide: retry, or measure longer


def slowdown(text: str) -> float:
    """--max-slowdown: `5%` or `0.05` (a fraction of the baseline's latency)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value < 10):
        raise argparse.ArgumentTypeError(f"{text!r} is not a slowdown: give a percentage (5%) or a fraction (0.05)")
    return value


@dataclass(frozen=True)
class Rule:
    """What fails the gate; `active` False when neither flag was given (outputs still say what would fail)."""

    max_slowdown: float | None = None
    active: bool = False

    def describe(self) -> str:
        return (f"more than {self.max_slowdown * 100:g}% slower" if self.max_slowdown is not None
                else "slower (its verdict)")

    def judge(self, verdict: str, low: float | None, high: float | None) -> str:
        if self.max_slowdown is None:
            return {"slower": FAIL, "inconclusive": INCONCLUSIVE}.get(verdict, PASS)
        limit = 1.0 + self.max_slowdown
        if low is not None and low > limit:
            return FAIL
        if high is not None and high <= limit:
            return PASS
        return INCONCLUSIVE


def rule_from(args: argparse.Namespace) -> Rule:
    return Rule(max_slowdown=args.max_slowdown, active=bool(args.fail_if or args.max_slowdown is not None))


def exit_code(outcomes: Sequence[str]) -> int:
    if FAIL in outcomes:
        return EXIT_GATE_FAILED
    return EXIT_INCONCLUSIVE if INCONCLUSIVE in outcomes else 0


def _ci(row: ComparisonRow) -> str:
    lo, hi = row.ratio_ci95_low, row.ratio_ci95_high
    return f"{lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else "unbounded"


def verdict_line(row: ComparisonRow, outcome: str, rule: Rule) -> str:
    """One line for the terminal: which model, by how much, how sure, and what the gate made of it."""
    what = {FAIL: f"FAILED ({rule.describe()})", INCONCLUSIVE: "INCONCLUSIVE (retry, or measure longer: --max-time)",
            PASS: "passed"}[outcome]
    return (f"gate {what}: {row.candidate} vs {row.baseline} on {row.target}: "
            f"ratio {row.ratio_median:.3f}, 95% CI {_ci(row)}, p={row.p_value:.2g}, "
            f"{row.n_rounds} rounds")


def markdown(rows: Sequence[ComparisonRow], outcomes: Sequence[str], rule: Rule) -> str:
    """A job summary: one headline, one table row per comparison, the plain sentences and warnings."""
    overall = {0: "passed", EXIT_GATE_FAILED: "FAILED", EXIT_INCONCLUSIVE: "inconclusive"}[exit_code(outcomes)]
    icon = {PASS: "✅ pass", FAIL: "❌ fail", INCONCLUSIVE: "⚠️ inconclusive"}
    rule_text = (f"Gate: fail when a candidate is {rule.describe()} than its baseline, and sure of it; "
                 "ratio = candidate / baseline latency (< 1 is faster).")
    lines = [f"### edgebench compare: {overall}", "", rule_text, "",
             "| candidate | baseline | target | ratio | 95% CI | verdict | gate |", "|---|---|---|---|---|---|---|"]
    for row, outcome in zip(rows, outcomes):
        cells = [row.candidate, row.baseline, row.target,
                 f"{row.ratio_median:.3f}", _ci(row), row.verdict, icon[outcome]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines += [f"- {row.description}" for row in rows]
    warnings = sorted({w for r in rows for w in str(r.warnings or "").split(" | ") if w})
    lines += [f"- warning: {w}" for w in warnings]
    return "\n".join(lines) + "\n\n"


def junit(rows: Sequence[ComparisonRow], outcomes: Sequence[str], rule: Rule) -> str:
    """One <testcase> per comparison: <failure> when it fails the gate, <skipped> when inconclusive (the
    state CI test views show as neither green nor red)."""
    suite = ET.Element("testsuite", name="edgebench compare", tests=str(len(rows)),
                       failures=str(outcomes.count(FAIL)), errors="0", skipped=str(outcomes.count(INCONCLUSIVE)),
                       time=f"{sum(float(r.elapsed_s or 0) for r in rows):.2f}")
    for row, outcome in zip(rows, outcomes):
        case = ET.SubElement(suite, "testcase", classname=f"edgebench.compare.{row.target}",
                             name=f"{row.candidate} vs {row.baseline}",
                             time=f"{float(row.elapsed_s or 0):.2f}")
        line = verdict_line(row, outcome, rule)
        if outcome == FAIL:
            ET.SubElement(case, "failure", message=line, type="slower").text = str(row.description)
        elif outcome == INCONCLUSIVE:
            ET.SubElement(case, "skipped", message=line)
        ET.SubElement(case, "system-out").text = str(row.description)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def append_text(path: Path, text: str) -> None:
    """Append (a CI job summary file such as $GITHUB_STEP_SUMMARY collects several steps' parts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def write_junit(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
