#!/usr/bin/env python3
"""Can `edgebench bench --streams N` be trusted? Its total items/s against a hand-written loop, side by side.

For the default model (the built-in experiment's zoo:resnet at 1x1x32x32, fp32, built or taken from the
cache with `edgebench compress`), for N = 1 and 2 streams:

1. Fidelity: `edgebench bench --streams N --processes 1` against the multi-threaded onnxruntime loop anyone
   would write (N threads, a session each, calls back to back for a fixed time, calls / seconds), the
   two interleaved in rounds (A B A B ..., order shuffled per round). The figure is the ratio of the
   medians over rounds, with the spread of the per-round ratios; target 0.9-1.1.
2. Sessions: the same with one session shared by the N threads (`--stream-sessions shared`), so the
   default (separate sessions) is chosen by measurement.
3. The same two loops in one process, on the same sessions, alternating in ABBA blocks: this tells whether
   edgebench's counting (only calls that ended inside one shared window) agrees with the hand loop's,
   without the drift between processes that dominates a shared machine.
4. Context: OpenVINO's benchmark_app `-hint throughput` (its own runtime, not onnxruntime) on the same file,
   in the same rounds, when the `openvino` wheel is installed (`pip install openvino`; not a dependency).

Usage: python scripts/streams_fidelity.py [--rounds 5] [--seconds 2] [--blocks 12] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ("zoo:resnet", "1,1,32,32")  # the built-in experiment's model and input shape

# The peer: N threads over N sessions (or one shared), each calling run() back to back for a fixed time;
# onnxruntime releases the GIL in run(). Intra-op threads per stream = cores // N, as edgebench chooses them.
def hand_runs(model: Path, n: int, mode: str) -> list:
    """One callable per stream, on its own session or one shared session."""
    import numpy as np
    import onnxruntime as ort

    def session():
        o = ort.SessionOptions()
        o.intra_op_num_threads = max(1, len(os.sched_getaffinity(0)) // n)
        o.inter_op_num_threads = 1
        return ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])

    shared = session() if mode == "shared" else None
    sessions = [shared or session() for _ in range(n)]
    inp = sessions[0].get_inputs()[0]
    feeds = {inp.name: np.random.default_rng(0).standard_normal(
        [d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)}
    return [lambda s=s: s.run(None, feeds) for s in sessions]


def hand_count(runs: list, seconds: float, warm_s: float = 0.2) -> float:
    """The loop anyone would write: warm up, start together, sleep, stop; calls / seconds."""
    import threading

    counts, stop, ready = [0] * len(runs), [False], threading.Barrier(len(runs) + 1)

    def work(k):
        warm_end = time.perf_counter() + warm_s
        while time.perf_counter() < warm_end:
            runs[k]()
        ready.wait()
        c = 0
        while not stop[0]:
            runs[k]()
            c += 1
        counts[k] = c

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(runs))]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    t1 = time.perf_counter()
    for t in threads:
        t.join()
    return sum(counts) / (t1 - t0)


def default_model(work: Path) -> Path:
    """The default model's fp32 file: `edgebench compress` reuses the cached weights and artifact."""
    out = work / "artifacts"
    subprocess.run([sys.executable, "-m", "harness", "compress", "--model", DEFAULT_MODEL[0], "--input-shape",
                    DEFAULT_MODEL[1], "--variants", "fp32", "--out", str(out)], check=True, capture_output=True,
                   cwd=ROOT)
    return out / "fp32" / "model.onnx"


