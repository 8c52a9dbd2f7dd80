"""Weight clustering (``cluster:K``): BatchNorm folding, per-layer 1-D k-means, centroid-keeping fine-tune.

BatchNorm is folded into the convolutions FIRST: folding after clustering scales every output channel
differently and multiplies the distinct values by the channel count, losing most of the zip gain.
k-means is 1-D, so it runs on sorted values with prefix sums: each Lloyd iteration is a binary search of
K-1 boundaries plus K segment sums (O(K log n)), which clusters 2.2M weights at K=16 well under 2 s.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from export.data import Dataset
from export.prune import prunable_weights
from export.train import CLUSTER_FINETUNE_RECIPE, Recipe, accuracy_torch, fit
from targets.errors import EdgebenchError

INITS = ("linear", "kmeans++")


# ------------------------------------------------------------------------------------- BN folding

def _fuse_sequential(module: nn.Module) -> int:
    """Fold Conv -> BatchNorm pairs that sit next to each other in an nn.Sequential (the common layout)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = 0
    for child in module.children():
        fused += _fuse_sequential(child)
    if isinstance(module, nn.Sequential):
        keys = list(module._modules)
        for a, b in zip(keys, keys[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and isinstance(bn, nn.modules.batchnorm._BatchNorm):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
                fused += 1
    return fused


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Return (model with every BatchNorm folded into its conv, number folded). Eval-mode semantics.

    Sequential Conv+BN pairs are fused in place; otherwise the model is traced with torch.fx and fused
    there. A BatchNorm that cannot be folded is an error, since clustering would then be undone at export.
    """
    model = model.eval()
    n = _fuse_sequential(model)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model, n
    try:
        from torch.fx.experimental.optimization import fuse

        traced = fuse(model)
    except Exception as exc:
        raise EdgebenchError(
            f"cannot fold BatchNorm into the convolutions before clustering ({type(exc).__name__}: {exc}); "
            "put each BatchNorm right after its conv in an nn.Sequential") from exc
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in traced.modules())
    if left:
        raise EdgebenchError(f"{left} BatchNorm layer(s) do not follow a convolution and cannot be folded; "
                             "clustering needs BN-free convolutions")
    return traced, n + sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ---------------------------------------------------------------------------------------- k-means

def kmeans_1d(values: np.ndarray, k: int, init: str = "kmeans++", iters: int = 30,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means. Returns (sorted centroids float32 [<=k], label per value int32).

    ``linear``: centroids evenly spaced between min and max (keeps the rare large weights that matter;
    Han et al., Deep Compression). ``kmeans++``: D^2 sampling on a 20k subsample.
    """
    if init not in INITS:
        raise EdgebenchError(f"unknown k-means init {init!r}; use one of {INITS}")
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    s = v[order]
    n = len(s)
    uniq = np.unique(s)
    if len(uniq) <= k:  # already at most k values: exact, no iteration needed
        labels_sorted = np.searchsorted(uniq, s)
        labels = np.empty(n, dtype=np.int32)
        labels[order] = labels_sorted
        return uniq.astype(np.float32), labels
    rng = np.random.default_rng(seed)
    if init == "linear":
        c = np.linspace(s[0], s[-1], k)
    else:
        sample = s[rng.choice(n, size=min(n, 20000), replace=False)]
        c = [sample[rng.integers(len(sample))]]
        d2 = (sample - c[0]) ** 2
        for _ in range(k - 1):
            p = d2 / d2.sum() if d2.sum() > 0 else None
            c.append(sample[rng.choice(len(sample), p=p)])
            d2 = np.minimum(d2, (sample - c[-1]) ** 2)
        c = np.sort(np.asarray(c))
    cs = np.concatenate([[0.0], np.cumsum(s)])
    for _ in range(iters):
        bounds = np.searchsorted(s, (c[1:] + c[:-1]) / 2)  # first index of each cluster after the first
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [n]])
        counts = ends - starts
        sums = cs[ends] - cs[starts]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.allclose(new, c, rtol=0, atol=1e-12):
            c = new
            break
        c = np.sort(new)
    bounds = np.searchsorted(s, (c[1:] + c[:-1]) / 2)
    counts = np.diff(np.concatenate([[0], bounds, [n]]))
    keep = counts > 0  # drop empty clusters so labels index only used centroids
    c = c[keep]
    labels_sorted = np.repeat(np.arange(len(c), dtype=np.int32), counts[keep])
    labels = np.empty(n, dtype=np.int32)
    labels[order] = labels_sorted
    return c.astype(np.float32), labels


