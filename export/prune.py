"""Pruning: unstructured magnitude (``prune-l1``) and structured channel removal (``prune-ch``).

Unstructured pruning keeps the tensor shapes and sets weights to zero: the file only shrinks when
zipped and the latency does not change (dense kernels), which the manifest says. Structured pruning
physically removes channels with Torch-Pruning's dependency graph (DepGraph), so residual adds,
depthwise / grouped convs, concatenations and SE gates are pruned consistently, and rounds kept channel
counts to a multiple of ``round_to`` (odd counts made a pruned MobileNetV2 slower than the original).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from export.data import Dataset
from export.train import FINETUNE_RECIPE, Recipe, accuracy_torch, fit, per_step, recalibrate_batchnorm
from targets.errors import EdgebenchError

Finetune = Callable[..., None]


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and Linear layers: the weights that magnitude pruning and clustering act on."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, non-zero parameters) of the torch model."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    return total, nonzero


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros over conv/linear weights (the population magnitude pruning targets)."""
    ws = [m.weight for _, m in prunable_weights(model)]
    n = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / max(1, n)


# ---------------------------------------------------------------------------------------- unstructured

ALLOCATIONS = ("lamp", "global", "layerwise")


def lamp_scores(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """LAMP scores (Lee et al., ICLR 2021): w_u^2 / sum of w_v^2 over the layer's alive weights with |w_v| >= |w_u|.

    A magnitude rescaled within its layer: the order inside a layer is the magnitude order, and every layer's
    largest weight scores 1, so one global threshold can never empty a layer.
    """
    w2 = (weight * mask).flatten() ** 2
    sorted_w2, order = torch.sort(w2)
    suffix = torch.flip(torch.cumsum(torch.flip(sorted_w2, [0]), 0), [0])
    scores = torch.empty_like(w2)
    scores[order] = sorted_w2 / suffix.clamp(min=torch.finfo(w2.dtype).tiny)
    return scores.view_as(weight)


def _magnitude_masks(model: nn.Module, amount: float, masks: dict[str, torch.Tensor] | None,
                     allocation: str) -> dict[str, torch.Tensor]:
    """Masks that remove ``amount`` of the still-alive weights, smallest scores first.

    ``lamp`` (default): one threshold over all layers on LAMP scores. ``global``: one threshold on |w|, so
    layers with many small weights lose more; on zoo:mixnet at 90% it zeroed every squeeze-excitation
    reduction and 99.8% of a projection, and the net lost 42-45 points even after fine-tuning (LAMP: 2-4).
    ``layerwise``: every layer loses the same fraction.
    """
    if allocation not in ALLOCATIONS:
        raise EdgebenchError(f"unknown prune-l1 allocation {allocation!r}; use one of {', '.join(ALLOCATIONS)}")
    layers = dict(prunable_weights(model))
    masks = dict(masks or {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()})
    with torch.no_grad():
        if allocation == "lamp":
            scores = {n: lamp_scores(m.weight, masks[n]) for n, m in layers.items()}
        else:
            scores = {n: m.weight.abs() for n, m in layers.items()}
        groups = [[n] for n in layers] if allocation == "layerwise" else [list(layers)]
        for names in groups:
            alive = torch.cat([scores[n][masks[n]].flatten() for n in names])
            k = int(round(amount * alive.numel()))
            if k == 0:
                continue
            threshold = torch.kthvalue(alive, k).values
            for n in names:
                masks[n] = masks[n] & (scores[n] > threshold)
    return masks


def _apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    layers = dict(prunable_weights(model))
    for n, mask in masks.items():
        layers[n].weight.mul_(mask)


def prune_unstructured(model: nn.Module, sparsity: float, data: Dataset | None, *, iterations: int = 1,
                       allocation: str = "lamp", finetune: Recipe | None = FINETUNE_RECIPE) -> list[dict]:
    """Magnitude-prune conv/linear weights to ``sparsity`` in ``iterations`` steps, fine-tuning between.

    Per-step amount is 1-(1-S)^(1/N) of the surviving weights, so N steps land on S; each step fine-tunes
    for 1/N of ``finetune``'s epochs (rounded up), the one-shot budget. Masks are enforced
    after every optimiser step, and the zeros are plain weights at the end (permanent, no reparametrisation).
    Returns one record per step: target and real sparsity, accuracy on the validation split.
    """
    amount = 1.0 - (1.0 - sparsity) ** (1.0 / iterations)
    finetune = per_step(finetune, iterations)
    masks: dict[str, torch.Tensor] | None = None
    steps = []
    for i in range(iterations):
        t0 = time.perf_counter()
        masks = _magnitude_masks(model, amount, masks, allocation)
        with torch.no_grad():
            _apply_masks(model, masks)
        if data is not None and finetune is not None and finetune.epochs > 0:
            frozen = masks
            fit(model, data, finetune, after_step=lambda m: _apply_masks(m, frozen))
        steps.append({
            "step": i + 1, "method": f"magnitude-{allocation}",
            "amount_of_remaining": round(amount, 6),
            "target_sparsity": round(1.0 - (1.0 - amount) ** (i + 1), 6),
            "weight_sparsity": round(weight_sparsity(model), 6),
            "val_accuracy": accuracy_torch(model, data.x_val, data.y_val) if data is not None else None,
            "finetune": finetune.__dict__ if (data is not None and finetune) else None,
            "seconds": round(time.perf_counter() - t0, 3),
        })
    return steps


# ------------------------------------------------------------------------------------------ structured

@contextlib.contextmanager
def _grouped_conv_fix() -> Iterator[None]:
    """Torch-Pruning 1.6 slices a grouped conv's (1 < groups < channels) input weights with global channel
    indices and fails ("INDICES element is out of DATA bounds"). Map them to per-group positions instead.
    The patch is active only while our pruner is built and stepped (the handlers bind it at build time)."""
    from torch_pruning.pruner import function as tpf

    original = tpf.ConvPruner.prune_in_channels

    def prune_in_channels(self, layer: nn.Module, idxs):  # type: ignore[no-untyped-def]
        if layer.groups == 1 or layer.groups == layer.in_channels or layer.transposed:
            return original(self, layer, idxs)
        per = layer.in_channels // layer.groups
        drop = set(int(i) for i in idxs)
        counts = {sum(1 for i in drop if i // per == g) for g in range(layer.groups)}
        if len(counts) != 1:
            raise EdgebenchError(
                f"structured pruning would leave groups of unequal size in a grouped conv {layer}; "
                "try another ratio or --round-to a multiple of the group count")
        keep_local = sorted({i % per for i in range(layer.in_channels) if i not in drop})
        layer.in_channels -= len(drop)
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep_local, 1)
        return layer

    tpf.ConvPruner.prune_in_channels = prune_in_channels
    try:
        yield
    finally:
        tpf.ConvPruner.prune_in_channels = original


def find_classifier(model: nn.Module, input_shape: tuple[int, ...]) -> list[nn.Module]:
    """Layers whose outputs are the model's outputs (kept whole so the class count never changes)."""
    outs: dict[nn.Module, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: outs.__setitem__(mod, tuple(o.shape)))
             for _, m in prunable_weights(model)]
    try:
        with torch.no_grad():
            y = model.eval()(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
    last = [m for m, s in outs.items() if s == tuple(y.shape)]
    return last[-1:] if last else [prunable_weights(model)[-1][1]]


def prune_channels(model: nn.Module, ratio: float, input_shape: tuple[int, ...], data: Dataset | None, *,
                   iterations: int = 1, round_to: int | None = 8,
                   finetune: Recipe | None = FINETUNE_RECIPE) -> list[dict]:
    """Remove ``ratio`` of the channels of every prunable layer group (L2 group magnitude), physically.

    ``iterations`` > 1 follows Torch-Pruning's linear schedule (R/N, 2R/N, ... R) with fine-tuning after
    every step, 1/N of ``finetune``'s epochs each (rounded up). The classifier's outputs are never pruned.
    Returns one record per step.
    """
    import torch_pruning as tp

    example = torch.zeros(input_shape)
    model.eval()
    try:
        with _grouped_conv_fix():
            pruner = tp.pruner.MetaPruner(
                model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
                iterative_steps=iterations, ignored_layers=find_classifier(model, input_shape),
                round_to=round_to or None,
            )
    except EdgebenchError:
        raise
    except Exception as exc:
        raise EdgebenchError(
            f"Torch-Pruning cannot build the dependency graph of this model: {type(exc).__name__}: {exc}. "
            "Use prune-l1 for this model, or simplify the layer it names") from exc
    steps = []
    finetune = per_step(finetune, iterations)
    total0, _ = count_params(model)
    for i in range(iterations):
        t0 = time.perf_counter()
        try:
            with _grouped_conv_fix():
                pruner.step()
            with torch.no_grad():
                model.eval()(example)
        except EdgebenchError:
            raise
        except Exception as exc:
            raise EdgebenchError(
                f"Torch-Pruning cannot prune a layer of this model: {type(exc).__name__}: {exc}. "
                "Use prune-l1 for this model, or exclude that layer") from exc
        if data is not None and finetune is not None and finetune.epochs > 0:
            fit(model, data, finetune)
        elif data is not None:  # no fine-tuning asked: still give BatchNorm statistics that fit the new widths
            recalibrate_batchnorm(model, torch.from_numpy(data.x_train))
        total, _ = count_params(model)
        steps.append({
            "step": i + 1, "method": "torch-pruning-groupmagnitude-l2",
            "target_channel_ratio": round(ratio * (i + 1) / iterations, 6), "round_to": round_to,
            "params": total, "params_ratio": round(total / total0, 6),
            "val_accuracy": accuracy_torch(model, data.x_val, data.y_val) if data is not None else None,
            "finetune": finetune.__dict__ if (data is not None and finetune) else None,
            "seconds": round(time.perf_counter() - t0, 3),
        })
    return steps


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv/linear layer (recorded so the manifest shows what was kept)."""
    return {n: int(m.weight.shape[0]) for n, m in prunable_weights(model)}
