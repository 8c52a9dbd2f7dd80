"""Statistics of A/B comparisons: ratio of latencies with an exact confidence interval and a verdict.

Pure functions (no I/O, no onnxruntime), tested on synthetic data with a known truth.

The unit of evidence is a *round*, never a single call: calls within one process share that
process's state (one process here ran a model 1.6x slower than the next), so they are not
independent. Two designs:

- paired (`compare_rounds`): each round is one fresh runner process that alternated the models in
  blocks, giving one ratio candidate/baseline per round. The log ratios are tested with the Wilcoxon
  signed-rank test and estimated with the matching Hodges–Lehmann estimator and its exact
  distribution-free interval (Walsh averages; Hollander & Wolfe, *Nonparametric Statistical
  Methods*, ch. 3). Exact for any symmetric distribution of the log ratio — no normality and no
  bootstrap, whose percentile interval undercovers with the 8-20 rounds a comparison has.
- independent (`compare_samples`): per-process medians from separate runs (a bench run, or two
  stored result folders). Mann–Whitney U test on the log medians, two-sample Hodges–Lehmann shift
  with its exact interval (Moses; Hollander & Wolfe ch. 4), exact under a shift in log latency.

Because the interval is exact only at the attainable levels of a discrete distribution, the one
used is the narrowest with coverage >= the nominal level (e.g. 95.1% for 10 rounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

LEVEL = 0.95
# Default practical-equivalence margin: `same` when the whole 95% interval lies within +-2%.
DEFAULT_THRESHOLD = 0.02
VERDICTS = ("faster", "slower", "same", "inconclusive")
# Exact null distributions up to this size; beyond it the normal approximation is accurate to <0.1%.
_EXACT_MAX = 100


# ---------------------------------------------------------------- exact null distributions


@lru_cache(maxsize=256)
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= k) for k = 0..n(n+1)/2 under H0 (each rank's sign a fair coin)."""
    dist = np.zeros(n * (n + 1) // 2 + 1)
    dist[0] = 1.0
    top = 0
    for rank in range(1, n + 1):
        top += rank
        shifted = np.zeros_like(dist)
        shifted[rank:top + 1] = dist[:top + 1 - rank]
        dist = (dist + shifted) / 2.0
    return np.cumsum(dist)


@lru_cache(maxsize=256)
def _rank_sum_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= k) for k = 0..mn, U the Mann–Whitney statistic, by the recurrence over sample sizes."""
    # counts[j] = distribution (as counts) of U for sizes (i, j); rows built for i = 0..m
    counts = [np.ones(1) for _ in range(n + 1)]
    for i in range(1, m + 1):
        row = [np.ones(1)]
        for j in range(1, n + 1):
            cur = np.zeros(i * j + 1)
            left = row[j - 1]  # (i, j-1): the largest value is a y, adds nothing
            cur[:left.size] += left
            up = counts[j]  # (i-1, j): the largest value is an x, beats all j y's
            cur[j:j + up.size] += up
            row.append(cur)
        counts = row
    dist = counts[n]
    return np.cumsum(dist) / dist.sum()


def _critical_count(cdf: np.ndarray, level: float) -> int:
    """How many order statistics to cut from each end: largest c with P(T <= c-1) <= alpha/2."""
    alpha = 1.0 - level
    return int(np.searchsorted(cdf, alpha / 2.0 + 1e-12, side="right"))


def _normal_critical_count(mean: float, var: float, level: float) -> int:
    z = _z(level)
    return max(0, int(math.floor(mean - z * math.sqrt(var) + 0.5)))


def _z(level: float) -> float:
    # inverse normal CDF by bisection on erf: no scipy dependency for one number
    target = 1.0 - (1.0 - level) / 2.0
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _two_sided_p(cdf: np.ndarray, stat: float) -> float:
    k = int(round(stat))
    lower = cdf[k] if k < cdf.size else 1.0
    upper = 1.0 - (cdf[k - 1] if k >= 1 else 0.0)
    return float(min(1.0, 2.0 * min(lower, upper)))


def _normal_p(stat: float, mean: float, var: float) -> float:
    if var <= 0:
        return 1.0
    z = (abs(stat - mean) - 0.5) / math.sqrt(var)
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2.0))))


# ---------------------------------------------------------------- one-sample (paired) and two-sample


def signed_rank(d: Sequence[float], level: float = LEVEL) -> tuple[float, float, float, float]:
    """Wilcoxon signed-rank on differences `d`: (Hodges–Lehmann estimate, CI low, CI high, p-value).

    Zeros are dropped for the p-value (Wilcoxon's convention) but kept in the Walsh averages.
    The interval is (-inf, inf) when too few values exist to reach `level` (fewer than 6 at 95%).
    """
    x = np.asarray(d, dtype=np.float64)
    n = x.size
    if n == 0:
        return (math.nan, -math.inf, math.inf, 1.0)
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2.0)
    estimate = float(np.median(walsh))
    m = walsh.size
    if n <= 4 * _EXACT_MAX:
        c = _critical_count(_signed_rank_cdf(n), level)
    else:
        c = _normal_critical_count(m / 2.0, n * (n + 1) * (2 * n + 1) / 24.0, level)
    low, high = (float(walsh[c - 1]), float(walsh[m - c])) if c >= 1 else (-math.inf, math.inf)
    nz = x[x != 0]
    k = nz.size
    if k == 0:
        return (estimate, low, high, 1.0)
    ranks = _average_ranks(np.abs(nz))
    t_plus = float(ranks[nz > 0].sum())
    mean, var = k * (k + 1) / 4.0, k * (k + 1) * (2 * k + 1) / 24.0
    if k <= 4 * _EXACT_MAX and not _has_ties(np.abs(nz)):
        p = _two_sided_p(_signed_rank_cdf(k), t_plus)
    else:
        p = _normal_p(t_plus, mean, var)
    return (estimate, low, high, p)


def rank_sum(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> tuple[float, float, float, float]:
    """Mann–Whitney on samples x (baseline) and y (candidate): (HL shift y-x, CI low, CI high, p-value)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    m, n = a.size, b.size
    if m == 0 or n == 0:
        return (math.nan, -math.inf, math.inf, 1.0)
    diffs = np.sort((b[None, :] - a[:, None]).ravel())
    estimate = float(np.median(diffs))
    exact = m <= _EXACT_MAX and n <= _EXACT_MAX
    mean, var = m * n / 2.0, m * n * (m + n + 1) / 12.0
    if exact:
        cdf = _rank_sum_cdf(min(m, n), max(m, n))
        c = _critical_count(cdf, level)
    else:
        c = _normal_critical_count(mean, var, level)
    low, high = (float(diffs[c - 1]), float(diffs[m * n - c])) if c >= 1 else (-math.inf, math.inf)
    # U counts pairs with candidate > baseline (ties count half)
    u = float(np.count_nonzero(diffs > 0) + 0.5 * np.count_nonzero(diffs == 0))
    if exact and not _has_ties(np.concatenate([a, b])):
        p = _two_sided_p(cdf, u)
    else:
        p = _normal_p(u, mean, var)
    return (estimate, low, high, p)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(v.size)
    ranks[order] = np.arange(1, v.size + 1)
    values, inverse = np.unique(v, return_inverse=True)
    if values.size != v.size:
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / np.bincount(inverse))[inverse]
    return ranks


