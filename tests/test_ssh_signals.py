"""SIGTERM and SIGKILL of a real `edgebench bench --target <board>`: no ssh ControlMaster of that run survives,
no control socket is left, and what was measured stays (real loopback sshd, no mocks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from targets.ssh import CONTROL_PREFIX
from tests import onnx_models
from tests.sshd import sshd_loopback, wait_for

pytestmark = pytest.mark.ssh


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_bench(sshd, model: Path, out: Path) -> tuple[subprocess.Popen, int, Path]:
    """A long bench on the board; returns it once a process is journaled, with its master's PID and socket."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "bench", model, "--target", sshd.alias,
                             "--ssh-config", sshd.ssh_config, "--processes", "50", "--min-time", "0.3",
                             "--out", out, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (out / "processes.jsonl").exists(), timeout=120), proc.stderr
    masters = [pid for pid in sshd_loopback.children(proc.pid) if "ControlMaster=yes" in " ".join(_cmdline(pid))]
    assert len(masters) == 1, [(p, _cmdline(p)) for p in sshd_loopback.children(proc.pid)]
    path = next(arg.split("=", 1)[1] for arg in _cmdline(masters[0]) if arg.startswith("ControlPath="))
    assert Path(path).exists()
    return proc, masters[0], Path(path)


def test_sigterm_ends_like_ctrl_c_closing_the_master_and_keeping_results(loopback_sshd, tmp_path):
    out = tmp_path / "out"
    proc, master, socket = _start_bench(loopback_sshd, onnx_models.mlp(tmp_path / "m.onnx"), out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("error: terminated;") and "Traceback" not in err
    assert wait_for(lambda: not _alive(master), timeout=10), _cmdline(master)
    assert not socket.exists() and not socket.parent.exists()
    assert (out / "processes.jsonl").read_text().strip()  # the journaled processes stay


def test_sigkill_takes_the_master_with_it_and_the_next_run_sweeps_its_folder(loopback_sshd, tmp_path):
    out = tmp_path / "out"
    model = onnx_models.mlp(tmp_path / "m.onnx")
    proc, master, socket = _start_bench(loopback_sshd, model, out)
    proc.kill()
    proc.communicate(timeout=60)
    # The master got the parent-death signal: it logged out and removed its socket, not re-parented to PID 1.
    assert wait_for(lambda: not _alive(master), timeout=10), _cmdline(master)
    assert wait_for(lambda: not socket.exists(), timeout=5)
    assert socket.parent.name.startswith(f"{CONTROL_PREFIX}{proc.pid}-")
    again = subprocess.run([sys.executable, "-m", "harness", "doctor", "--target", loopback_sshd.alias,
                            "--ssh-config", loopback_sshd.ssh_config], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not socket.parent.exists()  # swept: its owner is dead
    leftovers = [p for p in Path(tempfile.gettempdir()).glob(f"{CONTROL_PREFIX}{proc.pid}-*")]
    assert leftovers == []


def test_sigterm_stops_every_target_at_its_next_process(loopback_sshd, tmp_path):
    """With several targets each is measured in its own thread: they stop before their next runner process
    instead of measuring everything left (that took 40 s here for 2 x 20 processes)."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "bench", onnx_models.mlp(tmp_path / "m.onnx"),
                             "--target", loopback_sshd.alias, "--target", "local", "--ssh-config",
                             loopback_sshd.ssh_config, "--processes", "40", "--min-time", "0.3", "--out", out, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (out / "processes.jsonl").exists(), timeout=120), proc.stderr
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - start < 10
    assert len((out / "processes.jsonl").read_text().splitlines()) < 20
