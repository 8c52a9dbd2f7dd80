"""Orchestration of `edgebench compress`: one model in, one folder per variant out.

Everything the user can get wrong (variant specs, model spec, weights, input shape, data file) is
checked before any long work. Then each variant is built, exported, evaluated from its ONNX file and
written with its manifest; ``artifacts.csv`` is rewritten after every variant so an interrupted build
keeps what it built, and a variant whose inputs did not change is reused, not rebuilt.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from export import cluster as clustering
from export import int8
from export import manifest as mf
from export import prune as pruning
from export.data import Dataset, data_fingerprint, load_dataset, write_npz
from export.evaluate import evaluate_onnx
from export.graphfacts import graph_stats
from export.library_log import LOG_FILE, LibraryLog
from export.onnx_export import compact_names, export_checked, ort_session
from export.quantize import quantize_dynamic_int8, quantize_static_int8, quick_latency_ratio
from export.train import CLUSTER_FINETUNE_RECIPE, FINETUNE_RECIPE, STRUCTURED_FINETUNE_RECIPE, TRAIN_RECIPE, Recipe, cache_dir, cache_key, set_threads, train_cached, training_device
from export.methods import METHODS, Method
from export.variants import Variant, parse_variants
from export.zoo import load_model
from targets.cpu import features_text
from targets.errors import EdgebenchError
from targets.stored import sha256_file, size_facts

Progress = Callable[[str], None]
PARITY_SAMPLES = 64


@dataclass(frozen=True)
class BuildOptions:
    """Knobs beyond the CONTRACT flags; all of them go into each variant's rebuild key."""

    finetune: bool = True
    finetune_recipe: Recipe = FINETUNE_RECIPE
    structured_finetune_recipe: Recipe = STRUCTURED_FINETUNE_RECIPE
    cluster_finetune_recipe: Recipe = CLUSTER_FINETUNE_RECIPE
    train_recipe: Recipe = TRAIN_RECIPE
    calibration: str = "minmax"
    int8_form: str = int8.AUTO  # the form of a plain `+int8` (`+int8:FORM` pins one per variant)
    int8_tolerance: float = int8.DEFAULT_TOLERANCE  # accuracy points an INT8 form may lose and still ship
    int8_select_on: str = "build"  # where INT8 forms are measured: the build machine or a target's name
    int8_keep_float: tuple[str, ...] = ()  # nodes left in float in static INT8: first, last or node names
    per_channel: bool = True
    round_to: int | None = 8
    exporter: str = "auto"
    cluster_init: str = "kmeans++"
    l1_allocation: str = "lamp"
    compact_names: bool = True
    model_output: str | None = None  # which output of a tuple / dict-returning model is exported (None: the first)
    prune_exclude: tuple[str, ...] = ()  # module names (globs) prune-ch keeps whole
    extra: dict = field(default_factory=dict)

    def finetuning(self, method: Method) -> Recipe | None:
        """The fine-tuning recipe that follows ``method``, or None when it has none or fine-tuning is off."""
        return getattr(self, method.recipe) if self.finetune and method.recipe else None


@dataclass
class _Context:
    spec: str
    model: nn.Module
    input_shape: tuple[int, ...]
    data: Dataset
    weights_record: dict
    options: BuildOptions
    evaluator: int8.Evaluator = field(default_factory=int8.BuildMachine)
    float_models: dict[str, tuple[nn.Module, list[dict], dict]] = field(default_factory=dict)
    exporter: str = "auto"  # after the preflight: "dynamo" when the legacy exporter failed on this model
    exporter_skipped: list[dict] = field(default_factory=list)  # why (recorded in every manifest)
    train_device: str = "cpu"  # where fine-tuning runs (--train-device, resolved: cpu or cuda)
    _machine: dict | None = None

    @property
    def int8_machine(self) -> dict:
        """Facts of the machine that measures the INT8 forms (asked once)."""
        if self._machine is None:
            self._machine = self.evaluator.machine()
        return self._machine


