"""Result files of a run: summary.csv, samples.csv, machine.json, pyperf.json (and a resume journal).

Column sets are defined once, by the dataclasses below; the writers and readers take them from there
so the CSV header cannot drift from the code. Every write is durable as soon as it returns: appended
rows are flushed and fsynced, rewritten files are replaced atomically.

Format history (schema_version):
  1 - first version (edgebench 0.1).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from targets.cpu import features_text
from harness.measurement import Measurement

SCHEMA_VERSION = 1

SUMMARY_CSV = "summary.csv"
SAMPLES_CSV = "samples.csv"
MACHINE_JSON = "machine.json"
PYPERF_JSON = "pyperf.json"
JOURNAL = "processes.jsonl"


@dataclass(frozen=True)
class SummaryRow:
    """One row of summary.csv: one (variant, target, batch size, thread count). Order = column order."""

    schema_version: int
    run_id: str
    timestamp_utc: str
    target: str
    hostname: str | None
    arch: str | None
    cpu_model: str | None
    onnxruntime_version: str | None
    model: str
    variant: str
    artifact_sha256: str
    batch_size: int
    threads: int | None
    n_processes: int
    n_samples: int
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p95: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_mean: float | None = None
    latency_ms_std: float | None = None
    latency_ms_min: float | None = None
    latency_ms_ci95_low: float | None = None
    latency_ms_ci95_high: float | None = None
    throughput_ips: float | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    peak_rss_mb: float | None = None
    session_rss_mb: float | None = None
    model_bytes: int | None = None
    model_zip_bytes: int | None = None
    params: int | None = None
    nonzero_params: int | None = None
    macs: int | None = None
    accuracy: float | None = None
    precision_macro: float | None = None
    recall_macro: float | None = None
    f1_macro: float | None = None
    gmean: float | None = None
    temp_c_start: float | None = None
    temp_c_end: float | None = None
    throttled: bool | None = None
    load_avg_1m: float | None = None
    status: str = "ok"
    error: str | None = None
    # beyond the contract's minimum
    latency_ms_max: float | None = None
    latency_ms_mad: float | None = None
    n_outliers: int | None = None
    process_median_spread: float | None = None
    model_path: str = ""
    settings_hash: str = ""
    warnings: str = ""
    # INT8 on the target's CPU: which form the file is, what the build machine scored on the same data,
    # where `accuracy` was measured (target or build machine), and the CPU features that decide the kernels
    int8_form: str | None = None
    build_accuracy: float | None = None
    accuracy_where: str | None = None
    cpu_features: str | None = None
    inputs: str = ""  # what each input was fed: name:dtype[shape]:source(=value); sources data, constant, random
    # execution providers nodes ran on (`;`-separated, priority order), and the nodes that fell back from the
    # first one asked (after onnxruntime's graph optimizations; blank when only CPU was asked)
    providers: str = ""
    provider_fallback_nodes: int | None = None
    provider_fallback_ops: str = ""


@dataclass(frozen=True)
class SampleRow:
    """One row of samples.csv: one timed inference."""

    schema_version: int
    run_id: str
    target: str
    variant: str
    batch_size: int
    threads: int | None
    process_index: int
    iteration: int
    latency_ms: float


SUMMARY_COLUMNS = tuple(f.name for f in fields(SummaryRow))
SAMPLE_COLUMNS = tuple(f.name for f in fields(SampleRow))


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid() % 10000:04d}"


# ---------------------------------------------------------------- building rows


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def _median(values: Iterable[float | None]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    return vals[len(vals) // 2] if vals else None


def summary_row(m: Measurement, warnings: Iterable[str] = ()) -> SummaryRow:
    """Derive the summary row of a measurement from its raw samples."""
    machine = m.machine
    ok = m.ok_processes
    s = m.summary()
    measured = m.quality()
    quality = measured or {k: m.model_facts.get(k) for k in ("accuracy", "precision_macro", "recall_macro",
                                                             "f1_macro", "gmean")}
    failed = [p for p in m.processes if not p.ok]
    status, error = m.status, m.error
    if status == "ok" and failed:
        status, error = failed[0].status, failed[0].error
    starts = [p.telemetry_start for p in m.processes if p.telemetry_start]
    ends = [p.telemetry_end for p in m.processes if p.telemetry_end]
    loads = [t.get("load_avg_1m") for t in starts if t.get("load_avg_1m") is not None]
    facts = m.model_facts
    return SummaryRow(
        schema_version=SCHEMA_VERSION,
        run_id=m.run_id,
        timestamp_utc=m.timestamp_utc or utc_now(),
        target=m.target,
        hostname=machine.get("hostname"),
        arch=machine.get("arch"),
        cpu_model=machine.get("cpu_model"),
        onnxruntime_version=machine.get("onnxruntime"),
        model=m.model,
        variant=m.variant,
        artifact_sha256=m.artifact_sha256,
        batch_size=m.batch_size,
        threads=m.spec.threads,
        n_processes=len(ok),
        n_samples=s.n if s else 0,
        latency_ms_median=_round(s.median) if s else None,
        latency_ms_p90=_round(s.p90) if s else None,
        latency_ms_p95=_round(s.p95) if s else None,
        latency_ms_p99=_round(s.p99) if s else None,
        latency_ms_mean=_round(s.mean) if s else None,
        latency_ms_std=_round(s.std) if s else None,
        latency_ms_min=_round(s.min) if s else None,
        latency_ms_ci95_low=_round(s.ci95_low) if s else None,
        latency_ms_ci95_high=_round(s.ci95_high) if s else None,
        throughput_ips=_round(_median(p.throughput_ips for p in ok), 3),
        init_ms=_round(_median(p.init_ms for p in ok), 3),
        first_inference_ms=_round(_median(p.first_inference_ms for p in ok), 3),
        peak_rss_mb=_round(max((p.peak_rss_mb for p in ok if p.peak_rss_mb is not None), default=None), 2),
        session_rss_mb=_round(_median(p.session_rss_mb for p in ok), 2),
        model_bytes=facts.get("model_bytes"),
        model_zip_bytes=facts.get("model_zip_bytes"),
        params=facts.get("params"),
        nonzero_params=facts.get("nonzero_params"),
        macs=facts.get("macs"),
        accuracy=_round(quality.get("accuracy")),
        precision_macro=_round(quality.get("precision_macro")),
        recall_macro=_round(quality.get("recall_macro")),
        f1_macro=_round(quality.get("f1_macro")),
        gmean=_round(quality.get("gmean")),
        temp_c_start=starts[0].get("temp_c") if starts else None,
        temp_c_end=ends[-1].get("temp_c") if ends else None,
        throttled=any(p.throttled for p in m.processes) if any(t.get("throttle") for t in ends) else None,
        load_avg_1m=_round(max(loads), 2) if loads else None,
        status=status,
        error=error,
        latency_ms_max=_round(s.max) if s else None,
        latency_ms_mad=_round(s.mad) if s else None,
        n_outliers=s.outliers if s else None,
        process_median_spread=_round(s.group_spread, 4) if s else None,
        model_path=m.model_path,
        settings_hash=m.spec.settings_hash(),
        warnings=" | ".join(warnings),
        int8_form=facts.get("int8_form"),
        build_accuracy=_round(facts.get("accuracy")),
        accuracy_where=("target" if measured else "build machine") if quality.get("accuracy") is not None else None,
        cpu_features=features_text(machine.get("cpu_features")) if machine else None,
        inputs=m.inputs_fed,
        providers=m.providers_used,
        provider_fallback_nodes=m.fallback[0],
        provider_fallback_ops=m.fallback[1],
    )


def sample_rows(m: Measurement) -> Iterator[tuple]:
    """samples.csv rows as tuples in SAMPLE_COLUMNS order (one per timed call: no per-row objects)."""
    for p in m.ok_processes:
        head = (SCHEMA_VERSION, m.run_id, m.target, m.variant, m.batch_size, m.spec.threads, p.index)
        for i, value in enumerate(p.latencies_ms):
            yield head + (i, round(value, 6))


# ---------------------------------------------------------------- durable file writes


def _cell(value: Any) -> Any:
    """Spreadsheet rules: empty cell for "not measured", plain numbers, no Python reprs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def _fsync_append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file so a reader (or a crash) sees the old version or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_csv(path: Path, columns: tuple[str, ...], rows: Iterable[Any]) -> None:
    """Append rows (dataclasses, or tuples in column order); header first when the file is new.

    A file with another header is refused rather than appended to (it belongs to another schema).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writerow(columns)
    else:
        with open(path, encoding="utf-8", newline="") as f:
            header = tuple(next(csv.reader(f), ()))
        if header != columns:
            raise EdgebenchError(
                f"{path} has other columns than this edgebench writes (an older or newer schema); "
                "write to a new folder with --out"
            )
    for row in rows:
        values = [getattr(row, c) for c in columns] if dataclasses.is_dataclass(row) else row
        writer.writerow([_cell(v) for v in values])
    _fsync_append(path, buf.getvalue())


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows as dicts of strings; checks the schema version so a newer file is refused, not misread."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:1]:
        version = int(row.get("schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise EdgebenchError(
                f"{path} has schema_version {version}, newer than this edgebench reads ({SCHEMA_VERSION}); "
                "upgrade edgebench"
            )
    return rows


def read_journal(folder: Path) -> Iterator[dict[str, Any]]:
    """The records of a run folder's processes.jsonl (none when it has none), in the order written."""
    path = Path(folder) / JOURNAL
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash: that process simply counts as not measured


