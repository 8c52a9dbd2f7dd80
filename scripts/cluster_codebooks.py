#!/usr/bin/env python3
"""One codebook per layer (``cluster:K``) against one per output channel (``cluster-ch:K``): accuracy
and stored size, over several fine-tuning seeds.

    python scripts/cluster_codebooks.py [--model zoo:resnet] [--input-shape 1,1,32,32] [--k 4,16] [--seeds 0,1,2]

Every variant is built by `compress` on the bundled digits (the trained fp32 weights are shared and
cached); only the cluster fine-tuning seed changes between runs. Sizes: the file, its zip-deflated
size, and what an index + codebook encoding of the clustered weights would need (computed, not a file).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.build import BuildOptions, compress  # noqa: E402
from export.train import CLUSTER_FINETUNE_RECIPE  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo:resnet")
    p.add_argument("--input-shape", default="1,1,32,32")
    p.add_argument("--k", default="4,16")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    variants = ["fp32"] + [f"{form}:{k}" for k in args.k.split(",") for form in ("cluster", "cluster-ch")]
    acc: dict[str, list[float]] = {v: [] for v in variants}
    sizes: dict[str, tuple] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        options = BuildOptions(cluster_finetune_recipe=replace(CLUSTER_FINETUNE_RECIPE, seed=seed))
        with tempfile.TemporaryDirectory() as tmp:
            rows = compress(args.model, variants, Path(tmp), input_shape=shape, options=options,
                            progress=lambda s: print(f"  seed {seed}: {s}", file=sys.stderr, flush=True))
        for r in rows:
            if r["status"] != "ok":
                print(f"{r['variant']} seed {seed}: {r['status']}: {r['error']}")
                continue
            acc[r["variant"]].append(r["accuracy"])
            c = r.get("clustering") or {}
            sizes[r["variant"]] = (r["model_bytes"], r["model_zip_bytes"], c.get("index_codebook_bytes_estimate"),
                                   c.get("file_max_values_per_layer"), c.get("file_max_values_per_channel"))
    print(f"\n{args.model} at {args.input_shape}, seeds {args.seeds}")
    print("| variant | accuracy per seed | median | file KiB | zip KiB | index+codebook KiB "
          "| max values layer / channel |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        if not acc[v]:
            continue
        size, zipped, packed, per_layer, per_channel = sizes[v]
        cells = [v, " / ".join(f"{a:.2%}" for a in acc[v]), f"{statistics.median(acc[v]):.2%}", f"{size / 1024:,.0f}",
                 f"{zipped / 1024:,.0f}", f"{packed / 1024:,.0f}" if packed else "",
                 f"{per_layer} / {per_channel}" if packed else ""]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
