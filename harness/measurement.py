"""The one measurement record: raw samples per process, from which every summary is derived."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from export.metrics import classification_metrics
from harness.inputs import InputValue, describe_fed, runner_inputs
from harness.providers import ProviderSpec, fallback_of, runner_providers, used_cell
from harness.stats import Summary, summarize
from targets.runner import DEFAULTS as RUNNER_DEFAULTS
from harness.streams import STREAM_SESSIONS
from targets.telemetry import measurement_throttled


def settings_hash(settings: dict[str, Any]) -> str:
    """A short stable id of measurement settings (what must match for resume to reuse a result)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    """How to measure: the same settings for every model and target of one run."""

    batch_size: int = 1
    threads: int | None = None  # onnxruntime intra-op threads; None = onnxruntime's default
    processes: int = 5
    # the timed loop's settings: the runner's own defaults (targets/runner.py DEFAULTS), one set for both
    warmup_iterations: int = RUNNER_DEFAULTS["warmup"]["min_iterations"]
    warmup_time_s: float = RUNNER_DEFAULTS["warmup"]["min_time_s"]
    min_iterations: int = RUNNER_DEFAULTS["min_iterations"]
    max_iterations: int = RUNNER_DEFAULTS["max_iterations"]
    min_time_s: float = RUNNER_DEFAULTS["min_time_s"]
    max_time_s: float = RUNNER_DEFAULTS["max_time_s"]
    timeout_s: float = 120.0
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    cpu_affinity: tuple[int, ...] = ()
    data: Path | None = None
    seed: int = 0
    inputs: tuple[InputValue, ...] = ()  # --input values; the rest come from `data`, or are random floats
    providers: tuple[ProviderSpec, ...] = ()  # execution providers in priority order; () = CPU only
    # Concurrent streams after the single-stream loop (None: none, today's measurement); "auto" = one per core
    streams: int | str | None = None
    stream_sessions: str = "separate"  # each stream its own session, or "shared": one session for all
    # Stop when the answer is known: with a precision, `processes` is the least, and fresh processes are
    # added until the median's 95% interval is within +-precision of it, or max_processes is reached.
    precision: float | None = None
    max_processes: int = 20

    @property
    def process_limit(self) -> int:
        """The most processes a measurement may take."""
        return max(self.processes, self.max_processes) if self.precision else self.processes

    def precise_enough(self, summary: Summary | None) -> bool:
        """Whether a measurement's interval already meets --precision (always, without one)."""
        if not self.precision:
            return True
        if summary is None or not summary.median > 0 or not math.isfinite(summary.ci95_high - summary.ci95_low):
            return False
        return (summary.ci95_high - summary.ci95_low) / 2 <= self.precision * summary.median

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, "--batch must be at least 1"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
            (self.processes >= 1, "--processes must be at least 1"),
            (self.min_iterations >= 1, "--min-iterations must be at least 1"),
            (self.max_iterations >= self.min_iterations, "--max-iterations must be at least --min-iterations"),
            (self.min_time_s >= 0, "--min-time must not be negative"),
            (self.max_time_s >= self.min_time_s, "--max-time must be at least --min-time"),
            (self.timeout_s > self.max_time_s, "--timeout must exceed --max-time (the runner also starts up)"),
            (self.seed >= 0, "--seed must be 0 or more (it seeds the random inputs)"),
            (self.stream_sessions in STREAM_SESSIONS, f"--stream-sessions must be one of {', '.join(STREAM_SESSIONS)}"),
            (self.precision is None or 0 < self.precision < 1,
             "--precision must be between 0 and 1 (0.01 asks for a median within about +-1%)"),
            (self.max_processes >= 1, "--max-processes must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgebenchError(message)

    def settings_key(self) -> dict[str, Any]:
        """What must match for an earlier measurement to count as the same one (resume)."""
        key = {
            "batch_size": self.batch_size,
            "threads": self.threads,
            "processes": self.processes,
            "min_time_s": self.min_time_s,
            "min_iterations": self.min_iterations,
            "max_iterations": self.max_iterations,
            "shapes": [list(s) for s in self.shapes],
            "cpu_affinity": list(self.cpu_affinity),
            "data": str(self.data) if self.data else None,
        }
        if self.inputs:  # only when given, so results measured before --input existed keep their hash
            key["inputs"] = [v.identity() for v in self.inputs]
        key.update(runner_providers(self.providers))  # likewise: CPU-only results keep their hash
        if self.streams is not None:  # likewise: single-stream results keep their hash
            key["streams"] = self.streams
            key["stream_sessions"] = self.stream_sessions
        if self.precision:  # likewise: a fixed process count keeps its hash
            key.update(precision=self.precision, max_processes=self.process_limit)
        return key

    def settings_hash(self) -> str:
        """A short stable id of settings_key(), stored in each summary row."""
        return settings_hash(self.settings_key())

    def runner_spec(self, model: Path, *, accuracy: bool = False, seed_offset: int = 0) -> dict[str, Any]:
        inputs = runner_inputs(self.inputs, self.data, self.shapes, self.seed + seed_offset)
        return {
            **inputs,
            **runner_providers(self.providers),
            "mode": "bench",
            "files": {"model": str(model), **inputs["files"]},
            "batch": self.batch_size,
            "intra_op_threads": self.threads,
            "inter_op_threads": 1,
            "cpu_affinity": list(self.cpu_affinity),
            "warmup": {"min_iterations": self.warmup_iterations, "min_time_s": self.warmup_time_s},
            "min_iterations": self.min_iterations,
            "min_time_s": self.min_time_s,
            "max_time_s": self.max_time_s,
            "max_iterations": self.max_iterations,
            "accuracy": accuracy and self.data is not None,
            "streams": self.streams,
            "stream_sessions": self.stream_sessions,
        }


@dataclass(frozen=True)
class ProcessRun:
    """One fresh runner process: its raw timings and what the machine looked like."""

    index: int
    status: str
    error: str | None = None
    latencies_ms: tuple[float, ...] = ()
    warmup_ms: tuple[float, ...] = ()
    init_ms: float | None = None
    first_inference_ms: float | None = None
    throughput_ips: float | None = None
    rss_before_session_mb: float | None = None
    session_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    telemetry_start: dict[str, Any] = field(default_factory=dict)
    telemetry_end: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] | None = None
    batch_size: int | None = None  # items per call as the runner ran them
    inputs: tuple[dict[str, Any], ...] = ()  # what the runner fed each input (name, dtype, shape, source, value)
    providers: tuple[str, ...] = ()  # the session's providers, in priority order
    placement: dict[str, Any] | None = None  # nodes per provider in a profiled call (when not CPU only)
    # the streams phase, when one was asked: N as run, threads per stream, every stream's call times
    streams: int | None = None
    stream_threads: int | None = None
    stream_sessions: str | None = None
    stream_latencies_ms: tuple[tuple[float, ...], ...] = ()
    throughput_ips_streams: float | None = None
    # the reference workloads' median call (ns) before and after the model's loops: {"call": .., "compute": ..}
    reference_before_ns: dict[str, float] = field(default_factory=dict)
    reference_after_ns: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_runner(cls, index: int, doc: dict[str, Any]) -> ProcessRun:
        ns = lambda key: tuple(v / 1e6 for v in doc.get(key) or ())  # noqa: E731
        return cls(
            index=index,
            status=str(doc.get("status", "crashed")),
            error=doc.get("error"),
            latencies_ms=ns("latencies_ns"),
            warmup_ms=ns("warmup_ns"),
            init_ms=doc.get("init_ms"),
            first_inference_ms=doc.get("first_inference_ms"),
            throughput_ips=doc.get("throughput_ips"),
            rss_before_session_mb=doc.get("rss_before_session_mb"),
            session_rss_mb=doc.get("rss_after_session_mb"),
            peak_rss_mb=doc.get("peak_rss_mb"),
            telemetry_start=doc.get("telemetry_start") or {},
            telemetry_end=doc.get("telemetry_end") or {},
            machine=doc.get("machine") or {},
            accuracy=doc.get("accuracy"),
            batch_size=doc.get("batch_size"),
            inputs=tuple(doc.get("inputs") or ()),
            providers=tuple(doc.get("providers") or ()),
            placement=doc.get("placement"),
            streams=doc.get("streams"),
            stream_threads=doc.get("stream_threads"),
            stream_sessions=doc.get("stream_sessions"),
            stream_latencies_ms=tuple(tuple(v / 1e6 for v in s) for s in doc.get("stream_latencies_ns") or ()),
            throughput_ips_streams=doc.get("throughput_ips_streams"),
            reference_before_ns=doc.get("reference_before_ns") or {},
            reference_after_ns=doc.get("reference_after_ns") or {},
        )

    def to_doc(self) -> dict[str, Any]:
        """The runner document this process was read from (from_runner's inverse: samples back in whole ns)."""
        ns = lambda values: [round(v * 1e6) for v in values]  # noqa: E731
        doc = {"status": self.status, "error": self.error, "latencies_ns": ns(self.latencies_ms),
               "warmup_ns": ns(self.warmup_ms), "init_ms": self.init_ms, "first_inference_ms": self.first_inference_ms,
               "throughput_ips": self.throughput_ips, "rss_before_session_mb": self.rss_before_session_mb,
               "rss_after_session_mb": self.session_rss_mb, "peak_rss_mb": self.peak_rss_mb,
               "telemetry_start": self.telemetry_start, "telemetry_end": self.telemetry_end, "machine": self.machine,
               "accuracy": self.accuracy, "batch_size": self.batch_size, "inputs": list(self.inputs),
               "streams": self.streams, "stream_threads": self.stream_threads, "stream_sessions": self.stream_sessions,
               "stream_latencies_ns": [ns(s) for s in self.stream_latencies_ms],
               "throughput_ips_streams": self.throughput_ips_streams, "providers": list(self.providers),
               "placement": self.placement, "reference_before_ns": self.reference_before_ns,
               "reference_after_ns": self.reference_after_ns}
        return {k: v for k, v in doc.items() if v not in (None, [], {})}

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def throttled(self) -> bool:
        """Throttled at either end of this process, or throttling began during it."""
        return measurement_throttled(self.telemetry_start, self.telemetry_end)


