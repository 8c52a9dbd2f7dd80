"""Which INT8 form ships: accuracy measured on a CPU first, then speed; and what a lost point means.

Why there is a choice at all: onnxruntime's U8S8 kernels on an x86 CPU without VNNI (AVX2, or
AVX-512BW without VNNI) multiply u8 x s8 pairs into 16-bit sums that saturate. Measured on the
default model (zoo:resnet, digits 32x32): U8S8 scored 98.3% on a VNNI CPU and 78.3% under an emulated
Haswell (QEMU -cpu Haswell: AVX2, no VNNI); the same calibration with ``reduce_range`` (7-bit weights)
scored 98.1% there and S8S8 97.8%. On the VNNI CPU reduce_range ran at U8S8's speed (0.32 ms both)
and S8S8 at 0.87 ms. So a static ``+int8`` build tries every form in FORMS, measures each file's
accuracy on the validation split (disjoint from the calibration images) on the chosen machine, and
ships the fastest form within ``tolerance`` points of the float model; latencies within TIE of the
fastest count as equal, and among equals the form listed first in FORMS wins (reduce: it holds on
every x86 CPU, so a file built on a VNNI desktop does not lose accuracy on a laptop without VNNI).

The measuring happens on the build machine by default (``BuildMachine``) or on a target
(``OnTarget``: the standalone runner, e.g. on the board the file is for, or on this machine under
an emulated CPU). Module-level imports stay light: export/variants.py imports FORMS to parse specs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from targets.cpu import describe_cpu, u8s8_may_saturate
from targets.errors import EdgebenchError


@dataclass(frozen=True)
class Int8Form:
    """One way to store a static INT8 model: the activation / weight types and the weight range."""

    name: str
    activation_type: str  # uint8 | int8
    weight_type: str  # int8
    reduce_range: bool
    about: str


FORMS = {f.name: f for f in (  # order = preference among equally fast, equally accurate forms
    Int8Form("reduce", "uint8", "int8", True,
             "U8 activations, S8 weights in 7 bits (reduce_range): the U8S8 kernels without their saturation"),
    Int8Form("u8s8", "uint8", "int8", False,
             "U8 activations, S8 weights: full 8-bit weights; on x86 without VNNI the 16-bit sums can saturate"),
    Int8Form("s8s8", "int8", "int8", False,
             "S8 activations and weights: no saturation; measured 2.7x slower than U8S8 on x86 here"),
)}
AUTO = "auto"
DEFAULT_TOLERANCE = 1.0  # accuracy points below the float model that a shipped form may lose
TIE = 0.05  # latencies within 5% of the fastest are equal: the quick timing below is not finer than that


def points(value: float) -> str:
    """``1 point``, ``1.5 points``: accuracy points as words."""
    return f"{value:g} point" + ("" if value == 1 else "s")


def check_form(name: str) -> str:
    """``auto`` or a name in FORMS; else an error listing them."""
    if name != AUTO and name not in FORMS:
        raise EdgebenchError(f"unknown INT8 form {name!r}; use auto or one of {', '.join(FORMS)}")
    return name


# ---------------------------------------------------------------- where accuracy and speed are measured


def build_machine() -> dict[str, Any]:
    """This machine's facts, read by the same code the runner uses on a target."""
    from targets import runner

    return runner.machine_info()


class Evaluator(Protocol):
    """Measures candidate files somewhere: their accuracy on labelled data and a quick latency each."""

    where: str

    def machine(self) -> dict[str, Any]: ...

    def accuracy(self, paths: dict[str, Path], x: np.ndarray, y: np.ndarray) -> dict[str, float]: ...

    def latency_ms(self, paths: dict[str, Path], x1: np.ndarray) -> dict[str, float | None]: ...


