"""Resuming a run folder: what is already measured, which finished processes can be reused, and
which failed rows must be redone (removed first, so a rerun never leaves duplicate rows)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from harness.bench import BenchItem
from harness.measurement import ProcessRun, RunSpec, settings_hash
from harness.results import (SAMPLE_COLUMNS, SAMPLES_CSV, SUMMARY_COLUMNS, SUMMARY_CSV, atomic_write_text,
                             read_csv_rows, read_journal)
from targets.base import Target


class RunState:
    """What an earlier invocation left in a run folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        path = self.out_dir / SUMMARY_CSV
        self.rows = read_csv_rows(path) if path.exists() else []
        self._journal: dict[tuple[str, str, str], dict[int, ProcessRun]] = {}
        for rec in read_journal(self.out_dir):  # a line cut short by a crash is simply measured again
            if rec.get("result", {}).get("status") != "ok":
                continue
            key = (rec["target"], rec["sha256"], settings_hash(rec["settings"]))
            index = int(rec["process_index"])
            self._journal.setdefault(key, {})[index] = ProcessRun.from_runner(index, rec["result"])

    def drop_failed(self) -> int:
        """Remove failed rows (and any samples of them) so they are measured again; returns how many."""
        failed = [r for r in self.rows if r.get("status") != "ok"]
        if not failed:
            return 0
        keys = {_row_key(r) for r in failed}
        self.rows = [r for r in self.rows if r.get("status") == "ok"]
        _rewrite(self.out_dir / SUMMARY_CSV, SUMMARY_COLUMNS, self.rows)
        samples = self.out_dir / SAMPLES_CSV
        if samples.exists():
            kept = [r for r in read_csv_rows(samples) if _row_key(r) not in keys]
            _rewrite(samples, SAMPLE_COLUMNS, kept)
        return len(failed)

    def done(self, spec: RunSpec):
        """A predicate for the scheduler: is this item already measured with these settings?"""
        finished = {(r["target"], r["artifact_sha256"], r["settings_hash"]) for r in self.rows
                    if r.get("status") == "ok"}
        settings = spec.settings_hash()

        def is_done(target: Target, item: BenchItem) -> bool:
            return bool(item.sha256) and (target.name, item.sha256, settings) in finished

        return is_done

    def journal_runs(self, spec: RunSpec):
        """A lookup for the scheduler: finished processes of an interrupted measurement."""
        settings = spec.settings_hash()

        def runs(target: Target, item: BenchItem) -> list[ProcessRun]:
            found = self._journal.get((target.name, item.sha256, settings), {})
            return [run for index, run in sorted(found.items()) if index < spec.processes]

        return runs


def _row_key(row: dict[str, str]) -> tuple[str, str, str, str]:
    return (row.get("target", ""), row.get("variant", ""), row.get("batch_size", ""), row.get("threads", ""))


def _rewrite(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
