#!/usr/bin/env python3
"""Can `edgebench compare` be trusted on this noisy machine? Prints the figures issue 6 asks for.

Cases (each repeated --repeats times, 20 by default, as separate `edgebench compare` invocations):
  A/A    MobileNetV2-style at 96x96 against a byte-identical copy: want <= 1 faster/slower, <= 3 inconclusive.
  A/B    the same weights at 96x96 vs 112x112: want `slower` every time, intervals holding the long-run ratio.
  small  96x96 vs the same model plus K cheap elementwise ops on the input (~5% more time, K=--extra-ops):
         want a decision other than `same` in >= 15 of 20 with --max-time 120.
Also: time to verdict (wall seconds of the whole command; want a median < 30 s for A/B), and pyperf's
`compare_to` verdicts on the same pairs: on the pyperf JSON that compare writes (the same interleaved
samples), and on two separate runs (A's processes, then B's: pyperf's usual use).

The long-run ratios come from one long paired measurement per pair (--long-rounds rounds of
--long-round-time seconds). A timed unit test could not say any of this honestly on a shared
machine. Usage: python scripts/bench_compare.py [--quick] [--repeats 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
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


def long_run_ratio(a: Path, b: Path, rounds: int, round_time: float, threads: int) -> tuple[float, float, float]:
    """The reference: many long interleaved rounds; (ratio, 95% CI low, high)."""
    from harness.paired import PairedOptions, round_ratios
    from harness.compare_stats import compare_rounds
    from targets.local import LocalTarget

    options = PairedOptions(round_time_s=round_time, threads=threads, block_size=40, drop_per_block=5)
    target = LocalTarget()
    calls: dict[str, list[list[list[float]]]] = {"a": [], "b": []}
    for i in range(rounds):
        keys = ["a", "b"] if i % 2 == 0 else ["b", "a"]
        doc = target.run(options.runner_spec({"a": str(a), "b": str(b)}, keys, 0), timeout=300)
        if doc.get("status") != "ok":
            continue
        for k in keys:
            calls[k].append([[v / 1e6 for v in blk] for blk in doc["blocks_ns"][k]])
    c = compare_rounds(round_ratios(calls, "a", "b"))
    return c.ratio, c.ci_low, c.ci_high


def edgebench_compare(a: Path, b: Path, out: Path, seed: int, max_time: float, threads: int) -> dict:
    t0 = time.monotonic()
    done = subprocess.run([PY, "-m", "harness", "compare", str(a), str(b), "--out", str(out), "--seed", str(seed),
                           "--max-time", str(max_time), "--threads", str(threads), "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        return {"verdict": "error", "error": done.stderr.strip()[-300:], "wall_s": wall}
    with open(out / "comparison.csv", newline="") as f:
        row = next(csv.DictReader(f))
    row["wall_s"] = wall
    return row


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats and a short long-run reference (smoke test)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cases", default="aa,ab,small", help="comma-separated subset of aa,ab,small")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (1: on 2 shared cores, 2 threads "
                                                            "contend with other jobs and rounds vary up to 8x)")
    ap.add_argument("--extra-ops", type=int, default=11, help="K for the small-effect pair (~5%% here)")
    ap.add_argument("--long-rounds", type=int, default=40)
    ap.add_argument("--long-round-time", type=float, default=2.0)
    ap.add_argument("--no-separate", action="store_true", help="skip pyperf on separate runs")
    ap.add_argument("--out", type=Path, help="keep models and outputs here (default: a temp folder)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.long_rounds, args.long_round_time = 3, 12, 1.0
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_compare-"))
    work.mkdir(parents=True, exist_ok=True)
    base = export_mobilenet(96, work / "mnv2_96.onnx")
    copy = work / "mnv2_96_copy.onnx"
    shutil.copyfile(base, copy)
    cases = {
        "aa": ("A/A (byte-identical copy)", base, copy, 60.0),
        "ab": ("A/B (96x96 vs 112x112)", base, export_mobilenet(112, work / "mnv2_112.onnx"), 60.0),
        "small": (f"small (+{args.extra_ops} elementwise ops)", base,
                  with_extra_ops(base, work / f"mnv2_96_plus{args.extra_ops}.onnx", args.extra_ops), 120.0),
    }
    wanted = [c for c in args.cases.split(",") if c in cases]
    report = {}
    for key in wanted:
        title, a, b, max_time = cases[key]
        print(f"== {title}: long-run reference ({args.long_rounds} rounds of {args.long_round_time:g} s)", flush=True)
        t0 = time.monotonic()
        truth = (1.0, 1.0, 1.0) if key == "aa" else long_run_ratio(a, b, args.long_rounds, args.long_round_time,
                                                                  args.threads)
        print(f"   long-run ratio {truth[0]:.4f} (95% CI {truth[1]:.4f}-{truth[2]:.4f}, "
              f"{time.monotonic() - t0:.0f} s)", flush=True)
        rows, same_samples, separate = [], [], []
        for i in range(args.repeats):
            out = work / f"{key}-{i}"
            row = edgebench_compare(a, b, out, seed=i, max_time=max_time, threads=args.threads)
            rows.append(row)
            if row["verdict"] != "error":
                same_samples.append(pyperf_verdict(out / f"pyperf-{a.stem}.json", out / f"pyperf-{b.stem}.json"))
            if not args.no_separate:
                separate.append(separate_runs(a, b, out, args.threads))
            ci = (f"{float(row['ratio_ci95_low']):.3f}-{float(row['ratio_ci95_high']):.3f}"
                  if row.get("ratio_ci95_low") else "-")
            print(f"   {i + 1:2d}: {row['verdict']:12s} ratio {row.get('ratio_median', '-')} CI {ci} "
                  f"rounds {row.get('n_rounds', '-')} {row['wall_s']:.1f} s | pyperf same samples: "
                  f"{same_samples[-1] if same_samples else '-'}; separate runs: {separate[-1] if separate else '-'}"
                  + (f" | {row.get('error')}" if row["verdict"] == "error" else ""), flush=True)
        ok = [r for r in rows if r["verdict"] != "error"]
        contains = sum(float(r["ratio_ci95_low"] or 0) <= truth[0] <= float(r["ratio_ci95_high"] or "inf")
                       for r in ok)
        report[key] = {
            "title": title, "long_run": truth, "verdicts": count([r["verdict"] for r in rows]),
            "ci_contains_long_run": f"{contains}/{len(ok)}",
            "median_rounds": statistics.median(int(r["n_rounds"]) for r in ok) if ok else None,
            "median_wall_s": statistics.median(r["wall_s"] for r in rows),
            "max_wall_s": max(r["wall_s"] for r in rows),
            "pyperf_same_samples": count(same_samples), "pyperf_separate_runs": count(separate),
        }
    print("\n== summary (threads=%d, %d repeats; load average now %s)" % (
        args.threads, args.repeats, " ".join(f"{v:.1f}" for v in __import__("os").getloadavg())))
    for key, r in report.items():
        lr = r["long_run"]
        print(f"{r['title']}: long-run ratio {lr[0]:.4f}")
        print(f"  edgebench compare: {r['verdicts']}; CI holds the long-run ratio {r['ci_contains_long_run']}; "
              f"median {r['median_rounds']} rounds, time to verdict median {r['median_wall_s']:.1f} s "
              f"(max {r['max_wall_s']:.1f} s)")
        print(f"  pyperf compare_to, same interleaved samples: {r['pyperf_same_samples']}")
        if r["pyperf_separate_runs"]:
            print(f"  pyperf compare_to, separate runs (3 processes each): {r['pyperf_separate_runs']}")
    (work / "bench_compare.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"details: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
