#!/usr/bin/env python3
"""`edgebench compress` on PyTorch architectures from pip packages: per architecture x variant, ok or
the one-line message, and the build time.

    python scripts/wild_archs.py [--out DIR] [--only vit]

The packages come from the package index once (tests/corpus.py, cached); the seeded weights are saved
first so no base training runs; every variant gets one fine-tuning epoch on the bundled digits at
3x32x32. Artifacts are built in a fresh cache, so nothing is reused from earlier runs. The point is
that every path works or says why in one line, not accuracy.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.corpus import unpacked_wheel  # noqa: E402
from tests.corpus_archs import ARCHS, VARIANTS, Arch, compress_command, environment, save_seeded_weights  # noqa: E402


def run_arch(arch: Arch, folder: Path) -> dict:
    """Build one architecture's variants; its rows, wall time and what reached the terminal."""
    env = environment([unpacked_wheel(r) for r in arch.requirements], cache=folder / "cache")
    weights = folder / "weights.pt"
    save_seeded_weights(arch, env, weights)
    t0 = time.perf_counter()
    proc = subprocess.run(compress_command(arch, weights, folder / "out"), env=env, capture_output=True, text=True,
                          timeout=3600)
    seconds = time.perf_counter() - t0
    table = folder / "out" / "artifacts.csv"
    rows = list(csv.DictReader(table.open())) if table.is_file() else []
    if not rows:  # the whole command failed: its one error line stands for every variant
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        rows = [{"variant": v, "status": "error", "error": last, "build_seconds": ""} for v in VARIANTS.split(",")]
    log = folder / "out" / "compress.log"
    return {"rows": rows, "seconds": seconds, "returncode": proc.returncode,
            "traceback": "Traceback" in proc.stderr, "terminal_lines": len(proc.stderr.splitlines()),
            "log_lines": len(log.read_text().splitlines()) if log.is_file() else 0}


def format_rows(name: str, result: dict) -> list[str]:
    """Markdown table rows for one architecture (pure)."""
    lines = []
    for r in result["rows"]:
        outcome = "ok" if r["status"] == "ok" else f"{r['status']}: {r['error']}"
        secs = f"{float(r['build_seconds']):.0f}" if r.get("build_seconds") else ""
        lines.append(f"| {name} | {r['variant']} | {outcome} | {secs} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the artifacts here (default: a temporary folder)")
    parser.add_argument("--only", help="architectures whose factory name contains this (e.g. vit)")
    args = parser.parse_args()
    archs = [a for a in ARCHS if not args.only or args.only in a.factory]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        print("| architecture | variant | result | build s |\n|---|---|---|---|", flush=True)
        summary = []
        for arch in archs:
            result = run_arch(arch, base / arch.factory)
            print("\n".join(format_rows(arch.name, result)), flush=True)
            summary.append(f"{arch.name}: {result['seconds']:.0f} s in all, exit {result['returncode']}, "
                           f"{result['terminal_lines']} terminal lines, {result['log_lines']} lines in compress.log"
                           + (", TRACEBACK on the terminal" if result["traceback"] else ""))
        print("\n" + "\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
