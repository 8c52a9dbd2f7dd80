"""Paired, interleaved measurement for `edgebench compare`: rounds of ABBA blocks until decided.

One round is one fresh runner process that loads every model and alternates them in blocks of calls
(targets/runner.py, mode "paired"); the model order changes every round. Rounds are added until each
candidate's verdict is decided at a look of the SequentialRule, or the time budget runs out.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.compare_stats import DEFAULT_THRESHOLD, Comparison, SequentialRule, compare_rounds
from harness.bench import PERMANENT_FAILURES
from harness.console import format_number
from harness.gate import INCONCLUSIVE, Rule
from harness.inputs import InputValue, runner_inputs
from harness.providers import ProviderSpec, runner_providers
from harness.stats import load_warning
from targets.errors import EdgebenchError
from targets.runner import DEFAULTS as RUNNER_DEFAULTS

_MAX_FAILED_ROUNDS = 3

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PairedOptions:
    """How to measure a paired comparison; validates itself with messages that say what to fix."""

    threshold: float = DEFAULT_THRESHOLD
    max_time_s: float = 60.0
    min_rounds: int = 9
    block_size: int = RUNNER_DEFAULTS["block_size"]
    drop_per_block: int = RUNNER_DEFAULTS["drop_per_block"]
    n_blocks: int = RUNNER_DEFAULTS["n_blocks"]
    round_time_s: float = 0.5
    block_time_s: float = 0.25
    precision: float = 0.0
    max_slowdown: float | None = None  # compare's gate: a comparison it has decided needs no more rounds
    threads: int | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    seed: int = 0
    timeout_s: float = 120.0
    inputs: tuple[InputValue, ...] = ()
    data: Path | None = None
    providers: tuple[ProviderSpec, ...] = ()  # execution providers in priority order; () = CPU only

    def __post_init__(self) -> None:
        checks = [
            (0 < self.threshold < 1, "--threshold must be between 0 and 1 (0.02 means 2%)"),
            (self.max_time_s > 0, "--max-time must be positive"),
            (self.min_rounds >= 6, "--min-rounds must be at least 6 (fewer rounds cannot give a 95% interval)"),
            (self.block_size >= 2, "--block-size must be at least 2"),
            (0 <= self.drop_per_block < self.block_size, "--drop must be less than --block-size"),
            (self.block_time_s > 0, "--block-time must be positive"),
            (0 <= self.precision < 1, "--precision must be between 0 and 1 (0.05 means an interval of about +-5%)"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
            (self.seed >= 0, "--seed must be 0 or more (it seeds the random inputs and the round order)"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgebenchError(message)

    @property
    def round_cap_s(self) -> float:
        """Timed seconds after which a round ends its blocks (after a whole ABBA cycle).

        Sized so that twice --min-rounds rounds fit in --max-time with as much time again for each
        process's start, loading and warm-up: a slow model gets short rounds and a verdict in the
        budget (1.7 s at the defaults). A fast model ends on --round-time long before it.
        """
        share = self.max_time_s / (2 * self.min_rounds) / 2
        return min(max(self.round_time_s * 4, 10.0), max(self.round_time_s, share))

    def runner_spec(self, files: dict[str, str], keys: Sequence[str], seed: int) -> dict[str, Any]:
        inputs = runner_inputs(self.inputs, self.data, self.shapes, seed)
        return {
            **inputs, **runner_providers(self.providers),
            "mode": "paired", "files": {**files, **inputs["files"]}, "models": list(keys),
            "block_size": self.block_size, "drop_per_block": self.drop_per_block, "n_blocks": self.n_blocks,
            "min_time_s": self.round_time_s, "max_time_s": self.round_cap_s, "block_time_s": self.block_time_s,
            "intra_op_threads": self.threads, "inter_op_threads": 1,
        }


@dataclass
class PairedOutcome:
    """Everything a paired comparison measured: per-model calls (ms) per round and block, and the verdicts."""

    names: list[str]
    calls_ms: dict[str, list[Blocks]]
    comparisons: list[Comparison]
    elapsed_s: float
    machine: dict[str, Any]
    failed_rounds: int = 0


Blocks = list[list[float]]  # one round of one model: its timed calls (ms), block by block


def round_ratio(baseline: Blocks, candidate: Blocks) -> float:
    """One round's ratio: the median over block pairs of median candidate block / median baseline block.

    Block b of each model ran next to block b of the other (ABBA), so each pair saw the same machine
    state; a burst of other work that hits a few blocks moves a few pair ratios, not the round's
    median. Pooling all calls of the round first let such bursts decide whole rounds under load.
    """
    pairs = [float(np.median(c) / np.median(b)) for b, c in zip(baseline, candidate)
             if len(b) and len(c) and np.median(b) > 0]
    return float(np.median(pairs)) if pairs else math.nan


def round_ratios(calls: dict[str, list[Blocks]], baseline: str, candidate: str) -> list[float]:
    """Per round (one process), the block-pair ratio candidate/baseline."""
    return [round_ratio(b, c) for b, c in zip(calls[baseline], calls[candidate])]


def flat(rounds: list[Blocks]) -> list[list[float]]:
    """Per round, all timed calls of one model (for pyperf and medians)."""
    return [[v for block in r for v in block] for r in rounds]


def round_order(base: Sequence[str], index: int) -> list[str]:
    """The model order of round `index`: `base` rotated one place every two rounds, every odd round
    the reverse of the one before (AB, BA, BA, AB, ... for two models).

    Each pair of models runs in both orders in every two rounds. Who loads and leads first moved the
    ratio here (MobileNetV2-style 96x96 vs 112x112, 400 rounds: 1.441 with the baseline first, 1.474
    with the candidate first); a shuffled order per round left the first 9 rounds of a default
    compare 8:1, which pulled its early ratios towards the baseline-first value.
    """
    k = (index // 2) % len(base)
    order = list(base[k:]) + list(base[:k])
    return order[::-1] if index % 2 else order


def budget_warning(round_s: float, call_ms: dict[str, float], options: PairedOptions) -> str | None:
    """What to say when --max-time cannot hold the rounds of a first verdict (None when it can)."""
    need = options.min_rounds * round_s
    if need <= options.max_time_s:
        return None
    calls = ", ".join(f"{name} {format_number(ms)} ms" for name, ms in call_ms.items())
    # a quarter more than the estimate: later rounds vary, and a round is not started past the budget
    enough = 10 * math.ceil(need * 1.25 / 10)
    return (f"a round takes {round_s:.1f} s here (one call: {calls}) and the first verdict needs "
            f"{options.min_rounds} rounds, about {need:.0f} s: more than --max-time {options.max_time_s:g}; "
            f"give --max-time {enough} for a verdict")


def run_adaptive(next_round: Callable[[], dict[str, Blocks] | None], names: Sequence[str], baseline: str,
                 options: PairedOptions, rule: SequentialRule, *, clock: Callable[[], float] = time.monotonic,
                 progress: Progress = lambda m: None) -> tuple[dict[str, list[Blocks]], list[Comparison],
                                                               float, int]:
    """Add rounds until every candidate's verdict is decided at a look of `rule` (and its interval is
    as narrow as --precision asks), or time runs out.

    `next_round()` returns each model's timed calls (ms, block by block) of one process, or None for a
    failed round.
    The next round is not started when it would likely end after --max-time (its predicted length
    is the slowest round so far), so the command keeps its time budget. When the first round shows
    that the budget cannot hold the rounds of a first verdict, that is said at once, with the
    --max-time that would; the rounds go on within the budget for an estimate.
    """
    candidates = [n for n in names if n != baseline]
    calls: dict[str, list[Blocks]] = {n: [] for n in names}
    start = clock()
    failed = 0
    slowest = 0.0
    late: str | None = None
    while True:
        t0 = clock()
        got = next_round()
        slowest = max(slowest, clock() - t0)
        if got is None:
            failed += 1
        else:
            for n in names:
                calls[n].append([list(block) for block in got[n]])
        n_rounds = len(calls[baseline])
        if got is not None and n_rounds == 1:
            late = budget_warning(slowest, {n: float(np.median([v for b in got[n] for v in b])) for n in names},
                                  options)
            if late:
                progress(f"warning: {late}")
        if got is not None and rule.is_look(n_rounds):
            decided = _compare_all(calls, baseline, candidates, options, rule)
            progress(f"round {n_rounds}: " + "; ".join(f"{c.candidate} {c.ratio:.3f} {c.verdict}" for c in decided))
            if all(settled(c, options) for c in decided):
                break
        elapsed = clock() - start
        if elapsed + slowest > options.max_time_s:
            break
    comparisons = _compare_all(calls, baseline, candidates, options, rule)
    if late:
        comparisons = [replace(c, warnings=c.warnings + (late,)) if c.verdict == "inconclusive" else c
                       for c in comparisons]
    return calls, comparisons, clock() - start, failed


def settled(c: Comparison, options: PairedOptions) -> bool:
    """No more rounds needed: the verdict is decided (or, under --max-slowdown, the gate is), and the interval
    is as narrow as --precision asks."""
    if options.max_slowdown is not None:
        decided = Rule(options.max_slowdown, active=True).judge(c.verdict, c.ci_low, c.ci_high) != INCONCLUSIVE
    else:
        decided = c.verdict != "inconclusive"
    return decided and precise(c, options.precision)


def precise(c: Comparison, precision: float) -> bool:
    """The interval is at most about +-precision wide (high/low <= 1 + 2 * precision); always, for 0."""
    return precision <= 0 or (c.ci_low > 0 and c.ci_high / c.ci_low <= 1 + 2 * precision)


def _compare_all(calls: dict[str, list[Blocks]], baseline: str, candidates: Sequence[str],
                 options: PairedOptions, rule: SequentialRule) -> list[Comparison]:
    # the reported interval is the one the verdict is taken from (see SequentialRule)
    return [compare_rounds(round_ratios(calls, baseline, c), options.threshold, baseline=baseline, candidate=c,
                           decision_level=rule.decision_level, level=rule.decision_level) for c in candidates]


def measure_paired(target: Any, paths: dict[str, Path], baseline: str, options: PairedOptions,
                   progress: Progress = lambda m: None, rule: SequentialRule | None = None) -> PairedOutcome:
    """Interleaved rounds on `target` until decided; raises EdgebenchError when a model cannot run."""
    rule = rule or SequentialRule(min_rounds=options.min_rounds)
    names = list(paths)
    keys = {n: f"m{i}" for i, n in enumerate(names)}
    files = {keys[n]: str(p) for n, p in paths.items()}
    base = names[:]
    random.Random(options.seed).shuffle(base)
    machine: dict[str, Any] = {}
    loads: list[float] = []
    started = [0]  # rounds started, failed ones included: the order schedule goes on through failures
    streak = [0]

    def next_round() -> dict[str, Blocks] | None:
        order = round_order(base, started[0])
        started[0] += 1
        doc = target.run(options.runner_spec(files, [keys[n] for n in order], options.seed), options.timeout_s)
        status = doc.get("status")
        if status != "ok":
            message = f"{status}: {doc.get('error')}"
            if status in PERMANENT_FAILURES:
                raise EdgebenchError(f"the runner cannot measure these models on {target.name}: {message}")
            streak[0] += 1
            progress(f"a round failed ({message}); going on")
            if streak[0] >= _MAX_FAILED_ROUNDS:
                raise EdgebenchError(f"{streak[0]} rounds in a row failed on {target.name}; last: {message}")
            return None
        streak[0] = 0
        if not machine:
            machine.update(doc.get("machine") or {})
        load = (doc.get("telemetry_start") or {}).get("load_avg_1m")
        if load is not None:
            loads.append(float(load))
        blocks = doc.get("blocks_ns") or {}
        return {n: [[v / 1e6 for v in block] for block in blocks.get(keys[n], [])] for n in names}

    calls, comparisons, elapsed, failed = run_adaptive(next_round, names, baseline, options, rule,
                                                       progress=progress)
    if not calls[baseline]:
        raise EdgebenchError(f"no round finished within --max-time {options.max_time_s:g} s; raise --max-time")
    # Interleaving cancels a steady load, not cores too busy to run the models at all: other jobs then
    # decide each round, and several threads per model fight them for the cores.
    remedy = "the ratio may be far from a quiet machine's; close other work" + (
        "" if options.threads == 1 else ", or use --threads 1")
    busy = load_warning(max(loads, default=None), machine.get("cores"), remedy)
    if busy:
        comparisons = [replace(c, warnings=c.warnings + (busy,)) for c in comparisons]
    return PairedOutcome(names, calls, comparisons, elapsed, machine, failed)