# ---------------------------------------------------------------- pyperf


def pyperf_suite(measurements: Iterable[Measurement]) -> Any:
    """The latency samples as a pyperf BenchmarkSuite (one benchmark per variant and target).

    Each runner process becomes one pyperf Run, so `python -m pyperf stats` sees the process
    structure the same way it sees pyperf's own worker processes.
    """
    import pyperf

    benchmarks = []
    for m in measurements:
        runs = []
        for p in m.ok_processes:
            metadata = {"name": pyperf_name(m), "unit": "second", "loops": 1}
            warmups = [(1, v / 1e3) for v in p.warmup_ms if v > 0] or None
            values = [v / 1e3 for v in p.latencies_ms if v > 0]
            if values:
                runs.append(pyperf.Run(values, warmups=warmups, metadata=metadata, collect_metadata=False))
        if runs:
            bench = pyperf.Benchmark(runs)
            metadata = {"description": f"{m.model} {m.variant} on {m.target}",
                        "hostname": m.machine.get("hostname"), "cpu_model_name": m.machine.get("cpu_model")}
            bench.update_metadata({k: str(v) for k, v in metadata.items() if v})  # pyperf refuses empty values
            benchmarks.append(bench)
    return pyperf.BenchmarkSuite(benchmarks) if benchmarks else None


