"""Statistics on distributions whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats


def test_summary_of_a_known_normal_sample():
    rng = np.random.default_rng(1)
    x = rng.normal(10.0, 1.0, 20000)
    s = stats.summarize([x])
    assert s.median == pytest.approx(10.0, abs=0.03)
    assert s.mean == pytest.approx(10.0, abs=0.03)
    assert s.std == pytest.approx(1.0, rel=0.03)
    assert s.p90 == pytest.approx(10 + 1.2816, abs=0.05)
    assert s.p95 == pytest.approx(10 + 1.6449, abs=0.05)
    assert s.p99 == pytest.approx(10 + 2.3263, abs=0.08)
    assert s.mad == pytest.approx(0.6745, rel=0.05)  # MAD of N(0,1)
    assert s.min == x.min() and s.max == x.max()
    assert s.ci95_low < 10.0 < s.ci95_high and s.ci95_high - s.ci95_low < 0.1


def test_outliers_by_modified_z_score():
    x = np.concatenate([np.full(100, 1.0) + np.linspace(-0.01, 0.01, 100), [5.0, 6.0, 7.0]])
    assert stats.outlier_count(x) == 3
    assert stats.outlier_count(np.linspace(0, 1, 100)) == 0


def test_bootstrap_ci_covers_the_true_median_about_95_percent():
    # exponential(1): true median ln 2; 200 experiments of 300 samples each
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(200):
        low, high = stats.bootstrap_median_ci([rng.exponential(1.0, 300)], n_boot=400, seed=i)
        hits += low <= math.log(2) <= high
    assert 0.89 <= hits / 200 <= 0.99


def test_process_level_noise_widens_the_interval():
    rng = np.random.default_rng(3)
    same = [rng.normal(1.0, 0.02, 500) for _ in range(5)]
    shifted = [rng.normal(m, 0.02, 500) for m in (0.8, 0.9, 1.0, 1.1, 1.3)]
    a, b = stats.summarize(same), stats.summarize(shifted)
    assert (b.ci95_high - b.ci95_low) > 5 * (a.ci95_high - a.ci95_low)
    assert b.group_spread == pytest.approx(1.3 / 0.8, rel=0.05)
    assert a.n_groups == 5 and a.n == 2500


def test_bootstrap_is_deterministic_given_a_seed():
    x = np.random.default_rng(0).lognormal(0, 0.5, 1000)
    assert stats.bootstrap_median_ci([x], seed=4) == stats.bootstrap_median_ci([x], seed=4)


def test_thinning_keeps_the_distribution_of_long_runs():
    x = np.random.default_rng(0).lognormal(0, 0.5, 200_000)
    low, high = stats.bootstrap_median_ci([x], n_boot=300)
    assert low <= np.median(x) <= high


def test_stability_warnings_name_the_remedy():
    rng = np.random.default_rng(0)
    noisy = stats.summarize([rng.normal(1.0, 0.3, 500), rng.normal(1.5, 0.3, 500)])
    warnings = stats.stability_warnings(noisy, load_avg=1.9, cores=2)
    text = " ".join(warnings)
    assert "load 1.9" in text and "--min-time" in text and "--processes" in text
    quiet = stats.summarize([rng.normal(1.0, 0.01, 500) for _ in range(3)])
    assert stats.stability_warnings(quiet, load_avg=0.1, cores=2) == []
    few = stats.summarize([[1.0, 1.0, 1.0]])
    assert any("only 3 timed calls" in w for w in stats.stability_warnings(few))


def test_a_load_above_the_cores_is_a_warning_with_its_remedy():
    text = stats.load_warning(5.2, 2, "close other work")
    assert text == "load average 5.2 exceeds the 2 cores: results are dominated by other work; close other work"
    assert stats.load_warning(1.9, 2) is None and stats.load_warning(None, 2) is None
    assert stats.load_warning(5.2, None) is None  # cores unknown: no claim
    summary = stats.summarize([[1.0, 1.01, 0.99] * 10])
    assert stats.stability_warnings(summary, load_avg=5.2, cores=2) == [stats.load_warning(5.2, 2)]


def test_summary_refuses_no_samples():
    with pytest.raises(ValueError):
        stats.summarize([[]])


def test_a_moving_reference_workload_is_a_warning_and_a_steady_one_is_not():
    assert stats.reference_warning(None) is None and stats.reference_warning(1.05) is None
    warning = stats.reference_warning(1.6)
    assert "1.60x" in warning and "--cpu" in warning


def test_the_reference_shift_spans_every_process_before_and_after():
    from harness.measurement import Measurement, ProcessRun, RunSpec

    def process(i, before, after):
        return ProcessRun(index=i, status="ok", latencies_ms=(1.0,), reference_before_ns={"call": before},
                          reference_after_ns={"call": after})

    m = Measurement(run_id="r", target="local", model="m", variant="v", model_path="m.onnx", settings=RunSpec().settings_key(),
                    processes=(process(0, 4000, 4100), process(1, 6600, 4000), process(2, 4050, 4000)))
    medians, shift = m.reference()
    assert medians == {"call": 4.05} and shift == pytest.approx(6600 / 4000)
