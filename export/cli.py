"""`edgebench compress`: flags (``configure``) and the command (``run``). harness/cli.py wires it in and
turns EdgebenchError into `error: ...`; nothing here catches it."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from export import int8
from export.build import BuildOptions, compress
from export.library_log import LOG_FILE
from export.onnx_export import EXPORTER_CHOICES
from export.prune import ALLOCATIONS
from export.remote import add_executor_options
from export.quantize import CALIBRATIONS
from export.variants import VALID_FORMS
from targets.errors import EdgebenchError
from targets.factory import add_connection_options, target_from_args


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,3,224,224") from None
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,3,224,224")
    return shape


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the CONTRACT flags of `edgebench compress` plus build options."""
    parser.add_argument("--model", required=True,
                        help="zoo:NAME (digits-cnn, mobilenetv2, vgg, resnet, mixnet), path/file.py:factory "
                             "or package.module:factory")
    parser.add_argument("--weights", type=Path, help="state_dict file (loaded with weights_only=True); "
                        "without it the model is trained on the data (cached)")
    parser.add_argument("--input-shape", type=_shape, help="1,C,H,W (default: the zoo model's)")
    parser.add_argument("--data", type=Path, help=".npz with x (float32 NxCxHxW) and y (int labels); "
                        "default: the bundled 8x8 digits, resized")
    parser.add_argument("--variants", required=True, help="comma-separated: " + "; ".join(VALID_FORMS))
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--no-finetune", action="store_true", help="skip fine-tuning after prune/cluster")
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="fine-tuning epochs after prune/cluster (@iter=N splits them over its N steps)")
    parser.add_argument("--calibration", choices=CALIBRATIONS, default="minmax", help="INT8 calibration method")
    parser.add_argument("--int8-form", choices=(int8.AUTO, *int8.FORMS), default=None,
                        help="the form of a plain +int8: auto (default) measures every form and ships the fastest "
                             "within --int8-tolerance of the float model; " + "; ".join(
                                 f"{f.name}: {f.about}" for f in int8.FORMS.values()))
    parser.add_argument("--activation-type", choices=("uint8", "int8"), default=None,
                        help="older spelling: uint8 = --int8-form u8s8, int8 = --int8-form s8s8")
    parser.add_argument("--int8-tolerance", type=float, default=int8.DEFAULT_TOLERANCE, metavar="POINTS",
                        help="accuracy points (validation split) an INT8 form may lose against its float model "
                             "and still ship (1)")
    parser.add_argument("--int8-keep-float", metavar="NODES", default="",
                        help="leave these layers in float in static INT8: first, last (the first / last layer "
                             "with weights) or node names, comma-separated")
    parser.add_argument("--int8-select-on", metavar="T", default="build",
                        help="where the INT8 forms' accuracy and speed are measured: build (this machine, "
                             "default) or a target (local, ssh://[user@]host[:port], a Host alias) - the CPU the "
                             "file is for")
    add_connection_options(parser)
    add_executor_options(parser)
    parser.add_argument("--round-to", type=int, default=8, help="keep channel counts a multiple of this (0 = off)")
    parser.add_argument("--exporter", choices=EXPORTER_CHOICES, default="auto",
                        help="auto (default): the legacy TorchScript exporter, and torch's dynamo exporter when "
                             "legacy cannot export an op or its file disagrees with PyTorch; the manifest says which")
    parser.add_argument("--model-output", metavar="KEY",
                        help="for a model returning a tuple / list / dict: the output to export, train and score "
                             "(a dict key or a position; default: the first tensor)")
    parser.add_argument("--prune-exclude", metavar="NAME[,NAME]", default="",
                        help="prune-ch keeps these modules whole (names as in model.named_modules(); globs allowed, "
                             "e.g. 'blocks.*.attn')")
    parser.add_argument("--cluster-init", choices=("linear", "kmeans++"), default="kmeans++",
                        help="k-means initialisation of cluster:K (kmeans++ measured better after BatchNorm folding)")
    parser.add_argument("--l1-allocation", choices=ALLOCATIONS, default="lamp",
                        help="prune-l1: how the sparsity is spread over layers: one threshold on LAMP scores "
                             "(default; never empties a layer), one threshold on |w| (global), or the same "
                             "fraction in every layer (layerwise)")
    parser.add_argument("--layerwise", action="store_const", dest="l1_allocation", const="layerwise",
                        help="same as --l1-allocation layerwise")
    parser.add_argument("--keep-names", action="store_true",
                        help="keep the exporter's node and tensor names in model.onnx (default: short ids, "
                             "the long names in names.json beside it)")