def _inputs_hash(ctx: _Context, variant: Variant) -> str:
    """Everything that decides an artifact's bytes; equal hash + equal file sha256 = reuse it."""
    key = {
        "schema": mf.SCHEMA_VERSION, "model": ctx.spec, "weights": ctx.weights_record.get("sha256")
        or ctx.weights_record.get("cache_key"), "input_shape": list(ctx.input_shape), "data": ctx.data.fingerprint,
        "variant": str(variant), "options": asdict(ctx.options), "torch": torch.__version__,
        "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
    }
    if variant.quant == "int8":  # the chosen form depends on the CPU that measured the forms
        key["int8_machine"] = {k: ctx.int8_machine.get(k) for k in ("arch", "cpu_features", "onnxruntime")}
    if ctx.train_device != "cpu":  # a GPU's arithmetic gives other weights (cpu leaves the key as it was)
        key["train_device"] = ctx.train_device
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _build_float(ctx: _Context, base: Variant, progress: Progress) -> tuple[nn.Module, list[dict], dict]:
    """The compressed float model for ``base`` (shared by ``X`` and ``X+int8``), with its step records."""
    if str(base) not in ctx.float_models:
        model, steps, extra = METHODS[base.method].build(ctx, copy.deepcopy(ctx.model), base, progress)
        ctx.float_models[str(base)] = (model.eval(), steps, extra)
    return ctx.float_models[str(base)]


def failure_record(exc: BaseException, trace: str) -> dict:
    """A variant's failed build as its manifest says it: the error class and the message (a traceback's
    last lines when the error is not one of ours)."""
    msg = str(exc) if isinstance(exc, EdgebenchError) else (
        f"{type(exc).__name__}: {exc} | " + " | ".join(trace.strip().splitlines()[-3:]))
    return {"status": type(exc).__name__, "error": msg}


def resolve_device(requested: str) -> str:
    """--train-device: auto is cuda when this machine has a GPU torch can use, else cpu."""
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise EdgebenchError("--train-device cuda: torch sees no CUDA GPU on this machine "
                             f"({socket.gethostname()}); use --train-device auto or cpu")
    return ("cuda" if available else "cpu") if requested == "auto" else requested


def _build_variant(ctx: _Context, variant: Variant, vdir: Path, progress: Progress) -> dict:
    with training_device(ctx.train_device):
        built = _build_variant_on(ctx, variant, vdir, progress)
    return {**built, "train_device": ctx.train_device}


