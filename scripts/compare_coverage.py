#!/usr/bin/env python3
"""Does the interval `edgebench compare` reports hold the true ratio after an early stop? (simulation)

Each simulated comparison runs the real stopping code (harness.paired.run_adaptive with the default
PairedOptions and SequentialRule) on rounds whose log ratio is

    log(true ratio) + order effect + drift + round noise

- order effect: +-half of --order-effect by which model loads and leads the round;
- drift: an AR(1) process across rounds (--drift its standard deviation, --phi its lag-1 correlation):
  rounds close in time share the machine's state;
- round noise: Student t with 5 degrees of freedom scaled to --sigma (the tails are heavier than normal).

The defaults are what 400 default-sized rounds of the MobileNetV2-style 96x96 vs 112x112 pair showed
here (8 minutes, load average 1.7-8.5 from other jobs on 2 cores): log-ratio spread 0.045 per round
(0.10 once the load passed 5), ratio 1.441 with the baseline loaded and leading first and 1.474 with
the candidate first, and means of 10/20/40 consecutive rounds 1.07/1.46/2.04 times as variable as
independent rounds would be, which an AR(1) drift of 0.01-0.012 with phi 0.98 reproduces.

Two procedures on the same kind of rounds:
  before  the model order shuffled every round from seed 0 (the default --seed: the first 9 rounds had
          the baseline first 8 times) and a plain 95% interval at the stopping look;
  after   what compare does now: balanced orders (harness.paired.round_order) and the interval the
          verdict is taken from, at the decision level (a repeated confidence interval).

Usage: python scripts/compare_coverage.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.compare_stats import SequentialRule, compare_rounds  # noqa: E402
from harness.paired import PairedOptions, round_order, run_adaptive  # noqa: E402

# Measured on this machine with the runner's paired mode (see the module docstring).
SIGMA = 0.045
ORDER_EFFECT = 0.022
DRIFT = 0.012
PHI = 0.98


@dataclass(frozen=True)
class Outcome:
    """One simulated comparison: where it stopped and the intervals it could report."""

    n_rounds: int
    verdict: str
    plain95: tuple[float, float]  # the 95% interval at the stopping look
    reported: tuple[float, float]  # what run_adaptive reports

    def holds(self, truth: float, which: str) -> bool:
        low, high = getattr(self, which)
        return low <= truth <= high


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(true_ratio: float, runs: int, *, balanced: bool, sigma: float = SIGMA,
             order_effect: float = ORDER_EFFECT, drift: float = DRIFT, phi: float = PHI, seed: int = 0,
             round_s: float = 1.2, max_time_s: float = 60.0) -> list[Outcome]:
    """`runs` comparisons of a candidate `true_ratio` times the baseline's latency, stopped as compare stops."""
    rng = np.random.default_rng(seed)
    options = PairedOptions(max_time_s=max_time_s)
    rule = SequentialRule(min_rounds=options.min_rounds)
    t_scale = math.sqrt(3.0 / 5.0)  # a t5 variable has variance 5/3
    out = []
    for _ in range(runs):
        clock = _Clock()
        shuffler = random.Random(0)  # the old per-round shuffle, default seed
        state = {"round": 0, "drift": rng.normal(0.0, drift)}

        def next_round() -> dict[str, list[list[float]]]:
            clock.now += round_s
            if balanced:
                lead = round_order(["A", "B"], state["round"])[0]
            else:
                order = ["A", "B"]
                shuffler.shuffle(order)
                lead = order[0]
            state["round"] += 1
            state["drift"] = phi * state["drift"] + math.sqrt(1 - phi ** 2) * drift * rng.standard_normal()
            x = (math.log(true_ratio) + (order_effect if lead == "B" else -order_effect) / 2 + state["drift"]
                 + sigma * t_scale * rng.standard_t(5))
            return {"A": [[1.0]], "B": [[math.exp(x)]]}

        _, (c,), _, _ = run_adaptive(next_round, ["A", "B"], "A", options, rule, clock=clock)
        plain = compare_rounds(c.round_ratios)
        out.append(Outcome(c.n_rounds, c.verdict, (plain.ci_low, plain.ci_high), (c.ci_low, c.ci_high)))
    return out


def coverage(outcomes: list[Outcome], truth: float, which: str) -> float:
    return sum(o.holds(truth, which) for o in outcomes) / len(outcomes)


def median_width(outcomes: list[Outcome], which: str) -> float:
    """Median relative width of an interval (high/low - 1), over the outcomes that have one."""
    widths = [hi / lo - 1 for lo, hi in (getattr(o, which) for o in outcomes) if lo > 0 and math.isfinite(hi)]
    return statistics.median(widths) if widths else math.nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000, help="simulated comparisons per case (1000)")
    ap.add_argument("--ratios", default="1.0,1.02,1.05,1.1,1.48", help="true ratios, comma separated")
    ap.add_argument("--sigma", type=float, default=SIGMA)
    ap.add_argument("--order-effect", type=float, default=ORDER_EFFECT)
    ap.add_argument("--drift", type=float, default=DRIFT)
    ap.add_argument("--phi", type=float, default=PHI)
    args = ap.parse_args()
    t0 = time.monotonic()
    print(f"{args.runs} simulated comparisons per case; round noise sigma {args.sigma}, order effect "
          f"{args.order_effect}, drift {args.drift} (phi {args.phi}); 1.2 s rounds, --max-time 60")
    print("noise      | true ratio | before: 95% CI holds it | after: reported CI holds it | "
          "median rounds | median CI width before -> after")
    for label, drift in (("no drift", 0.0), ("drift", args.drift)):
        for ratio in (float(r) for r in args.ratios.split(",")):
            kw = dict(sigma=args.sigma, order_effect=args.order_effect, drift=drift, phi=args.phi)
            before = simulate(ratio, args.runs, balanced=False, **kw)
            after = simulate(ratio, args.runs, balanced=True, **kw)
            print(f"{label:10s} | {ratio:10.3f} | {coverage(before, ratio, 'plain95'):23.1%} | "
                  f"{coverage(after, ratio, 'reported'):27.1%} | {statistics.median(o.n_rounds for o in after):13g} | "
                  f"{median_width(before, 'plain95'):.1%} -> {median_width(after, 'reported'):.1%}", flush=True)
    print(f"({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
