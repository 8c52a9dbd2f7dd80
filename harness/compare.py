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
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import gate
from harness.compare_stats import DEFAULT_THRESHOLD, Comparison, compare_samples
from harness.gate import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, slowdown
from harness.history import add_db_options, record_comparisons
from harness.options import output_folder
from targets.errors import EdgebenchError
from harness.paired import PairedOptions, Progress, flat, measure_paired
from harness.journal import read_journal
from harness.results import SAMPLES_CSV, SCHEMA_VERSION, new_run_id, read_csv_rows
from targets.fileio import atomic_write_text, csv_cell
from harness.stats import load_warning

COMPARISON_CSV = "comparison.csv"


@dataclass(frozen=True)
class ComparisonRow:
    """One row of comparison.csv; the first nine fields are the CONTRACT's columns, in its order."""

    baseline: str
    candidate: str
    target: str
    ratio_median: float
    ratio_ci95_low: float | None  # None (an empty cell) when the interval has no limit on that side
    ratio_ci95_high: float | None
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
    gate: str = ""  # pass / fail / inconclusive under --fail-if / --max-slowdown (harness/gate.py); else empty


COMPARISON_COLUMNS = tuple(f.name for f in fields(ComparisonRow))


# ---------------------------------------------------------------- stored results


def is_results_dir(path: Path) -> bool:
    """A result folder of bench/run, as opposed to an artifact folder (which holds model.onnx)."""
    return path.is_dir() and not (path / "model.onnx").exists() and any(
        (path / f).exists() for f in (SAMPLES_CSV, "summary.csv", "pyperf.json", "machine.json"))


# target, variant, batch_size, threads, model, settings_hash (the last two empty in files of edgebench 0.1)
GroupKey = tuple[str, str, str, str, str, str]


