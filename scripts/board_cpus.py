#!/usr/bin/env python3
"""The default model's fp32 and INT8 forms on the emulated Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76).

Builds fp32 and the three INT8 forms of the default model here, starts the emulated board twice on one
root filesystem (a Pi 4's CPU and a Pi 5's), measures every file on both with `edgebench bench` over
SSH and prints, per board and form: median latency, its interval and the ratio to fp32 on the same
board (with `--accuracy`, also accuracy on the test split: 360 emulated inferences per process).

    sudo python3 scripts/board_cpus.py [--out /tmp/board-cpus] [--processes 2] [--accuracy]

QEMU's TCG emulates instructions, not timing: a latency here says how much emulated work a kernel
does, not how fast a Pi runs it. Accuracy and the kernels chosen (dot product or not) are the Pi's.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from arm64_board import Board, missing_requirements  # noqa: E402

VARIANTS = ("fp32", "fp32+int8:u8s8", "fp32+int8:reduce", "fp32+int8:s8s8")


def edgebench(*args: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"edgebench {' '.join(map(str, args[:2]))} failed:\n{proc.stdout[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/board-cpus"))
    p.add_argument("--processes", type=int, default=2, help="runner processes per file and board (2)")
    p.add_argument("--min-time", type=float, default=2.0, help="timed seconds per process (2)")
    p.add_argument("--accuracy", action="store_true", help="feed the test split and score it (slow under QEMU)")
    args = p.parse_args(argv)
    problem = missing_requirements()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    art, res = args.out / "artifacts", args.out / "results"
    if not (art / "data.npz").exists():
        edgebench("compress", "--model", "zoo:resnet", "--input-shape", "1,1,32,32", "--variants", ",".join(VARIANTS),
                  "--out", art)  # fmt: skip
    pi4 = Board(Path(tempfile.mkdtemp(prefix="edgebench-board-")))
    pi5 = None
    try:
        pi4.prepare()
        pi4.start()
        pi5 = Board(Path(tempfile.mkdtemp(prefix="edgebench-board-")), cpu="cortex-a76", root=pi4.root)
        pi5.prepare()
        pi5.start()
        config = args.out / "ssh_config"
        config.write_text(pi4.ssh_config.read_text() + pi5.ssh_config.read_text())
        load = Path("/proc/loadavg").read_text().split()[:3]
        edgebench("bench", *(art / v.replace(":", "_") for v in VARIANTS), "--target", pi4.alias, "--target",
                  pi5.alias, "--ssh-config", config, *(("--data", art / "data.npz") if args.accuracy else ()),
                  "--processes", args.processes, "--min-time", args.min_time, "--min-iterations", 10,
                  "--timeout", 1800, "--out", res)  # fmt: skip
    finally:
        if pi5 is not None:
            pi5.remove()
        pi4.remove()
    rows = list(csv.DictReader(open(res / "summary.csv", newline="")))
    print(f"load average before: {' '.join(load)}, after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"{'board':<32}{'variant':<20}{'median ms':>10}{'95% CI':>20}{'vs fp32':>9}{'accuracy':>10}")
    for target in (pi4.alias, pi5.alias):
        mine = [r for r in rows if r["target"] == target]
        fp32 = next(float(r["latency_ms_median"]) for r in mine if r["variant"] == "fp32")
        where = f"{mine[0]['cpu_model']} ({target})"
        for r in mine:
            med = float(r["latency_ms_median"])
            ci = f"{float(r['latency_ms_ci95_low']):.2f}-{float(r['latency_ms_ci95_high']):.2f}"
            # without --accuracy the summary's accuracy is the build machine's: not shown as the board's
            acc = f"{100 * float(r['accuracy']):.2f}%" if r["accuracy_where"] == "target" else "-"
            print(f"{where:<32}{r['variant']:<20}{med:>10.2f}{ci:>20}{med / fp32:>9.2f}{acc:>10}")
    print(f"cpu features: {', '.join(sorted({r['target'] + ': ' + r['cpu_features'] for r in rows}))}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
