#!/usr/bin/env python3
"""Can `edgebench compare` be trusted on this noisy machine? Prints the figures issues 6 and 10 ask for.

Cases (each repeated --repeats times, 20 by default, as separate `edgebench compare` invocations with
the default --seed, as a user runs them):
  A/A    MobileNetV2-style at 96x96 against a byte-identical copy: want <= 1 faster/slower, <= 3 inconclusive.
  A/B    the same weights at 96x96 vs 112x112: want `slower` every time, and intervals that hold the
         long-run ratio in >= 95% of the runs (the coverage of the interval reported at the stop).
  small  96x96 vs the same model plus K cheap elementwise ops on the input (~5% more time, K=--extra-ops):
         want a decision other than `same` in >= 15 of 20 with --max-time 120.
  slow   a chain of 8 vs 16 MatMuls of 512x512 (tens of ms a call): want `slower` within the default 60 s.
Also: time to verdict (wall seconds of the whole command; want a median < 30 s for A/B), and pyperf's
`compare_to` verdicts on the same pairs: on the pyperf JSON that compare writes (the same interleaved
samples), and on two separate runs (A's processes, then B's: pyperf's usual use).

The long-run ratio of a pair comes from --long-rounds paired rounds of --long-round-time seconds in
alternating order, run in small chunks before the first compare and after each one: the ratio moves
with the machine's load (the A/B pair's rounds gave 1.507 at load < 3 and 1.435 at load > 5), so the
reference must see the same hours as the compares it judges. --before DIR also runs every compare with
the edgebench of another checkout (e.g. `git archive main`), right after this one's, for a
before/after on the same load. A timed unit test could not say any of this honestly on a shared
machine. Usage: python scripts/bench_compare.py [--quick] [--repeats 20] [--cases ab] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable


def export_mobilenet(hw: int, path: Path) -> Path:
    """MobileNetV2-style, the same weights (seeded) at any input size."""
    import torch

    from export.zoo import load_model

    torch.manual_seed(0)
    model, _ = load_model("zoo:mobilenetv2", input_shape=(1, 3, 96, 96))
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, hw, hw), str(path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    return path


def with_extra_ops(src: Path, dst: Path, k: int) -> Path:
    """The same model plus k elementwise Mul ops on the input, folded into the output with weight 0.

    A small real difference with identical weights and outputs. (Input sizes are no good knob here:
    98x98 ran 1.27x slower than 96x96, not 1.04x: a size off a multiple of 32 changes the kernels.)
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    x, y = g.input[0].name, g.output[0].name
    g.initializer.extend([numpy_helper.from_array(np.array([1.0001], np.float32), "extra_scale"),
                          numpy_helper.from_array(np.zeros((1,), np.float32), "extra_zero")])
    for node in g.node:
        for i, out in enumerate(node.output):
            if out == y:
                node.output[i] = "y_main"
    cur = x
    for i in range(k):
        g.node.append(helper.make_node("Mul", [cur, "extra_scale"], [f"extra_{i}"]))
        cur = f"extra_{i}"
    g.node.extend([helper.make_node("ReduceMean", [cur], ["extra_mean"], keepdims=0),
                   helper.make_node("Mul", ["extra_mean", "extra_zero"], ["extra_nil"]),
                   helper.make_node("Add", ["y_main", "extra_nil"], [y])])
    m.ir_version = min(m.ir_version, 10)  # onnxruntime 1.31 reads IR <= 13
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def reference_rounds(a: Path, b: Path, rounds: int, round_time: float, threads: int,
                     calls: dict[str, list[list[list[float]]]]) -> None:
    """Add `rounds` long interleaved rounds (order alternating) to `calls`, the long-run reference."""
    from harness.paired import PairedOptions
    from targets.local import LocalTarget

    options = PairedOptions(round_time_s=round_time, threads=threads, block_size=40, drop_per_block=5)
    target = LocalTarget()
    for _ in range(rounds):
        keys = ["a", "b"] if len(calls["a"]) % 2 == 0 else ["b", "a"]
        doc = target.run(options.runner_spec({"a": str(a), "b": str(b)}, keys, 0), timeout=300)
        if doc.get("status") != "ok":
            continue
        for k in keys:
            calls[k].append([[v / 1e6 for v in blk] for blk in doc["blocks_ns"][k]])


def long_run_ratio(calls: dict[str, list[list[list[float]]]]) -> tuple[float, float, float]:
    """(ratio, 95% CI low, high) of the reference rounds."""
    from harness.compare_stats import compare_rounds
    from harness.paired import round_ratios

    c = compare_rounds(round_ratios(calls, "a", "b"))
    return c.ratio, c.ci_low, c.ci_high