def _build_variant_on(ctx: _Context, variant: Variant, vdir: Path, progress: Progress) -> dict:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model, steps, shared = _build_float(ctx, variant.base, progress)
    extra = dict(shared)  # this variant's notes (INT8 warnings) must not leak into its float siblings
    timings["compress_seconds"] = round(time.perf_counter() - t0, 3)
    vdir.mkdir(parents=True, exist_ok=True)
    out = vdir / "model.onnx"
    x_par = ctx.data.x_test[:PARITY_SAMPLES]
    record: dict = {}
    with tempfile.TemporaryDirectory(dir=vdir) as tmp:
        float_path = out if variant.quant is None else Path(tmp) / "float.onnx"
        t0 = time.perf_counter()
        record["export"] = export_checked(model, ctx.input_shape, float_path, x_par, exporter=ctx.exporter)
        if ctx.exporter_skipped:
            record["export"]["fallback_from"] = ctx.exporter_skipped + record["export"].get("fallback_from", [])
        timings["export_seconds"] = round(time.perf_counter() - t0, 3)
        record["parity_max_abs_diff"] = record["export"]["parity_max_abs_diff"]
        if variant.quant == "int8":
            form = variant.int8_form or ctx.options.int8_form
            progress(f"{variant}: static INT8 (QDQ, per-channel, {ctx.options.calibration}), "
                     + ("measuring every form" if form == int8.AUTO else f"form {form}")
                     + f" on {ctx.evaluator.where}")
            record["quantization"] = int8.build_static(
                float_path, out, ctx.data.x_train, ctx.data.x_val, ctx.data.y_val, form=form,
                tolerance=ctx.options.int8_tolerance, calibration=ctx.options.calibration,
                per_channel=ctx.options.per_channel, evaluator=ctx.evaluator, keep_float=ctx.options.int8_keep_float)
            timings["select_int8_form_seconds"] = record["quantization"]["selection"]["seconds"]
            warning = int8.build_warning(record["quantization"]["selection"])
            if warning:
                extra["int8_warning"] = warning
                progress(f"{variant}: warning: {warning}")
        elif variant.quant == "int8dyn":
            progress(f"{variant}: dynamic INT8")
            record["quantization"] = quantize_dynamic_int8(float_path, out, per_channel=ctx.options.per_channel)
            ratio = quick_latency_ratio(out, float_path, ctx.data.x_test)
            record["quantization"]["latency_ratio_vs_float_quick"] = round(ratio, 3)
            record["quantization"]["slow_for_cnn"] = bool(ratio > 1.0)
            if ratio > 1.0:
                extra["note"] = (f"dynamic INT8 measured {ratio:.1f}x the float latency here (ConvInteger): "
                                 "use +int8 (static QDQ) for CNNs")
        if variant.quant:
            timings["quantize_seconds"] = record["quantization"]["seconds"]
            sess_out = _torch_vs_onnx(out, model, x_par)
            record["quantized_max_abs_diff_vs_torch"] = sess_out
    record["names"] = compact_names(out) if ctx.options.compact_names else {"compacted": False}
    t0 = time.perf_counter()
    metrics = evaluate_onnx(out, ctx.data.x_test, ctx.data.y_test, ctx.data.num_classes)
    timings["evaluate_seconds"] = round(time.perf_counter() - t0, 3)
    stats = graph_stats(out)
    sizes = size_facts(out)
    if "clustering" in extra:  # what the shipped file holds, after onnxsim and quantization
        extra = {**extra, "clustering": {**extra["clustering"], **clustering.file_codebook_stats(out)}}
    sparsity = None
    if stats["params"] and stats["nonzero_params"] is not None:
        sparsity = 1.0 - stats["nonzero_params"] / stats["params"]
    return {
        "status": "ok", "error": None, "model_sha256": sizes["sha256"], "model_bytes": sizes["model_bytes"],
        "model_zip_bytes": sizes["model_zip_bytes"], "params": stats["params"], "nonzero_params": stats["nonzero_params"],
        "macs": stats["macs"], "macs_source": stats["macs_source"], "opset": stats["opset"],
        "exporter": record["export"]["exporter"], "export": record["export"],
        "parity_max_abs_diff": record["parity_max_abs_diff"],
        "quantized_max_abs_diff_vs_torch": record.get("quantized_max_abs_diff_vs_torch"),
        "quantization": record.get("quantization"), "names": record["names"], "weight_sparsity": sparsity,
        "unique_weight_values": stats["unique_weight_values"] if variant.clusters else None,
        "max_unique_weight_values": stats["max_unique_weight_values"],
        "peak_activation_bytes": stats["peak_activation_bytes"],
        "peak_activation_method": "static: live tensors over the topologically sorted graph at batch 1, no reuse",
        "quantized_ops": stats["quantized_ops"], "steps": steps, **_int8_facts(record, ctx), **extra,
        **{k: metrics[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "gmean")},
        "confusion_matrix": metrics["confusion_matrix"], "n_test_samples": metrics["n_test_samples"],
        "accuracy_source": "onnxruntime on model.onnx, test split", "timings": timings,
    }


def _int8_facts(record: dict, ctx: _Context) -> dict:
    """Scalars a target needs to check a static INT8 file's accuracy against the build's (bench reads
    a manifest's scalar fields only)."""
    q = record.get("quantization") or {}
    if "selection" not in q:
        return {}
    machine = q["selection"]["machine"]
    return {"int8_form": q["form"], "int8_tolerance_points": ctx.options.int8_tolerance,
            "int8_chosen_on": q["selection"]["where"], "int8_cpu_features": features_text(machine.get("cpu_features"))}


def _torch_vs_onnx(path: Path, model: nn.Module, x: np.ndarray) -> float:
    sess = ort_session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    return float(np.max(np.abs(got - want)))