def hand(model: Path, n: int, seconds: float, mode: str) -> float:
    """The hand loop in a fresh process of its own (this script with --hand), like edgebench's runner."""
    out = subprocess.run([sys.executable, __file__, "--hand", str(model), str(n), str(seconds), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["ips"]


def in_process(model: Path, n: int, mode: str, blocks: int, seconds: float) -> tuple[list[float], list[float]]:
    """edgebench's streams loop (targets/runner.py) and the hand loop on the same sessions in one process,
    alternating in ABBA order: the host's drift between processes, which dominates here, cancels out."""
    sys.path.insert(0, str(ROOT))
    from targets.runner import concurrent_loops

    runs = hand_runs(model, n, mode)
    ours, theirs = [], []
    for b in range(blocks):
        for tool in ("edgebench", "hand") if b % 2 == 0 else ("hand", "edgebench"):
            if tool == "hand":
                theirs.append(hand_count(runs, seconds))
            else:
                lat, spans = concurrent_loops(runs, (1, 0.2, 5.0, 10**6), (1, seconds, 10 * seconds, 10**6))
                ours.append(sum(len(calls) / (span / 1e9) for calls, span in zip(lat, spans) if span))
    return ours, theirs


def edgebench(model: Path, n: int, seconds: float, mode: str, out: Path, *extra: str) -> float:
    """Total items/s of one `edgebench bench --streams N` invocation (one runner process)."""
    subprocess.run([sys.executable, "-m", "harness", "bench", str(model), "--streams", str(n), "--stream-sessions",
                    mode, "--processes", "1", "--min-time", str(seconds), "--out", str(out), "-q", *extra],
                   check=True, capture_output=True, cwd=ROOT)
    import csv

    with open(out / "summary.csv", newline="") as f:
        return float(next(csv.DictReader(f))["throughput_ips_streams"])


def benchmark_app() -> str | None:
    """OpenVINO's benchmark_app beside this Python, or on PATH (None when openvino is not installed)."""
    here = Path(sys.executable).parent / "benchmark_app"
    return str(here) if here.exists() else shutil.which("benchmark_app")


def openvino(app: str, model: Path, seconds: float, precision: str) -> float:
    """benchmark_app -hint throughput on the CPU: its reported FPS (items/s at batch 1).

    precision "" is OpenVINO's default (bf16 on a CPU with bf16 instructions), "f32" the model's own."""
    extra = ["-infer_precision", precision] if precision else []
    out = subprocess.run([app, "-m", str(model), "-d", "CPU", "-hint", "throughput", "-shape",
                          "input[" + DEFAULT_MODEL[1] + "]", "-t", str(max(1, round(seconds))), *extra],
                         capture_output=True, text=True, check=True)
    found = re.search(r"Throughput:\s+([\d.]+)\s+FPS", out.stdout)
    streams = re.search(r"NUM_STREAMS:\s+(\d+)", out.stdout)
    openvino.streams = streams.group(1) if streams else "?"  # type: ignore[attr-defined]
    if not found:
        raise RuntimeError("benchmark_app printed no throughput:\n" + out.stdout[-2000:])
    return float(found.group(1))


def ratio_cells(eb: list[float], peer: list[float]) -> str:
    """Table cells: both medians, the ratio of medians, and the paired ratios' median, quartiles and range."""
    ratios = sorted(a / b for a, b in zip(eb, peer))
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (ratios[0],) * 3
    return (f"{statistics.median(eb):,.0f} | {statistics.median(peer):,.0f} | "
            f"{statistics.median(eb) / statistics.median(peer):.3f} | {statistics.median(ratios):.2f} "
            f"({q1:.2f}-{q3:.2f}) [{ratios[0]:.2f}-{ratios[-1]:.2f}] |")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds of each measurement (2)")
    parser.add_argument("--blocks", type=int, default=12, help="alternating blocks per case in one process (12)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--openvino-python", type=Path, metavar="PYTHON",
                        help="a Python whose onnxruntime is onnxruntime-openvino: also measure edgebench --streams 2 "
                             "on the OpenVINO execution provider there, directly comparable with benchmark_app")
    parser.add_argument("--hand", nargs=4, metavar=("MODEL", "N", "SECONDS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand:  # the hand loop's own process
        model, n, seconds, mode = args.hand
        print(json.dumps({"ips": hand_count(hand_runs(Path(model), int(n), mode), float(seconds))}))
        return 0
    work = Path(args.out or tempfile.mkdtemp(prefix="edgebench-streams-"))
    work.mkdir(parents=True, exist_ok=True)
    model = default_model(work)
    app = benchmark_app()
    cases = [(1, "separate"), (2, "separate"), (2, "shared")]
    jobs = [(tool, n, mode) for n, mode in cases for tool in ("edgebench", "hand")]
    if app:
        jobs += [("openvino", 0, ""), ("openvino", 0, "f32")]
    if args.openvino_python:
        jobs += [("edgebench-ov", 2, "separate")]
    results: dict[tuple[str, int, str], list[float]] = {job: [] for job in jobs}
    rng = random.Random(0)
    load_start = loadavg()
    count = 0
    for r in range(args.rounds):
        order = list(jobs)
        rng.shuffle(order)
        for tool, n, mode in order:
            if tool == "hand":
                value = hand(model, n, args.seconds, mode)
            elif tool == "edgebench":
                count += 1
                value = edgebench(model, n, args.seconds, mode, work / f"eb{count}")
            elif tool == "edgebench-ov":  # one OpenVINO thread per stream, as 2 streams x 1 thread here
                count += 1
                value = edgebench(model, n, args.seconds, mode, work / f"eb{count}", "--python",
                                  str(args.openvino_python), "--provider", "OpenVINOExecutionProvider:num_of_threads=1")
            else:
                value = openvino(app, model, args.seconds, mode)
            results[(tool, n, mode)].append(value)
        print(f"round {r + 1}/{args.rounds} done (load {loadavg()})", file=sys.stderr)

    print(f"\n## edgebench --streams N vs a hand-written threaded onnxruntime loop ({model.parent.name} of "
          f"{DEFAULT_MODEL[0]} at {DEFAULT_MODEL[1]}; {os.cpu_count()} cores; {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s; load {load_start} at start, {loadavg()} at end)\n")
    print("| streams | sessions | edgebench items/s | hand loop items/s | ratio of medians | per-round ratios: "
          "median (quartiles) [range] |")
    print("|---|---|---|---|---|---|")
    for n, mode in cases:
        print(f"| {n} | {mode} | " + ratio_cells(results[("edgebench", n, mode)], results[("hand", n, mode)]))
    sep, shared = results[("edgebench", 2, "separate")], results[("edgebench", 2, "shared")]
    ratios = sorted(a / b for a, b in zip(sep, shared))
    print(f"\n2 streams, separate / shared sessions (edgebench): {statistics.median(sep) / statistics.median(shared):.3f}"
          f" (per round {ratios[0]:.2f}-{ratios[-1]:.2f}; > 1: separate sessions deliver more)")
    one = results[("edgebench", 1, "separate")]
    print(f"2 streams / 1 stream (edgebench, separate): {statistics.median(sep) / statistics.median(one):.3f}")
    best = max(statistics.median(sep), statistics.median(one))
    for precision, label in (("", "default precision (bf16 where the CPU has it)"), ("f32", "-infer_precision f32")):
        if app:
            ov = results[("openvino", 0, precision)]
            print(f"\nOpenVINO benchmark_app -hint throughput, {label} ({getattr(openvino, 'streams', '?')} streams, "
                  f"its own CPU runtime, not onnxruntime): {statistics.median(ov):,.0f} items/s (rounds "
                  f"{min(ov):,.0f}-{max(ov):,.0f}); edgebench's best ({best:,.0f}) is "
                  f"{best / statistics.median(ov):.2f}x of it")
    if args.openvino_python:
        ov_ep = results[("edgebench-ov", 2, "separate")]
        line = (f"\nedgebench --streams 2 on onnxruntime's OpenVINO execution provider ({args.openvino_python}): "
                f"{statistics.median(ov_ep):,.0f} items/s (rounds {min(ov_ep):,.0f}-{max(ov_ep):,.0f})")
        if app:
            ov = results[("openvino", 0, "f32")]
            line += (f"; benchmark_app -hint throughput -infer_precision f32: {statistics.median(ov):,.0f}: "
                     f"ratio {statistics.median(ov_ep) / statistics.median(ov):.2f}")
        print(line)
    print(f"\n## The same two loops in one process on the same sessions, {args.blocks} alternating blocks (ABBA) of "
          f"{args.seconds:g} s per case (load {loadavg()})\n")
    print("| streams | sessions | edgebench loop items/s | hand loop items/s | ratio of medians | per-pair ratios: "
          "median (quartiles) [range] |")
    print("|---|---|---|---|---|---|")
    for n, mode in cases:
        eb, peer = in_process(model, n, mode, args.blocks, args.seconds)
        print(f"| {n} | {mode} | " + ratio_cells(eb, peer))
    if not app:
        print("\nOpenVINO benchmark_app not found (pip install openvino to print its -hint throughput figure)")
    print(f"\nfiles: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
