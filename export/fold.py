"""BatchNorm folding that follows the model's traced graph, not the order its modules were registered in.

A BatchNorm can be folded into a convolution when, in the forward pass, its only input is that conv's
output and nothing else reads the conv's output. Module registration order says nothing about that:
EfficientNet-B0 registers its BatchNorms apart from its (padding-wrapping) convs, and every one was
refused although each follows a conv in ``forward``. So the pairs come from a graph: torch.fx (fast;
conv and BatchNorm subclasses are kept as leaves, so a conv that pads before convolving still counts),
else torch.export (slower; traces forward code fx cannot, such as shape arithmetic). The fold itself
rewrites the conv's weight and bias in place and puts an Identity where the BatchNorm was, and is then
checked: the folded model must compute what the original computed on real inputs.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from targets.errors import EdgebenchError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORM = nn.modules.batchnorm._BatchNorm


def _fx_pairs(model: nn.Module) -> tuple[list[tuple[str, str]], list[str]]:
    from torch import fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, (*CONVS, BATCHNORM)) or super().is_leaf_module(m, qualname)

    graph = Tracer().trace(model)
    calls = [n for n in graph.nodes if n.op == "call_module"]
    uses: dict[str, int] = {}
    for n in calls:
        uses[n.target] = uses.get(n.target, 0) + 1
    modules = dict(model.named_modules())
    pairs, blocked = [], []
    for n in calls:
        src = n.args[0] if n.args else None
        if (isinstance(modules.get(n.target), BATCHNORM) and isinstance(src, fx.Node) and src.op == "call_module"
                and isinstance(modules.get(src.target), CONVS)):
            # the conv's output read elsewhere too, or a module called twice: folding would change those uses
            ok = len(src.users) == 1 and uses[src.target] == 1 and uses[n.target] == 1
            (pairs.append((src.target, n.target)) if ok else blocked.append(n.target))
    return pairs, blocked


_CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "_convolution")
_BN_OPS = ("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm", "_native_batch_norm_legit")


def _export_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], list[str]]:
    program = torch.export.export(model, (example,), strict=False)
    sig = program.graph_signature
    owner = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}  # placeholder -> "features.0.bn.weight"

    def module_of(node: object) -> str | None:
        for arg in getattr(node, "args", ())[1:5]:  # weight / bias / running stats name the module
            name = owner.get(getattr(arg, "name", None))
            if name:
                return name.rpartition(".")[0]
        return None

    def op_name(node: object) -> str:
        return getattr(getattr(getattr(node, "target", None), "_overloadpacket", None), "__name__", "")

    uses: dict[str, int] = {}
    for node in program.graph.nodes:
        if op_name(node) in _CONV_OPS + _BN_OPS and module_of(node):
            uses[module_of(node)] = uses.get(module_of(node), 0) + 1
    modules = dict(model.named_modules())
    pairs, blocked = [], []
    for node in program.graph.nodes:
        conv = node.args[0] if op_name(node) in _BN_OPS else None
        bn_name, conv_name = module_of(node), module_of(conv)
        if (op_name(conv) in _CONV_OPS and isinstance(modules.get(conv_name), CONVS)
                and isinstance(modules.get(bn_name), BATCHNORM)):
            ok = len(conv.users) == 1 and uses[conv_name] == 1 and uses[bn_name] == 1
            (pairs.append((conv_name, bn_name)) if ok else blocked.append(bn_name))
    return pairs, blocked


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, str]], list[str], str]:
    """(conv, BatchNorm) name pairs that fold; BatchNorms that follow a conv but cannot be folded (the
    conv's output is read elsewhere too, or a module is called twice); the tracer used (``torch.fx`` or
    ``torch.export``). An EdgebenchError when neither can trace the model."""
    try:
        return (*_fx_pairs(model), "torch.fx")
    except Exception as fx_exc:  # noqa: BLE001 - fx cannot trace data-dependent Python; export often can
        try:
            return (*_export_pairs(model, example), "torch.export")
        except Exception as exc:
            raise EdgebenchError(f"neither torch.fx ({type(fx_exc).__name__}) nor torch.export "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}) "
                                 "can trace the model to find its conv -> BatchNorm pairs") from exc


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def fold_pairs(model: nn.Module, pairs: list[tuple[str, str]]) -> None:
    """Fold each BatchNorm into its conv in place (eval semantics); the BatchNorm becomes an Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        _set_submodule(model, bn_name, nn.Identity())


def fold_batchnorm(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, dict]:
    """A copy of ``model`` (eval) with every foldable BatchNorm folded, and a record of what happened.

    ``x`` (a few real inputs) traces the graph and checks the result. The record: ``folded``, ``left``
    (BatchNorms still in the model), ``blocked`` (those of them that follow a conv: an exporter or
    optimiser may still fold them into its weights, scaling each output channel), ``tracer``, and
    ``error`` when nothing could be folded for a reason worth saying (then every BatchNorm counts as
    blocked: nobody knows where they sit).
    """
    work = copy.deepcopy(model).eval()
    total = sum(isinstance(m, BATCHNORM) for m in work.modules())
    record: dict = {"folded": 0, "left": total, "blocked": 0, "tracer": None}
    if total == 0:
        return work, record
    try:
        pairs, blocked, record["tracer"] = conv_bn_pairs(work, x[:1])
    except EdgebenchError as exc:
        record.update(error=str(exc), blocked=total)
        return work, record
    with torch.no_grad():
        want = work(x)
        fold_pairs(work, pairs)
        got = work(x)
    tol = 1e-3 + 1e-3 * float(want.abs().max())
    diff = float((got - want).abs().max())
    if not np.isfinite(diff) or diff > tol:  # a conv subclass whose forward does more than convolve
        record.update(error=f"folding changed the outputs by {diff:.3g} (tolerance {tol:.3g}); nothing folded",
                      blocked=len(pairs) + len(blocked))
        return copy.deepcopy(model).eval(), record
    record.update(folded=len(pairs), left=total - len(pairs), blocked=len(blocked))
    return work, record
