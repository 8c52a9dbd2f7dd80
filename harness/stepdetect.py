"""Step changes in a series of run medians (pure: numpy only, no I/O).

The method is asv's (airspeed velocity's `step_detect`): fit the series with a piecewise-constant function
under an L1 cost (robust to a single run spoiled by load), with a penalty per step, by exact dynamic
programming (optimal partitioning); then keep only steps whose size is at least `min_change`.

- Values are compared as logarithms, so a step is a ratio (+10% is the same step at 1 ms and at 1 s).
- The noise scale sigma comes from the series itself: 1.4826 x the median absolute difference of
  neighbours / sqrt(2), a robust estimate that one step (one large difference) does not move.
- Cost of a segment: sum |log x - median| / sigma; penalty per step: PENALTY x log(n).
- A segment has at least MIN_SEGMENT points: one or two odd runs are noise, not a new level.

False-alarm rate, measured by `scripts/history_steps.py` on simulated 30-run series (3% run-to-run noise,
5% of runs slowed 10-30% by load; the noise model is printed there): with PENALTY = 2, MIN_SEGMENT = 3 and
min_change 5%, a step-free series raised a false alarm in 1.1% of 1,000 series; a +10% step was found in
95.2% (98.3% at 2% noise, 56.3% at 5%: a step of two noise widths is not reliably visible in 30 runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PENALTY = 2.0
MIN_SEGMENT = 3
MIN_CHANGE = 0.05  # asv's default regression threshold: smaller steps are not reported


@dataclass(frozen=True)
class Step:
    """The level changed before point `index` (0-based, the first point of the new level)."""

    index: int
    before: float  # the median of the level before (in the series' unit)
    after: float

    @property
    def change(self) -> float:
        """after / before - 1: +0.12 is 12% slower for a latency."""
        return self.after / self.before - 1.0


def noise_scale(logs: np.ndarray) -> float:
    """Robust sigma of one point from neighbour differences (a step moves one difference only)."""
    if len(logs) < 3:
        return math.nan
    sigma = 1.4826 * float(np.median(np.abs(np.diff(logs)))) / math.sqrt(2.0)
    return max(sigma, 1e-4)  # a perfectly flat series would make every wobble infinitely costly


def _segment_costs(logs: np.ndarray) -> np.ndarray:
    """cost[i, j] = sum |x - median(x[i:j])| over x[i:j] (j > i), for all segments."""
    n = len(logs)
    cost = np.full((n + 1, n + 1), np.inf)
    for i in range(n):
        for j in range(i + MIN_SEGMENT, n + 1):
            seg = logs[i:j]
            cost[i, j] = float(np.abs(seg - np.median(seg)).sum())
    return cost


def find_steps(values: Sequence[float], min_change: float = MIN_CHANGE, penalty: float = PENALTY) -> list[Step]:
    """The step changes of a series of positive values (e.g. run medians in time order)."""
    x = np.asarray([v for v in values], dtype=float)
    n = len(x)
    if n < 2 * MIN_SEGMENT or not np.all(np.isfinite(x)) or np.any(x <= 0):
        return []
    logs = np.log(x)
    sigma = noise_scale(logs)
    cost = _segment_costs(logs) / sigma
    beta = penalty * math.log(n)
    best = np.full(n + 1, np.inf)
    best[0] = -beta
    last = np.zeros(n + 1, dtype=int)
    for j in range(MIN_SEGMENT, n + 1):
        candidates = best[:j] + cost[:j, j] + beta
        i = int(np.argmin(candidates))
        best[j], last[j] = candidates[i], i
    bounds, j = [], n
    while j > 0:
        bounds.append(j)
        j = last[j]
    bounds = sorted(bounds)
    starts = [0] + bounds[:-1]
    levels = [float(np.exp(np.median(logs[s:e]))) for s, e in zip(starts, bounds)]
    steps = [Step(s, before, after) for s, before, after in zip(starts[1:], levels, levels[1:])]
    return [s for s in steps if abs(math.log(s.after / s.before)) >= math.log1p(min_change)]
