"""An experiment: models x variants x targets x settings, read from TOML and validated before any work.

`edgebench run --print-default` prints DEFAULT_TOML, the built-in experiment, for users to copy.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from harness.inputs import InputValue, check_unique, input_value
from harness.providers import ProviderSpec, parse_providers
from harness.measurement import RunSpec
from harness.streams import parse_streams

DEFAULT_TOML = """\
# edgebench experiment: the built-in default (`edgebench run` with no argument runs exactly this).
# Copy it with `edgebench run --print-default > my.toml`, edit, then `edgebench run my.toml`.

name = "default"
out = "results/default"          # result folder; rerunning with the same folder resumes

# Variants (see `edgebench compress --help`): fp32, prune-l1:S, prune-ch:R, prune-ch:R@iter=N,
# cluster:K (K values per layer), cluster-ch:K (K per output channel), each optionally followed by
# +int8 (static QDQ) or +int8dyn (dynamic).
variants = [
  "fp32",
  "prune-l1:0.5", "prune-l1:0.9",
  "prune-ch:0.3", "prune-ch:0.5", "prune-ch:0.5@iter=3",
  "cluster:4", "cluster-ch:4", "cluster:16",
  "fp32+int8", "prune-ch:0.5+int8", "cluster:16+int8",
  "fp32+int8dyn",
]

# local, ssh://[user@]host[:port], or a Host alias from ~/.ssh/config
targets = ["local"]

[[models]]
name = "digits-resnet"
model = "zoo:resnet"             # zoo:NAME, path/to/file.py:factory or package.module:factory
input_shape = [1, 1, 32, 32]     # the 8x8 digits, resized: big enough that compute dominates (>= 1 ms)
# weights = "trained.pt"         # a state_dict; without it, zoo models are trained on the data (cached)

[data]
# path = "my_data.npz"           # arrays x (N,C,H,W float32) and y (N int); omitted: the UCI 8x8 digits
                                 # bundled with scikit-learn, split train/val/test with a fixed seed

[build]
# int8_select_on = "build"       # where a plain +int8 measures its forms (reduce, u8s8, s8s8) before
                                 # shipping the fastest accurate one: "build" (this machine) or one of
                                 # the targets above, e.g. the board the files are for
# int8_tolerance = 1.0           # accuracy points an INT8 form may lose against its float model
int8_forms = "all"               # also build every form of each plain +int8 (X+int8:reduce, :u8s8, :s8s8)
                                 # and measure them on every target: integer kernels differ by CPU, so
                                 # the report names the form to ship on each ("chosen": the build's only)

[measure]
batch_sizes = [1]
threads = "cores"                # onnxruntime intra-op threads: 1, 2, ... up to each target's cores, and
                                 # the report names the fastest count per variant; or a list, e.g. [1]
                                 # (0 = onnxruntime's default)