def format_table(rows: list[dict]) -> list[str]:
    """Compact result table lines (pure: printing happens in run())."""
    head = ("variant", "status", "params", "nonzero", "bytes", "zip bytes", "accuracy", "int8 form")
    body = []
    for r in rows:
        acc = r.get("accuracy")
        body.append((r["variant"], r["status"] + (" (reused)" if r.get("reused") else ""),
                     str(r.get("params") or ""), str(r.get("nonzero_params") or ""), str(r.get("model_bytes") or ""),
                     str(r.get("model_zip_bytes") or ""), f"{acc:.4f}" if acc is not None else "",
                     str(r.get("int8_form") or "")))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    lines += [f"  {r['variant']}: {r['error']}" for r in rows if r["status"] != "ok"]
    lines += [f"  {r['variant']}: warning: {r['int8_warning']}" for r in rows if r.get("int8_warning")]
    return lines


def run(args: argparse.Namespace) -> int:
    """Build the artifacts; 0 if every variant is ok, else 1."""
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise EdgebenchError(f"--out {args.out} is a file; give a folder for the artifacts")
    if args.round_to is not None and args.round_to < 0:
        raise EdgebenchError("--round-to must be 0 (off) or a positive channel multiple such as 8")
    if not 0 <= args.int8_tolerance < math.inf:
        raise EdgebenchError("--int8-tolerance must be 0 or more accuracy points, e.g. 1")
    if args.finetune_epochs is not None and args.finetune_epochs < 0:
        raise EdgebenchError(f"--finetune-epochs {args.finetune_epochs}: give 0 or more epochs (0 or --no-finetune "
                             "skips fine-tuning)")
    form = args.int8_form or {"uint8": "u8s8", "int8": "s8s8", None: int8.AUTO}[args.activation_type]
    options = BuildOptions(finetune=not args.no_finetune, calibration=args.calibration, int8_form=form,
                           int8_tolerance=args.int8_tolerance, int8_select_on=args.int8_select_on,
                           int8_keep_float=tuple(n.strip() for n in args.int8_keep_float.split(",") if n.strip()),
                           round_to=args.round_to or None,
                           exporter=args.exporter, cluster_init=args.cluster_init, l1_allocation=args.l1_allocation,
                           compact_names=not args.keep_names, model_output=args.model_output,
                           prune_exclude=tuple(p.strip() for p in args.prune_exclude.split(",") if p.strip()))
    if args.finetune_epochs is not None:
        options = replace(options, finetune_recipe=replace(options.finetune_recipe, epochs=args.finetune_epochs),
                          cluster_finetune_recipe=replace(options.cluster_finetune_recipe, epochs=args.finetune_epochs),
                          structured_finetune_recipe=replace(options.structured_finetune_recipe,
                                                             epochs=args.finetune_epochs))
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    build = dict(weights=args.weights, input_shape=args.input_shape, data=args.data, progress=progress, options=options,
                 executor=args.executor, train_device=args.train_device)
    if args.int8_select_on == "build":
        rows = compress(args.model, args.variants, args.out, **build)
    else:
        with target_from_args(args.int8_select_on, args) as target:
            rows = compress(args.model, args.variants, args.out, int8_evaluator=int8.OnTarget(target), **build)
    for line in format_table(rows):
        print(line)
    print(f"artifacts: {Path(args.out) / 'artifacts.csv'} (library messages: {Path(args.out) / LOG_FILE})")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
