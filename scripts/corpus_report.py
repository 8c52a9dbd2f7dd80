#!/usr/bin/env python3
"""How edgebench fares on ONNX models nobody here wrote (ONNX files shipped in PyPI wheels).

Per corpus model (tests/corpus_onnx.py): does `edgebench bench MODEL` work out of the box, which flags
it needed, and edgebench's median against a hand-written `InferenceSession.run` loop fed the same
inputs (shapes, dtypes and constants read back from summary.csv's `inputs` column), one thread each.
Each round visits the models in a new random order and runs the two tools back to back on each (which
goes first is random), so a round's ratio compares runs seconds apart, not minutes (the load here moved
between 6.6 and 3.8 within one run). Single rounds still stray on a busy machine, so the figure is the
median of the per-round ratios, with their range; the load average is printed with them.

Usage: python scripts/corpus_report.py [--rounds 3] [--processes 3] [--min-time 1] [--only NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The peer: the loop anyone would write by hand, fed what edgebench reported it fed.
BARE_LOOP = r"""
import sys, time, json
import numpy as np, onnxruntime as ort
path, fed, seconds, min_calls = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {name: np.full(shape, value, dtype) if value is not None else rng.standard_normal(shape).astype(dtype)
         for name, dtype, shape, value in fed}
for _ in range(10):
    s.run(None, feeds)
out, t_end = [], time.perf_counter() + seconds
while time.perf_counter() < t_end or len(out) < min_calls:
    t0 = time.perf_counter_ns(); s.run(None, feeds); out.append(time.perf_counter_ns() - t0)
print(json.dumps({"median_ms": float(np.median(out)) / 1e6, "n": len(out)}))
"""


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def edgebench(model: Path, out: Path, *flags: str) -> dict[str, str]:
    """One `edgebench bench` invocation; its summary row (status, error, median, inputs)."""
    import pandas as pd

    subprocess.run([sys.executable, "-m", "harness", "bench", str(model), "--out", str(out), "-q", *flags],
                   capture_output=True, text=True, cwd=ROOT)
    return pd.read_csv(out / "summary.csv", keep_default_na=False, dtype=str).iloc[-1].to_dict()


def feeds_from(cell: str) -> list[tuple[str, str, list[int], float | None]]:
    """summary.csv's `inputs` cell back into (name, dtype, shape, constant or None for random)."""
    feeds = []
    for part in cell.split("; "):
        name, typed, source = part.rsplit(":", 2)
        dtype, dims = typed.rstrip("]").split("[")
        shape = [int(d) for d in dims.split("x")] if dims else []
        kind, _, value = source.partition("=")
        try:
            feeds.append((name, dtype, shape, None if kind == "random" else float(value)))
        except ValueError:
            raise SystemExit(f"{part}: the bare loop here feeds random values and numbers only") from None
    return feeds


def bare(model: Path, fed: list, seconds: float, min_calls: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(model), json.dumps(fed), str(seconds), str(min_calls)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["median_ms"]


def main() -> int:
    from tests.corpus_onnx import CASES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3, help="edgebench runner processes per invocation")
    parser.add_argument("--min-time", type=float, default=1.0, help="edgebench timed seconds per process")
    parser.add_argument("--only", nargs="*", help="corpus case names (default: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="edgebench-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    measure = ["--processes", str(args.processes), "--min-time", str(args.min_time), "--threads", "1"]
    quick = ["--processes", "1", "--min-time", "0.05", "--min-iterations", "3"]
    load_start, started = loadavg(), time.monotonic()

    plain, flagged, fed = {}, {}, {}
    for case in cases:
        plain[case.name] = edgebench(case.path(), work / f"plain-{case.name}", *quick)
        flagged[case.name] = edgebench(case.path(), work / f"flags-{case.name}", *case.flags, *quick)
        if flagged[case.name]["status"] == "ok":
            fed[case.name] = feeds_from(flagged[case.name]["inputs"])
        print(f"{case.name}: out of the box {plain[case.name]['status']}, with flags {flagged[case.name]['status']}",
              file=sys.stderr)

    eb: dict[str, list[float]] = {n: [] for n in fed}
    peer: dict[str, list[float]] = {n: [] for n in fed}
    rng = random.Random(0)
    n = 0
    for r in range(args.rounds):
        order = [case for case in cases if case.name in fed]
        rng.shuffle(order)
        for case, tool in [(case, tool) for case in order for tool in rng.sample(["edgebench", "bare"], 2)]:
            if tool == "bare":
                peer[case.name].append(bare(case.path(), fed[case.name], args.processes * args.min_time,
                                            20 * args.processes))
            else:
                n += 1
                row = edgebench(case.path(), work / f"eb{n}", *case.flags, *measure)
                eb[case.name].append(float(row["latency_ms_median"]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(f"\n{len(cases)} corpus models; {args.rounds} rounds of edgebench ({args.processes} processes x "
          f"{args.min_time:g} s, --threads 1) and a bare loop (same inputs, 1 thread) back to back per model; load average "
          f"{load_start} at the start, {loadavg()} at the end; {time.monotonic() - started:.0f} s\n")
    print("| model | package | MB | what is in it | out of the box | flags it needed | edgebench ms | bare loop ms "
          "| ratio: median (range) of rounds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        ok = plain[case.name]["status"] == "ok"
        box = "yes" if ok else f"no: `{plain[case.name]['status']}`"
        flags = ("none; for real use " if ok else "") + f"`{' '.join(case.flags)}`"
        size = case.path().stat().st_size / 1e6
        head = f"| {case.name} | {case.requirement} | {size:.1f} | {case.note} | {box} | {flags} |"
        if case.name not in fed:
            print(f"{head} {flagged[case.name]['status']}: {flagged[case.name]['error']} | | |")
            continue
        a, b = statistics.median(eb[case.name]), statistics.median(peer[case.name])
        per_round = [x / y for x, y in zip(eb[case.name], peer[case.name])]
        print(f"{head} {a:.4g} | {b:.4g} | {statistics.median(per_round):.3f} "
              f"({min(per_round):.2f}-{max(per_round):.2f}) |")
    print(f"\nfiles: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