def _reusable(vdir: Path, inputs_hash: str) -> dict | None:
    old = mf.read_manifest(vdir / "manifest.json")
    model = vdir / "model.onnx"
    if (old and old.get("status") == "ok" and old.get("inputs_hash") == inputs_hash and model.is_file()
            and sha256_file(model) == old.get("model_sha256")):
        return old
    return None


def _cached_artifact(inputs_hash: str) -> Path:
    """Where a built artifact is kept for other output folders: fine-tuning is the slow part of a build,
    and the same inputs (model, trained weights, data, recipe, library versions) give the same bytes."""
    return cache_dir() / "artifacts" / inputs_hash


def _from_cache(vdir: Path, inputs_hash: str, data_file: Path) -> dict | None:
    cached = _cached_artifact(inputs_hash)
    manifest = _reusable(cached, inputs_hash)
    if manifest is None:
        return None
    vdir.mkdir(parents=True, exist_ok=True)
    for f in cached.iterdir():
        if f.name != "manifest.json":
            shutil.copy2(f, vdir / f.name)
    manifest = {**manifest, "data_file": str(data_file), "reused_from": str(cached)}
    mf.write_json_atomic(vdir / "manifest.json", manifest)
    return manifest


def _to_cache(vdir: Path, inputs_hash: str) -> None:
    cached = _cached_artifact(inputs_hash)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent))  # filled, then renamed: no half-written cache entry
        for f in vdir.iterdir():
            shutil.copy2(f, tmp / f.name)
        shutil.rmtree(cached, ignore_errors=True)
        tmp.rename(cached)
    except OSError:
        pass  # a full or read-only cache only costs a rebuild next time


def prepare(model: str, *, weights: Path | None = None, input_shape: tuple[int, ...] | None = None,
            data: Path | None = None, options: BuildOptions = BuildOptions()) -> _Context:
    """Load and check model + data; no training yet (``train`` does it, after the export preflight)."""
    set_threads()
    # the initial weights come from torch's global generator: seed it, or the trained weights (cached
    # under a key that holds the recipe's seed) would depend on whatever drew random numbers before
    torch.manual_seed(options.train_recipe.seed)
    net, shape = load_model(model, weights, input_shape, output=options.model_output)
    dataset = load_dataset(data, shape)
    if model.startswith("zoo:") and dataset.num_classes != 10 and weights is None:
        torch.manual_seed(options.train_recipe.seed)
        net, shape = load_model(model, None, shape, num_classes=dataset.num_classes, output=options.model_output)
    with torch.no_grad():
        n_out = net(torch.from_numpy(dataset.x_test[:2])).reshape(2, -1).shape[1]
    if n_out < dataset.num_classes:
        raise EdgebenchError(f"the model has {n_out} outputs but the data has {dataset.num_classes} classes; "
                             "give data that matches the model's classes")
    pruning.excluded_modules(net, options.prune_exclude)  # a misspelt name fails now, not after training
    if weights is not None:
        record = {"source": "file", "path": str(weights), "sha256": sha256_file(Path(weights))}
    else:
        record = {"source": "trained by edgebench",
                  "cache_key": cache_key(model, shape, dataset, options.train_recipe, net)}
    return _Context(model, net.eval(), shape, dataset, record, options, exporter=options.exporter)


def train(ctx: _Context, progress: Progress) -> None:
    """Train the model (or load the cached weights) when no weights file was given."""
    if ctx.weights_record["source"] == "file" or "train_seconds" in ctx.weights_record:
        return
    ctx.weights_record.update(train_cached(ctx.model, ctx.spec, ctx.input_shape, ctx.data,
                                           ctx.options.train_recipe, progress))
    ctx.model.eval()


PREFLIGHT_SAMPLES = 16


