"""The gate's rule and its two report formats, on hand-made comparison rows."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET

import pytest

from harness.compare import ComparisonRow
from harness.gate import (
    EXIT_GATE_FAILED,
    EXIT_INCONCLUSIVE,
    FAIL,
    INCONCLUSIVE,
    PASS,
    Rule,
    exit_code,
    junit,
    markdown,
    slowdown,
)


def row(candidate: str, low: float | None, high: float | None, verdict: str, ratio: float = 1.0) -> ComparisonRow:
    return ComparisonRow(baseline="a", candidate=candidate, target="local", ratio_median=ratio, ratio_ci95_low=low,
                         ratio_ci95_high=high, p_value=0.01, n_rounds=8, verdict=verdict, threshold=0.02,
                         method="paired-interleaved", baseline_median_ms=1.0, candidate_median_ms=ratio,
                         elapsed_s=3.0, description=f"{candidate} <described> & co", warnings="")


@pytest.mark.parametrize("low, high, verdict, expected", [
    (1.10, 1.20, "slower", FAIL),           # surely beyond 5%
    (1.02, 1.04, "slower", PASS),           # slower, but surely within the allowed 5%
    (1.03, 1.08, "slower", INCONCLUSIVE),   # may or may not be beyond 5%
    (0.97, 1.03, "same", PASS),
    (None, None, "inconclusive", INCONCLUSIVE),
    (1.06, None, "inconclusive", FAIL),     # an open upper end does not hide a low end already beyond
])
def test_max_slowdown_reads_the_whole_interval(low, high, verdict, expected):
    assert Rule(max_slowdown=0.05, active=True).judge(verdict, low, high) == expected


@pytest.mark.parametrize("verdict, expected", [("slower", FAIL), ("faster", PASS), ("same", PASS),
                                               ("inconclusive", INCONCLUSIVE)])
def test_fail_if_slower_alone_follows_the_verdict(verdict, expected):
    assert Rule(active=True).judge(verdict, 1.01, 1.2) == expected


def test_exit_codes_put_a_failure_before_an_inconclusive():
    assert exit_code([PASS, PASS]) == 0
    assert exit_code([PASS, INCONCLUSIVE]) == EXIT_INCONCLUSIVE
    assert exit_code([INCONCLUSIVE, FAIL]) == EXIT_GATE_FAILED


def test_slowdown_takes_percent_or_fraction():
    assert slowdown("5%") == pytest.approx(0.05) and slowdown("0.05") == 0.05 and slowdown("0") == 0
    for bad in ("-1%", "five", "nan", "inf", "%"):
        with pytest.raises(argparse.ArgumentTypeError):
            slowdown(bad)


def test_junit_has_one_case_per_comparison_with_failure_and_skipped():
    rows = [row("b", 1.1, 1.2, "slower", 1.15), row("c", 0.98, 1.01, "same"), row("d|e", None, None, "inconclusive")]
    outcomes = [FAIL, PASS, INCONCLUSIVE]
    root = ET.fromstring(junit(rows, outcomes, Rule(0.05, True)))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"b vs a", "c vs a", "d|e vs a"}
    assert cases["b vs a"].find("failure").text == "b <described> & co"  # escaped and read back intact
    assert cases["d|e vs a"].find("skipped") is not None and cases["c vs a"].find("failure") is None


def test_markdown_escapes_table_cells_and_names_the_rule():
    text = markdown([row("d|e", 1.1, 1.2, "slower", 1.15)], [FAIL], Rule(0.05, True))
    assert "### edgebench compare: FAILED" in text and "more than 5% slower than its baseline" in text
    assert "| d\\|e | a | local | 1.150 | 1.100-1.200 | slower | ❌ fail |" in text
