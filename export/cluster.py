"""Weight clustering (``cluster:K``, ``cluster-ch:K``): BatchNorm folding, 1-D k-means, centroid-keeping fine-tune.

BatchNorm is folded into the convolutions FIRST (export/fold.py, along the traced graph): folding after
clustering scales every output channel differently and multiplies the distinct values by the channel
count, losing most of the zip gain. Two codebook forms:

- per layer (``cluster:K``): K values shared by a whole conv / linear weight. The smallest file, but K
  values cannot follow the per-channel scales a folded BatchNorm puts into the weights (cluster:4 of the
  default model collapsed to 31-48%).
- per output channel (``cluster-ch:K``): K values for each output channel (TF-MOT's per-channel
  clustering). A channel scale keeps them K values, so it survives any later folding, and is used
  automatically when a BatchNorm follows a conv but cannot be folded (``cluster:K`` says so).

The file keeps dense float weights (every runtime loads them as they are); the gain is in the zipped
size, and the manifest reports what the file holds and what an index + codebook encoding would need.
k-means is 1-D, so it runs on sorted values with prefix sums, every row (layer or channel) at once:
one Lloyd iteration is a binary search of K-1 boundaries per row plus K segment sums.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.data import Dataset
from export.fold import fold_batchnorm
from export.prune import prunable_weights
from export.train import CLUSTER_FINETUNE_RECIPE, Recipe, accuracy_torch, fit
from targets.errors import EdgebenchError

INITS = ("linear", "kmeans++")
CODEBOOKS = ("layer", "channel")
KMEANSPP_SAMPLE = 20000


# ---------------------------------------------------------------------------------------- k-means

def _init_centroids(s: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    """[R, k] starting centroids for sorted rows ``s`` [R, n]: evenly spaced, or D^2 sampling (k-means++)
    on a column subsample of at most 20k values per row."""
    if init == "linear":
        return np.linspace(s[:, 0], s[:, -1], k, axis=1)
    rows, n = s.shape
    sample = s[:, np.sort(rng.choice(n, size=min(n, KMEANSPP_SAMPLE), replace=False))]
    ar = np.arange(rows)
    c = np.empty((rows, k))
    c[:, 0] = sample[ar, rng.integers(sample.shape[1], size=rows)]
    d2 = (sample - c[:, :1]) ** 2
    for j in range(1, k):
        cdf = np.cumsum(d2, axis=1)
        u = rng.random(rows) * cdf[:, -1]
        pick = np.minimum((cdf < u[:, None]).sum(axis=1), sample.shape[1] - 1)  # a row of equal values: any
        c[:, j] = sample[ar, pick]
        d2 = np.minimum(d2, (sample - c[:, j:j + 1]) ** 2)
    return np.sort(c, axis=1)


def kmeans_rows(values: np.ndarray, k: int, init: str = "kmeans++", iters: int = 30,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means of every row of ``values`` [R, n] at once. Returns (centroids float32 [R, k], sorted
    per row, and label per value int32 [R, n]); a centroid no value chose keeps its place, unused.

    ``linear``: centroids evenly spaced between min and max (keeps the rare large weights that matter;
    Han et al., Deep Compression). ``kmeans++``: D^2 sampling.
    """
    if init not in INITS:
        raise EdgebenchError(f"unknown k-means init {init!r}; use one of {INITS}")
    v = np.asarray(values, dtype=np.float64)
    rows, n = v.shape
    order = np.argsort(v, axis=1, kind="stable")
    s = np.take_along_axis(v, order, axis=1)
    # each row scaled to [0, 1] and offset by 2 x its index: one flat sorted array, so one searchsorted
    # serves every row; k-means commutes with the per-row affine map
    lo, span = s[:, :1], np.maximum(s[:, -1:] - s[:, :1], 1e-30)
    z = (s - lo) / span
    offset = 2.0 * np.arange(rows)[:, None]
    flat = (z + offset).ravel()
    cs = np.concatenate([[0.0], np.cumsum(z.ravel())])
    c = (_init_centroids(s, k, init, np.random.default_rng(seed)) - lo) / span
    row_start, row_end = np.arange(rows)[:, None] * n, (np.arange(rows)[:, None] + 1) * n

    def segments(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bounds = np.searchsorted(flat, ((c[:, 1:] + c[:, :-1]) / 2 + offset).ravel()).reshape(rows, k - 1)
        starts = np.concatenate([row_start, bounds], axis=1)
        ends = np.concatenate([bounds, row_end], axis=1)
        return ends - starts, cs[ends] - cs[starts]

    for _ in range(iters):
        counts, sums = segments(c)
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), c), axis=1)
        done = np.allclose(new, c, rtol=0, atol=1e-12)
        c = new
        if done:
            break
    counts, _ = segments(c)
    labels_sorted = np.repeat(np.tile(np.arange(k, dtype=np.int32), rows), counts.ravel()).reshape(rows, n)
    labels = np.empty((rows, n), dtype=np.int32)
    np.put_along_axis(labels, order, labels_sorted, axis=1)
    return (c * span + lo).astype(np.float32), labels


