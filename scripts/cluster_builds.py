#!/usr/bin/env python3
"""The same sweep built here and on a local Dask cluster (a scheduler and N workers on loopback): wall times,
the engine's start-up cost, and whether the artifacts are the same bytes.

On a 2-core machine the cluster gains little (the workers share the cores the local build already uses);
the point is that the path is real. Each build gets an empty cache, so both train the base model once.

    python scripts/cluster_builds.py                       # zoo:digits-cnn, 4 variants, 2 workers
    python scripts/cluster_builds.py --variants fp32,prune-ch:0.5,cluster:16 --workers 3
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compress(args: argparse.Namespace, out: Path, cache: Path, *extra: str) -> float:
    env = {**os.environ, "EDGEBENCH_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "harness", "compress", "--model", args.model, "--variants", args.variants,
                    "--finetune-epochs", str(args.epochs), "--out", str(out), *extra], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:digits-cnn")
    p.add_argument("--variants", default="fp32,prune-l1:0.5,cluster:4,prune-ch:0.5")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (1)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    from distributed import Client

    work = Path(tempfile.mkdtemp(prefix="edgebench-cluster-"))
    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        t0 = time.monotonic()
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True) for _ in range(args.workers)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(args.workers, timeout=120)
        startup = time.monotonic() - t0
        local = compress(args, work / "local", work / "cache-local")
        remote = compress(args, work / "remote", work / "cache-remote", "--executor", f"dask://127.0.0.1:{port}")
    finally:
        for proc in reversed(procs):  # the workers first, then the scheduler they would reconnect to
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    rows = {side: {r["variant"]: r for r in csv.DictReader(open(work / side / "artifacts.csv", newline=""))}
            for side in ("local", "remote")}
    same = sum(rows["local"][v]["model_sha256"] == rows["remote"][v]["model_sha256"] for v in rows["local"])
    load = os.getloadavg()[0]
    print(f"{args.model}, {len(rows['local'])} variants ({args.variants}), {args.epochs} fine-tuning epoch(s), "
          f"{os.cpu_count()} cores, load {load:.1f}")
    print("| build | wall time |")
    print("|---|---|")
    print(f"| local (this process) | {local:.1f} s |")
    print(f"| Dask cluster, {args.workers} workers on loopback | {remote:.1f} s ({local / remote:.2f}x) |")
    print(f"| cluster start-up (scheduler + {args.workers} workers ready) | {startup:.1f} s |")
    print(f"same sha256 for {same} of {len(rows['local'])} variants")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
