"""Decide whether candidate models are faster or slower than a baseline, by how much, and how sure.

`edgebench compare A B [C ...]` loads the models into one runner process, alternates them in blocks
of calls (ABBA), and repeats that in fresh processes (model order shuffled each time) until every
verdict is decided or --max-time runs out. Each process is one round, the unit of evidence; see
harness/compare_stats.py for the statistics. Given two result folders instead, it compares their
stored samples process by process, with a warning that separate runs cannot tell drift from change.

Writes comparison.csv (the CONTRACT columns first) and pyperf-<name>.json per model, so
`python -m pyperf compare_to` can be run on the same samples.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from harness.compare_stats import (
    DEFAULT_THRESHOLD,
    Comparison,
    SequentialRule,
    compare_rounds,
    compare_samples,
)
from harness.errors import EdgebenchError
from harness.results import SAMPLES_CSV, SCHEMA_VERSION, atomic_write_text, new_run_id, read_csv_rows

COMPARISON_CSV = "comparison.csv"
# Runner statuses that another process will not change: stop at once with the runner's message.
_PERMANENT = {"missing_file", "bad_model", "invalid_graph", "bad_shape", "bad_data", "bad_spec", "no_onnxruntime",
              "run_failed"}
_MAX_FAILED_ROUNDS = 3

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ComparisonRow:
    """One row of comparison.csv; the first nine fields are the CONTRACT's columns, in its order."""

    baseline: str
    candidate: str
    target: str
    ratio_median: float
    ratio_ci95_low: float
    ratio_ci95_high: float
    p_value: float
    n_rounds: int
    verdict: str
    # beyond the contract
    threshold: float
    method: str
    baseline_median_ms: float | None
    candidate_median_ms: float | None
    elapsed_s: float | None
    description: str
    warnings: str
    schema_version: int = SCHEMA_VERSION


COMPARISON_COLUMNS = tuple(f.name for f in fields(ComparisonRow))


