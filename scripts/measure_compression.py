"""Measure issue 3's "Must show" figures: build the variants, print sizes, ratios, accuracy and an
in-process interleaved latency comparison of fp32 vs prune-ch:0.5, and of the INT8 type pairs.

    python scripts/measure_compression.py [--model zoo:mixnet] [--out DIR] [--no-int8-types]

Latency: export.onnx_export.interleaved_latency (the models in one process, alternated in blocks of 40
calls, first 5 of each block dropped); median per model and the per-round ratio range.
INT8 types: fp32+int8 is also built with int8 activations (S8S8) beside the default uint8 (U8S8), so
the choice of the default can be re-checked on any machine (run this script on the board to check it there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.build import compress  # noqa: E402
from export.int8 import FORMS  # noqa: E402
from export.onnx_export import interleaved_latency  # noqa: E402

VARIANTS = ["fp32", "prune-ch:0.5", "prune-l1:0.9", "cluster:16", "fp32+int8"]


def compare_latency(names: list[str], paths: list[Path], x: np.ndarray) -> None:
    for threads in (1, 2):
        seconds, ratios = interleaved_latency(paths, x, threads=threads)
        ms = [1e3 * t for t in seconds]
        parts = [f"{n} {m:.3f} ms" for n, m in zip(names, ms)]
        parts += [f"{n}/{names[0]} {m / ms[0]:.2f} (per-round {min(r):.2f}..{max(r):.2f})"
                  for n, m, r in zip(names[1:], ms[1:], ratios[1:])]
        print(f"latency batch 1, {threads} thread(s): " + ", ".join(parts))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:mixnet")
    p.add_argument("--out", type=Path, default=Path("results/compression"))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-int8-types", dest="int8_types", action="store_false",
                   help="skip building and timing fp32+int8 with int8 activations (S8S8)")
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = {r["variant"]: r for r in compress(args.model, args.variants.split(","), args.out,
                                               progress=lambda s: print(f"[{time.perf_counter() - t0:6.1f}s] {s}",
                                                                        flush=True))}
    fp = rows["fp32"]
    print(f"\nmodel {args.model}, input {fp['input_shape']}, total build {time.perf_counter() - t0:.1f}s")
    print(f"{'variant':<16}{'status':<8}{'params':>9}{'nonzero':>9}{'bytes':>10}{'zip':>10}"
          f"{'params%':>9}{'nz%':>7}{'bytes%':>8}{'zip%':>7}{'maxuniq':>8}{'acc':>8}{'dAcc':>7}")
    for v, r in rows.items():
        if r["status"] != "ok":
            print(f"{v:<16}{r['status']:<8} {r['error']}")
            continue
        print(f"{v:<16}{r['status']:<8}{r['params']:>9}{r['nonzero_params']:>9}{r['model_bytes']:>10}"
              f"{r['model_zip_bytes']:>10}{100 * r['params'] / fp['params']:>8.1f}%"
              f"{100 * r['nonzero_params'] / r['params']:>6.1f}%{100 * r['model_bytes'] / fp['model_bytes']:>7.1f}%"
              f"{100 * r['model_zip_bytes'] / fp['model_zip_bytes']:>6.1f}%{r['max_unique_weight_values']:>8}"
              f"{100 * r['accuracy']:>7.2f}%{100 * (r['accuracy'] - fp['accuracy']):>+7.2f}")
    x = np.load(args.out / "data.npz")["x"][:1]
    fp32_path = args.out / "fp32" / "model.onnx"
    if rows.get("prune-ch:0.5", {}).get("status") == "ok":
        compare_latency(["fp32", "prune-ch:0.5"], [fp32_path, args.out / rows["prune-ch:0.5"]["variant_dir"] /
                                                   "model.onnx"], x)
    if args.int8_types and rows.get("fp32+int8", {}).get("status") == "ok":
        forms = [f"fp32+int8:{f}" for f in FORMS]
        pinned = {r["variant"]: r for r in compress(args.model, forms, args.out / "forms")}
        failed = [f"{v}: {r['status']} {r['error']}" for v, r in pinned.items() if r["status"] != "ok"]
        if failed:
            print("INT8 forms: " + "; ".join(failed))
        else:
            print("INT8 forms (accuracy, bytes): " + ", ".join(
                f"{v.split(':')[-1]} {100 * r['accuracy']:.2f}% {r['model_bytes']}" for v, r in pinned.items()))
            compare_latency(["fp32", *FORMS], [fp32_path, *(args.out / "forms" / r["variant_dir"] / "model.onnx"
                                                            for r in pinned.values())], x)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