class Clusters:
    """Cluster ids of every conv / linear weight (one codebook per layer, or per output channel) and the
    centroids; keeps every clustered weight on a centroid during fine-tuning."""

    def __init__(self, model: nn.Module, k: int, init: str = "kmeans++", codebook: str = "layer") -> None:
        if codebook not in CODEBOOKS:
            raise EdgebenchError(f"unknown codebook {codebook!r}; use one of {CODEBOOKS}")
        self.k = k
        self.codebook = codebook
        self.layers: dict[str, tuple[nn.Module, torch.Tensor, int]] = {}
        for name, m in prunable_weights(model):
            w = m.weight.detach()
            rows = w.reshape(w.shape[0], -1).numpy() if codebook == "channel" else w.reshape(1, -1).numpy()
            centroids, labels = kmeans_rows(rows, k, init)
            # one id space per layer: channel r's clusters are r*k .. r*k+k-1, so sharing gradients and
            # projecting onto centroids is the same scatter for both forms
            ids = labels.astype(np.int64) + k * np.arange(len(rows))[:, None]
            lab = torch.from_numpy(ids).view_as(w)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(centroids.ravel())[lab])
            self.layers[name] = (m, lab, centroids.size)

    def share_gradients(self, model: nn.Module) -> None:
        """Replace each weight's gradient by its cluster's mean gradient (the centroid's gradient)."""
        for m, lab, nc in self.layers.values():
            if m.weight.grad is not None:
                m.weight.grad.copy_(_cluster_means(m.weight.grad, lab, nc))

    def project(self, model: nn.Module) -> None:
        """Snap weights back to their cluster means (the optimiser's per-element state can drift them)."""
        for m, lab, nc in self.layers.values():
            m.weight.data.copy_(_cluster_means(m.weight.data, lab, nc))


def _cluster_means(t: torch.Tensor, lab: torch.Tensor, nc: int) -> torch.Tensor:
    flat, idx = t.flatten(), lab.flatten()
    sums = torch.zeros(nc, dtype=t.dtype).scatter_add_(0, idx, flat)
    counts = torch.bincount(idx, minlength=nc).clamp(min=1).to(t.dtype)
    return (sums / counts)[idx].view_as(t)


def max_values_per_channel(w: np.ndarray, axis: int = 0) -> int:
    """The most distinct values any output channel (slice along ``axis``) of ``w`` holds."""
    rows = np.moveaxis(np.asarray(w), axis, 0).reshape(w.shape[axis], -1)
    if rows.size == 0:
        return 0
    s = np.sort(rows, axis=1)
    return int((np.diff(s, axis=1) != 0).sum(axis=1).max()) + 1


def unique_values_per_layer(model: nn.Module) -> dict[str, int]:
    """Distinct weight values in every conv/linear layer of the torch model."""
    return {n: int(torch.unique(m.weight.detach()).numel()) for n, m in prunable_weights(model)}