@dataclass(frozen=True)
class PairedOptions:
    """How to measure a paired comparison; validates itself with messages that say what to fix."""

    threshold: float = DEFAULT_THRESHOLD
    max_time_s: float = 60.0
    min_rounds: int = 9
    block_size: int = 40
    drop_per_block: int = 5
    n_blocks: int = 6
    round_time_s: float = 0.5
    threads: int | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    seed: int = 0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        checks = [
            (0 < self.threshold < 1, "--threshold must be between 0 and 1 (0.02 means 2%)"),
            (self.max_time_s > 0, "--max-time must be positive"),
            (self.min_rounds >= 6, "--min-rounds must be at least 6 (fewer rounds cannot give a 95% interval)"),
            (self.block_size >= 2, "--block-size must be at least 2"),
            (0 <= self.drop_per_block < self.block_size, "--drop must be less than --block-size"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgebenchError(message)

    def runner_spec(self, files: dict[str, str], keys: Sequence[str], seed: int) -> dict[str, Any]:
        return {
            "mode": "paired", "files": files, "models": list(keys), "block_size": self.block_size,
            "drop_per_block": self.drop_per_block, "n_blocks": self.n_blocks, "min_time_s": self.round_time_s,
            "max_time_s": max(self.round_time_s * 4, 10.0), "inputs": {"seed": seed},
            "shapes": {name: list(dims) for name, dims in self.shapes}, "intra_op_threads": self.threads,
            "inter_op_threads": 1,
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


# ---------------------------------------------------------------- adaptive paired measurement


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


def run_adaptive(next_round: Callable[[], dict[str, Blocks] | None], names: Sequence[str], baseline: str,
                 options: PairedOptions, rule: SequentialRule, *, clock: Callable[[], float] = time.monotonic,
                 progress: Progress = lambda m: None) -> tuple[dict[str, list[Blocks]], list[Comparison],
                                                               float, int]:
    """Add rounds until every candidate's verdict is decided at a look of `rule`, or time runs out.

    `next_round()` returns each model's timed calls (ms, block by block) of one process, or None for a
    failed round.
    The next round is not started when it would likely end after --max-time (its predicted length
    is the slowest round so far), so the command keeps its time budget.
    """
    candidates = [n for n in names if n != baseline]
    calls: dict[str, list[Blocks]] = {n: [] for n in names}
    start = clock()
    failed = 0
    slowest = 0.0
    decided: list[Comparison] = []
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
        if got is not None and rule.is_look(n_rounds):
            decided = _compare_all(calls, baseline, candidates, options, rule.decision_level)
            progress(f"round {n_rounds}: " + "; ".join(f"{c.candidate} {c.ratio:.3f} {c.verdict}" for c in decided))
            if all(c.verdict != "inconclusive" for c in decided):
                break
        elapsed = clock() - start
        if elapsed + slowest > options.max_time_s:
            break
    return calls, _compare_all(calls, baseline, candidates, options, rule.decision_level), clock() - start, failed


def _compare_all(calls: dict[str, list[Blocks]], baseline: str, candidates: Sequence[str],
                 options: PairedOptions, decision_level: float) -> list[Comparison]:
    return [compare_rounds(round_ratios(calls, baseline, c), options.threshold, baseline=baseline, candidate=c,
                           decision_level=decision_level) for c in candidates]


def measure_paired(target: Any, paths: dict[str, Path], baseline: str, options: PairedOptions,
                   progress: Progress = lambda m: None, rule: SequentialRule | None = None) -> PairedOutcome:
    """Interleaved rounds on `target` until decided; raises EdgebenchError when a model cannot run."""
    rule = rule or SequentialRule(min_rounds=options.min_rounds)
    names = list(paths)
    keys = {n: f"m{i}" for i, n in enumerate(names)}
    files = {keys[n]: str(p) for n, p in paths.items()}
    rng = random.Random(options.seed)
    machine: dict[str, Any] = {}
    streak = [0]

    def next_round() -> dict[str, Blocks] | None:
        order = names[:]
        rng.shuffle(order)  # which model loads and leads first changes every round
        doc = target.run(options.runner_spec(files, [keys[n] for n in order], options.seed), options.timeout_s)
        status = doc.get("status")
        if status != "ok":
            message = f"{status}: {doc.get('error')}"
            if status in _PERMANENT:
                raise EdgebenchError(f"the runner cannot measure these models on {target.name}: {message}")
            streak[0] += 1
            progress(f"a round failed ({message}); going on")
            if streak[0] >= _MAX_FAILED_ROUNDS:
                raise EdgebenchError(f"{streak[0]} rounds in a row failed on {target.name}; last: {message}")
            return None
        streak[0] = 0
        if not machine:
            machine.update(doc.get("machine") or {})
        blocks = doc.get("blocks_ns") or {}
        return {n: [[v / 1e6 for v in block] for block in blocks.get(keys[n], [])] for n in names}

    calls, comparisons, elapsed, failed = run_adaptive(next_round, names, baseline, options, rule,
                                                       progress=progress)
    if not calls[baseline]:
        raise EdgebenchError(f"no round finished within --max-time {options.max_time_s:g} s; raise --max-time")
    return PairedOutcome(names, calls, comparisons, elapsed, machine, failed)


# ---------------------------------------------------------------- stored results


def is_results_dir(path: Path) -> bool:
    """A result folder of bench/run, as opposed to an artifact folder (which holds model.onnx)."""
    return path.is_dir() and not (path / "model.onnx").exists() and any(
        (path / f).exists() for f in (SAMPLES_CSV, "summary.csv", "pyperf.json", "machine.json"))


GroupKey = tuple[str, str, str, str]  # target, variant, batch_size, threads


def load_groups(folder: Path) -> dict[GroupKey, list[list[float]]]:
    """Per (target, variant, batch, threads): the latency calls (ms) of each process, from samples.csv."""
    path = folder / SAMPLES_CSV
    if not path.is_file():
        raise EdgebenchError(f"{folder} has no {SAMPLES_CSV}: give a result folder written by `edgebench bench` "
                             "or `edgebench run` (it keeps every timed call)")
    groups: dict[GroupKey, dict[str, list[float]]] = {}
    try:
        for row in read_csv_rows(path):
            key = (row["target"], row["variant"], row["batch_size"], row["threads"])
            groups.setdefault(key, {}).setdefault(row["process_index"], []).append(float(row["latency_ms"]))
    except (KeyError, ValueError) as exc:
        raise EdgebenchError(f"{path} is not a samples.csv of edgebench (bad or missing column: {exc})") from None
    if not groups:
        raise EdgebenchError(f"{path} holds no samples (did every measurement fail?)")
    return {k: [v[p] for p in sorted(v, key=int)] for k, v in groups.items()}


def pair_groups(a: dict[GroupKey, Any], b: dict[GroupKey, Any]) -> list[tuple[GroupKey, GroupKey]]:
    """Matching measurements: the same key in both folders, else the one measurement of each."""
    common = [k for k in a if k in b]
    if common:
        return [(k, k) for k in common]
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    raise EdgebenchError("the two result folders share no (target, variant, batch, threads) measurement; "
                         f"first has {sorted(k[1] for k in a)}, second {sorted(k[1] for k in b)}")


def compare_stored(dir_a: Path, dir_b: Path, threshold: float) -> list[tuple[Comparison, str, list, list]]:
    """Compare two result folders measurement by measurement (independent processes, not paired)."""
    a, b = load_groups(dir_a), load_groups(dir_b)
    out = []
    for ka, kb in pair_groups(a, b):
        name_a = f"{dir_a.name}:{ka[1]}"
        name_b = f"{dir_b.name}:{kb[1]}"
        c = compare_samples(a[ka], b[kb], threshold, baseline=name_a, candidate=name_b, interleaved=False)
        target = ka[0] if ka[0] == kb[0] else f"{ka[0]} vs {kb[0]}"
        out.append((c, target, a[ka], b[kb]))
    return out


# ---------------------------------------------------------------- outputs


def comparison_row(c: Comparison, target: str, baseline_ms: Sequence[Sequence[float]],
                   candidate_ms: Sequence[Sequence[float]], elapsed_s: float | None) -> ComparisonRow:
    def med(groups: Sequence[Sequence[float]]) -> float | None:
        flat = [v for g in groups for v in g]
        return round(float(np.median(flat)), 6) if flat else None

    def num(v: float, digits: int = 6) -> float:
        return round(v, digits) if math.isfinite(v) else math.nan

    return ComparisonRow(
        baseline=c.baseline, candidate=c.candidate, target=target, ratio_median=num(c.ratio),
        ratio_ci95_low=num(c.ci_low), ratio_ci95_high=num(c.ci_high), p_value=num(c.p_value, 8),
        n_rounds=c.n_rounds, verdict=c.verdict, threshold=c.threshold,
        method="paired-interleaved" if c.paired else "independent-processes",
        baseline_median_ms=med(baseline_ms), candidate_median_ms=med(candidate_ms),
        elapsed_s=round(elapsed_s, 2) if elapsed_s is not None else None, description=c.describe(),
        warnings=" | ".join(c.warnings),
    )


def write_comparison_csv(path: Path, rows: Sequence[ComparisonRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COMPARISON_COLUMNS)
    for r in rows:
        values = [getattr(r, col) for col in COMPARISON_COLUMNS]
        writer.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values])
    atomic_write_text(path, buf.getvalue())


def pyperf_filename(name: str) -> str:
    return "pyperf-" + re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".json"


def write_pyperf_side(path: Path, name: str, groups: Sequence[Sequence[float]], hostname: str = "") -> None:
    """One model's calls as a pyperf suite, one Run per process; the benchmark is named `latency` on both
    sides so `python -m pyperf compare_to pyperf-A.json pyperf-B.json` pairs them."""
    import pyperf

    runs = [pyperf.Run([v / 1e3 for v in g if v > 0], metadata={"name": "latency", "unit": "second", "loops": 1},
                       collect_metadata=False) for g in groups if any(v > 0 for v in g)]
    if not runs:
        return
    bench = pyperf.Benchmark(runs)
    bench.update_metadata({"description": name, **({"hostname": hostname} if hostname else {})})
    buf = io.StringIO()
    pyperf.BenchmarkSuite([bench]).dump(buf, compact=True)
    atomic_write_text(path, buf.getvalue())


def format_comparisons(rows: Sequence[ComparisonRow]) -> list[str]:
    from harness.console import format_table

    def ci(r: ComparisonRow) -> str:
        lo, hi = r.ratio_ci95_low, r.ratio_ci95_high
        return f"{lo:.3f}-{hi:.3f}" if math.isfinite(lo) and math.isfinite(hi) else "unbounded"

    body = [[r.baseline, r.candidate, r.target, f"{r.ratio_median:.3f}", ci(r), f"{r.p_value:.2g}", str(r.n_rounds),
             r.verdict] for r in rows]
    lines = format_table(["baseline", "candidate", "target", "ratio", "95% CI", "p", "rounds", "verdict"], body)
    return lines + [""] + [r.description for r in rows]


# ---------------------------------------------------------------- the command


def configure(p: argparse.ArgumentParser) -> None:
    from harness.cli import _positive_float, _shape, add_target_options

    p.add_argument("inputs", nargs="+", type=Path, metavar="A B [C ...]",
                   help="ONNX files or artifact folders (measured interleaved), or two result folders")
    p.add_argument("--baseline", metavar="A", help="which input is the baseline (default: the first)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default results/compare-<run-id>)")
    p.add_argument("--threshold", type=_positive_float, default=DEFAULT_THRESHOLD, metavar="F",
                   help="'same' when the 95%% CI of the ratio lies within +-F (default 0.02 = 2%%)")
    p.add_argument("--max-time", type=_positive_float, default=60.0, metavar="S",
                   help="stop adding rounds after this many seconds (60)")
    p.add_argument("--min-rounds", type=int, default=9, metavar="N",
                   help="rounds (fresh processes) before the first verdict (9)")
    p.add_argument("--block-size", type=int, default=40, metavar="N", help="calls per block of one model (40)")
    p.add_argument("--drop", type=int, default=5, metavar="N", help="first calls of each block not counted (5)")
    p.add_argument("--round-time", type=_positive_float, default=0.5, metavar="S",
                   help="timed seconds per round, at least (0.5); blocks are added until it has passed")
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads (default: its own)")
    p.add_argument("--shape", type=_shape, action="append", default=[], metavar="NAME=D0,D1,...",
                   help="size of an input with symbolic dimensions; repeatable")
    p.add_argument("--seed", type=int, default=0, help="random inputs and round order")
    p.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                   help="stop one runner process after this long (120)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    add_target_options(p)


def run(args: argparse.Namespace) -> int:
    from harness.console import Progress

    inputs = [Path(p) for p in args.inputs]
    if len(inputs) < 2:
        raise EdgebenchError("compare needs at least two inputs: a baseline and a candidate")
    for p in inputs:
        if not p.exists():
            raise EdgebenchError(f"{p}: no such file or folder")
    out = args.out or Path("results") / f"compare-{new_run_id()}"
    progress = Progress(args.quiet)
    stored = [is_results_dir(p) for p in inputs]
    if any(stored):
        rows = _run_stored(inputs, stored, args, out)
    else:
        rows = _run_paired(inputs, args, out, progress)
    write_comparison_csv(out / COMPARISON_CSV, rows)
    print("\n".join(format_comparisons(rows)))
    for w in sorted({w for r in rows for w in r.warnings.split(" | ") if w}):
        print(f"warning: {w}")
    print(f"results: {out / COMPARISON_CSV} (pyperf: {out}/pyperf-*.json)")
    return 0


def _run_stored(inputs: list[Path], stored: list[bool], args: argparse.Namespace, out: Path) -> list[ComparisonRow]:
    if not all(stored) or len(inputs) != 2:
        raise EdgebenchError("give either models (ONNX files or artifact folders) or exactly two result folders, "
                             "not a mix")
    if args.baseline and Path(args.baseline) not in inputs:
        raise EdgebenchError(f"--baseline {args.baseline} is none of the inputs")
    a, b = inputs if not args.baseline or Path(args.baseline) == inputs[0] else inputs[::-1]
    rows = []
    for c, target, ga, gb in compare_stored(a, b, args.threshold):
        rows.append(comparison_row(c, target, ga, gb, None))
        write_pyperf_side(out / pyperf_filename(c.baseline), c.baseline, ga)
        write_pyperf_side(out / pyperf_filename(c.candidate), c.candidate, gb)
    return rows


def _run_paired(inputs: list[Path], args: argparse.Namespace, out: Path, progress: Progress) -> list[ComparisonRow]:
    from harness.bench import load_items
    from harness.cli import targets_from

    items = load_items(inputs)
    for item in items:
        if not item.ok:
            raise EdgebenchError(f"{item.path}: {item.error}")
    names = [i.variant for i in items]
    baseline = names[0]
    if args.baseline:
        matches = [i.variant for i, p in zip(items, inputs) if args.baseline in (str(p), i.variant, p.name)]
        if not matches:
            raise EdgebenchError(f"--baseline {args.baseline} is none of the inputs ({', '.join(map(str, inputs))})")
        baseline = matches[0]
    if len(args.target or []) > 1:
        raise EdgebenchError("compare measures on one --target at a time")
    options = PairedOptions(threshold=args.threshold, max_time_s=args.max_time, min_rounds=args.min_rounds,
                            block_size=args.block_size, drop_per_block=args.drop, round_time_s=args.round_time,
                            threads=args.threads, shapes=tuple(args.shape), seed=args.seed, timeout_s=args.timeout)
    target = targets_from(args)[0]
    paths = {i.variant: i.path for i in items}
    progress(f"comparing {', '.join(n for n in names if n != baseline)} against {baseline} on {target.name}: "
             f"interleaved rounds until decided (at most {options.max_time_s:g} s)")
    with target:
        outcome = measure_paired(target, paths, baseline, options, progress)
    n = len(outcome.calls_ms[baseline])
    progress(f"{n} rounds in {outcome.elapsed_s:.1f} s" +
             (f" ({outcome.failed_rounds} failed rounds skipped)" if outcome.failed_rounds else ""))
    hostname = str(outcome.machine.get("hostname") or "")
    for name in names:
        write_pyperf_side(out / pyperf_filename(name), name, flat(outcome.calls_ms[name]), hostname)
    return [comparison_row(c, target.name, flat(outcome.calls_ms[baseline]), flat(outcome.calls_ms[c.candidate]),
                           outcome.elapsed_s) for c in outcome.comparisons]