def preflight(ctx: _Context, variants: list[Variant], progress: Progress) -> dict[str, str]:
    """Export the model as loaded (untrained, if edgebench trains it) and quantize it once per INT8 kind
    the variants ask for, before any training or fine-tuning: a model that cannot be exported fails in
    seconds, not after minutes of training. Returns {variant: why} for variants whose quantization
    already fails here (they are not built); an export failure is raised (no variant could be built).
    """
    progress("checking that the model exports to ONNX before any training")
    x = ctx.data.x_test[:PREFLIGHT_SAMPLES]
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        try:
            record = export_checked(ctx.model, ctx.input_shape, float_path, x, exporter=ctx.options.exporter)
        except EdgebenchError as exc:
            raise EdgebenchError(f"{exc} (checked before any training; nothing was built)") from exc
        if record.get("fallback_from"):  # the other variants have the same ops: do not try legacy again
            ctx.exporter, ctx.exporter_skipped = record["exporter"], record["fallback_from"]
            progress(f"the {record['exporter']} exporter is used: {record['fallback_from'][0]['error']}")
        refused: dict[str | None, str] = {}
        for quant in sorted({v.quant for v in variants} - {None}):
            q_path = Path(tmp) / f"{quant}.onnx"
            try:
                if quant == "int8dyn":
                    quantize_dynamic_int8(float_path, q_path, per_channel=ctx.options.per_channel)
                else:  # one form: whether the quantizer takes the graph does not depend on it
                    form = int8.FORMS.get(ctx.options.int8_form) or next(iter(int8.FORMS.values()))
                    quantize_static_int8(float_path, q_path, ctx.data.x_train[:PREFLIGHT_SAMPLES], form=form,
                                         calibration=ctx.options.calibration, per_channel=ctx.options.per_channel)
                sess = ort_session(q_path)
                sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x[:2], dtype=np.float32)})
            except Exception as exc:  # noqa: BLE001 - any failure here is the reason the variant cannot be built
                refused[quant] = str(exc) if isinstance(exc, EdgebenchError) else f"{type(exc).__name__}: {exc}"
                progress(f"+{quant} fails on the untrained model, those variants are skipped: {refused[quant]}")
    return {str(v): f"{refused[v.quant]} (found before any training; not built)"
            for v in variants if v.quant in refused}


def compress(model: str, variants: list[str], out_dir: Path, *, weights: Path | None = None,
             input_shape: tuple[int, ...] | None = None, data: Path | None = None,
             progress: Progress | None = None, options: BuildOptions | None = None,
             int8_evaluator: int8.Evaluator | None = None, executor: str = "local",
             train_device: str = "cpu") -> list[dict]:
    """Build ``out_dir/<variant>/model.onnx`` + ``manifest.json`` per variant and ``out_dir/artifacts.csv``.

    Returns one manifest dict per variant, in the order given; failed variants have ``status`` != "ok"
    and an ``error`` message, and do not stop the others. ``int8_evaluator`` measures the INT8 forms
    (default: this machine, in this process). What the libraries print goes to ``out_dir/compress.log``;
    ``progress`` lines still reach the terminal. ``executor`` `dask://HOST:PORT` builds each variant as a
    task on a Dask cluster (export/remote.py); ``train_device`` auto, cpu or cuda for fine-tuning.
    """
    options = options or BuildOptions()
    parsed = parse_variants(variants)  # bad specs fail before any training
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with LibraryLog(out_dir / LOG_FILE) as log:
        say = log.progress(progress or (lambda s: None))
        ctx = prepare(model, weights=weights, input_shape=input_shape, data=data, options=options)
        # auto on a cluster is each worker's own choice (its GPU, if it has one); here it is ours
        remote_auto = executor != "local" and train_device == "auto"
        ctx.train_device = train_device if remote_auto else resolve_device(train_device)
        if int8_evaluator is not None:
            ctx.evaluator = int8_evaluator
        return _compress(ctx, parsed, out_dir, say, executor)