def edgebench_compare(a: Path, b: Path, out: Path, max_time: float, threads: int, root: Path = ROOT) -> dict:
    """One `edgebench compare` as a user runs it (default seed), with the edgebench of checkout `root`."""
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    done = subprocess.run([PY, "-m", "harness", "compare", str(a), str(b), "--out", str(out),
                           "--max-time", str(max_time), "--threads", str(threads), "-q"],
                          capture_output=True, text=True, cwd=root)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        return {"verdict": "error", "error": done.stderr.strip()[-300:], "wall_s": wall, "load": load}
    with open(out / "comparison.csv", newline="") as f:
        row = next(csv.DictReader(f))
    row.update(wall_s=wall, load=load)
    return row


def holds(row: dict, ratio: float) -> bool:
    """Does the row's interval hold `ratio`? An empty limit is unbounded on that side."""
    return float(row.get("ratio_ci95_low") or 0) <= ratio <= float(row.get("ratio_ci95_high") or "inf")


def width(row: dict) -> float | None:
    """Relative width of the row's interval (high/low - 1); None when unbounded."""
    low, high = row.get("ratio_ci95_low"), row.get("ratio_ci95_high")
    return float(high) / float(low) - 1 if low and high else None


def pyperf_verdict(a_json: Path, b_json: Path) -> str:
    done = subprocess.run([PY, "-m", "pyperf", "compare_to", str(a_json), str(b_json)], capture_output=True,
                          text=True)
    text = done.stdout
    if "not significant" in text:
        return "not significant"
    for word in ("slower", "faster"):
        if word in text:
            return word
    return "error: " + (done.stderr.strip() or text.strip())[-200:]


def separate_runs(a: Path, b: Path, out: Path, threads: int, processes: int = 3) -> str:
    """pyperf's usual use: A measured in its own processes, then B in its own, then compare_to."""
    from harness.compare import write_pyperf_side
    from targets.local import LocalTarget

    target = LocalTarget()
    paths = {}
    for name, model in (("a", a), ("b", b)):
        groups = []
        for _ in range(processes):
            doc = target.run({"mode": "bench", "files": {"model": str(model)}, "intra_op_threads": threads,
                              "min_time_s": 0.5, "min_iterations": 20, "warmup": {"min_time_s": 0.1}}, 120)
            if doc.get("status") == "ok":
                groups.append([v / 1e6 for v in doc["latencies_ns"]])
        paths[name] = out / f"separate-{name}.json"
        write_pyperf_side(paths[name], name, groups)
    return pyperf_verdict(paths["a"], paths["b"])


def count(values: list[str]) -> str:
    keys = ["faster", "slower", "same", "inconclusive", "not significant", "error"]
    parts = [f"{k} {values.count(k)}" for k in keys if values.count(k)]
    other = len([v for v in values if v not in keys])
    return ", ".join(parts + ([f"other {other}"] if other else []))