class Clusters:
    """Per-layer labels and centroids; keeps every clustered weight on a centroid during fine-tuning."""

    def __init__(self, model: nn.Module, k: int, init: str = "kmeans++") -> None:
        self.k = k
        self.init = init
        self.layers: dict[str, tuple[nn.Module, torch.Tensor, int]] = {}
        for name, m in prunable_weights(model):
            w = m.weight.detach()
            centroids, labels = kmeans_1d(w.numpy(), k, init)
            lab = torch.from_numpy(labels.astype(np.int64)).view_as(w)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(centroids)[lab])
            self.layers[name] = (m, lab, len(centroids))

    def share_gradients(self, model: nn.Module) -> None:
        """Replace each weight's gradient by its cluster's mean gradient (the centroid's gradient)."""
        for m, lab, nc in self.layers.values():
            if m.weight.grad is None:
                continue
            g = m.weight.grad.flatten()
            idx = lab.flatten()
            sums = torch.zeros(nc, dtype=g.dtype).scatter_add_(0, idx, g)
            counts = torch.bincount(idx, minlength=nc).clamp(min=1).to(g.dtype)
            m.weight.grad.copy_((sums / counts)[idx].view_as(m.weight))

    def project(self, model: nn.Module) -> None:
        """Snap weights back to their cluster means (the optimiser's per-element state can drift them)."""
        for m, lab, nc in self.layers.values():
            w = m.weight.data.flatten()
            idx = lab.flatten()
            sums = torch.zeros(nc, dtype=w.dtype).scatter_add_(0, idx, w)
            counts = torch.bincount(idx, minlength=nc).clamp(min=1).to(w.dtype)
            m.weight.data.copy_((sums / counts)[idx].view_as(m.weight))


def unique_values_per_layer(model: nn.Module) -> dict[str, int]:
    """Distinct weight values in every conv/linear layer of the torch model."""
    return {n: int(torch.unique(m.weight.detach()).numel()) for n, m in prunable_weights(model)}


def cluster_model(model: nn.Module, k: int, data: Dataset | None, *, init: str = "kmeans++",
                  finetune: Recipe | None = CLUSTER_FINETUNE_RECIPE) -> tuple[nn.Module, list[dict]]:
    """Fold BN, cluster every conv/linear weight to ``k`` shared values, fine-tune on centroids.

    Returns the (new) model and step records: BN layers folded, seconds, unique values, val accuracy.
    """
    steps = []
    t0 = time.perf_counter()
    model, n_folded = fold_batchnorm(copy.deepcopy(model))
    steps.append({"step": "fold_batchnorm", "folded": n_folded, "seconds": round(time.perf_counter() - t0, 3)})
    t0 = time.perf_counter()
    clusters = Clusters(model, k, init)
    steps.append({
        "step": "kmeans", "k": k, "init": init, "seconds": round(time.perf_counter() - t0, 3),
        "weights": sum(m.weight.numel() for m, _, _ in clusters.layers.values()),
        "val_accuracy": accuracy_torch(model, data.x_val, data.y_val) if data is not None else None,
    })
    if data is not None and finetune is not None and finetune.epochs > 0:
        t0 = time.perf_counter()
        fit(model, data, finetune, grad_hook=clusters.share_gradients, after_step=clusters.project)
        steps.append({"step": "finetune", "recipe": finetune.__dict__, "seconds": round(time.perf_counter() - t0, 3),
                      "val_accuracy": accuracy_torch(model, data.x_val, data.y_val)})
    worst = max(unique_values_per_layer(model).values(), default=0)
    if worst > k:  # a bug, never a user error: say so loudly rather than ship a wrong artifact
        raise EdgebenchError(f"internal: clustering left {worst} distinct values in a layer (K={k})")
    return model, steps
