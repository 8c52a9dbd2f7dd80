"""Measure models on targets: interleaved fresh processes, each result kept as soon as it exists.

Scheduling: every model gets `processes` fresh runner processes per target, in rounds; each round
visits the models in a new random order, so drift in load or temperature during the run spreads over
all models instead of favouring whichever ran last. Each finished process goes to the run folder's
journal at once; a model's measurement is closed (and its rows written) when its last process finishes.
What the journal already holds under a measurement's identity is reused: a closed ok measurement is
skipped, an interrupted or failed one continues from its ok processes. Several targets are measured in
parallel (one thread each), never two measurements at once on one target.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError, TargetError
from export.int8 import target_accuracy_warning
from harness.journal import Key
from harness.measurement import Measurement, ProcessRun, RunSpec
from harness.modelfile import check_model
from harness.providers import fallback_warning
from harness.results import SummaryRow, utc_now
from harness.runfolder import RunFolder
from harness.stats import reference_warning, stability_warnings, summarize
from targets.base import Target
from targets.runner import PERMANENT_STATUSES

# Statuses that will not change in another process: stop retrying that model (the runner's, and the
# harness's own check of the graph).
PERMANENT_FAILURES = PERMANENT_STATUSES | {"invalid_graph"}

Progress = Callable[[str], None]
# (target, process count, total or None, the line it would print): a runner process starts
Advance = Callable[[str, int, "int | None", str], None]


@dataclass(frozen=True)
class BenchItem:
    """One model to measure: an ONNX file, or an artifact folder (model.onnx + manifest.json)."""

    model: str
    variant: str
    path: Path
    sha256: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    inputs: tuple[str, ...] = ()  # the graph inputs the runner feeds
    classes: int | None = None  # scores per sample of the first output, when fixed

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _manifest(folder: Path) -> dict[str, Any]:
    """An artifact folder's manifest.json; EdgebenchError naming the file when it cannot be read."""
    path = folder / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgebenchError(f"{path} cannot be read ({exc}); build the artifact again with `edgebench compress`, "
                             "or remove the manifest to measure model.onnx as a plain file") from None
    if not isinstance(manifest, dict):
        raise EdgebenchError(f"{path} is not a manifest (a JSON object); build the artifact again with "
                             "`edgebench compress`")
    return manifest


def load_item(path: Path, name: str | None = None) -> BenchItem:
    """Check a model path before any target sees it; a bad one becomes an item with a status."""
    path = Path(path)
    manifest: dict[str, Any] = {}
    model_file = path
    if path.is_dir() and (path / "model.onnx").exists():
        model_file = path / "model.onnx"
        try:
            manifest = _manifest(path)
        except EdgebenchError as exc:
            return BenchItem(path.name, name or path.name, model_file, status="bad_manifest", error=str(exc))
    variant = name or str(manifest.get("variant") or "") or (path.name if path.is_dir() else path.stem)
    model = str(manifest.get("model") or variant)
    check = check_model(model_file)
    if not check.ok:
        return BenchItem(model, variant, model_file, status=check.status, error=check.error)
    # The file's own facts win over the manifest's: they are what a device stores now, by the one definition
    # (targets/stored.py) that a bare file gets too; the manifest adds what only the build knows.
    scalars = {k: v for k, v in manifest.items() if isinstance(v, (int, float, str)) and v != ""}
    facts = {**scalars, **{k: v for k, v in check.facts.items() if v is not None}}
    return BenchItem(model, variant, model_file, check.facts["sha256"], facts, inputs=check.inputs,
                     classes=check.classes)


def load_items(paths: Sequence[Path]) -> list[BenchItem]:
    """Items for the given paths; variant names are made unique (two `model.onnx` in different folders).

    A name with a control character (a newline in a file name) is refused before anything is measured:
    it would break every line-based file the run writes."""
    for path in paths:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:  # a byte that is not UTF-8: no result file could hold the path
            raise EdgebenchError(f"{ascii(str(path))[1:-1]}: the path is not valid UTF-8; rename it") from None
    items = [load_item(Path(p)) for p in paths]
    for item, path in zip(items, paths):
        for what in (item.variant, item.model):
            bad = next((c for c in what if unicodedata.category(c) in ("Cc", "Cs")), None)
            if bad is not None:
                raise EdgebenchError(f"{ascii(str(path))[1:-1]}: the model name {ascii(what)} holds a control character "
                                     f"({ascii(bad)[1:-1]}); rename the file (or the manifest's variant) without it")
    seen: dict[str, int] = {}
    out = []
    for item, path in zip(items, paths):
        n = seen.get(item.variant, 0)
        seen[item.variant] = n + 1
        out.append(item if n == 0 else replace(item, variant=f"{item.variant}#{n + 1}"))
    return out