def cluster_model(model: nn.Module, k: int, data: Dataset | None, *, init: str = "kmeans++",
                  finetune: Recipe | None = CLUSTER_FINETUNE_RECIPE, codebook: str = "layer",
                  example_shape: tuple[int, ...] | None = None) -> tuple[nn.Module, list[dict]]:
    """Fold BN, cluster every conv/linear weight to ``k`` shared values per layer or per output channel,
    fine-tune on centroids.

    A ``layer`` codebook becomes per-channel when a BatchNorm that follows a conv cannot be folded (the
    step record says why). Returns the (new) model and step records: the fold, the k-means (codebook
    form, seconds, val accuracy), the fine-tuning.
    """
    if codebook not in CODEBOOKS:
        raise EdgebenchError(f"unknown codebook {codebook!r}; use one of {CODEBOOKS}")
    steps = []
    t0 = time.perf_counter()
    if data is None and example_shape is None:
        raise EdgebenchError("internal: cluster_model needs data or an example input shape to trace the model")
    x = torch.from_numpy(data.x_val[:8]) if data is not None else torch.rand(example_shape)
    model, fold = fold_batchnorm(model, x)  # a folded copy: the caller's model is untouched
    steps.append({"step": "fold_batchnorm", **fold, "seconds": round(time.perf_counter() - t0, 3)})
    why = "asked for (cluster-ch:K)" if codebook == "channel" else "one codebook per layer (cluster:K)"
    if codebook == "layer" and fold["blocked"]:
        codebook = "channel"
        why = (f"{fold['blocked']} BatchNorm layer(s) follow a conv but cannot be folded "
               f"({fold.get('error') or 'the conv output is read elsewhere too'}): clustered with K values per "
               "output channel instead, which a BatchNorm folded later cannot spread")
    t0 = time.perf_counter()
    clusters = Clusters(model, k, init, codebook)
    steps.append({
        "step": "kmeans", "k": k, "init": init, "codebook": codebook, "why": why,
        "codebooks": sum(lab.shape[0] if codebook == "channel" else 1 for _, lab, _ in clusters.layers.values()),
        "seconds": round(time.perf_counter() - t0, 3),
        "weights": sum(m.weight.numel() for m, _, _ in clusters.layers.values()),
        "val_accuracy": accuracy_torch(model, data.x_val, data.y_val) if data is not None else None,
    })
    if data is not None and finetune is not None and finetune.epochs > 0:
        t0 = time.perf_counter()
        fit(model, data, finetune, grad_hook=clusters.share_gradients, after_step=clusters.project)
        steps.append({"step": "finetune", "recipe": finetune.__dict__, "seconds": round(time.perf_counter() - t0, 3),
                      "val_accuracy": accuracy_torch(model, data.x_val, data.y_val)})
    worst = max((max_values_per_channel(m.weight.detach().numpy()) if codebook == "channel"
                 else int(torch.unique(m.weight.detach()).numel()) for m, _, _ in clusters.layers.values()), default=0)
    if worst > k:  # a bug, never a user error: say so loudly rather than ship a wrong artifact
        raise EdgebenchError(f"internal: clustering left {worst} distinct values in a {codebook} codebook (K={k})")
    return model, steps


def summary(steps: list[dict]) -> dict:
    """The manifest's ``clustering`` record from cluster_model's steps."""
    fold = next(s for s in steps if s["step"] == "fold_batchnorm")
    km = next(s for s in steps if s["step"] == "kmeans")
    return {"codebook": km["codebook"], "why": km["why"], "k": km["k"], "codebooks": km["codebooks"],
            "batchnorm_folded": fold["folded"], "batchnorm_left": fold["left"], "tracer": fold["tracer"]}


def _weight_inputs(graph) -> list[tuple[str, int]]:  # noqa: ANN001 - onnx.GraphProto
    """(initializer name, output-channel axis) of every Conv / Gemm / MatMul weight, through DequantizeLinear."""
    producers = {o: n for n in graph.node for o in n.output}
    found = []
    for n in graph.node:
        if n.op_type not in ("Conv", "Gemm", "MatMul") or len(n.input) < 2:
            continue
        name = n.input[1]
        dq = producers.get(name)
        if dq is not None and dq.op_type == "DequantizeLinear":
            name = dq.input[0]
        if n.op_type == "Conv":
            axis = 0
        elif n.op_type == "Gemm":
            axis = 0 if any(a.name == "transB" and a.i for a in n.attribute) else 1
        else:
            axis = -1  # MatMul(x, W): W is K x N, one column per output
        found.append((name, axis))
    return found


def _index_codebook_bytes(n: int, values: int, books: int) -> int:
    return math.ceil(n * max(1, math.ceil(math.log2(max(2, values)))) / 8) + 4 * values * books


def file_codebook_stats(path: Path) -> dict:
    """What the ONNX file holds: the most distinct values in one layer's weight and in one output channel,
    and the bytes an index + codebook encoding of it would need (computed, not a file: each clustered
    weight as ceil(log2 K) bits plus its float32 codebooks; everything else as stored)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {i.name: i for i in proto.graph.initializer}
    per_layer = per_channel = 0
    dense = packed = 0
    for name, axis in _weight_inputs(proto.graph):
        if name not in inits:
            continue
        w = numpy_helper.to_array(inits[name])
        if w.ndim < 2:
            continue
        axis = axis % w.ndim
        layer_values = int(np.unique(w).size)
        channel_values = max_values_per_channel(w, axis)
        per_layer, per_channel = max(per_layer, layer_values), max(per_channel, channel_values)
        dense += w.nbytes
        packed += min(_index_codebook_bytes(w.size, layer_values, 1),  # the cheaper of one codebook per layer
                      _index_codebook_bytes(w.size, channel_values, w.shape[axis]))  # and one per channel
    total = Path(path).stat().st_size
    return {"file_max_values_per_layer": per_layer, "file_max_values_per_channel": per_channel,
            "index_codebook_bytes_estimate": total - dense + packed}