processes = 5                    # fresh runner processes per variant and target
min_time_s = 0.5                 # timed seconds per process
max_time_s = 30.0
min_iterations = 20
timeout_s = 120.0
# streams = [1, 2, "auto"]        # also measure N concurrent streams (total items/s; "auto" = one per core)
# stream_sessions = "separate"   # a session per stream, or "shared": one for all
# inputs = { sr = 16000, state = "state.npy", ids = "random" }   # values for named model inputs:
#                                  # integer, bool and scalar inputs need one (never invented)
# providers = ["OpenVINOExecutionProvider:device_type=CPU"]   # onnxruntime execution providers, highest
#                                  # priority first (default: CPU); the target's onnxruntime must offer them
"""

_TOP_KEYS = {"name", "out", "variants", "targets", "models", "data", "build", "measure"}
_BUILD_KEYS = {"int8_select_on", "int8_tolerance", "int8_forms"}
INT8_FORMS_CHOICES = ("chosen", "all")
_MODEL_KEYS = {"name", "model", "weights", "input_shape"}
# [measure] keys that are one RunSpec field each: key -> (field, type, smallest value, example)
_MEASURE_FIELDS: dict[str, tuple[str, type, float, Any]] = {
    "processes": ("processes", int, 1, 5), "min_time_s": ("min_time_s", float, 0, 0.5),
    "max_time_s": ("max_time_s", float, 0, 30.0), "min_iterations": ("min_iterations", int, 1, 20),
    "max_iterations": ("max_iterations", int, 1, 10000), "timeout_s": ("timeout_s", float, 0, 120.0),
    "seed": ("seed", int, 0, 0), "precision": ("precision", float, 0, 0.01),
    "max_processes": ("max_processes", int, 1, 20),
}
_MEASURE_KEYS = {"batch_sizes", "threads", "cpu", "inputs", "providers", "streams", "stream_sessions",
                 *_MEASURE_FIELDS}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model: str
    weights: Path | None = None
    input_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Experiment:
    """A validated experiment; relative paths are resolved against the experiment file's folder."""

    name: str
    out: Path
    models: tuple[ModelEntry, ...]
    variants: tuple[str, ...]
    targets: tuple[str, ...] = ("local",)
    data: Path | None = None
    batch_sizes: tuple[int, ...] = (1,)
    threads: tuple[int | None, ...] = (None,)
    streams: tuple[int | str | None, ...] = (None,)  # None: no streams phase (single-stream only)
    measure: dict[str, Any] = field(default_factory=dict)
    int8_select_on: str = "build"
    int8_tolerance: float = 1.0
    int8_forms: str = "chosen"  # "all": every plain +int8 is also built and measured in each form
    threads_up_to_cores: bool = False  # threads = "cores": 1, 2, ... up to each target's core count
    inputs: tuple[InputValue, ...] = ()
    providers: tuple[ProviderSpec, ...] = ()

    def build_variants(self) -> list[str]:
        """The variants to build: the listed ones, and with int8_forms = "all" every plain X+int8's pinned
        forms X+int8:FORM too, so each target measures every form and the report names the one to ship there."""
        from export.int8 import FORMS
        from export.variants import parse_variant

        out = list(self.variants)
        if self.int8_forms == "all":
            for text in self.variants:
                v = parse_variant(text)
                if v.quant == "int8" and v.int8_form is None:
                    out += [f"{text}:{form}" for form in FORMS if f"{text}:{form}" not in out]
        return out

    def thread_counts(self, cores: int | None) -> tuple[int | None, ...]:
        """The thread counts to measure on a target with `cores` cores."""
        if self.threads_up_to_cores:
            return tuple(range(1, (cores or 1) + 1))
        return self.threads

    def run_specs(self, data: Path | None = None, threads: tuple[int | None, ...] | None = None) -> list[RunSpec]:
        """One RunSpec per (batch size, thread count, stream count); a setting the experiment leaves out keeps
        RunSpec's default; `threads` replaces the experiment's own list (threads = "cores": one target's)."""
        m = self.measure
        given = {field: kind(m[key]) for key, (field, kind, _, _) in _MEASURE_FIELDS.items() if key in m}
        if "stream_sessions" in m:
            given["stream_sessions"] = str(m["stream_sessions"])
        return [RunSpec(batch_size=b, threads=t, cpu_affinity=tuple(m.get("cpu", ())), data=data,
                        inputs=self.inputs, providers=self.providers, streams=n, **given)
                for b in self.batch_sizes for t in (self.threads if threads is None else threads)
                for n in self.streams]


def _fail(where: str, problem: str, fix: str) -> EdgebenchError:
    return EdgebenchError(f"{where}: {problem}; {fix}")


