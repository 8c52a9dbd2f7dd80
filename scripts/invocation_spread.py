#!/usr/bin/env python3
"""Does one invocation of a benchmark tool give the same answer as the next? And how long does it take?

For each model, runs N back-to-back invocations of each tool, interleaved (edgebench, pyperf, OpenVINO's
benchmark_app, edgebench, ...), and prints per tool: the seconds one invocation took, its medians, and the
spread (max/min) of those medians. For edgebench also the spread of the median relative to the reference
workload its runner times around the model (reference_call_us for a call-bound model, reference_compute_us
otherwise), to show whether dividing by the machine's own speed tightens it.

    python scripts/invocation_spread.py [MODEL.onnx ...] [--invocations 5] [--edgebench-args "--precision 2"]

Without models it measures a one-node model and the default zoo model (zoo:resnet at 1x1x32x32, exported here).
pyperf runs `--fast`; benchmark_app runs only when the `openvino` package is importable (it is not a
dependency: `pip install openvino` in the same environment to include it), with -hint latency -t 10.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PYPERF_BENCH = r"""
import numpy as np, onnxruntime as ort, pyperf
path = PATH  # written in: pyperf's workers get pyperf's own arguments only
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feeds = {i.name: np.random.default_rng(0).standard_normal([d if isinstance(d, int) and d > 0 else 1
         for d in i.shape]).astype(np.float32) for i in s.get_inputs()}
def timed(loops):
    run, clock = s.run, pyperf.perf_counter
    t0 = clock()
    for _ in range(loops):
        run(None, feeds)
    return clock() - t0
pyperf.Runner().bench_time_func("model", timed)
"""


def one_node(path: Path) -> Path:
    from tests.onnx_models import identity

    return identity(path)


def default_model(path: Path) -> Path:
    """The default experiment's base architecture, untrained weights: timing does not depend on them."""
    import torch

    from export.zoo import DEFAULT_MODEL, load_model

    model, shape = load_model(DEFAULT_MODEL, input_shape=(1, 1, 32, 32))
    torch.onnx.export(model.eval(), torch.zeros(shape), str(path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    return path


def edgebench(model: Path, out: Path, extra: list[str]) -> dict:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness", "bench", str(model), "--out", str(out), "-q", *extra],
                   check=True, capture_output=True, cwd=ROOT)
    wall = time.monotonic() - start
    with open(out / "summary.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    value = lambda key: float(row[key]) if row.get(key) else None  # noqa: E731
    return {"median_ms": value("latency_ms_median"), "wall_s": wall, "call_us": value("reference_call_us"),
            "compute_us": value("reference_compute_us"), "ci": (value("latency_ms_ci95_low"),
                                                               value("latency_ms_ci95_high"))}


def pyperf(model: Path, out: Path) -> dict:
    script = out.parent / "pyperf_bench.py"  # pyperf re-runs its script in worker processes: a file, not -c
    script.write_text(f"PATH = {str(model)!r}\n" + PYPERF_BENCH)
    start = time.monotonic()
    subprocess.run([sys.executable, str(script), "--fast", "-q", "-o", str(out)],
                   check=True, capture_output=True)
    wall = time.monotonic() - start
    values = [v for run in json.loads(out.read_text())["benchmarks"][0]["runs"] for v in run.get("values", [])]
    return {"median_ms": statistics.median(values) * 1e3, "wall_s": wall}


def benchmark_app(model: Path) -> dict | None:
    tool = shutil.which("benchmark_app", path=str(Path(sys.executable).parent)) or shutil.which("benchmark_app")
    if not tool:
        return None
    start = time.monotonic()
    out = subprocess.run([tool, "-m", str(model), "-d", "CPU", "-hint", "latency", "-t", "10"],
                         capture_output=True, text=True)
    wall = time.monotonic() - start
    match = re.search(r"Median:\s+([0-9.]+) ms", out.stdout)
    return {"median_ms": float(match.group(1)), "wall_s": wall} if match else None


def spread(values: list[float]) -> float:
    return max(values) / min(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--invocations", type=int, default=5)
    parser.add_argument("--edgebench-args", default="", help="extra flags for edgebench bench, quoted")
    parser.add_argument("--no-peers", action="store_true", help="edgebench only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgebench-spread-"))
    models = args.models or [one_node(work / "one_node.onnx"), default_model(work / "default.onnx")]
    extra = shlex.split(args.edgebench_args)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load before: {' '.join(load)}; {args.invocations} invocations per tool, interleaved; "
          f"edgebench {' '.join(extra) or '(defaults)'}")
    for model in models:
        runs: dict[str, list[dict]] = {"edgebench": [], "pyperf --fast": [], "benchmark_app": []}
        for i in range(args.invocations):
            runs["edgebench"].append(edgebench(model, work / f"{model.stem}-eb{i}", extra))
            if not args.no_peers:
                runs["pyperf --fast"].append(pyperf(model, work / f"{model.stem}-pyperf{i}.json"))
                ov = benchmark_app(model)
                if ov:
                    runs["benchmark_app"].append(ov)
        print(f"\n## {model.name}")
        print(f"{'tool':22} {'s per invocation':>16} {'spread':>7}  medians (ms)")
        for tool, results in runs.items():
            if not results:
                continue
            medians = [r["median_ms"] for r in results]
            walls = statistics.median(r["wall_s"] for r in results)
            print(f"{tool:22} {walls:16.1f} {spread(medians):6.3f}x  " + " ".join(f"{m:.4g}" for m in medians))
        eb = runs["edgebench"]
        call_bound = statistics.median(r["median_ms"] for r in eb) * 1e3 < 50  # a model of a few calls' work
        key = "call_us" if call_bound else "compute_us"
        if all(r[key] for r in eb):
            relative = [r["median_ms"] * 1e3 / r[key] for r in eb]
            print(f"{'edgebench / reference':22} {'':16} {spread(relative):6.3f}x  (relative to "
                  f"reference_{key}: " + " ".join(f"{v:.4g}" for v in relative) + ")")
        widths = [(hi - lo) / r["median_ms"] for r in eb for lo, hi in [r["ci"]] if lo and hi]
        if widths:
            print(f"edgebench 95% CI width, median over invocations: {statistics.median(widths):.1%} of the median")
    print(f"\nload after: {' '.join(open('/proc/loadavg').read().split()[:3])}; files: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