def summarize(title: str, rows: list[dict], truth: tuple[float, float, float]) -> dict:
    ok = [r for r in rows if r["verdict"] != "error"]
    widths = [w for w in map(width, ok) if w is not None]
    return {
        "title": title, "long_run": truth, "verdicts": count([r["verdict"] for r in rows]),
        "ci_contains_long_run": f"{sum(holds(r, truth[0]) for r in ok)}/{len(ok)}",
        "median_ci_width": statistics.median(widths) if widths else None,
        "median_rounds": statistics.median(int(r["n_rounds"]) for r in ok) if ok else None,
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "max_wall_s": max(r["wall_s"] for r in rows),
        "load": (min(r["load"] for r in rows), max(r["load"] for r in rows)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats and a short long-run reference (smoke test)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cases", default="aa,ab,small,slow", help="comma-separated subset of aa,ab,small,slow")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (1: on 2 shared cores, 2 threads "
                                                            "contend with other jobs and rounds vary up to 8x)")
    ap.add_argument("--extra-ops", type=int, default=11, help="K for the small-effect pair (~5%% here)")
    ap.add_argument("--long-rounds", type=int, default=42, help="reference rounds per pair, in chunks (42)")
    ap.add_argument("--long-round-time", type=float, default=2.0)
    ap.add_argument("--no-separate", action="store_true", help="skip pyperf on separate runs")
    ap.add_argument("--before", type=Path, metavar="DIR",
                    help="also run each compare with the edgebench in DIR (another checkout), right after this one's")
    ap.add_argument("--out", type=Path, help="keep models and outputs here (default: a temp folder)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.long_rounds, args.long_round_time = 3, 12, 1.0
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_compare-"))
    work.mkdir(parents=True, exist_ok=True)
    wanted = [c for c in args.cases.split(",") if c in ("aa", "ab", "small", "slow")]
    cases = {}
    if set(wanted) - {"slow"}:
        base = export_mobilenet(96, work / "mnv2_96.onnx")
        copy = work / "mnv2_96_copy.onnx"
        shutil.copyfile(base, copy)
        cases["aa"] = ("A/A (byte-identical copy)", base, copy, 60.0)
        cases["ab"] = ("A/B (96x96 vs 112x112)", base, export_mobilenet(112, work / "mnv2_112.onnx"), 60.0)
        cases["small"] = (f"small (+{args.extra_ops} elementwise ops)", base,
                          with_extra_ops(base, work / f"mnv2_96_plus{args.extra_ops}.onnx", args.extra_ops), 120.0)
    if "slow" in wanted:
        from tests.onnx_models import matmul_chain

        cases["slow"] = ("slow (8 vs 16 MatMuls)", matmul_chain(work / "chain8.onnx", 8),
                         matmul_chain(work / "chain16.onnx", 16), 60.0)
    versions = {"now": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    report = {}
    for key in wanted:
        title, a, b, max_time = cases[key]
        chunk = 0 if key == "aa" else -(-args.long_rounds // (args.repeats + 1))
        print(f"== {title}: {args.repeats} compares per version, {chunk} reference rounds of "
              f"{args.long_round_time:g} s before the first and after each", flush=True)
        reference: dict[str, list] = {"a": [], "b": []}
        reference_rounds(a, b, chunk, args.long_round_time, args.threads, reference)
        rows: dict[str, list[dict]] = {v: [] for v in versions}
        same_samples, separate = [], []
        for i in range(args.repeats):
            for version, root in versions.items():
                out = work / f"{key}-{version}-{i}"
                row = edgebench_compare(a, b, out, max_time=max_time, threads=args.threads, root=root)
                rows[version].append(row)
                if version == "now" and row["verdict"] != "error":
                    same_samples.append(pyperf_verdict(out / f"pyperf-{a.stem}.json", out / f"pyperf-{b.stem}.json"))
                if version == "now" and not args.no_separate:
                    separate.append(separate_runs(a, b, out, args.threads))
                ci = (f"{row['ratio_ci95_low'] or '-'}..{row['ratio_ci95_high'] or '-'}"
                      if row["verdict"] != "error" else "-")
                print(f"   {i + 1:2d} {version:6s}: {row['verdict']:12s} ratio {row.get('ratio_median', '-')} CI {ci} "
                      f"rounds {row.get('n_rounds', '-')} {row['wall_s']:.1f} s, load {row['load']:.1f}"
                      + (f" | {row.get('error')}" if row["verdict"] == "error" else ""), flush=True)
            reference_rounds(a, b, chunk, args.long_round_time, args.threads, reference)
        truth = (1.0, 1.0, 1.0) if key == "aa" else long_run_ratio(reference)
        print(f"   long-run ratio {truth[0]:.4f} (95% CI {truth[1]:.4f}-{truth[2]:.4f}, "
              f"{len(reference['a'])} rounds)", flush=True)
        report[key] = {v: summarize(title, r, truth) for v, r in rows.items()}
        report[key]["now"].update(pyperf_same_samples=count(same_samples), pyperf_separate_runs=count(separate))
    print("\n== summary (threads=%d, %d repeats)" % (args.threads, args.repeats))
    for key, by_version in report.items():
        lr = by_version["now"]["long_run"]
        print(f"{by_version['now']['title']}: long-run ratio {lr[0]:.4f} (95% CI {lr[1]:.4f}-{lr[2]:.4f})")
        for version, r in by_version.items():
            w = r["median_ci_width"]
            print(f"  edgebench compare ({version}): {r['verdicts']}; CI holds the long-run ratio "
                  f"{r['ci_contains_long_run']}, median CI width {'-' if w is None else f'{w:.1%}'}; "
                  f"median {r['median_rounds']} rounds, time to verdict median {r['median_wall_s']:.1f} s "
                  f"(max {r['max_wall_s']:.1f} s); load {r['load'][0]:.1f}-{r['load'][1]:.1f}")
        r = by_version["now"]
        print(f"  pyperf compare_to, same interleaved samples: {r['pyperf_same_samples']}")
        if r["pyperf_separate_runs"]:
            print(f"  pyperf compare_to, separate runs (3 processes each): {r['pyperf_separate_runs']}")
    (work / "bench_compare.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"details: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
