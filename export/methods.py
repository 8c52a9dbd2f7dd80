"""The compression methods, one registry: a spec's method word and everything that follows from it.

Each `Method` says how its argument is written and checked, whether it can run in several steps, which
fine-tuning recipe follows it, how it is described, how it shrinks a model, and what the report says
when it does not pay. Parsing (export/variants.py), the build (export/build.py) and the report all
read this table, so adding a method is one entry here plus the module that does the work — as
Torch-Pruning keeps what is pruned together, how important it is and how a layer shrinks apart.
What is pruned together and how a layer shrinks live in export/prune.py and export/cluster.py; this
file only names them. Module-level imports stay light: specs are parsed before torch is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from export.build import _Context
    from export.variants import Variant

# (context, model copy, variant, progress) -> (compressed model, step records, manifest extras)
Builder = Callable[["_Context", Any, "Variant", Callable[[str], None]], tuple[Any, list[dict], dict]]


@dataclass(frozen=True)
class Method:
    """One compression method, as the spec word ``name`` selects it."""

    name: str
    arg: str | None  # None | "ratio" (0 < R < 1) | "count" (an integer K from 2 to 256)
    arg_help: str  # how the argument reads in the list of valid specs
    iterative: bool  # may be written name:X@iter=N
    recipe: str | None  # the BuildOptions field holding its fine-tuning Recipe, None for no fine-tuning
    describe: Callable[[Variant], str]  # what it did to the model, in plain words
    build: Builder
    loss_note: str = ""  # the report's advice when it costs more than 5 accuracy points
    slow_note: str = ""  # the report's explanation when it is not faster

    def spec_forms(self) -> list[str]:
        """How the method is written, for error messages and --help."""
        head = self.name + ({"ratio": ":R", "count": ":K"}.get(self.arg or "", ""))
        forms = [f"{head} ({self.arg_help})" if self.arg_help else head]
        return forms + ([f"{head}@iter=N"] if self.iterative else [])


def _fp32(ctx: _Context, model: Any, v: Variant, progress: Callable[[str], None]) -> tuple[Any, list[dict], dict]:
    return model, [], {}


def _prune_l1(ctx: _Context, model: Any, v: Variant, progress: Callable[[str], None]) -> tuple[Any, list[dict], dict]:
    from export import prune

    progress(f"{v}: magnitude pruning to sparsity {v.amount} in {v.iterations} step(s)")
    steps = prune.prune_unstructured(model, v.amount, ctx.data, iterations=v.iterations,
                                     allocation=ctx.options.l1_allocation,
                                     finetune=ctx.options.finetuning(METHODS[v.method]))
    return model, steps, {"note": "unstructured zeros: dense kernels do the same work, so file bytes and latency do "
                                  "not drop; only the zipped size does"}


def _prune_ch(ctx: _Context, model: Any, v: Variant, progress: Callable[[str], None]) -> tuple[Any, list[dict], dict]:
    from export import prune

    progress(f"{v}: removing {v.amount:.0%} of channels in {v.iterations} step(s)")
    steps = prune.prune_channels(model, v.amount, ctx.input_shape, ctx.data, iterations=v.iterations,
                                 round_to=ctx.options.round_to, finetune=ctx.options.finetuning(METHODS[v.method]),
                                 exclude=ctx.options.prune_exclude)
    extra: dict = {"channels": prune.channel_counts(model)}
    notes = [s["note"] for s in steps if s.get("note")]
    if notes:
        extra["note"] = notes[0]
        progress(f"{v}: {notes[0]}")
    return model, steps, extra


def _cluster(ctx: _Context, model: Any, v: Variant, progress: Callable[[str], None]) -> tuple[Any, list[dict], dict]:
    from export import cluster

    per = "output channel" if v.codebook == "channel" else "layer"
    progress(f"{v}: folding BatchNorm, clustering to {v.clusters} values per {per}")
    model, steps = cluster.cluster_model(model, v.clusters, ctx.data, init=ctx.options.cluster_init,
                                         finetune=ctx.options.finetuning(METHODS[v.method]), codebook=v.codebook,
                                         example_shape=ctx.input_shape)
    extra: dict = {"clustering": cluster.summary(steps)}
    if extra["clustering"]["codebook"] != v.codebook:
        extra["note"] = extra["clustering"]["why"]
        progress(f"{v}: {extra['note']}")
    return model, steps, extra


METHODS = {m.name: m for m in (
    Method("fp32", None, "", False, None, lambda v: "the trained float model", _fp32),
    Method("prune-l1", "ratio", "S = target sparsity, 0 < S < 1", True, "finetune_recipe",
           lambda v: f"{v.amount:.0%} of weights set to zero (magnitude)", _prune_l1,
           slow_note="Zeros alone do not speed up a dense runtime: onnxruntime multiplies them anyway; the gain is "
                     "in the zipped size."),
    Method("prune-ch", "ratio", "R = ratio of channels removed, 0 < R < 1", True, "structured_finetune_recipe",
           lambda v: f"{v.amount:.0%} of channels physically removed", _prune_ch),
    Method("cluster", "count", "K = 2..256 shared values per layer", False, "cluster_finetune_recipe",
           lambda v: f"{v.clusters} shared weight values per layer (k-means)", _cluster,
           loss_note="One codebook per layer cannot follow the per-channel scales that BatchNorm folding puts into "
                     "the weights; use cluster-ch:K (K values per output channel) or more clusters."),
    Method("cluster-ch", "count", "K = 2..256 shared values per output channel", False, "cluster_finetune_recipe",
           lambda v: f"{v.clusters} shared weight values per output channel (k-means)", _cluster,
           loss_note="Use more values per channel."),
)}