@dataclass(frozen=True)
class Measurement:
    """One model (variant) on one target with one setting: every process's raw samples."""

    run_id: str
    target: str
    model: str
    variant: str
    model_path: str
    settings: dict[str, Any]  # RunSpec.settings_key(): what was asked (threads, batch, ...)
    processes: tuple[ProcessRun, ...]
    artifact_sha256: str = ""
    model_facts: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    timestamp_utc: str = ""

    @property
    def ok_processes(self) -> tuple[ProcessRun, ...]:
        return tuple(p for p in self.processes if p.ok and p.latencies_ms)

    @property
    def machine(self) -> dict[str, Any]:
        for p in self.processes:
            if p.machine:
                return p.machine
        return {}

    @property
    def threads(self) -> int | None:
        return self.settings.get("threads")

    @property
    def requested_batch(self) -> int:
        """The --batch asked for (see batch_size for what was measured)."""
        return int(self.settings.get("batch_size") or 1)

    @property
    def settings_hash(self) -> str:
        return settings_hash(self.settings)

    @property
    def batch_size(self) -> int:
        """Items per call as measured: the runner's count, not the --batch asked (a --shape can fix it)."""
        return next((p.batch_size for p in self.ok_processes if p.batch_size), self.requested_batch)

    @property
    def inputs_fed(self) -> str:
        """What the runner fed each input, as one cell (empty when no process got that far)."""
        return next((describe_fed(list(p.inputs)) for p in self.processes if p.inputs), "")

    def _first_with_providers(self) -> ProcessRun | None:
        return next((p for p in self.processes if p.providers), None)

    @property
    def providers_used(self) -> str:
        """The providers nodes ran on, highest priority first, as one cell (`OpenVINOExecutionProvider;CPU...`)."""
        p = self._first_with_providers()
        return used_cell(p.providers, p.placement) if p else ""

    @property
    def placement(self) -> dict[str, Any] | None:
        p = self._first_with_providers()
        return p.placement if p else None

    @property
    def fallback(self) -> tuple[int | None, str]:
        """(nodes that fell back from the first provider asked, their op types); (None, "") when not read."""
        return fallback_of(self.placement)

    def reference(self) -> tuple[dict[str, float], float | None]:
        """The reference workloads over this measurement's processes: ({workload: median us}, shift), where
        shift is the largest max/min of one workload's timings (before and after, every process): how
        far the machine's own speed moved while the model was measured."""
        timings: dict[str, list[float]] = {}
        for p in self.ok_processes:
            for doc in (p.reference_before_ns, p.reference_after_ns):
                for name, ns in doc.items():
                    if ns:
                        timings.setdefault(name, []).append(ns / 1e3)
        medians = {name: sorted(v)[len(v) // 2] for name, v in timings.items()}
        shifts = [max(v) / min(v) for v in timings.values()]
        return medians, max(shifts) if shifts else None

    def summary(self) -> Summary | None:
        """The latency summary (its bootstrap interval costs ~1 s for 5 x 10,000 calls): computed once, as
        the scheduler's warnings and the summary row both read it."""
        if "_summary" not in self.__dict__:  # frozen: cache beside the fields, outside eq and repr
            runs = self.ok_processes
            self.__dict__["_summary"] = summarize([p.latencies_ms for p in runs]) if runs else None
        return self.__dict__["_summary"]

    def quality(self) -> dict[str, float] | None:
        """Accuracy and friends from the runner's confusion matrix (first process that counted one)."""
        for p in self.processes:
            if p.accuracy and p.accuracy.get("confusion"):
                return classification_metrics(p.accuracy["confusion"])
        return None
