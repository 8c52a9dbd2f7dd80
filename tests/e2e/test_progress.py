"""Progress a person can read: live bars with an ETA on a terminal (a real pseudo-terminal here), today's
plain lines in a log."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from tests import onnx_models
from tests.e2e.test_bench_cli import edgebench

ARGS = ["--processes", "3", "--min-time", "0.2", "--min-iterations", "5", "--no-history"]


def on_a_terminal(args: list[str], columns: int = 120) -> tuple[int, str]:
    """Run `edgebench ARGS` with stdout and stderr on a pseudo-terminal of `columns`; its exit code and what
    the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm"}
    env.pop("EDGEBENCH_PROGRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env)
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    return proc.wait(60), received.decode("utf-8", "replace")


def test_a_terminal_shows_one_live_bar_per_target_with_an_eta(tmp_path):
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    code, screen = on_a_terminal(["bench", *map(str, models), *ARGS, "--out", str(tmp_path / "out")])
    assert code == 0, screen
    frames = re.findall(r"local: +(\d+)%\|[^|]*\| (\d+)/6 processes \[(\d\d:\d\d)<([\d:?]+)\]", screen)
    assert frames, screen
    done = [int(n) for _, n, _, _ in frames]
    assert done == sorted(done) and done[-1] == 6  # moves forward, ends full
    assert any(eta not in ("?",) for *_, eta in frames)  # an estimate of the time left once a process ended
    assert "[1/6]" not in screen  # the per-process lines became the bar
    assert "local: m0: median" in screen and "results:" in screen  # the other lines still print


def test_a_log_gets_the_plain_lines_of_before(tmp_path):
    model = onnx_models.mlp(tmp_path / "m.onnx")
    proc = edgebench("bench", model, *ARGS, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "local: [1/3] m process 1/3" in proc.stderr and "local: [3/3] m process 3/3" in proc.stderr
    assert "%|" not in proc.stderr and "\r" not in proc.stderr


def test_quiet_is_quiet_even_on_a_terminal(tmp_path):
    model = onnx_models.mlp(tmp_path / "m.onnx")
    code, screen = on_a_terminal(["bench", str(model), *ARGS, "-q", "--out", str(tmp_path / "out")])
    assert code == 0 and "%|" not in screen and "process" not in screen.split("variant")[0]