class BuildMachine:
    """In this process, on this machine."""

    where = "the build machine"

    def machine(self) -> dict[str, Any]:
        return build_machine()

    def accuracy(self, paths: dict[str, Path], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        from export.evaluate import evaluate_onnx

        n = int(y.max()) + 1 if len(y) else 1
        return {k: evaluate_onnx(p, x, y, n)["accuracy"] for k, p in paths.items()}

    def latency_ms(self, paths: dict[str, Path], x1: np.ndarray) -> dict[str, float | None]:
        from export.onnx_export import interleaved_latency

        medians, _ = interleaved_latency(list(paths.values()), x1[:1], rounds=5, block=30, drop=3)
        return {k: m * 1e3 for k, m in zip(paths, medians)}


class OnTarget:
    """On a target (opened by the caller), through the standalone runner: the board the file is for,
    or this machine under another interpreter (``--python``: another onnxruntime, an emulated CPU)."""

    def __init__(self, target: Any, timeout_s: float = 900.0) -> None:
        self.target, self.timeout_s = target, timeout_s
        self.where = f"target {target.name}"
        self._machine: dict[str, Any] | None = None

    def _run(self, spec: dict[str, Any], what: str) -> dict[str, Any]:
        doc = self.target.run({"intra_op_threads": 1, **spec}, timeout=self.timeout_s)
        if doc.get("status") != "ok":
            raise EdgebenchError(f"choosing the INT8 form on {self.target.name}: {what} failed: {doc.get('error')}")
        if self._machine is None:
            self._machine = doc.get("machine") or {}
        return doc

    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._run({"mode": "probe"}, "the probe")
        return self._machine or {}

    def accuracy(self, paths: dict[str, Path], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        from export.data import write_npz
        from export.metrics import classification_metrics

        with tempfile.TemporaryDirectory() as tmp:
            data = write_npz(Path(tmp) / "val.npz", x, y)
            doc = self._run({"mode": "evaluate", "files": {"data": str(data), **{k: str(p) for k, p in paths.items()}},
                             "models": list(paths)}, "measuring accuracy")
        return {k: classification_metrics(doc["accuracy"][k]["confusion"])["accuracy"] for k in paths}

    def latency_ms(self, paths: dict[str, Path], x1: np.ndarray) -> dict[str, float | None]:
        # a quick tie check, not a benchmark: 4 blocks of 10 calls each (the forms differ 2.7x or not at all)
        doc = self._run({"mode": "paired", "files": {k: str(p) for k, p in paths.items()}, "models": list(paths),
                         "block_size": 10, "drop_per_block": 2, "n_blocks": 4, "max_time_s": 60.0},
                        "timing the forms")
        return {k: float(np.median(np.concatenate(doc["blocks_ns"][k]))) / 1e6 for k in paths}


# ---------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Candidate:
    form: str
    accuracy: float
    latency_ms: float | None


def choose(float_accuracy: float, candidates: list[Candidate], tolerance: float) -> tuple[Candidate, str]:
    """The form to ship and why: the fastest within ``tolerance`` points of the float model (pure)."""
    floor = float_accuracy - tolerance / 100.0
    within = [c for c in candidates if c.accuracy >= floor - 1e-12]
    order = list(FORMS)
    if not within:
        best = max(candidates, key=lambda c: (c.accuracy, -order.index(c.form)))
        return best, (f"no form stayed within {points(tolerance)} of the float model ({float_accuracy:.2%}); "
                      f"shipped the most accurate, {best.form} ({(best.accuracy - float_accuracy) * 100:+.1f} points)")
    timed = [c.latency_ms for c in within if c.latency_ms is not None]
    fastest = min(timed) if timed else None
    equal = [c for c in within if fastest is None or c.latency_ms is None or c.latency_ms <= fastest * (1 + TIE)]
    chosen = min(equal, key=lambda c: order.index(c.form))
    others = [c.form for c in equal if c is not chosen]
    why = f"{chosen.form}: within {points(tolerance)} of the float model ({float_accuracy:.2%})"
    why += " and the fastest" if not others else (f"; as fast as {', '.join(others)} (within {TIE:.0%}), and "
                                                   f"listed first among equals: it holds on every x86 CPU")
    dropped = [c.form for c in candidates if c not in within]
    if dropped:
        why += f"; {', '.join(dropped)} lost more than {points(tolerance)} here"
    return chosen, why


def build_static(float_path: Path, out: Path, calib_x: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
                 form: str, tolerance: float, calibration: str, per_channel: bool,
                 evaluator: Evaluator, keep_float: tuple[str, ...] = ()) -> dict:
    """Quantize ``float_path`` in every candidate form (or the pinned one), measure them with ``evaluator``
    on the validation split, copy the chosen file to ``out`` and return the quantization record.

    The float model's accuracy, the yardstick, is measured here: float kernels agree across CPUs (the
    default model scored the same on the VNNI machine and the emulated Haswell, to the image), and on a
    slow or emulated target the float file is the slowest to evaluate."""
    import shutil
    import time

    from export.quantize import quantize_static_int8

    names = list(FORMS) if form == AUTO else [check_form(form)]
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, Path] = {}
        records: dict[str, dict] = {}
        shared = Path(tmp) / "shared"
        shared.mkdir()
        for name in names:
            files[name] = Path(tmp) / f"{name}.onnx"
            records[name] = quantize_static_int8(float_path, files[name], calib_x, form=FORMS[name],
                                                 calibration=calibration, per_channel=per_channel,
                                                 keep_float=keep_float, shared=shared)
        t0 = time.perf_counter()
        float_accuracy = BuildMachine().accuracy({"float": Path(float_path)}, x_val, y_val)["float"]
        acc = evaluator.accuracy(files, x_val, y_val)
        lat = evaluator.latency_ms(files, x_val) if len(names) > 1 else {k: None for k in files}
        candidates = [Candidate(n, acc[n], lat[n]) for n in names]
        chosen, why = choose(float_accuracy, candidates, tolerance)
        shutil.copyfile(files[chosen.form], out)
    machine = evaluator.machine()
    record = dict(records[chosen.form])
    record["seconds"] = round(sum(r["seconds"] for r in records.values()), 3)
    record["selection"] = {
        "form_asked": form, "where": evaluator.where, "tolerance_points": tolerance, "split": "validation",
        "n_samples": int(len(y_val)), "float_accuracy": float_accuracy, "float_accuracy_where": "the build machine",
        "candidates": [{"form": c.form, "accuracy": c.accuracy, "latency_ms": c.latency_ms,
                        "accuracy_change_points": round((c.accuracy - float_accuracy) * 100, 3)} for c in candidates],
        "chosen": chosen.form, "reason": why, "seconds": round(time.perf_counter() - t0, 3),
        "machine": {k: machine.get(k) for k in ("hostname", "arch", "cpu_model", "cpu_features", "cpu_features_source",
                                                "onnxruntime")},
    }
    return record


# ---------------------------------------------------------------- what a lost point means


def build_warning(selection: dict) -> str | None:
    """What to say when the shipped form lost more than the tolerance where the forms were measured:
    every form tried lost it (the model is sensitive to INT8), or a pinned form did."""
    tolerance = selection["tolerance_points"]
    chosen = next(c for c in selection["candidates"] if c["form"] == selection["chosen"])
    if chosen["accuracy_change_points"] >= -tolerance:
        return None
    where = selection["where"]
    machine = selection.get("machine") or {}
    if len(selection["candidates"]) > 1:
        tried = ", ".join(f"{c['form']} {c['accuracy_change_points']:+.1f}" for c in selection["candidates"])
        return (f"INT8 loses {-chosen['accuracy_change_points']:.1f} points against the float model in every form "
                f"tried on {where} ({tried}): the loss is the model's, not one CPU's kernels; try another "
                f"calibration (--calibration entropy or percentile), more typical calibration data (--data), "
                f"keeping the first and last layers in float (--int8-keep-float first,last), "
                f"or ship this variant in float")
    saturates = chosen["form"] == "u8s8" and u8s8_may_saturate(machine.get("arch"), machine.get("cpu_features"))
    return (f"the pinned INT8 form {chosen['form']} loses {-chosen['accuracy_change_points']:.1f} points against the "
            f"float model on {where}" + (f" ({describe_cpu(machine)}: U8S8 sums can saturate)" if saturates else "")
            + "; let the build try every form (plain +int8) or pin another (" + ", ".join(
                f"+int8:{f}" for f in FORMS if f != chosen["form"]) + ")")



def target_accuracy_warning(facts: dict[str, Any], accuracy: float | None, machine: dict[str, Any],
                            target: str, same_data: bool) -> str | None:
    """A warning when ``target`` scores a built file on the build's own test data lower than the build machine
    did (``facts``: the artifact's manifest scalars), naming the likely cause and the remedy."""
    build = facts.get("accuracy")
    if accuracy is None or build is None or not same_data:
        return None
    tolerance = float(facts.get("int8_tolerance_points") or DEFAULT_TOLERANCE)
    drop = (float(build) - accuracy) * 100
    if drop <= tolerance:
        return None
    head = (f"accuracy {accuracy:.2%} here against {float(build):.2%} on the build machine, same file and data "
            f"({drop:.1f} points lower)")
    form = facts.get("int8_form")
    if not form:
        return (f"{head}: the float kernels differ ({describe_cpu(machine)}; onnxruntime {machine.get('onnxruntime')} "
                f"here, {facts.get('build_onnxruntime') or 'unknown'} on the build machine); compare the versions")
    saturates = form == "u8s8" and u8s8_may_saturate(machine.get("arch"), machine.get("cpu_features"))
    base = str(facts.get("variant") or "fp32").split("+")[0]
    other = "reduce" if form != "reduce" else "s8s8"
    return (f"{head}: the likely cause is this CPU's integer kernels ({describe_cpu(machine)})"
            + (", where U8S8 sums can saturate" if saturates else "")
            + f", not the model; ship another INT8 form (edgebench compress ... --variants {base}+int8:{other}) "
            f"or let this CPU choose (edgebench compress ... --int8-select-on {target})")
