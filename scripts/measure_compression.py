"""Measure issue 3's "Must show" figures: build the variants, print sizes, ratios, accuracy and an
in-process interleaved latency comparison of fp32 vs prune-ch:0.5.

    python scripts/measure_compression.py [--model zoo:mixnet] [--out DIR]

Latency: both models in one process, alternated in blocks of 40 calls (first 5 of each block dropped),
the pattern DESIGN.md measured as tight and unbiased; median per model and the per-round ratio range.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.build import compress  # noqa: E402
from export.onnx_export import INPUT_NAME, ort_session  # noqa: E402

VARIANTS = ["fp32", "prune-ch:0.5", "prune-l1:0.9", "cluster:16", "fp32+int8"]


def interleaved(a: Path, b: Path, x: np.ndarray, rounds: int = 15, block: int = 40, drop: int = 5,
                threads: int = 1) -> tuple[float, float, list[float]]:
    sa, sb = ort_session(a, threads), ort_session(b, threads)
    feed = {INPUT_NAME: x}
    ta: list[float] = []
    tb: list[float] = []
    ratios = []
    for _ in range(rounds):
        ra, rb = [], []
        for sess, acc in ((sa, ra), (sb, rb)):
            for i in range(block):
                t0 = time.perf_counter()
                sess.run(None, feed)
                if i >= drop:
                    acc.append(time.perf_counter() - t0)
        ta += ra
        tb += rb
        ratios.append(float(np.median(rb) / np.median(ra)))
    return float(np.median(ta) * 1e3), float(np.median(tb) * 1e3), ratios


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:mixnet")
    p.add_argument("--out", type=Path, default=Path("results/compression"))
    p.add_argument("--variants", default=",".join(VARIANTS))
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
    if rows.get("prune-ch:0.5", {}).get("status") == "ok":
        x = np.load(args.out / "data.npz")["x"][:1]
        a = args.out / "fp32" / "model.onnx"
        b = args.out / rows["prune-ch:0.5"]["variant_dir"] / "model.onnx"
        for threads in (1, 2):
            ma, mb, ratios = interleaved(a, b, x, threads=threads)
            print(f"latency batch 1, {threads} thread(s): fp32 {ma:.3f} ms, prune-ch:0.5 {mb:.3f} ms, ratio "
                  f"{mb / ma:.2f} (per-round {min(ratios):.2f}..{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
