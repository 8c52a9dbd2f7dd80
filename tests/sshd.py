"""Test helpers for the loopback sshd: the server itself lives in scripts/sshd_loopback.py (users run it too)."""

from __future__ import annotations

import importlib.util
import os
import pwd
import sys
import time
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sshd_loopback.py"


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sshd_loopback = _load("edgebench_sshd_loopback", _SCRIPT)
LoopbackSshd = sshd_loopback.LoopbackSshd
free_port = sshd_loopback.free_port


def processes_of(user: str, needle: str) -> list[int]:
    """PIDs of `user`'s processes whose command line contains `needle` (to kill one runner by PID)."""
    uid = pwd.getpwnam(user).pw_uid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def session_pids(sshd: LoopbackSshd) -> list[int]:
    """The per-connection sshd processes under the listener: the privileged monitor and the user's
    session process (both hold the socket, so both must go to drop the connection)."""
    found, frontier = [], [sshd.pid()]
    while frontier:
        kids = [c for p in frontier for c in sshd_loopback.children(p)]
        found += [k for k in kids if _comm(k) == "sshd"]
        frontier = kids
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def wait_for(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def scratch_dirs(user: str) -> list[Path]:
    """The runner's private scratch folders of `user` left in /tmp."""
    uid = pwd.getpwnam(user).pw_uid
    return [p for p in Path("/tmp").glob("edgebench.*") if p.stat().st_uid == uid]