def load_groups(folder: Path) -> dict[GroupKey, list[list[float]]]:
    """Per measurement: the latency calls (ms) of each process, from samples.csv."""
    path = folder / SAMPLES_CSV
    if not path.is_file():
        raise EdgebenchError(f"{folder} has no {SAMPLES_CSV}: give a result folder written by `edgebench bench` "
                             "or `edgebench run` (it keeps every timed call)")
    groups: dict[GroupKey, dict[str, list[float]]] = {}
    try:
        for row in read_csv_rows(path):
            key = (row["target"], row["variant"], row["batch_size"], row["threads"], row.get("model") or "",
                   row.get("settings_hash") or "")
            groups.setdefault(key, {}).setdefault(row["process_index"], []).append(float(row["latency_ms"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise EdgebenchError(f"{path} is not a samples.csv of edgebench (bad or missing column: {exc})") from None
    if not groups:
        raise EdgebenchError(f"{path} holds no samples (did every measurement fail?)")
    return {k: [v[p] for p in sorted(v, key=int)] for k, v in groups.items()}


def pair_groups(a: dict[GroupKey, Any], b: dict[GroupKey, Any]) -> list[tuple[GroupKey, GroupKey]]:
    """Matching measurements: the same measurement in both folders; else the same (target, variant, batch,
    threads) where each folder has one such measurement (its settings may differ); else the one of each."""
    for name_of in (lambda k: k, lambda k: k[:4]):
        named_a, named_b = _by_name(a, name_of), _by_name(b, name_of)
        pairs = [(ka, named_b[n]) for n, ka in named_a.items() if ka and named_b.get(n)]
        if pairs:
            return pairs
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    raise EdgebenchError("the two result folders share no (target, variant, batch, threads) measurement; "
                         f"first has {sorted(k[1] for k in a)}, second {sorted(k[1] for k in b)}")


def _by_name(groups: dict[GroupKey, Any], name_of: Any) -> dict[Any, GroupKey | None]:
    """Keys by a name; None where two measurements share the name (ambiguous: not paired by it)."""
    out: dict[Any, GroupKey | None] = {}
    for k in groups:
        out[name_of(k)] = None if name_of(k) in out else k
    return out


@dataclass
class StoredFacts:
    """What a run folder's journal says about one (target, variant) beyond its timings."""

    shapes: set[str] = field(default_factory=set)  # the inputs each process was fed, e.g. "x[1,3,96,96]"
    load_avg: float | None = None  # the highest 1-minute load average at the start of a process
    cores: int | None = None


def stored_facts(folder: Path) -> dict[tuple[str, str], StoredFacts]:
    """Per (target, variant), from processes.jsonl: the input shapes fed and the load seen (empty without it)."""
    facts: dict[tuple[str, str], StoredFacts] = {}
    for rec in read_journal(folder).records:
        if rec.get("kind", "process") != "process":
            continue
        result = rec.get("result") or {}
        if result.get("status") != "ok":
            continue
        f = facts.setdefault((str(rec.get("target")), str(rec.get("variant"))), StoredFacts())
        inputs = [i for i in result.get("inputs") or [] if isinstance(i, dict)]
        if inputs:
            f.shapes.add(" ".join(f"{i.get('name')}[{','.join(map(str, i.get('shape') or []))}]" for i in inputs))
        load = (result.get("telemetry_start") or {}).get("load_avg_1m")
        if load is not None:
            f.load_avg = max(float(load), f.load_avg or 0.0)
        f.cores = f.cores or (result.get("machine") or {}).get("cores")
    return facts


def stored_warnings(name_a: str, fa: StoredFacts, name_b: str, fb: StoredFacts) -> tuple[str, ...]:
    """A different input shape on the two sides, and a busy machine on either."""
    out: list[str] = []
    if fa.shapes and fb.shapes and fa.shapes != fb.shapes:
        out.append(f"the two runs fed different input shapes ({name_a}: {' or '.join(sorted(fa.shapes))}; "
                   f"{name_b}: {' or '.join(sorted(fb.shapes))}): the ratio compares different work, not only the "
                   "models; measure both with the same --shape and --batch")
    loads = [(f.load_avg, f.cores) for f in (fa, fb) if f.load_avg is not None]
    busy = load_warning(*max(loads), "measure again when the machine is quiet") if loads else None
    return tuple(out) + ((busy,) if busy else ())


def compare_stored(dir_a: Path, dir_b: Path, threshold: float) -> list[tuple[Comparison, str, list, list]]:
    """Compare two result folders measurement by measurement (independent processes, not paired)."""
    a, b = load_groups(dir_a), load_groups(dir_b)
    facts_a, facts_b = stored_facts(dir_a), stored_facts(dir_b)
    out = []
    for ka, kb in pair_groups(a, b):
        name_a = f"{dir_a.name}:{ka[1]}"
        name_b = f"{dir_b.name}:{kb[1]}"
        c = compare_samples(a[ka], b[kb], threshold, baseline=name_a, candidate=name_b, interleaved=False)
        extra = stored_warnings(name_a, facts_a.get(ka[:2], StoredFacts()), name_b, facts_b.get(kb[:2], StoredFacts()))
        c = replace(c, warnings=c.warnings + extra)
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

    def limit(v: float) -> float | None:
        # too few rounds leave the log-ratio interval at -inf/+inf, i.e. a ratio of 0 or inf: not measured
        return round(v, 6) if math.isfinite(v) and v > 0 else None

    return ComparisonRow(
        baseline=c.baseline, candidate=c.candidate, target=target, ratio_median=num(c.ratio),
        ratio_ci95_low=limit(c.ci_low), ratio_ci95_high=limit(c.ci_high), p_value=num(c.p_value, 8),
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
        writer.writerow([csv_cell(getattr(r, col)) for col in COMPARISON_COLUMNS])
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
        return f"{lo:.3f}-{hi:.3f}" if lo is not None and hi is not None else "unbounded"

    body = [[r.baseline, r.candidate, r.target, f"{r.ratio_median:.3f}", ci(r), f"{r.p_value:.2g}", str(r.n_rounds),
             r.verdict] for r in rows]
    lines = format_table(["baseline", "candidate", "target", "ratio", "95% CI", "p", "rounds", "verdict"], body)
    return lines + [""] + [r.description for r in rows]


# ---------------------------------------------------------------- the command


def configure(p: argparse.ArgumentParser) -> None:
    from harness.options import add_input_options, add_provider_option, add_target_options, positive_float

    d = PairedOptions()
    p.add_argument("inputs", nargs="+", type=Path, metavar="MODEL",
                   help="A B [C ...]: ONNX files or artifact folders (measured interleaved), or two result folders")
    p.add_argument("--baseline", metavar="A", help="which input is the baseline (default: the first)")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default results/compare-<run-id>)")
    p.add_argument("--threshold", type=positive_float, default=d.threshold, metavar="F",
                   help=f"'same' when the ratio's confidence interval lies within +-F (default {d.threshold:g} = "
                        + f"{d.threshold:.0%})".replace("%", "%%"))
    p.add_argument("--max-time", type=positive_float, default=d.max_time_s, metavar="S",
                   help=f"stop adding rounds after this many seconds ({d.max_time_s:g})")
    p.add_argument("--precision", type=positive_float, default=d.precision, metavar="F",
                   help="after the verdict, add rounds until its interval is at most about +-F wide "
                        "(0.05 = +-5%%), or --max-time runs out (default 0: stop at the verdict)")
    p.add_argument("--min-rounds", type=int, default=d.min_rounds, metavar="N",
                   help=f"rounds (fresh processes) before the first verdict ({d.min_rounds})")
    p.add_argument("--block-size", type=int, default=d.block_size, metavar="N",
                   help=f"calls per block of one model ({d.block_size})")
    p.add_argument("--drop", type=int, default=d.drop_per_block, metavar="N",
                   help=f"first calls of each block not counted ({d.drop_per_block})")
    p.add_argument("--round-time", type=positive_float, default=d.round_time_s, metavar="S",
                   help=f"timed seconds per round, at least ({d.round_time_s:g}); blocks are added until it has passed")
    p.add_argument("--block-time", type=positive_float, default=d.block_time_s, metavar="S",
                   help=f"a slow model's block holds only the calls that fill about this long ({d.block_time_s:g}), "
                        "so that enough rounds for a verdict fit in --max-time")
    p.add_argument("--threads", type=int, metavar="N", help="onnxruntime intra-op threads (default: its own)")
    add_provider_option(p)
    add_input_options(p)
    p.add_argument("--seed", type=int, default=d.seed, help="random inputs and round order")
    p.add_argument("--timeout", type=positive_float, default=d.timeout_s, metavar="S",
                   help=f"stop one runner process after this long ({d.timeout_s:g})")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument("--fail-if", choices=("slower",),
                   help=f"a CI gate: exit {EXIT_GATE_FAILED} when a candidate's verdict is slower, "
                        f"{EXIT_INCONCLUSIVE} when one is inconclusive (and none failed)")
    p.add_argument("--max-slowdown", type=slowdown, metavar="X",
                   help="a CI gate: fail only when the whole interval is beyond X slower (5%% or 0.05); pass "
                        "when the whole interval is within it; inconclusive otherwise")
    p.add_argument("--summary-md", type=Path, metavar="FILE",
                   help="append a Markdown summary (for a CI job summary, e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="write a JUnit XML report: one test case per comparison (failure: fails the gate; "
                        "skipped: inconclusive)")
    add_target_options(p)
    add_db_options(p)


def run(args: argparse.Namespace) -> int:
    from harness.console import Progress

    inputs = [Path(p) for p in args.inputs]
    if len(inputs) < 2:
        raise EdgebenchError("compare needs at least two inputs: a baseline and a candidate")
    for p in inputs:
        if not p.exists():
            raise EdgebenchError(f"{p}: no such file or folder")
    if not 0 < args.threshold < 1:
        raise EdgebenchError("--threshold must be between 0 and 1 (0.02 means 2%)")
    out = Path(args.out or Path("results") / f"compare-{new_run_id()}")  # made once the inputs pass their checks
    progress = Progress(args.quiet)
    stored = [is_results_dir(p) for p in inputs]
    if any(stored):
        rows = _run_stored(inputs, stored, args, out)
    else:
        rows = _run_paired(inputs, args, out, progress)
    rule = gate.rule_from(args)
    outcomes = [rule.judge(r.verdict, r.ratio_ci95_low, r.ratio_ci95_high) for r in rows]
    if rule.active:
        rows = [replace(r, gate=o) for r, o in zip(rows, outcomes)]
    write_comparison_csv(out / COMPARISON_CSV, rows)
    record_comparisons(args, out, rows)
    print("\n".join(format_comparisons(rows)))
    for w in sorted({w for r in rows for w in r.warnings.split(" | ") if w}):
        print(f"warning: {w}")
    print(f"results: {out / COMPARISON_CSV} (pyperf: {out}/pyperf-*.json)")
    if args.summary_md:
        gate.append_text(args.summary_md, gate.markdown(rows, outcomes, rule))
    if args.junit:
        gate.write_junit(args.junit, gate.junit(rows, outcomes, rule))
    if not rule.active:
        return 0
    for r, o in zip(rows, outcomes):
        if o != gate.PASS:
            print(gate.verdict_line(r, o, rule), file=sys.stderr)
    return gate.exit_code(outcomes)


def _run_stored(inputs: list[Path], stored: list[bool], args: argparse.Namespace, out: Path) -> list[ComparisonRow]:
    if not all(stored) or len(inputs) != 2:
        raise EdgebenchError("give either models (ONNX files or artifact folders) or exactly two result folders, "
                             "not a mix")
    if args.data or args.input or args.shape:
        raise EdgebenchError("--data, --input and --shape feed models; result folders hold finished measurements")
    if args.baseline and Path(args.baseline) not in inputs:
        raise EdgebenchError(f"--baseline {args.baseline} is none of the inputs")
    a, b = inputs if not args.baseline or Path(args.baseline) == inputs[0] else inputs[::-1]
    output_folder(out)
    rows = []
    for c, target, ga, gb in compare_stored(a, b, args.threshold):
        rows.append(comparison_row(c, target, ga, gb, None))
        write_pyperf_side(out / pyperf_filename(c.baseline), c.baseline, ga)
        write_pyperf_side(out / pyperf_filename(c.candidate), c.candidate, gb)
    return rows


def _run_paired(inputs: list[Path], args: argparse.Namespace, out: Path, progress: Progress) -> list[ComparisonRow]:
    from harness.bench import load_items
    from harness.inputs import check_data
    from harness.options import inputs_from, targets_from
    from harness.providers import parse_providers

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
    data, values = inputs_from(args)
    if data is not None:
        check_data(data, items, labels=False)  # compare scores no accuracy: only the inputs must be sound
    options = PairedOptions(threshold=args.threshold, max_time_s=args.max_time, min_rounds=args.min_rounds,
                            block_size=args.block_size, drop_per_block=args.drop, round_time_s=args.round_time,
                            block_time_s=args.block_time, precision=args.precision,
                            threads=args.threads, shapes=tuple(args.shape), seed=args.seed, timeout_s=args.timeout,
                            data=data, inputs=values, providers=parse_providers(args.provider),
                            max_slowdown=args.max_slowdown)
    target = targets_from(args)[0]
    output_folder(out)  # after every check: a refused command leaves no empty folder behind
    paths = {i.variant: i.path for i in items}
    progress(f"comparing {', '.join(n for n in names if n != baseline)} against {baseline} on {target.name}: "
             f"interleaved rounds until decided (at most {options.max_time_s:g} s)")
    target.on_lock_wait = progress
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
