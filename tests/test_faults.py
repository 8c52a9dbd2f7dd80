"""Fault injection: SIGKILL a real multi-model `edgebench bench` at random (seeded) moments, fill the disk
under it, resume, and check that every file parses, nothing is duplicated, every process that finished
before a fault is present exactly once and as measured, and summary rows agree with their samples.

The campaign itself lives in scripts/fault_campaign.py (run it for the README's figure); these tests run
a short, seeded share of it.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.sshd import _load

ROOT = Path(__file__).resolve().parents[1]
faults = _load("edgebench_fault_campaign", ROOT / "scripts" / "fault_campaign.py")


def assert_clean(tally) -> None:
    assert tally.failures == 0 and not tally.notes, "\n".join(tally.lines() + tally.notes)


@pytest.mark.slow  # a real two-model bench twice: 10-35 s
def test_one_kill_in_the_middle_then_a_resume(tmp_path):
    models = faults.make_models(tmp_path / "models")[:2]
    out = tmp_path / "R"
    journal = out / "processes.jsonl"
    proc = subprocess.Popen(faults.bench_command(models, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    try:
        while proc.poll() is None and (not journal.exists() or journal.read_bytes().count(b"\n") < 3):
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()
    finished = faults.finished_processes(out)
    assert len(finished) >= 3
    done = faults.run_to_end(models, out)
    assert done.returncode == 0, done.stderr
    assert_clean(faults.check(out, finished, len(models)))


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    """Six seeded runs, each killed up to twice (a resume can, rarely, finish before its moment): at least ten
    kills (the campaign's 25 runs killed every time they tried)."""
    tally = faults.campaign(runs=6, kills=2, seed=12, enospc=False, work=tmp_path, say=lambda line: None)
    assert tally.kills >= 10 and tally.resumes == tally.kills, tally.lines()
    assert_clean(tally)


def _can_mount(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)], check=True)
    return ok


@pytest.mark.slow
def test_a_full_disk_loses_nothing(tmp_path):
    """A 300 kB tmpfs as --out: the bench stops with one line naming the file, then resumes when there is room."""
    if not _can_mount(tmp_path / "probe"):
        skip_or_fail("mounting a tmpfs needs root (test_a_full_disk_with_a_patched_writer covers the writer)")
    models = faults.make_models(tmp_path / "models")
    tally = faults.enospc_trial(models, tmp_path / "tmpfs")
    assert tally.resumes == 1
    assert_clean(tally)


@pytest.mark.parametrize("space", [20_000, 60_000])  # full while journaling a process / while rewriting files
def test_a_full_disk_with_a_patched_writer(tmp_path, monkeypatch, space):
    """The same as the tmpfs test without mount: every write fails with ENOSPC once a byte budget is spent.
    In process, with FakeTarget documents, so it runs anywhere (and in the quick suite)."""
    from harness import journal as jr
    from harness import runfolder
    from harness.bench import BenchItem, measure
    from harness.measurement import RunSpec
    from targets.errors import EdgebenchError
    from tests.fake_target import FakeTarget, runner_doc

    budget = {"left": space}
    real_write, real_fsync = os.write, os.fsync

    def spend(n: int) -> None:
        if n > budget["left"]:
            budget["left"] = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        budget["left"] -= n

    def write(fd, data):
        if len(data) > budget["left"]:  # a full disk takes what fits, then refuses the rest
            taken = real_write(fd, data[:budget["left"]])
            budget["left"] = 0
            return taken
        budget["left"] -= len(data)
        return real_write(fd, data)

    def fsync(fd):  # a whole-file rewrite is charged when its temp file is flushed to disk
        if ".tmp" in os.readlink(f"/proc/self/fd/{fd}"):
            spend(os.fstat(fd).st_size)
        return real_fsync(fd)

    monkeypatch.setattr(jr.os, "write", write)  # the journal's appends
    monkeypatch.setattr(os, "fsync", fsync)
    items = [BenchItem(n, n, Path(f"/models/{n}.onnx"), f"sha-{n}") for n in ("a", "b", "c")]
    rng = random.Random(0)
    target = FakeTarget(lambda model, index, call: runner_doc(1 + rng.random(), n=400))
    out = tmp_path / "R"
    with pytest.raises(EdgebenchError, match=f"cannot write {out}/.*No space left on device"):
        with runfolder.RunFolder(out) as folder:
            measure(items, [target], RunSpec(processes=3), folder, "run1", lambda m: None)
    finished = {k: ns for k, ns in faults.finished_processes(out).items()}
    assert finished and (len(finished) < 9 or space > 50_000)
    budget["left"] = 10**9
    with runfolder.RunFolder(out) as folder:
        measure(items, [target], RunSpec(processes=3), folder, "run2", lambda m: None)
    assert_clean(faults.check(out, finished, len(items)))
