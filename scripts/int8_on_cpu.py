#!/usr/bin/env python3
"""INT8 accuracy of the default experiment's variants on another x86 CPU, emulated with user-mode QEMU.

Builds the default model's INT8 variants and their float parents here, with the INT8 forms measured on
the emulated CPU (``--int8-select-on local --python <wrapper>``), then measures the shipped files there
(``bench --data``) and prints, per variant: every form's accuracy on that CPU (validation split), the
form shipped, and the shipped file's accuracy there and here (test split) against its float parent.

    python scripts/int8_on_cpu.py [--cpu Haswell] [--out /tmp/int8-cpu]

QEMU emulates instructions, not timing: read accuracy only. Takes ~10 min on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from emulated_cpu import write_wrapper  # noqa: E402

PARENTS = ("fp32", "prune-ch:0.5", "cluster:16")


def edgebench(*args: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"edgebench {' '.join(map(str, args[:2]))} failed:\n{proc.stdout[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", default="Haswell", help="QEMU x86-64 CPU model (default Haswell: AVX2, no VNNI)")
    p.add_argument("--out", type=Path, default=Path("/tmp/int8-cpu"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    python = write_wrapper(args.out / f"{args.cpu.lower()}-python", args.cpu, sys.executable)
    art, res = args.out / "artifacts", args.out / "results"
    variants = [*PARENTS, *(f"{v}+int8" for v in PARENTS), "fp32+int8:u8s8"]
    edgebench("compress", "--model", "zoo:resnet", "--input-shape", "1,1,32,32", "--variants", ",".join(variants),
              "--int8-select-on", "local", "--python", python, "--out", art)
    int8 = [v for v in variants if "+int8" in v]
    edgebench("bench", *(art / v.replace(":", "_") for v in int8), "--data", art / "data.npz", "--python", python,
              "--processes", "1", "--min-time", "0.1", "--min-iterations", "3", "--timeout", "1800", "--out", res)
    rows = {r["variant"]: r for r in csv.DictReader(open(res / "summary.csv", newline=""))}
    cpu = next(iter(rows.values()))
    print(f"emulated CPU: {cpu['cpu_model']} ({cpu['cpu_features']}); build machine: "
          f"{json.loads((art / 'fp32' / 'manifest.json').read_text())['build_cpu_model']}")
    print(f"{'variant':<20}{'forms on that CPU (validation, vs float)':<46}{'shipped':<9}"
          f"{'there':>8}{'here':>8}{'float':>8}")
    for v in int8:
        m = json.loads((art / v.replace(":", "_") / "manifest.json").read_text())
        s = m["quantization"]["selection"]
        forms = ", ".join(f"{c['form']} {100 * c['accuracy']:.1f}% ({c['accuracy_change_points']:+.1f})"
                          for c in s["candidates"])
        parent = json.loads((art / v.split("+")[0].replace(":", "_") / "manifest.json").read_text())["accuracy"]
        print(f"{v:<20}{forms:<56}{m['int8_form']:<9}{100 * float(rows[v]['accuracy']):>7.2f}%"
              f"{100 * m['accuracy']:>7.2f}%{100 * parent:>7.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