def _has_ties(v: np.ndarray) -> bool:
    return np.unique(v).size != v.size


# ---------------------------------------------------------------- verdicts


def verdict(low: float, high: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """`same` if the ratio's interval lies within +-threshold, else `faster`/`slower` if it excludes 1.

    `same` is checked first: a difference the user declared too small to matter (say a CI of
    1.004-1.015 at a 2% threshold) is reported as the equivalence it is, not as "slower".
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low >= 1.0 / (1.0 + threshold) and high <= 1.0 + threshold:
        return "same"
    if high < 1.0:
        return "faster"
    if low > 1.0:
        return "slower"
    return "inconclusive"


def effect_words(ratio: float) -> str:
    """'1.31x slower', '1.25x faster' (speedup = baseline/candidate), or 'as fast'."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "not measured"
    factor = ratio if ratio >= 1.0 else 1.0 / ratio
    if factor < 1.0005:
        return "as fast"
    text = f"{factor:.2f}x" if factor >= 1.1 else f"{factor:.3f}x"  # 1.004x, not a rounded 1.00x
    return text + (" slower" if ratio >= 1.0 else " faster")


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline: ratio of latencies candidate/baseline (< 1 means faster)."""

    baseline: str
    candidate: str
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n_rounds: int
    verdict: str
    paired: bool
    threshold: float = DEFAULT_THRESHOLD
    round_ratios: tuple[float, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One plain sentence: 'B is 1.31x slower than A, 95% CI 1.27-1.35 (12 rounds, p=0.0005): slower.'"""
        if not math.isfinite(self.ratio):
            return f"{self.candidate} vs {self.baseline}: no usable measurements"
        ci = _fmt_ci(self.ci_low, self.ci_high)
        unit = "rounds" if self.paired else "processes per side"
        tail = f"({self.n_rounds} {unit}, p={self.p_value:.2g})"
        words = effect_words(self.ratio)
        if self.verdict == "same":
            return (f"{self.candidate} is as fast as {self.baseline} within {self.threshold:.0%}: "
                    f"ratio {self.ratio:.3f}, 95% CI {ci} {tail}")
        if self.verdict == "inconclusive":
            return (f"inconclusive: {self.candidate} looks {words} than {self.baseline}, but the 95% CI {ci} "
                    f"{tail} does not decide; measure longer (--max-time) or on a quieter machine")
        if self.ratio < 1.0:  # state the interval in the same unit as the words: a speedup factor
            ci = _fmt_ci(1.0 / self.ci_high, 1.0 / self.ci_low) + "x"
        return f"{self.candidate} is {words} than {self.baseline}, 95% CI {ci} {tail}"


def _fmt_ci(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "unbounded (too few rounds)"
    return f"{low:.3f}-{high:.3f}"


def compare_rounds(round_ratios: Sequence[float], threshold: float = DEFAULT_THRESHOLD, *,
                   baseline: str = "A", candidate: str = "B", decision_level: float = LEVEL,
                   level: float = LEVEL) -> Comparison:
    """Paired comparison from one ratio candidate/baseline per round (each an interleaved process).

    The verdict comes from the interval at `decision_level` (stricter than 95% when rounds are
    added adaptively, see `SequentialRule`); the reported interval is always at `level`.
    """
    r = np.asarray(round_ratios, dtype=np.float64)
    r = r[np.isfinite(r) & (r > 0)]
    if r.size == 0:
        return Comparison(baseline, candidate, math.nan, math.nan, math.nan, math.nan, 0, "inconclusive", True,
                          threshold)
    logs = np.log(r)
    est, low, high, p = signed_rank(logs, level)
    if decision_level == level:
        dlow, dhigh = low, high
    else:
        _, dlow, dhigh, _ = signed_rank(logs, decision_level)
    return Comparison(baseline, candidate, math.exp(est), math.exp(low), math.exp(high), p, int(r.size),
                      verdict(math.exp(dlow), math.exp(dhigh), threshold), True, threshold,
                      tuple(float(v) for v in r))


NOT_INTERLEAVED = ("the two sides were measured in separate runs, not interleaved: a change of machine state "
                   "between them (load, temperature, clock) is indistinguishable from a change of the model; "
                   "compare the models themselves (edgebench compare A.onnx B.onnx) for a paired answer")


def compare_samples(baseline_groups: Sequence[Sequence[float]], candidate_groups: Sequence[Sequence[float]],
                    threshold: float = DEFAULT_THRESHOLD, *, baseline: str = "A", candidate: str = "B",
                    level: float = LEVEL, interleaved: bool = True) -> Comparison:
    """Independent comparison from per-process latency groups (e.g. a bench run's processes).

    Each process contributes its median; the interval is the exact Mann–Whitney (Moses) interval of
    the shift in log latency, so it carries the between-process noise. With fewer than 4 processes
    per side no 95% interval exists and the verdict is `inconclusive`. `interleaved=False` (two
    separate runs) adds a warning that drift and change cannot be told apart.
    """
    a = [float(np.median(g)) for g in baseline_groups if len(g)]
    b = [float(np.median(g)) for g in candidate_groups if len(g)]
    a = [v for v in a if v > 0]
    b = [v for v in b if v > 0]
    warnings = () if interleaved else (NOT_INTERLEAVED,)
    if not a or not b:
        return Comparison(baseline, candidate, math.nan, math.nan, math.nan, math.nan, min(len(a), len(b)),
                          "inconclusive", False, threshold, warnings=warnings)
    est, low, high, p = rank_sum(np.log(a), np.log(b), level)
    if not math.isfinite(low):
        warnings += (f"{len(a)} and {len(b)} processes cannot give a {level:.0%} interval; "
                     "use at least 4 processes per side (--processes)",)
    return Comparison(baseline, candidate, math.exp(est), math.exp(low), math.exp(high), p, min(len(a), len(b)),
                      verdict(math.exp(low), math.exp(high), threshold), False, threshold, warnings=warnings)


# ---------------------------------------------------------------- adaptive stopping


@dataclass(frozen=True)
class SequentialRule:
    """When to look at the data while rounds are added, and how strict each look must be.

    Looking after every round and stopping at the first 95% interval that excludes 1 would call
    identical models different far more often than 5% of the time. So the verdict is taken only at
    looks spaced geometrically (each ~25% more rounds than the last: 9, 12, 15, 19, 24, ...) and from
    an interval at `decision_level` (99.5%). Simulated identical models with `same` forbidden (the
    worst case: every experiment runs to its last look, 9 looks up to 60 rounds) got a faster/slower
    verdict in 1.5-3.1% of 1,000 experiments over four seeds; at 99% it was 5%, and a 95% look after
    every round 25%. The first look needs 9 rounds: fewer cannot reach 99.5% at all (2/2^n > 0.005).

    The interval reported is the one the verdict was taken from. Intervals at `decision_level` at
    every look hold the true ratio all together in >= 97% of experiments (the false-verdict rate above
    is the chance that one of them misses 1), so the one at whatever look stopped is an honest 95%
    interval: a repeated confidence interval (Jennison & Turnbull, *Group Sequential Methods*, ch. 9).
    A plain 95% interval at the stopping look is not: the comparison stopped *because* the rounds so
    far looked decided, and rounds drift together on a shared machine (scripts/compare_coverage.py).
    """

    min_rounds: int = 9
    growth: float = 1.25
    decision_level: float = 0.995

    def __post_init__(self) -> None:
        if self.min_rounds < 2:
            raise ValueError("min_rounds must be at least 2")
        if self.growth <= 1.0:
            raise ValueError("growth must exceed 1")

    def is_look(self, n: int) -> bool:
        look = self.min_rounds
        while look < n:
            look = max(look + 1, int(math.ceil(look * self.growth)))
        return look == n

    def looks(self, up_to: int) -> list[int]:
        return [n for n in range(1, up_to + 1) if self.is_look(n)]