def pyperf_name(m: Measurement) -> str:
    parts = [m.variant]
    if m.target != "local":
        parts.append(f"@{m.target}")
    if m.batch_size != 1:
        parts.append(f"b{m.batch_size}")
    if m.spec.threads:
        parts.append(f"t{m.spec.threads}")
    return " ".join(parts)


def write_pyperf(path: Path, measurements: Iterable[Measurement], previous: Iterable[Any] = ()) -> None:
    """Rewrite pyperf.json; benchmarks of an earlier (resumed) invocation are kept unless re-measured."""
    import pyperf

    suite = pyperf_suite(measurements)
    names = set(suite.get_benchmark_names()) if suite else set()
    kept = [b for b in previous if b.get_name() not in names]
    if suite is None and not kept:
        return
    if suite is None:
        suite = pyperf.BenchmarkSuite(kept)
    else:
        for bench in kept:
            suite.add_benchmark(bench)
    buf = io.StringIO()
    suite.dump(buf, compact=True)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------- the writer of one run folder


class ResultsWriter:
    """Writes a run folder as measurements complete. Thread-safe: several targets report at once."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._measurements: list[Measurement] = []
        self._machines: dict[str, Any] = {}
        machine_path = self.out_dir / MACHINE_JSON
        if machine_path.exists():
            self._machines = json.loads(machine_path.read_text(encoding="utf-8")).get("targets", {})
        self._previous_pyperf: list[Any] = []
        pyperf_path = self.out_dir / PYPERF_JSON
        if pyperf_path.exists():
            import pyperf

            self._previous_pyperf = list(pyperf.BenchmarkSuite.load(str(pyperf_path)))

    def journal(self, record: dict[str, Any]) -> None:
        """Keep one finished runner process, so an interrupted run loses nothing it measured."""
        with self._lock:
            _fsync_append(self.out_dir / JOURNAL, json.dumps(record) + "\n")

    def add(self, m: Measurement, warnings: Iterable[str] = ()) -> SummaryRow:
        row = summary_row(m, warnings)
        with self._lock:
            append_csv(self.out_dir / SAMPLES_CSV, SAMPLE_COLUMNS, sample_rows(m))
            append_csv(self.out_dir / SUMMARY_CSV, SUMMARY_COLUMNS, [row])
            if m.machine:
                self._machines[m.target] = {**m.machine, "target": m.target}
                atomic_write_text(
                    self.out_dir / MACHINE_JSON,
                    json.dumps({"schema_version": SCHEMA_VERSION, "targets": self._machines}, indent=2) + "\n",
                )
            self._measurements.append(m)
            write_pyperf(self.out_dir / PYPERF_JSON, self._measurements, self._previous_pyperf)
        return row