@dataclass
class _Pending:
    item: BenchItem
    key: Key
    runs: list[ProcessRun] = field(default_factory=list)
    done: bool = False


class Scheduler:
    """Runs items on one target in interleaved rounds and reports each measurement as it completes."""

    def __init__(self, target: Target, spec: RunSpec, folder: RunFolder, run_id: str,
                 progress: Progress, seed: int = 0, advance: Advance | None = None) -> None:
        self.target, self.spec, self.folder, self.run_id = target, spec, folder, run_id
        self.progress = progress
        # a runner process starts: a bar moves on a terminal, else the same line as any other progress
        self.advance: Advance = advance or (lambda target, count, total, message: progress(message))
        self.rng = random.Random(seed)
        self.settings = spec.settings_key()
        self.settings_hash = spec.settings_hash()
        self.error: str | None = None  # set when the target became unusable mid-run
        self._fingerprint: str | None = None

    def key(self, item: BenchItem) -> Key:
        """The identity of measuring `item` here with these settings."""
        return self.folder.key(model=item.model, variant=item.variant, path=item.path, sha256=item.sha256,
                               target=self.target.name, settings_hash=self.settings_hash)

    def done(self, item: BenchItem) -> bool:
        return item.ok and self.folder.state.done(self.key(item))

    def _target_flags(self) -> str:
        """How to name this target on a command line (with its interpreter when it is not the default)."""
        python = getattr(self.target, "python", None)
        default = sys.executable if self.target.name == "local" else None
        return self.target.name + (f" --python {python}" if python and python != default else "")

    def _data_fingerprint(self) -> str | None:
        """The --data file's arrays' fingerprint: a build's manifest records the one of its test split."""
        if self._fingerprint is None and self.spec.data is not None:
            import numpy as np

            from export.data import data_fingerprint

            try:
                with np.load(self.spec.data) as f:
                    self._fingerprint = data_fingerprint(f["x"].astype(np.float32), f["y"].astype(np.int64))
            except (OSError, KeyError, ValueError):
                self._fingerprint = ""
        return self._fingerprint or None

    def _finish(self, pending: _Pending, status: str = "ok", error: str | None = None) -> SummaryRow:
        pending.done = True
        item = pending.item
        m = Measurement(
            run_id=self.run_id, target=self.target.name, model=item.model, variant=item.variant,
            model_path=str(item.path), settings=self.settings,
            processes=tuple(sorted(pending.runs, key=lambda p: p.index)),
            artifact_sha256=item.sha256, model_facts=item.facts, status=status, error=error,
            timestamp_utc=utc_now(),
        )
        s = m.summary()
        warnings: list[str] = []
        if s is not None:
            starts = [p.telemetry_start.get("load_avg_1m") for p in m.processes if p.telemetry_start]
            loads = [v for v in starts if v is not None]
            warnings = stability_warnings(s, load_avg=max(loads) if loads else None,
                                          cores=m.machine.get("cores"))
            shifted = reference_warning(m.reference()[1])
            if shifted:
                warnings.append(shifted)
            if m.batch_size != self.spec.batch_size and self.spec.batch_size != 1:
                warnings.append(f"--batch {self.spec.batch_size} did not apply: the input shapes fix "
                                f"{m.batch_size} item(s) per call, and that is what was measured")
            fallback = fallback_warning(self.spec.providers, m.placement)
            if fallback:
                warnings.append(fallback)
            if any(p.throttled for p in m.processes):
                warnings.append("the board throttled during this measurement: the number is not the board's "
                                "steady speed; cool it (--cooldown) and measure again")
        quality = m.quality()
        accuracy_warning = target_accuracy_warning(
            item.facts, quality and quality["accuracy"], m.machine, self._target_flags(),
            same_data=self._data_fingerprint() == item.facts.get("test_data_fingerprint"))
        if accuracy_warning:
            warnings.append(accuracy_warning)
        row = self.folder.close_measurement(pending.key, m, warnings)
        self.progress(f"{self.target.name}: {item.variant}: {_describe(row)}")
        for w in warnings:
            self.progress(f"  warning: {w}")
        return row

    def run(self, items: Sequence[BenchItem]) -> list[SummaryRow]:
        rows: list[SummaryRow] = []
        pending: list[_Pending] = []
        for item in items:
            key = self.key(item)
            if not item.ok:
                rows.append(self._finish(_Pending(item, key), item.status, item.error))
            elif self.done(item):
                self.progress(f"{self.target.name}: {item.variant}: already measured, skipped")
            else:
                reused = self.folder.state.finished_processes(key, self.spec.process_limit)
                pending.append(_Pending(item, key, reused))
        limit = self.spec.process_limit
        total = sum(self.spec.processes - len(p.runs) for p in pending)
        adaptive = limit != self.spec.processes  # --precision: between processes and limit per model
        each = f"{self.spec.processes}-{limit}" if adaptive else f"{limit}"
        count = 0
        try:
            for index in range(limit):
                order = [p for p in pending if not p.done and all(r.index != index for r in p.runs)]
                self.rng.shuffle(order)
                for p in order:
                    count += 1
                    counter = f"[{count}]" if adaptive else f"[{count}/{total}]"
                    self.advance(self.target.name, count, None if adaptive else total,
                                 f"{self.target.name}: {counter} {p.item.variant} process {index + 1}/{each}")
                    run = self._measure_once(p, index)
                    p.runs.append(run)
                    if not run.ok and run.status in PERMANENT_FAILURES:
                        rows.append(self._finish(p))
                for p in pending:
                    if not p.done and len(p.runs) >= self.spec.processes and (
                            len(p.runs) >= limit or self._precise(p)):
                        rows.append(self._finish(p))
        except TargetError as exc:
            self.error = str(exc)
            for p in pending:
                if not p.done:
                    rows.append(self._finish(p, "target_error", self.error))
            return rows
        for p in pending:
            if not p.done:
                rows.append(self._finish(p))
        return rows

    def _precise(self, pending: _Pending) -> bool:
        """--precision: the ok processes so far pin the median within +-precision (a 95% interval)."""
        groups = [r.latencies_ms for r in pending.runs if r.ok and r.latencies_ms]
        return bool(groups) and self.spec.precise_enough(summarize(groups))

    def _measure_once(self, pending: _Pending, index: int) -> ProcessRun:
        runner_spec = self.spec.runner_spec(pending.item.path, accuracy=(index == 0), seed_offset=index)
        doc = self.target.run(runner_spec, timeout=self.spec.timeout_s)
        if self.target.board_lock and isinstance(doc.get("machine"), dict):
            # who held the board for this process and how long we waited for it: machine.json's board_lock
            doc["machine"]["board_lock"] = self.target.board_lock
        return self.folder.record_process(pending.key, self.settings, self.run_id, index, doc)


