"""What a run folder's journal says: the measurements closed (one per identity, the last close wins) and
the finished processes an interrupted measurement can reuse. A pure fold over journal records, applied
once when a folder is opened and then one record at a time as they are appended."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from harness.journal import MEASUREMENT, PROCESS, Key
from harness.measurement import Measurement, ProcessRun
from harness.results import SummaryRow, summary_row


@dataclass(frozen=True, eq=False)
class Closed:
    """One closed measurement as the journal has it; `seq` (its close line's position) names this version."""

    seq: int
    key: Key
    measurement: Measurement
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Its row says ok: the measurement closed ok and none of its processes failed."""
        m = self.measurement
        return m.status == "ok" and all(p.ok for p in m.processes)

    @cached_property
    def row(self) -> SummaryRow:
        """Its summary.csv row (derived once: the bootstrap interval is the costly part)."""
        return summary_row(self.measurement, self.warnings)


class RunState:
    """The fold of a journal: closed measurements and reusable processes, by identity."""

    def __init__(self, records: list[dict[str, Any]] = ()) -> None:
        self._processes: dict[Key, dict[int, dict[str, Any]]] = {}
        self._closed: dict[Key, Closed] = {}
        self._seq = 0
        for record in records:
            self.apply(record)

    def apply(self, record: dict[str, Any]) -> Closed | None:
        """Take one journal record into account; returns the measurement it closes, if it closes one."""
        self._seq += 1
        kind = record.get("kind")
        key = Key.from_record(record)
        if kind == PROCESS:
            index = int(record["process_index"])
            runs = self._processes.setdefault(key, {})
            earlier = runs.get(index)
            # an ok process is reused, never run again; a failed one is replaced by its rerun
            if earlier is None or earlier["result"].get("status") != "ok" or record["result"].get("status") == "ok":
                runs[index] = record
            return None
        if kind != MEASUREMENT:
            return None
        runs = self._processes.get(key, {})
        processes = tuple(ProcessRun.from_runner(i, runs[i]["result"]) for i in record.get("processes") or ()
                          if i in runs)
        m = Measurement(
            run_id=str(record.get("run_id") or ""), target=key.target, model=key.model, variant=key.variant,
            model_path=str(record.get("model_path") or key.path), settings=dict(record.get("settings") or {}),
            processes=processes, artifact_sha256=key.sha256, model_facts=dict(record.get("facts") or {}),
            status=str(record.get("status") or "ok"), error=record.get("error"),
            timestamp_utc=str(record.get("time_utc") or ""),
        )
        closed = Closed(self._seq, key, m, tuple(record.get("warnings") or ()))
        self._closed[key] = closed
        return closed

    def closed(self) -> list[Closed]:
        """Every closed measurement's latest version, in the order they were closed, except failures that
        were tried again: a failed measurement is hidden once the same model file on the same target closed
        again later, under any settings or content (the flags or the file were fixed; the journal keeps it)."""
        latest = sorted(self._closed.values(), key=lambda c: c.seq)
        last_try = {c.key.slot: c.seq for c in latest}
        return [c for c in latest if c.ok or last_try[c.key.slot] == c.seq]

    def done(self, key: Key) -> bool:
        """Measured and ok under this identity: nothing to do."""
        closed = self._closed.get(key)
        return closed is not None and closed.ok

    def finished_processes(self, key: Key, processes: int) -> list[ProcessRun]:
        """The ok processes journaled under this identity (an interrupted or failed measurement reuses them)."""
        runs = self._processes.get(key, {})
        return [ProcessRun.from_runner(i, rec["result"]) for i, rec in sorted(runs.items())
                if i < processes and rec["result"].get("status") == "ok"]

    def failed(self) -> list[Closed]:
        """Closed measurements whose latest version failed (a rerun that asks for them redoes them)."""
        return [c for c in self.closed() if not c.ok]
