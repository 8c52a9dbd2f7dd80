"""Values for a model's inputs, and what was fed: `--input NAME=VALUE`, `--data`, and the `inputs` column.

The runner decides each input's value (targets/runner.py, `prepare_inputs`): an --input value, else
the data file's array named after the input, else random values for float tensors only. This module
turns flags and experiment entries into the runner spec's part about inputs, gives them an identity
for resume (a .npy file by its content, not its name), and turns the runner's report of what it fed
back into one summary.csv cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from targets.errors import EdgebenchError

VALUE_HELP = "a number (16000), true/false, random, or a .npy file"


@dataclass(frozen=True)
class InputValue:
    """One input's value: a number (a scalar, or a tensor filled with it), a .npy array, or random values."""

    name: str
    number: int | float | bool | None = None
    path: Path | None = None
    sha256: str = ""
    random: bool = False

    def identity(self) -> list[Any]:
        """What makes two values the same measurement setting (the file's content, not its path)."""
        if self.random:
            return [self.name, "random"]
        if self.path is not None:
            return [self.name, "npy", self.sha256]
        return [self.name, "number", self.number]


def input_value(name: str, raw: Any, base: Path | None = None, where: str = "--input") -> InputValue:
    """Check one input value given as text (a flag) or as a TOML value; relative files are under `base`."""
    def fail(problem: str) -> EdgebenchError:
        return EdgebenchError(f"{where} {name}={raw}: {problem}; give {VALUE_HELP}")

    if not name:
        raise EdgebenchError(f"{where} {raw!r}: write NAME=VALUE, e.g. sr=16000 or state=zeros.npy")
    if isinstance(raw, (bool, int, float)):
        number: int | float | bool | None = raw
    elif not isinstance(raw, str) or not raw.strip():
        raise fail("not a value")
    else:
        text = raw.strip()
        if text.lower() == "random":
            return InputValue(name, random=True)
        number = _number(text)
        if number is None:
            return _npy_value(name, Path(text), base, fail)
    if isinstance(number, float) and not math.isfinite(number):
        raise fail("not a finite number")
    return InputValue(name, number=number)


def _number(text: str) -> int | float | bool | None:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def _npy_value(name: str, path: Path, base: Path | None, fail: Any) -> InputValue:
    import numpy as np

    from targets.stored import sha256_file

    if path.suffix != ".npy":
        raise fail("not a number, and not a .npy file")
    full = (base / path) if base is not None and not path.is_absolute() else path
    if not full.is_file():
        raise fail(f"no such file {full}")
    try:
        np.load(full, allow_pickle=False, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad file
        raise fail(f"{full} is not a .npy array ({type(exc).__name__})") from None
    return InputValue(name, path=full.resolve(), sha256=sha256_file(full))


def parse_inputs(texts: list[str], where: str = "--input") -> tuple[InputValue, ...]:
    """`NAME=VALUE` flags, each name once."""
    values = []
    for text in texts:
        name, sep, raw = text.partition("=")
        if not sep:
            raise EdgebenchError(f"{where} {text!r}: write NAME=VALUE, e.g. sr=16000 or state=zeros.npy")
        values.append(input_value(name.strip(), raw, where=where))
    return check_unique(values, where)


def check_unique(values: list[InputValue], where: str) -> tuple[InputValue, ...]:
    names = [v.name for v in values]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EdgebenchError(f"{where} {twice[0]} is given twice; give each input one value")
    return tuple(values)


def runner_inputs(values: tuple[InputValue, ...], data: Path | None, shapes: tuple[tuple[str, tuple[int, ...]], ...],
                  seed: int) -> dict[str, Any]:
    """The runner spec's part about inputs; .npy files travel in "files" like models, so SSH copies them."""
    files = {"data": str(data)} if data is not None else {}
    spec_values: dict[str, Any] = {}
    for v in values:
        if v.random:
            spec_values[v.name] = {"random": True}
        elif v.path is not None:
            key = f"value:{v.name}"
            files[key] = str(v.path)
            spec_values[v.name] = {"file": key}
        else:
            spec_values[v.name] = {"constant": v.number}
    return {"files": files, "values": spec_values, "shapes": {name: list(dims) for name, dims in shapes},
            "inputs": {"seed": seed}}


def describe_fed(report: list[dict[str, Any]]) -> str:
    """The runner's report of what it fed, as one cell: `sr:int64[]:constant=16000; x:float32[1x3x8x8]:data`."""
    parts = []
    for item in report:
        shape = "x".join(str(d) for d in item.get("shape") or [])
        source = str(item.get("source") or "random")
        if item.get("value") is not None:
            source += f"={item['value']}"
        parts.append(f"{item.get('name')}:{item.get('dtype') or item.get('type')}[{shape}]:{source}")
    return "; ".join(parts)


def check_data(data: Path, items: Sequence[Any], labels: bool = True) -> None:
    """Refuse a --data file before anything is measured: unreadable or non-finite arrays, labels that are not
    whole numbers >= 0, and (with `labels`) labels that do not fit a model: one per row of every array it is
    fed, each below its output width. `items` are BenchItems (their graph inputs and output width)."""
    from export.data import check_labels_fit, read_arrays

    arrays = read_arrays(data)
    if not labels:
        return
    for item in items:
        if not item.ok:
            continue
        fed = [n for n in item.inputs if n in arrays]
        if not fed and len(item.inputs) == 1 and "x" in arrays:
            fed = ["x"]  # a one-input model takes x whatever its input is called (the runner's rule)
        check_labels_fit(data, arrays, fed, item.classes, item.variant)
