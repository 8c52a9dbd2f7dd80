#!/usr/bin/env python3
"""Kill `edgebench bench` at random moments, resume it, and check that no result was lost or corrupted.

Each run measures four small real models (one a byte copy of another, as in an A/A check) with real
runner processes into a fresh folder. It is killed with SIGKILL (the whole process group: the command
and its runner) at --kills random moments, each followed by a resume that may itself be killed, then
resumed once more to the end. A moment is drawn from the run's progress, not the clock (the machine's
load changes how long a run takes): after a random number of the journal lines still to come, plus a
random part of one line's time, so kills land while starting, inside a runner process, between a
journal line and the files rewritten after it, and while closing. With --enospc (root: a mount) one more run writes into a 300 kB tmpfs
until the disk is full, grows the tmpfs, and resumes. After each run every file is checked:

  files that failed to parse   summary.csv, samples.csv (pandas), pyperf.json (pyperf), machine.json,
                               processes.jsonl (every line a record, none cut)
  duplicate keys               a (measurement, process, iteration) twice in samples.csv, a measurement
                               twice in summary.csv, an ok (measurement, process) twice in the journal
  finished processes lost      a process journaled before a kill whose samples are not in samples.csv
                               exactly once and exactly as journaled (resume must reuse, not redo, it)
  summary rows disagreeing     n_samples, n_processes or the median of a summary row against its samples
  rows not ok                  a measurement that did not end ok with every process

All must be 0. Usage: python scripts/fault_campaign.py [--runs 50] [--kills 2] [--seed 0] [--enospc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROCESSES = 3
FAST = ["--processes", str(PROCESSES), "--min-time", "0.05", "--min-iterations", "5", "--max-iterations", "2000",
        "-q"]


@dataclass
class Tally:
    """What a campaign counts; every field after `resumes` must stay 0."""

    runs: int = 0
    kills: int = 0
    resumes: int = 0
    files_failed_to_parse: int = 0
    duplicate_keys: int = 0
    finished_processes_lost: int = 0
    summary_rows_disagreeing: int = 0
    rows_not_ok: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for f in fields(self):
            if f.name == "notes":
                self.notes += other.notes
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def failures(self) -> int:
        return (self.files_failed_to_parse + self.duplicate_keys + self.finished_processes_lost
                + self.summary_rows_disagreeing + self.rows_not_ok)

    def lines(self) -> list[str]:
        return [f"{f.name.replace('_', ' '):<28} {getattr(self, f.name)}" for f in fields(self) if f.name != "notes"]


def make_models(folder: Path) -> list[Path]:
    """Three small MLPs and a byte copy of the first (two files, one content: two measurements)."""
    from tests import onnx_models

    folder.mkdir(parents=True, exist_ok=True)
    models = [onnx_models.mlp(folder / f"m{i}.onnx", hidden=32 << i, seed=i) for i in range(3)]
    shutil.copy(models[0], folder / "m0copy.onnx")
    return models + [folder / "m0copy.onnx"]


def bench_command(models: list[Path], out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "bench", *map(str, models), "--out", str(out), *FAST]


def run_to_end(models: list[Path], out: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(bench_command(models, out), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def journal_lines(out: Path) -> int:
    try:
        return (out / "processes.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_and_kill(models: list[Path], out: Path, after_lines: int, then_s: float) -> bool:
    """Start a bench and SIGKILL it (with its runner) `then_s` after its journal has grown by `after_lines`;
    False when it finished first."""
    start = journal_lines(out)
    proc = subprocess.Popen(bench_command(models, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=ROOT)
    try:
        while proc.poll() is None and journal_lines(out) < start + after_lines:
            time.sleep(0.005)
        proc.wait(timeout=then_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the bench and the runner it started, no other
        proc.wait()
        return True


def measurement_id(rec: dict) -> tuple:
    return rec["target"], rec["model"], rec["variant"], rec["settings_hash"]


def finished_processes(out: Path) -> dict[tuple, list[int]]:
    """The ok processes the journal holds now (whole lines only), with their samples in ns."""
    from harness.journal import read_journal

    found: dict[tuple, list[int]] = {}
    for rec in read_journal(out).records:
        if rec.get("kind") == "process" and rec["result"].get("status") == "ok":
            found[measurement_id(rec) + (rec["process_index"],)] = rec["result"]["latencies_ns"]
    return found


def check(out: Path, finished: dict[tuple, list[int]], expected_rows: int) -> Tally:
    """The invariants of a run folder after its last resume (see the module doc)."""
    import pandas as pd
    import pyperf

    t = Tally()
    try:
        text = {c: str for c in ("target", "model", "variant", "settings_hash")}
        summary = pd.read_csv(out / "summary.csv", dtype=text)
        samples = pd.read_csv(out / "samples.csv", dtype=text)
        pyperf.BenchmarkSuite.load(str(out / "pyperf.json"))
        json.loads((out / "machine.json").read_text())
        raw = (out / "processes.jsonl").read_bytes()
        if not raw.endswith(b"\n"):
            raise ValueError("processes.jsonl ends in a cut line")
        journal = [json.loads(line) for line in raw.splitlines()]
    except Exception as exc:  # noqa: BLE001 - any failure to read is what is counted
        t.files_failed_to_parse += 1
        t.notes.append(f"{out}: {type(exc).__name__}: {exc}")
        return t
    ident = ["target", "model", "variant", "settings_hash"]
    t.duplicate_keys += int(samples.duplicated(ident + ["process_index", "iteration"]).sum())
    t.duplicate_keys += int(summary.duplicated(ident).sum())
    ok_processes = Counter(measurement_id(r) + (r["process_index"],) for r in journal
                           if r.get("kind") == "process" and r["result"].get("status") == "ok")
    t.duplicate_keys += sum(n - 1 for n in ok_processes.values())
    by_process = {k: g["latency_ms"].tolist() for k, g in samples.groupby(ident + ["process_index"])}
    for k, ns in finished.items():
        if by_process.get(k) != [round(v / 1e6, 6) for v in ns]:
            t.finished_processes_lost += 1
            t.notes.append(f"{out}: process {k} journaled before a kill is not in samples.csv as it was measured")
    groups = {k: g for k, g in samples.groupby(ident)}
    for row in summary.itertuples():
        g = groups.get((row.target, row.model, row.variant, row.settings_hash))
        if g is None or row.n_samples != len(g) or row.n_processes != g["process_index"].nunique() \
                or abs(row.latency_ms_median - statistics.median(g["latency_ms"])) > 1e-5:
            t.summary_rows_disagreeing += 1
            t.notes.append(f"{out}: summary row {row.variant} disagrees with its samples")
    bad = summary[(summary["status"] != "ok") | (summary["n_processes"] != PROCESSES)]
    t.rows_not_ok += len(bad) + max(0, expected_rows - len(summary))
    return t


def kill_trial(rng: random.Random, models: list[Path], out: Path, lines: int, line_s: float, kills: int) -> Tally:
    """Kill a bench `kills` times at random moments (each resume may be killed again), then finish it.
    `lines`: the journal lines of a whole run; `line_s`: the time of one, roughly."""
    t = Tally(runs=1)
    finished: dict[tuple, list[int]] = {}
    for _ in range(kills):
        to_come = lines - journal_lines(out)
        if to_come <= 0 or not run_and_kill(models, out, rng.randrange(to_come), rng.uniform(0, line_s)):
            break  # it finished before the moment drawn
        t.kills += 1
        t.resumes += 1  # the next command into the folder resumes it
        finished.update(finished_processes(out))  # what had finished when it was killed
    done = run_to_end(models, out)
    if done.returncode != 0:
        t.notes.append(f"{out}: the last resume failed: {done.stderr.strip()[-300:]}")
    t.add(check(out, finished, len(models)))
    return t


def enospc_trial(models: list[Path], mount: Path) -> Tally:
    """Fill a 300 kB tmpfs given as --out, grow it, resume: the full disk must cost nothing measured."""
    t = Tally(runs=1)
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], check=True)
    try:
        out = mount / "R"
        full = run_to_end(models, out)
        err = full.stderr.strip().splitlines()
        if full.returncode == 0 or len(err) != 1 or "No space left on device" not in err[0]:
            t.notes.append(f"a full disk should be one error line naming the file, got {full.returncode}: {err}")
            t.files_failed_to_parse += 1
        finished = finished_processes(out)
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        t.resumes += 1
        done = run_to_end(models, out)
        if done.returncode != 0:
            t.notes.append(f"resume after the disk was grown failed: {done.stderr.strip()[-300:]}")
        t.add(check(out, finished, len(models)))
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return t


def campaign(runs: int, kills: int, seed: int, enospc: bool, work: Path, say=print) -> Tally:
    models = make_models(work / "models")
    start = time.monotonic()
    clean = run_to_end(models, work / "clean")
    full_s = time.monotonic() - start
    total = Tally()
    total.add(check(work / "clean", {}, len(models)))
    lines = journal_lines(work / "clean")
    say(f"an uninterrupted bench takes {full_s:.1f} s and writes {lines} journal lines (load "
        f"{os.getloadavg()[0]:.2f}); killing {runs} runs {kills} times each at random moments")
    if clean.returncode != 0:
        total.notes.append(f"the uninterrupted bench failed: {clean.stderr.strip()[-300:]}")
    rng = random.Random(seed)
    for i in range(runs):
        total.add(kill_trial(rng, models, work / f"run{i}", lines, full_s / max(lines, 1), kills))
        say(f"run {i + 1}/{runs}: {total.kills} kills, {total.failures} problems so far")
    if enospc:
        total.add(enospc_trial(models, work / "tmpfs"))
        say(f"full-disk run: {total.failures} problems so far")
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50, help="runs, each killed --kills times (50)")
    p.add_argument("--kills", type=int, default=2, help="kills per run (2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--enospc", action="store_true", help="also fill a 300 kB tmpfs (needs root for mount)")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgebench-faults-"))
    try:
        total = campaign(args.runs, args.kills, args.seed, args.enospc, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(total.lines()))
    for note in total.notes:
        print(f"  {note}")
    return 1 if total.failures or total.notes else 0


if __name__ == "__main__":
    sys.exit(main())
