"""Result files as pure functions of the journal: summary.csv, samples.csv, pyperf.json, machine.json.

Each exporter turns the closed measurements (harness/resume.py's fold of processes.jsonl) into the
bytes of one file, as hyperfine has one exporter per format and pyperf derives everything from its
immutable runs. Nothing edits a file: a file is rewritten whole (atomically) when its bytes change, which
is after a measurement closes. Each measurement's part of a file (its summary row, its sample lines, its
pyperf benchmark) is rendered once and kept, so a rewrite costs writing the bytes, not deriving them again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Protocol

from targets.fileio import csv_cell
from harness.resume import Closed
from harness.results import (SAMPLE_COLUMNS, SAMPLES_CSV, SCHEMA_VERSION, SUMMARY_COLUMNS, SUMMARY_CSV,
                             pyperf_name, sample_rows)

MACHINE_JSON = "machine.json"
PYPERF_JSON = "pyperf.json"


class Exporter(Protocol):
    """One result file: its name, and its bytes given every closed measurement (None: no file yet)."""

    filename: str

    def render(self, closed: Sequence[Closed]) -> bytes | None: ...


def _csv_lines(rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


class _PerMeasurement:
    """An exporter made of one part per measurement, each rendered once (keyed by its close's position)."""

    filename = ""

    def __init__(self) -> None:
        self._parts: dict[tuple[int, str], bytes] = {}

    def part(self, c: Closed, render: Callable[[Closed], bytes], tag: str = "") -> bytes:
        key = (c.seq, tag)
        if key not in self._parts:
            self._parts[key] = render(c)
        return self._parts[key]

    def forget_others(self, closed: Sequence[Closed]) -> None:
        """Drop the parts of measurement versions a later close replaced."""
        live = {c.seq for c in closed}
        self._parts = {k: v for k, v in self._parts.items() if k[0] in live}


class SummaryCsv(_PerMeasurement):
    filename = SUMMARY_CSV

    def render(self, closed: Sequence[Closed]) -> bytes | None:
        if not closed:
            return None
        self.forget_others(closed)
        rows = [self.part(c, lambda c: _csv_lines([[getattr(c.row, col) for col in SUMMARY_COLUMNS]]))
                for c in closed]
        return _csv_lines([SUMMARY_COLUMNS]) + b"".join(rows)


class SamplesCsv(_PerMeasurement):
    filename = SAMPLES_CSV

    def render(self, closed: Sequence[Closed]) -> bytes | None:
        if not closed:
            return None
        self.forget_others(closed)
        blocks = [self.part(c, lambda c: _csv_lines(list(sample_rows(c.measurement)))) for c in closed]
        return _csv_lines([SAMPLE_COLUMNS]) + b"".join(blocks)


def _pyperf_benchmark(c: Closed, name: str) -> bytes:
    """One measurement as a pyperf benchmark: each runner process is one pyperf Run (as pyperf's workers)."""
    import pyperf

    m = c.measurement
    runs = []
    for p in m.ok_processes:
        values = [v / 1e3 for v in p.latencies_ms if v > 0]
        if values:
            warmups = [(1, v / 1e3) for v in p.warmup_ms if v > 0] or None
            runs.append(pyperf.Run(values, warmups=warmups, collect_metadata=False,
                                   metadata={"name": name, "unit": "second", "loops": 1}))
    if not runs:
        return b""
    bench = pyperf.Benchmark(runs)
    metadata = {"description": f"{m.model} {m.variant} on {m.target}", "hostname": m.machine.get("hostname"),
                "cpu_model_name": m.machine.get("cpu_model")}
    bench.update_metadata({k: str(v) for k, v in metadata.items() if v})  # pyperf refuses empty values
    buf = io.StringIO()
    pyperf.BenchmarkSuite([bench]).dump(buf, compact=True)
    suite = json.loads(buf.getvalue())
    # a one-benchmark suite hoists the benchmark's metadata to the suite: put it back for a suite of many
    doc = suite["benchmarks"][0]
    doc["metadata"] = {**suite.get("metadata", {}), **doc.get("metadata", {})}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def pyperf_names(closed: Sequence[Closed]) -> list[str]:
    """Benchmark names, unique in the suite: the model, then the settings hash, are added only to tell
    apart measurements that share a name (pyperf would merge their runs)."""
    names = [pyperf_name(c.measurement) for c in closed]
    for extra in (lambda c: c.measurement.model, lambda c: c.key.settings_hash[:8]):
        clashing = {n for n in names if names.count(n) > 1}
        names = [f"{extra(c)} {n}" if n in clashing else n for n, c in zip(names, closed)]
    return names


class PyperfJson(_PerMeasurement):
    """A pyperf BenchmarkSuite file (`python -m pyperf stats|hist|compare_to` read it), format 1.0."""

    filename = PYPERF_JSON

    def render(self, closed: Sequence[Closed]) -> bytes | None:
        self.forget_others(closed)
        parts = [self.part(c, lambda c: _pyperf_benchmark(c, name), name)
                 for c, name in zip(closed, pyperf_names(closed))]
        parts = [p for p in parts if p]
        if not parts:
            return None
        return b'{"benchmarks":[' + b",".join(parts) + b'],"version":"1.0"}\n'


class MachineJson:
    """Per target, the machine its latest closed measurement ran on."""

    filename = MACHINE_JSON

    def render(self, closed: Sequence[Closed]) -> bytes | None:
        machines = {c.measurement.target: {**c.measurement.machine, "target": c.measurement.target}
                    for c in closed if c.measurement.machine}
        if not machines:
            return None
        doc = {"schema_version": SCHEMA_VERSION, "targets": machines}
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def exporters() -> list[Exporter]:
    """A fresh set of every result file's exporter (each keeps the parts it rendered)."""
    return [SummaryCsv(), SamplesCsv(), PyperfJson(), MachineJson()]