def _compress(ctx: _Context, parsed: list[Variant], out_dir: Path, progress: Progress,
              executor: str = "local") -> list[dict]:
    data_file = write_npz(out_dir / "data.npz", ctx.data.x_test, ctx.data.y_test)
    build_facts = {**_build_facts(int8.build_machine()),
                   "test_data_fingerprint": data_fingerprint(ctx.data.x_test, ctx.data.y_test)}
    hashes = {str(v): _inputs_hash(ctx, v) for v in parsed}
    to_build = [v for v in parsed if _reusable(out_dir / v.dir_name, hashes[str(v)]) is None
                and _reusable(_cached_artifact(hashes[str(v)]), hashes[str(v)]) is None]
    refused = preflight(ctx, to_build, progress) if to_build else {}
    if to_build and len(refused) < len(to_build):
        train(ctx, progress)
    remote = _submit(ctx, [v for v in to_build if str(v) not in refused], executor, progress)
    results: list[dict] = []
    for v in parsed:
        vdir = out_dir / v.dir_name
        inputs_hash = hashes[str(v)]
        old = _reusable(vdir, inputs_hash)
        where = vdir
        if old is None:
            old = _from_cache(vdir, inputs_hash, data_file)
            where = _cached_artifact(inputs_hash)
        if old is not None:
            progress(f"{v}: reusing the artifact already built in {where}")
            old["reused"] = True
            results.append(old)
            mf.write_artifacts_csv(out_dir / "artifacts.csv", results)
            continue
        progress(f"{v}: building")
        t0 = time.perf_counter()
        base = {
            "schema_version": mf.SCHEMA_VERSION, "variant": str(v), "variant_dir": v.dir_name, "model": ctx.spec,
            "input_shape": list(ctx.input_shape), "weights": ctx.weights_record, "data": ctx.data.source,
            "data_file": str(data_file), "num_classes": ctx.data.num_classes, "inputs_hash": inputs_hash,
            "recipe": {"method": v.method, "amount": v.amount, "clusters": v.clusters, "codebook": v.codebook,
                       "iterations": v.iterations, "quant": v.quant, "int8_form": v.int8_form,
                       "options": asdict(ctx.options)},
            **build_facts,
        }
        try:
            if str(v) in refused:
                raise EdgebenchError(refused[str(v)])
            if str(v) in remote:
                built, machine = _collect(remote[str(v)], vdir, progress, str(v))
                if v.quant == "int8":  # the worker's CPU measured the INT8 forms: its facts, not ours
                    base.update(_build_facts(machine))
            else:
                built = _build_variant(ctx, v, vdir, progress)
        except Exception as exc:  # failures are data: this variant's row says why, the rest go on
            built = failure_record(exc, traceback.format_exc())
        if built.get("status") != "ok":
            (vdir / "model.onnx").unlink(missing_ok=True)
            progress(f"{v}: FAILED: {built.get('error')}")
        manifest = {**base, **built, "build_seconds": round(time.perf_counter() - t0, 3), "reused": False}
        vdir.mkdir(parents=True, exist_ok=True)
        mf.write_json_atomic(vdir / "manifest.json", manifest)
        if manifest.get("status") == "ok":
            _to_cache(vdir, inputs_hash)
        results.append(manifest)
        mf.write_artifacts_csv(out_dir / "artifacts.csv", results)
    return results


def _build_facts(machine: dict) -> dict:
    return {"build_machine": machine, "build_arch": machine.get("arch"), "build_cpu_model": machine.get("cpu_model"),
            "build_cpu_features": features_text(machine.get("cpu_features")),
            "build_onnxruntime": machine.get("onnxruntime")}


def _submit(ctx: _Context, variants: list[Variant], executor: str, progress: Progress) -> dict[str, Any]:
    """Each variant as a task of the cluster `executor` names (none for local builds): {variant: future}."""
    from export import remote

    if executor == remote.LOCAL or not variants:
        return {}
    cluster = remote.executor_for(executor, progress)
    futures = {str(v): cluster.submit(remote.job_for(ctx, v)) for v in variants}
    progress(f"{len(futures)} variant(s) sent to the cluster; the base model was trained once, here")
    return futures


def _collect(future: Any, vdir: Path, progress: Progress, name: str) -> tuple[dict, dict]:
    """A remote build's result written into ``vdir`` as a local build writes it."""
    done = future.result()
    for line in done.log:
        progress(line)
    vdir.mkdir(parents=True, exist_ok=True)
    for file_name, data in done.files.items():
        tmp = vdir / (file_name + ".part")
        tmp.write_bytes(data)
        tmp.replace(vdir / file_name)
    progress(f"{name}: built on {done.worker}")
    return {**done.built, "built_on": done.worker}, done.machine
