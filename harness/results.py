"""The rows of a run's result files: summary.csv and samples.csv, derived from raw samples.

Column sets are defined once, by the dataclasses below; the exporters (harness/exporters.py) and the
readers take them from there so a CSV header cannot drift from the code.

Format history (schema_version of summary.csv, samples.csv, machine.json):
  1 - first version (edgebench 0.1). Columns added since keep version 1 (readers go by column name):
      samples.csv `model` and `settings_hash` (which measurement a sample belongs to, since two models
      may share a variant name and one model may be measured under several settings).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from targets.cpu import features_text
from targets.errors import EdgebenchError
from harness.measurement import Measurement
from harness.streams import streams_figures

SCHEMA_VERSION = 1

SUMMARY_CSV = "summary.csv"
SAMPLES_CSV = "samples.csv"


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
    # Concurrent streams (bench --streams; empty without): N streams calling back to back on the target.
    # throughput_ips above stays the single-stream figure (batch / mean latency of one sequential loop).
    streams: int | None = None  # N as run ("auto" resolved to the target's cores)
    stream_threads: int | None = None  # onnxruntime intra-op threads of each stream
    stream_sessions: str | None = None  # separate (a session per stream) or shared (one for all)
    throughput_ips_streams: float | None = None  # total items/s of the N streams: median over processes
    throughput_ips_streams_ci95_low: float | None = None  # bootstrap 95% CI over processes
    throughput_ips_streams_ci95_high: float | None = None
    stream_latency_ms_median: float | None = None  # one call as a stream saw it, with N streams busy
    stream_latency_ms_p90: float | None = None
    stream_latency_ms_p99: float | None = None
    # the machine's own speed: a fixed tiny call (256-float Relu) and a 128x128 MatMul timed before and after
    # the model in every process (median us), and the largest max/min of either across the measurement
    reference_call_us: float | None = None
    reference_compute_us: float | None = None
    reference_shift: float | None = None


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
    # beyond the contract: which measurement (a variant name alone is not unique in a folder)
    model: str = ""
    settings_hash: str = ""


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
    reference, shift = m.reference()
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
        threads=m.threads,
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
        settings_hash=m.settings_hash,
        warnings=" | ".join(warnings),
        int8_form=facts.get("int8_form"),
        build_accuracy=_round(facts.get("accuracy")),
        accuracy_where=("target" if measured else "build machine") if quality.get("accuracy") is not None else None,
        cpu_features=features_text(machine.get("cpu_features")) if machine else None,
        inputs=m.inputs_fed,
        providers=m.providers_used,
        provider_fallback_nodes=m.fallback[0],
        provider_fallback_ops=m.fallback[1],
        **streams_figures(ok),
        reference_call_us=_round(reference.get("call"), 3),
        reference_compute_us=_round(reference.get("compute"), 3),
        reference_shift=_round(shift, 3),
    )


def sample_rows(m: Measurement) -> Iterator[tuple]:
    """samples.csv rows as tuples in SAMPLE_COLUMNS order (one per timed call: no per-row objects)."""
    tail = (m.model, m.settings_hash)
    for p in m.ok_processes:
        head = (SCHEMA_VERSION, m.run_id, m.target, m.variant, m.batch_size, m.threads, p.index)
        for i, value in enumerate(p.latencies_ms):
            yield head + (i, round(value, 6)) + tail


# ---------------------------------------------------------------- reading


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows as dicts of strings; checks the schema version so a newer file is refused, not misread."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgebenchError(f"cannot read {path}: {exc}; give a file written by edgebench") from None
    for row in rows[:1]:
        try:
            version = int(row.get("schema_version") or 0)
        except ValueError:
            raise EdgebenchError(f"{path} is not a result file of edgebench (schema_version "
                                 f"{row.get('schema_version')!r})") from None
        if version > SCHEMA_VERSION:
            raise EdgebenchError(
                f"{path} has schema_version {version}, newer than this edgebench reads ({SCHEMA_VERSION}); "
                "upgrade edgebench"
            )
    return rows


def pyperf_name(m: Measurement) -> str:
    """The benchmark's name in pyperf.json: the variant, and the target, batch and threads when not default."""
    parts = [m.variant]
    if m.target != "local":
        parts.append(f"@{m.target}")
    if m.batch_size != 1:
        parts.append(f"b{m.batch_size}")
    if m.threads:
        parts.append(f"t{m.threads}")
    if m.settings.get("streams") is not None:
        parts.append(f"s{m.settings['streams']}")
    return " ".join(parts)
