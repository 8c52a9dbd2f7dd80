"""Two edgebench commands on one board at once, over the real loopback sshd: they take turns."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import onnx_models

pytestmark = pytest.mark.ssh


def _runner_intervals(out: Path) -> list[tuple[float, float]]:
    """Each runner process's [start, end] on the board's clock, from the run folder's journal."""
    docs = [json.loads(line)["result"] for line in (out / "processes.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "process"]
    return [(d["time_start"], d["time_end"]) for d in docs]


def test_two_benches_on_one_board_never_overlap_and_the_second_says_for_whom_it_waited(loopback_sshd, tmp_path):
    model = onnx_models.mlp(tmp_path / "m.onnx", hidden=256)
    common = ["--target", loopback_sshd.alias, "--ssh-config", str(loopback_sshd.ssh_config), "--min-iterations", "5"]
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    first = subprocess.Popen([sys.executable, "-m", "harness", "bench", str(model), *common, "--processes", "4",
                              "--min-time", "0.7", "--out", str(first_out), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = first_out / "processes.jsonl"
    deadline = time.monotonic() + 120
    while not journal.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)  # the first one holds the board from before its first process to after its last
    assert journal.exists(), first.communicate()
    second = subprocess.run([sys.executable, "-m", "harness", "bench", str(model), *common, "--processes", "2",
                             "--min-time", "0.1", "--out", str(second_out)],
                            capture_output=True, text=True, timeout=300)
    first_stderr = first.communicate(timeout=300)[1]
    assert first.returncode == 0, first_stderr
    assert second.returncode == 0, second.stderr

    a, b = _runner_intervals(first_out), _runner_intervals(second_out)
    assert len(a) == 4 and len(b) == 2
    for start_b, end_b in b:
        for start_a, end_a in a:
            assert end_b <= start_a or start_b >= end_a, "two measurements ran on the board at once"
    assert min(s for s, _ in b) >= max(e for _, e in a)  # the second waited for the whole first measurement

    said = second.stderr
    assert f"{loopback_sshd.alias} is in use by" in said and f"pid {first.pid}" in said and "waiting" in said
    assert "after waiting" in said
    lock = json.loads((second_out / "machine.json").read_text())["targets"][loopback_sshd.alias]["board_lock"]
    assert [h["pid"] for h in lock["waited_for"]] == [first.pid] and lock["waited_s"] > 0.5
    assert lock["file"].endswith("/.cache/edgebench/board.lock")
    first_lock = json.loads((first_out / "machine.json").read_text())["targets"][loopback_sshd.alias]["board_lock"]
    assert first_lock["waited_for"] == [] and first_lock["holder"]["pid"] == first.pid
