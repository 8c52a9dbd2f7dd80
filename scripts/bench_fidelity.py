#!/usr/bin/env python3
"""How far can `edgebench bench` be trusted? Prints the figures issue "Measure any ONNX model" asks for.

1. Fidelity: edgebench's median vs a bare `InferenceSession.run` loop on the same model, the two
   interleaved in one run (rounds in random order), for ONNX models nobody tuned for.
2. Overhead floor: the same on a one-node Identity model, as a difference in microseconds.
3. Time to answer: wall-clock seconds of `edgebench bench` with default settings.
4. Noise: five back-to-back invocations of each tool on one model; max/min of their medians.

A timed unit test could not say any of this honestly on a shared machine; ratios measured side by
side in one run can. Usage: python scripts/bench_fidelity.py [--rounds 3] [--out DIR]
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

# The peer: the loop anyone would write by hand (warm-up, then perf_counter_ns around run()).
BARE_LOOP = r"""
import sys, time, json
import numpy as np, onnxruntime as ort
path, seconds = sys.argv[1], float(sys.argv[2])
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
for _ in range(10):
    s.run(None, feeds)
out, t_end = [], time.perf_counter() + seconds
while time.perf_counter() < t_end:
    t0 = time.perf_counter_ns(); s.run(None, feeds); out.append(time.perf_counter_ns() - t0)
print(json.dumps({"median_ms": float(np.median(out)) / 1e6, "n": len(out)}))
"""


def export_zoo(name: str, shape: tuple[int, ...], path: Path) -> Path:
    import torch

    from export.zoo import load_model

    model, input_shape = load_model(f"zoo:{name}", input_shape=shape)
    model.eval()
    torch.onnx.export(model, torch.zeros(input_shape), str(path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    return path


def identity(path: Path) -> Path:
    from tests.onnx_models import identity as make

    return make(path)


def bare(model: Path, seconds: float) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(model), str(seconds)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)["median_ms"]


def edgebench(model: Path, out: Path, *extra: str) -> tuple[float, float]:
    """(median ms, wall seconds) of one `edgebench bench` invocation with default settings."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness", "bench", str(model), "--out", str(out), "-q", *extra],
                   check=True, capture_output=True, cwd=ROOT)
    wall = time.monotonic() - start
    import pandas as pd

    return float(pd.read_csv(out / "summary.csv")["latency_ms_median"].iloc[-1]), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noise-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="edgebench-fidelity-"))
    work.mkdir(parents=True, exist_ok=True)
    models = {
        "identity": identity(work / "identity.onnx"),
        "mobilenetv2-96": export_zoo("mobilenetv2", (1, 3, 96, 96), work / "mobilenetv2.onnx"),
        "resnet-32": export_zoo("resnet", (1, 3, 32, 32), work / "resnet.onnx"),
    }
    rng = random.Random(0)
    eb: dict[str, list[float]] = {k: [] for k in models}
    peer: dict[str, list[float]] = {k: [] for k in models}
    walls: dict[str, list[float]] = {k: [] for k in models}
    n = 0
    for r in range(args.rounds):
        jobs = [(name, tool) for name in models for tool in ("edgebench", "bare")]
        rng.shuffle(jobs)
        for name, tool in jobs:
            if tool == "bare":
                peer[name].append(bare(models[name], 5.0))  # as long as edgebench's 5 x 1 s
            else:
                n += 1
                median, wall = edgebench(models[name], work / f"eb{n}")
                eb[name].append(median)
                walls[name].append(wall)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print("\n## Fidelity: edgebench median / bare-loop median (interleaved, "
          f"{args.rounds} rounds; target 0.9-1.1)")
    print(f"{'model':16} {'edgebench ms':>13} {'bare ms':>10} {'ratio':>7} {'time to answer s':>17}")
    for name in models:
        a, b = statistics.median(eb[name]), statistics.median(peer[name])
        print(f"{name:16} {a:13.4f} {b:10.4f} {a / b:7.3f} {statistics.median(walls[name]):17.1f}")
    a, b = statistics.median(eb["identity"]), statistics.median(peer["identity"])
    print(f"\n## Overhead floor (Identity): edgebench - bare = {(a - b) * 1000:+.2f} us (target <= +1 us)")

    name = "mobilenetv2-96"
    print(f"\n## Noise: {args.noise_runs} back-to-back invocations on {name}, max/min of the medians "
          "(target <= 1.25)")
    runs_eb, runs_peer = [], []
    for i in range(args.noise_runs):
        runs_eb.append(edgebench(models[name], work / f"noise{i}")[0])
        runs_peer.append(bare(models[name], 5.0))
    for label, values in (("edgebench", runs_eb), ("bare loop", runs_peer)):
        print(f"{label:10} spread {max(values) / min(values):.3f}x  medians "
              + " ".join(f"{v:.4f}" for v in values))
    print(f"\nfiles: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