def _unknown(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise _fail(where, f"unknown key {extra[0]!r}", f"use one of {', '.join(sorted(allowed))}")


def _str_list(where: str, value: Any, example: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, "must be a non-empty list of strings", f"write e.g. {example}")
    return tuple(v.strip() for v in value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(where: str, value: Any, kind: type, minimum: float, example: Any) -> None:
    """A TOML value that must be a finite number (a whole one for `int`) of at least `minimum`."""
    ok = _whole(value) if kind is int else isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise _fail(where, f"{value!r} is not {what} >= {minimum:g}", f"write e.g. {where.rsplit('.', 1)[-1]} = {example}")


def _path(where: str, value: Any, base: Path, example: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{value!r} is not a path", f'write it as a string, e.g. "{example}"')
    return (base / value).resolve()


def _plain_name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or not name.isprintable():
        raise _fail(where, f"{name!r} is not a plain name", "use letters, digits, - and _")
    return name


def _int_list(where: str, value: Any, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int):
        value = [value]
    if not isinstance(value, list) or not value or not all(_whole(v) and v >= minimum for v in value):
        raise _fail(where, f"must be a list of whole numbers >= {minimum}", "write e.g. [1, 4]")
    return tuple(value)


def _inputs(where: str, table: Any, base: Path) -> tuple[InputValue, ...]:
    if not isinstance(table, dict):
        raise _fail(where, "must be a table", 'write inputs = { sr = 16000, state = "state.npy" }')
    return check_unique([input_value(name, raw, base, where) for name, raw in table.items()], where)


def parse_experiment(doc: dict[str, Any], base: Path, source: str) -> Experiment:
    """Validate a parsed TOML document; every message names the key and the fix."""
    _unknown(source, doc, _TOP_KEYS)
    models_doc = doc.get("models")
    if not isinstance(models_doc, list) or not models_doc:
        raise _fail(f"{source}: [[models]]", "no model given", 'add [[models]] with model = "zoo:resnet"')
    models = []
    for i, entry in enumerate(models_doc):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict):
            raise _fail(where, "must be a table", "write [[models]] then model = ...")
        _unknown(where, entry, _MODEL_KEYS)
        spec = entry.get("model")
        if not isinstance(spec, str) or not spec:
            raise _fail(f"{where}.model", "missing", 'write model = "zoo:resnet" or "my_net.py:build"')
        if ":" not in spec:
            raise _fail(f"{where}.model", f"{spec!r} is not a model spec",
                        "write zoo:NAME, path/to/file.py:factory or package.module:factory")
        weights = entry.get("weights")
        if weights is not None:
            weights = _path(f"{where}.weights", weights, base, "trained.pt")
            if not weights.is_file():
                raise _fail(f"{where}.weights", f"{weights} does not exist", "give the path of a state_dict file")
        shape = entry.get("input_shape")
        if shape is not None:
            shape = _int_list(f"{where}.input_shape", shape, 1)
            if len(shape) < 2:
                raise _fail(f"{where}.input_shape", "needs at least a batch and a feature axis", "e.g. [1, 3, 32, 32]")
        name = _plain_name(f"{where}.name", entry.get("name") or spec.split(":")[-1])
        models.append(ModelEntry(name, spec, weights, shape))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise _fail(f"{source}: models", "two models share a name", "give each [[models]] its own name = ...")

    variants = _str_list(f"{source}: variants", doc.get("variants", ["fp32"]), '["fp32", "prune-ch:0.5"]')
    targets = _str_list(f"{source}: targets", doc.get("targets", ["local"]), '["local", "pi"]')
    if len(set(targets)) != len(targets):
        raise _fail(f"{source}: targets", "a target is listed twice", "list each target once")

    data_doc = doc.get("data", {})
    if not isinstance(data_doc, dict):
        raise _fail(f"{source}: data", "must be a table", 'write [data] then path = "my.npz"')
    _unknown(f"{source}: [data]", data_doc, {"path"})
    data = None
    if data_doc.get("path") is not None:
        data = _path(f"{source}: data.path", data_doc["path"], base, "my_data.npz")
        if not data.is_file():
            raise _fail(f"{source}: data.path", f"{data} does not exist", "give an .npz with arrays x and y")

    measure = doc.get("measure", {})
    if not isinstance(measure, dict):
        raise _fail(f"{source}: measure", "must be a table", "write [measure] then processes = 5")
    _unknown(f"{source}: [measure]", measure, _MEASURE_KEYS)
    for key, (_, kind, minimum, example) in _MEASURE_FIELDS.items():
        if key in measure:
            _number(f"{source}: measure.{key}", measure[key], kind, minimum, example)
    if "cpu" in measure:
        measure = {**measure, "cpu": _int_list(f"{source}: measure.cpu", measure["cpu"], 0)}
    batch_sizes = _int_list(f"{source}: measure.batch_sizes", measure.get("batch_sizes", [1]), 1)
    raw_threads = measure.get("threads", [0])
    up_to_cores = raw_threads == "cores"
    threads = (1,) if up_to_cores else tuple(
        t or None for t in _int_list(f"{source}: measure.threads (a list, or \"cores\" for 1 up to each target's "
                                     "core count)", raw_threads, 0))
    streams = parse_streams(measure["streams"], f"{source}: measure.streams: ") if "streams" in measure else (None,)
    build = doc.get("build", {})
    if not isinstance(build, dict):
        raise _fail(f"{source}: build", "must be a table", 'write [build] then int8_select_on = "build"')
    _unknown(f"{source}: [build]", build, _BUILD_KEYS)
    select_on = build.get("int8_select_on", "build")
    if select_on != "build" and select_on not in targets:
        raise _fail(f"{source}: build.int8_select_on", f"{select_on!r} is not one of the targets",
                    f"use \"build\" or one of {', '.join(targets)}")
    tolerance = build.get("int8_tolerance", 1.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise _fail(f"{source}: build.int8_tolerance", "must be a number of accuracy points >= 0", "e.g. 1.0")
    forms = build.get("int8_forms", "chosen")
    if forms not in INT8_FORMS_CHOICES:
        raise _fail(f"{source}: build.int8_forms", f"{forms!r} is not one of {', '.join(INT8_FORMS_CHOICES)}",
                    '"all" builds and measures every INT8 form of each plain +int8 variant')
    inputs = _inputs(f"{source}: measure.inputs", measure.get("inputs", {}), base)
    where = f"{source}: measure.providers"
    providers = parse_providers(_str_list(where, measure["providers"], '["openvino:device_type=CPU"]'), where) if "providers" in measure else ()
    name = _plain_name(f"{source}: name", doc.get("name", "experiment"))
    out = _path(f"{source}: out", doc["out"], base, "results/mine") if "out" in doc else Path(f"results/{name}")
    experiment = Experiment(
        name=str(name), out=out if out.is_absolute() else (base / out), models=tuple(models),
        variants=variants, targets=targets, data=data, batch_sizes=batch_sizes, threads=threads,
        streams=streams,
        measure={k: v for k, v in measure.items()
                 if k not in ("batch_sizes", "threads", "streams", "inputs", "providers")},
        inputs=inputs, providers=providers,
        int8_select_on=str(select_on), int8_tolerance=float(tolerance), int8_forms=str(forms),
        threads_up_to_cores=up_to_cores,
    )
    try:
        experiment.run_specs()
    except EdgebenchError as exc:
        raise _fail(f"{source}: [measure]", str(exc).replace("--", "").replace("-", "_"), "fix the value") from None
    return experiment


def load_experiment(path: Path | None) -> Experiment:
    """The experiment in `path`, or the built-in default (its out folder is relative to the cwd)."""
    if path is None:
        return parse_experiment(tomllib.loads(DEFAULT_TOML), Path.cwd(), "built-in default")
    path = Path(path)
    if not path.is_file():
        raise EdgebenchError(f"{path}: no such experiment file; `edgebench run --print-default > {path}` "
                             "writes one to start from")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgebenchError(f"{path}: not valid TOML ({exc}); fix the line it names") from None
    return parse_experiment(doc, path.parent.resolve(), str(path))
