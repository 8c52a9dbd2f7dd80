"""Statistics of latency samples. Pure functions: no I/O, no onnxruntime, deterministic given a seed.

Samples arrive grouped by process: on a shared machine the process, not the individual call, is the
unit of independent evidence (one process ran a model 1.6x slower than the next here), so the
confidence interval of the median resamples processes first and calls within them second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Iglewicz & Hoaglin (1993): |modified z| > 3.5 marks a potential outlier; 0.6745 makes MAD
# comparable to a normal standard deviation.
OUTLIER_Z = 3.5
_MAD_TO_SIGMA = 0.6745
# The bootstrap never needs every call of a long run: an even thinning by quantiles keeps the
# distribution and bounds the cost.
_MAX_PER_GROUP = 2000


@dataclass(frozen=True)
class Summary:
    """Derived from raw samples (milliseconds); never stored instead of them."""

    n: int
    n_groups: int
    median: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    mad: float
    ci95_low: float
    ci95_high: float
    outliers: int
    group_medians: tuple[float, ...]

    @property
    def group_spread(self) -> float:
        """Slowest over fastest per-process median (1.0 when there is one process)."""
        meds = [m for m in self.group_medians if m > 0]
        return max(meds) / min(meds) if meds else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation (unscaled)."""
    x = np.asarray(values, dtype=np.float64)
    return float(np.median(np.abs(x - np.median(x))))


def outlier_count(values: Sequence[float], z: float = OUTLIER_Z) -> int:
    """Points whose modified z-score exceeds `z` (Iglewicz & Hoaglin)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 3:
        return 0
    m = mad(x)
    if m == 0:
        return int(np.count_nonzero(x != np.median(x)))
    return int(np.count_nonzero(np.abs(_MAD_TO_SIGMA * (x - np.median(x)) / m) > z))


def _thin(x: np.ndarray, limit: int = _MAX_PER_GROUP) -> np.ndarray:
    if x.size <= limit:
        return np.sort(x)
    return np.quantile(x, (np.arange(limit) + 0.5) / limit)


def bootstrap_median_ci(
    groups: Sequence[Sequence[float]], *, level: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the pooled median, resampling groups, then samples within each.

    With one group this is the ordinary bootstrap of the median. With several, the between-process
    variation (the dominant noise here) widens the interval as it should. Long groups are thinned to
    evenly spaced quantiles and resampled with multinomial counts that add up to the group's real
    size, so the interval keeps the width of the full sample at a fraction of the cost.
    """
    originals = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not originals:
        return (math.nan, math.nan)
    thinned = [_thin(g) for g in originals]
    sizes = [g.size for g in originals]
    pooled = np.concatenate(thinned)
    order = np.argsort(pooled, kind="stable")
    sorted_values = pooled[order]
    offsets = np.cumsum([0] + [t.size for t in thinned])
    rng = np.random.default_rng(seed)
    k = len(thinned)
    stats = np.empty(n_boot)
    weights = np.zeros(pooled.size)
    for b in range(n_boot):
        weights[:] = 0
        picks = rng.integers(0, k, size=k) if k > 1 else (0,)
        for i in picks:
            # multinomial counts with equal cell probabilities, drawn as uniform picks: the same law,
            # 3.4x faster than Generator.multinomial, which draws one binomial per cell (5 x 10,000 calls:
            # 4.2-4.8 s -> 1.2-1.4 s, side by side at load 5.5)
            span = offsets[i + 1] - offsets[i]
            weights[offsets[i]:offsets[i + 1]] += np.bincount(rng.integers(0, span, sizes[i]), minlength=span)
        cumulative = np.cumsum(weights[order])
        stats[b] = sorted_values[np.searchsorted(cumulative, cumulative[-1] / 2.0)]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def summarize(groups: Sequence[Sequence[float]], *, seed: int = 0) -> Summary:
    """Summary of latency samples given per process (a flat list counts as one process)."""
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        raise ValueError("no samples to summarize")
    x = np.concatenate([np.asarray(g, dtype=np.float64) for g in groups])
    low, high = bootstrap_median_ci(groups, seed=seed)
    return Summary(
        n=int(x.size),
        n_groups=len(groups),
        median=float(np.median(x)),
        p90=percentile(x, 90),
        p95=percentile(x, 95),
        p99=percentile(x, 99),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        min=float(x.min()),
        max=float(x.max()),
        mad=mad(x),
        ci95_low=low,
        ci95_high=high,
        outliers=outlier_count(x),
        group_medians=tuple(float(np.median(g)) for g in groups),
    )


def stability_warnings(
    summary: Summary, *, load_avg: float | None = None, cores: int | None = None
) -> list[str]:
    """Say when a summary is shaky, and what to do about it (pyperf's habit: a warning with a remedy)."""
    out: list[str] = []
    busy = ""
    if load_avg is not None and cores:
        busy = f" (load {load_avg:.1f} on {cores} cores)"
    if summary.n < 20:
        out.append(f"only {summary.n} timed calls: raise --min-time or --min-iterations for a trustworthy median")
    # Robust spread (MAD scaled to a normal sigma): a handful of long spikes inflate std without
    # moving the median, and the median is what we report.
    rel = summary.mad / _MAD_TO_SIGMA / summary.median if summary.median > 0 else 0.0
    if rel > 0.10:
        remedy = "the machine is busy" + busy if busy and load_avg >= 0.5 * cores else "the timings are unsteady"
        out.append(f"the spread (scaled MAD) is {rel:.0%} of the median: {remedy}; "
                   "use --min-time 10 or pin cores with --cpu")
    if summary.n_groups > 1 and summary.group_spread > 1.10:
        out.append(
            f"process medians differ by {summary.group_spread:.2f}x{busy}: "
            "the machine's state changes between processes; use --processes 7 or close other work"
        )
    if summary.n and summary.outliers / summary.n > 0.05:
        out.append(
            f"{summary.outliers} of {summary.n} calls ({summary.outliers / summary.n:.0%}) are outliers: "
            "something else ran on the cores; pin cores with --cpu"
        )
    busy_machine = load_warning(load_avg, cores)
    if busy_machine:
        out.append(busy_machine)
    return out


# A fixed reference workload timed before and after the model in every process: on a quiet machine its
# timings agree within a few percent; a sibling hyperthread or a frequency change moves them 1.5x.
REFERENCE_SHIFT_LIMIT = 1.20


def reference_warning(shift: float | None) -> str | None:
    """Say when the machine's own speed moved during a measurement (see the runner's reference workload)."""
    if shift is None or shift <= REFERENCE_SHIFT_LIMIT:
        return None
    return (f"the machine's own speed moved {shift:.2f}x during this measurement (a fixed reference workload, "
            "timed before and after the model in each process, did not keep its time): the latencies mix "
            "two speeds of the host; measure again on a quiet machine or pin cores with --cpu")


def load_warning(load_avg: float | None, cores: int | None, remedy: str = "") -> str | None:
    """The busy-machine warning of bench and compare: a load average above the core count, or None."""
    if load_avg is None or not cores or load_avg <= cores:
        return None
    return (f"load average {load_avg:.1f} exceeds the {cores} cores: results are dominated by other work"
            + (f"; {remedy}" if remedy else ""))