def _describe(row: SummaryRow) -> str:
    if row.status != "ok" or row.latency_ms_median is None:
        return f"{row.status}: {row.error}"
    streams = (f"; {row.streams} streams: {row.throughput_ips_streams:.4g} items/s"
               if row.throughput_ips_streams is not None else "")
    return (f"median {row.latency_ms_median:.4g} ms "
            f"(95% CI {row.latency_ms_ci95_low:.4g}-{row.latency_ms_ci95_high:.4g}) over {row.n_processes} processes"
            + streams)


@dataclass
class TargetOutcome:
    target: str
    rows: list[SummaryRow] = field(default_factory=list)
    error: str | None = None


def measure(items: Sequence[BenchItem], targets: Sequence[Target], spec: RunSpec, folder: RunFolder,
            run_id: str, progress: Progress, seed: int = 0) -> list[TargetOutcome]:
    """Measure every item on every target (targets in parallel); a failing target does not stop the others.
    What `folder`'s journal already holds is reused (see Scheduler)."""
    lock = threading.Lock()
    # Set when the main thread is interrupted (Ctrl-C, SIGTERM): a target's thread stops at its next
    # progress line, before it starts another runner process, and closes its target on the way out.
    stop = threading.Event()

    def say(message: str) -> None:
        if stop.is_set():
            raise _Stopped()
        with lock:
            progress(message)

    def tick(target: str, count: int, total: int | None, message: str) -> None:
        if stop.is_set():
            raise _Stopped()
        with lock:
            if hasattr(progress, "advance"):
                progress.advance(target, count, total, message)
            else:
                progress(message)

    def one(target: Target) -> TargetOutcome:
        outcome = TargetOutcome(target.name)
        scheduler = Scheduler(target, spec, folder, run_id, say, seed, advance=tick)
        target.on_lock_wait = say
        try:
            target.open()
        except TargetError as exc:
            outcome.error = str(exc)
            outcome.rows = [scheduler._finish(_Pending(item, scheduler.key(item)), "target_error", outcome.error)
                            for item in items if not scheduler.done(item)]
            return outcome
        try:
            outcome.rows = scheduler.run(items)
            outcome.error = scheduler.error
        finally:
            target.close()
        if hasattr(progress, "finish"):
            with lock:
                progress.finish(target.name)
        return outcome

    if len(targets) == 1:
        return [one(targets[0])]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(one, t) for t in targets]
        try:
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            raise


class _Stopped(Exception):
    """A target's thread ends early because the run was interrupted."""
