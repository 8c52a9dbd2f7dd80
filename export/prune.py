"""Pruning: unstructured magnitude (``prune-l1``) and structured channel removal (``prune-ch``).

Unstructured pruning keeps the tensor shapes and sets weights to zero: the file only shrinks when
zipped and the latency does not change (dense kernels), which the manifest says. Structured pruning
physically removes channels with Torch-Pruning's dependency graph (DepGraph), so residual adds,
depthwise / grouped convs, concatenations and SE gates are pruned consistently, and rounds kept channel
counts to a multiple of ``round_to`` (odd counts made a pruned MobileNetV2 slower than the original).
"""

from __future__ import annotations

import copy
import fnmatch
import time
from collections.abc import Callable

import torch
import torch_pruning as tp
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

# ------------------------------------------------------------------------------------------ attention

# Attention blocks are found by what timm's and MONAI's hold: an int ``num_heads`` and one fused ``qkv``
# Linear whose outputs are laid out (3, heads, head_dim); the output projection under one of these names.
_IN_PROJ = ("qkv", "to_q", "to_k", "to_v", "q_proj", "k_proj", "v_proj", "query", "key", "value")
_OUT_PROJ = ("out_proj", "proj", "o_proj")


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """qkv Linear -> number of heads, for Torch-Pruning's ``num_heads`` (head dims pruned alike in every head)."""
    return {m.qkv: m.num_heads for m in model.modules()
            if isinstance(getattr(m, "num_heads", None), int) and isinstance(getattr(m, "qkv", None), nn.Linear)
            and m.qkv.out_features % (3 * m.num_heads) == 0}


def _projections(block: nn.Module) -> tuple[list[nn.Linear], nn.Linear | None]:
    ins = [getattr(block, n) for n in _IN_PROJ if isinstance(getattr(block, n, None), nn.Linear)]
    out = next((getattr(block, n) for n in _OUT_PROJ if isinstance(getattr(block, n, None), nn.Linear)), None)
    return ins, out


def attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Modules with ``num_heads`` whose input and output projections are recognised by name."""
    return [m for m in model.modules() if isinstance(getattr(m, "num_heads", None), int)
            and not isinstance(m, nn.MultiheadAttention) and all(_projections(m))]


class AttentionBlockPruner(tp.pruner.function.BasePruningFunc):
    """An attention block as one layer, through Torch-Pruning's ``customized_pruners`` extension point:
    its input width is its q/k/v projections' inputs, its output width its output projection's outputs.
    Heads and head dims inside stay whole (used when Torch-Pruning cannot trace the head layout)."""

    def prune_out_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
        tp.prune_linear_out_channels(_projections(layer)[1], idxs)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
        for proj in _projections(layer)[0]:
            tp.prune_linear_in_channels(proj, idxs)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return _projections(layer)[1].out_features

    def get_in_channels(self, layer: nn.Module) -> int:
        return _projections(layer)[0][0].in_features


def _update_head_dims(model: nn.Module) -> None:
    """After head dims were pruned, the block attributes that state them (timm ``head_dim``, MONAI
    ``dim_head`` / ``inner_dim``) must match, or a reshape by them fails. The softmax scale stays
    1/sqrt(trained head_dim): the removed dims were the least important, so the kept logits keep the
    temperature the model was trained with (fine-tuning follows)."""
    for m in model.modules():
        if isinstance(getattr(m, "num_heads", None), int) and isinstance(getattr(m, "qkv", None), nn.Linear):
            inner = m.qkv.out_features // 3
            for attr, value in (("head_dim", inner // m.num_heads), ("dim_head", inner // m.num_heads),
                                ("inner_dim", inner)):
                if isinstance(getattr(m, attr, None), int):
                    setattr(m, attr, value)


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


EXCLUDE_HINT = ("keep that layer whole with --prune-exclude NAME (a module name as in model.named_modules(), "
                "globs allowed, e.g. 'blocks.*.attn'), or use prune-l1 for this model")


def excluded_modules(model: nn.Module, patterns: tuple[str, ...]) -> list[nn.Module]:
    """The modules ``--prune-exclude`` names (a name, its children included, or a glob); unknown names fail."""
    from export.zoo import user_modules

    named = [(n, m) for n, m in user_modules(model) if n]
    found: list[nn.Module] = []
    for pattern in patterns:
        hits = [m for n, m in named if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            examples = ", ".join(n for n, _ in named[:6])
            raise EdgebenchError(f"--prune-exclude {pattern!r} names no module of the model; its modules are "
                                 f"named like: {examples}")
        found += hits
    return found


def _pruner(model: nn.Module, ratio: float, input_shape: tuple[int, ...], iterations: int, round_to: int | None,
            ignored: list[nn.Module], attention: str) -> tp.pruner.MetaPruner:
    """Torch-Pruning's MetaPruner; ``attention``: "heads" (its num_heads support: head dims pruned alike in
    every head), "whole" (each attention block one customized layer: hidden and MLP widths pruned, heads kept)."""
    kwargs: dict = {}
    if attention == "heads":
        kwargs["num_heads"] = attention_heads(model)
    elif attention == "whole":
        kwargs["customized_pruners"] = {type(b): AttentionBlockPruner() for b in attention_blocks(model)}
    return tp.pruner.MetaPruner(model, torch.zeros(input_shape), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                pruning_ratio=ratio, iterative_steps=iterations, ignored_layers=ignored,
                                round_to=round_to or None, **kwargs)


def _step(pruner: tp.pruner.MetaPruner, model: nn.Module, input_shape: tuple[int, ...]) -> None:
    pruner.step()
    _update_head_dims(model)
    with torch.no_grad():
        model.eval()(torch.zeros(input_shape))


def _attention_mode(model: nn.Module, ratio: float, input_shape: tuple[int, ...], round_to: int | None,
                    ignored: list[nn.Module]) -> tuple[str, str | None]:
    """How attention blocks are pruned, tried on a copy: ("heads", None) when Torch-Pruning follows their
    head layout, else ("whole", why). MONAI's ViT indexes q, k, v out of one tensor, which Torch-Pruning's
    trace cannot map back to heads."""
    if not attention_heads(model):
        return "none", None
    trial = copy.deepcopy(model)
    names = {id(m): n for n, m in model.named_modules()}
    ignored_copy = [dict(trial.named_modules())[names[id(m)]] for m in ignored]
    try:
        _step(_pruner(trial, ratio, input_shape, 1, round_to, ignored_copy, "heads"), trial, input_shape)
        return "heads", None
    except Exception as exc:  # noqa: BLE001 - the reason goes into the note
        kinds = sorted({type(b).__name__ for b in attention_blocks(model)})
        if not kinds:
            return "none", None
        return "whole", (f"attention heads kept whole: Torch-Pruning cannot follow the head layout of "
                         f"{', '.join(kinds)} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                         "the embedding width and MLP widths were pruned")


def prune_channels(model: nn.Module, ratio: float, input_shape: tuple[int, ...], data: Dataset | None, *,
                   iterations: int = 1, round_to: int | None = 8, finetune: Recipe | None = FINETUNE_RECIPE,
                   exclude: tuple[str, ...] = ()) -> list[dict]:
    """Remove ``ratio`` of the channels of every prunable layer group (L2 group magnitude), physically.

    ``iterations`` > 1 follows Torch-Pruning's linear schedule (R/N, 2R/N, ... R) with fine-tuning after
    every step, 1/N of ``finetune``'s epochs each (rounded up). The classifier's outputs are never pruned,
    nor the modules ``exclude`` names. Attention blocks lose head dims (alike in every head) where
    Torch-Pruning follows their layout, else they are kept whole and the step record's ``note`` says so.
    Returns one record per step.
    """
    model.eval()
    ignored = find_classifier(model, input_shape) + excluded_modules(model, exclude)
    attention, note = _attention_mode(model, ratio, input_shape, round_to, ignored)
    try:
        pruner = _pruner(model, ratio, input_shape, iterations, round_to, ignored, attention)
    except Exception as exc:
        raise EdgebenchError(f"Torch-Pruning cannot build the dependency graph of this model: "
                             f"{type(exc).__name__}: {exc}. Simplify the layer it names, or {EXCLUDE_HINT}") from exc
    steps = []
    finetune = per_step(finetune, iterations)
    total0, _ = count_params(model)
    for i in range(iterations):
        t0 = time.perf_counter()
        try:
            _step(pruner, model, input_shape)
        except Exception as exc:
            raise EdgebenchError(f"Torch-Pruning cannot prune a layer of this model: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}. To go on, {EXCLUDE_HINT}") from exc
        if data is not None and finetune is not None and finetune.epochs > 0:
            fit(model, data, finetune)
        elif data is not None:  # no fine-tuning asked: still give BatchNorm statistics that fit the new widths
            recalibrate_batchnorm(model, torch.from_numpy(data.x_train))
        total, _ = count_params(model)
        steps.append({
            "step": i + 1, "method": "torch-pruning-groupmagnitude-l2",
            "target_channel_ratio": round(ratio * (i + 1) / iterations, 6), "round_to": round_to,
            "attention": attention, "excluded": list(exclude), "note": note,
            "params": total, "params_ratio": round(total / total0, 6),
            "val_accuracy": accuracy_torch(model, data.x_val, data.y_val) if data is not None else None,
            "finetune": finetune.__dict__ if (data is not None and finetune) else None,
            "seconds": round(time.perf_counter() - t0, 3),
        })
    return steps


def channel_counts(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv/linear layer (recorded so the manifest shows what was kept)."""
    return {n: int(m.weight.shape[0]) for n, m in prunable_weights(model)}
