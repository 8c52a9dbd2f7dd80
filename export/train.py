"""Short deterministic training for default models, and the fine-tuning loop used after prune/cluster.

Trained weights are cached in the user's cache folder keyed by a hash of architecture + input shape +
data + recipe + torch version, so the main job trains once and later runs start in seconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.data import Dataset
from targets.fileio import atomic_output


_DEVICE = contextvars.ContextVar("edgebench_train_device", default="cpu")


@contextlib.contextmanager
def training_device(device: str) -> Iterator[None]:
    """Fine-tuning inside runs on `device` (cpu or cuda); the model comes back to the CPU for export."""
    token = _DEVICE.set(device)
    try:
        yield
    finally:
        _DEVICE.reset(token)


def set_threads() -> int:
    """Use exactly the cores this process may run on: a mismatch made training 20-40x slower here."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    # denormal gradients made some CPU conv backward passes several times slower here; flushing them
    # to zero changes nothing measurable in accuracy
    torch.set_flush_denormal(True)
    return n


def cache_dir() -> Path:
    """``$EDGEBENCH_CACHE`` or ``$XDG_CACHE_HOME/edgebench`` or ``~/.cache/edgebench``."""
    if os.environ.get("EDGEBENCH_CACHE"):
        return Path(os.environ["EDGEBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgebench"


@dataclass(frozen=True)
class Recipe:
    """How a model is trained or fine-tuned; every field goes into the cache key and the manifest."""

    epochs: int = 12
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    seed: int = 0
    shift: int = 1  # random translation in pixels (of the 8x8 source grid scale); cheap augmentation


# Measured on the default zoo:resnet at 32x32 (digits, quiet machine): 4 epochs gave 96.9-97.2% test
# accuracy (seeds 0/1), 6 gave 98.6-98.9% in ~35 s, 8 added nothing.
TRAIN_RECIPE = Recipe(epochs=6)
# Fine-tuning, followed (as every fit) by a BatchNorm recalibration; see recalibrate_batchnorm for why that
# pass matters. Test-accuracy change vs fp32 on zoo:mixnet@16 (digits), 8 training seeds, in points:
#   cluster:16    2 epochs: -2.2 .. 0 (2 of 8 beyond -1.5)   4 epochs (5 seeds): -0.8 .. -0.3   6 (3 seeds): -0.6 .. -0.3
#   prune-l1:0.9  LAMP, 2 epochs: -3.9 .. -2.2 (3 seeds)     6 epochs (5 seeds): -1.7 .. -0.6
#   prune-ch:0.5  6 epochs: -2.5 .. 0 (2 of 8 beyond -1.5)   12 epochs: -0.8 .. +0.6
# A channel-pruned net is small, so its epochs are cheap, and it has the most to relearn.
FINETUNE_RECIPE = Recipe(epochs=6, lr=1e-3)
STRUCTURED_FINETUNE_RECIPE = Recipe(epochs=12, lr=1e-3)
# Clustering fine-tunes a BatchNorm-free (folded) net, where Adam's step is no longer relative to a
# normalised scale. zoo:resnet@32, cluster:16, seeds 0-3: linear init at 1e-3 lost 3.6 / 78.6 (collapsed)
# / 3.1 points (seeds 0-2); k-means++ init at 3e-4: -0.8 / -0.6 / -2.2 / -0.8, 12 epochs no better.
# zoo:mixnet seeds 0-2: -0.6 / -0.3 / -0.8 (linear at 1e-3: -0.3 / -0.3 / -0.6).
CLUSTER_FINETUNE_RECIPE = Recipe(epochs=6, lr=3e-4)


def per_step(recipe: Recipe | None, iterations: int) -> Recipe | None:
    """The fine-tuning of one of ``iterations`` prune steps: the one-shot budget split evenly (rounded up),
    so ``@iter=N`` and one-shot are compared at the same training cost."""
    if recipe is None or iterations <= 1:
        return recipe
    return replace(recipe, epochs=max(1, math.ceil(recipe.epochs / iterations)))


def _shift(x: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Random integer translation with zero fill: digits drawn off-centre stay recognisable."""
    if pixels <= 0:
        return x
    dx, dy = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def accuracy_torch(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of the PyTorch model (used between fine-tuning steps; final scores come from ONNX)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            pred = model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
            correct += int((pred == y[i:i + batch]).sum())
    return correct / max(1, len(x))


def fit(model: nn.Module, data: Dataset, recipe: Recipe = TRAIN_RECIPE,
        after_step: Callable[[nn.Module], None] | None = None,
        grad_hook: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """Train ``model`` in place with AdamW + one-cycle LR, seeded so a rerun gives the same weights.

    ``grad_hook`` may rewrite gradients before the step (clustering shares them per centroid);
    ``after_step`` may fix weights after it (pruning masks, centroid projection).
    """
    set_threads()
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    # scale the shift to the input size so 1 px of an 8x8 digit is the same motion at 32x32
    pixels = recipe.shift * max(1, x.shape[-1] // 8) if x.shape[-1] >= 8 else 0
    device = _DEVICE.get()
    if device != "cpu":  # a GPU where the worker has one (--train-device); batches follow the model there
        model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * ((len(x) + recipe.batch_size - 1) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=max(1, steps), pct_start=0.2)
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            xb = _shift(x[idx], pixels, gen).to(device)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y[idx].to(device)).backward()
            if grad_hook is not None:
                grad_hook(model)
            opt.step()
            sched.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(model)
    model.to("cpu")
    recalibrate_batchnorm(model, x)
    return model.eval()


def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch: int = 256) -> None:
    """Recompute BatchNorm running statistics exactly (cumulative average) over ``x``, without gradients.

    Measured here: after removing 50% of channels the running statistics no longer describe the
    activations, and a ResNet scored 15% on the digits; one fine-tuning epoch left it at 18% because
    the momentum-averaged statistics trail the moving weights. The same model after this pass: 96%.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # None = cumulative moving average: every batch weighs the same
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()


def cache_key(model_spec: str, input_shape: tuple[int, ...], data: Dataset, recipe: Recipe,
              model: nn.Module) -> str:
    """Hash of everything that decides the trained weights (incl. the parameter shapes = architecture)."""
    h = hashlib.sha256()
    arch = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    # "init=seed": since the model is built right after torch.manual_seed(recipe.seed), weights trained
    # from an unseeded start (edgebench before that change) are not taken for these
    for part in (model_spec, str(tuple(input_shape)), data.fingerprint, repr(asdict(recipe)), arch, torch.__version__,
                 "init=seed"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def train_cached(model: nn.Module, model_spec: str, input_shape: tuple[int, ...], data: Dataset,
                 recipe: Recipe = TRAIN_RECIPE, progress: Callable[[str], None] | None = None) -> dict:
    """Load cached trained weights into ``model`` or train and cache them. Returns a record for the manifest."""
    key = cache_key(model_spec, input_shape, data, recipe, model)
    path = cache_dir() / "weights" / f"{key}.pt"
    record = {"cache_key": key, "cache_path": str(path), "recipe": asdict(recipe)}
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            record.update(cached=True, train_seconds=0.0)
            return record
        except Exception:  # a corrupt or stale cache file is retrained, not fatal
            pass
    if progress:
        progress(f"training {model_spec} on {data.source} ({recipe.epochs} epochs)")
    t0 = time.perf_counter()
    fit(model, data, recipe)
    record.update(cached=False, train_seconds=round(time.perf_counter() - t0, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:  # a concurrent run never reads half a file
        torch.save(model.state_dict(), tmp)
    return record
