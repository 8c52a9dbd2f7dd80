"""An onnxruntime that kills Python on import is reported with what it means and what to install instead.

The real case (onnxruntime 1.21.0's SIGILL on a Cortex-A72) runs on the emulated board in
test_board_arm64.py; here a local package named onnxruntime kills its interpreter with the same signal
on import, so the probe's forked import and the marks a bench run leaves on stderr are checked in a second.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from targets.base import import_crash
from targets.doctor import doctor
from targets.local import LocalTarget
from targets.runner import onnxruntime_crash


def _crashing_python(tmp_path: Path, signum: int, version: str) -> str:
    """An interpreter whose `import onnxruntime` is killed by `signum`; its metadata says `version`."""
    site = tmp_path / "site"
    (site / "onnxruntime").mkdir(parents=True)
    (site / "onnxruntime" / "__init__.py").write_text(f"import os\nos.kill(os.getpid(), {signum})\n")
    meta = site / f"onnxruntime-{version}.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: onnxruntime\nVersion: {version}\n")
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_probe_reports_a_sigill_on_import_with_the_release_to_install(tmp_path: Path) -> None:
    target = LocalTarget(python=_crashing_python(tmp_path, signal.SIGILL, "1.21.0"))
    doc = target.probe(timeout=60)
    assert doc["status"] == "ok"  # the probe survives: the import ran in a forked child
    m = doc["machine"]
    assert m["onnxruntime"] is None and m["onnxruntime_crashed"].startswith("SIGILL")
    assert "instructions this CPU lacks" in m["onnxruntime_error"]
    checks = {c.name: c for c in doctor(target, timeout=60)}
    ort = checks["onnxruntime"]
    assert not ort.ok and "SIGILL" in ort.detail and "\n" not in ort.detail
    assert "pip install onnxruntime==1.21.1" in ort.fix and "Cortex-A72" in ort.fix


def test_bench_run_killed_on_import_says_so(tmp_path: Path, mlp_model: Path) -> None:
    target = LocalTarget(python=_crashing_python(tmp_path, signal.SIGSEGV, "1.99.0"))
    doc = target.run({"files": {"model": str(mlp_model)}}, timeout=60)
    assert doc["status"] == "no_onnxruntime"
    assert "SIGSEGV" in doc["error"] and "cannot run on this machine" in doc["error"]
    assert "pip install 'onnxruntime<1.99.0'" in doc["error"] and "\n" not in doc["error"]


def test_a_crash_after_the_import_is_not_blamed_on_it() -> None:
    stderr = ("edgebench-runner: importing onnxruntime onnxruntime 1.21.0 pi /usr/bin/python3\n"
              "edgebench-runner: onnxruntime imported\n")  # fmt: skip
    assert import_crash(stderr, signal.SIGSEGV) is None
    assert import_crash(stderr.splitlines()[0], signal.SIGKILL) is None  # killed from outside, not a crash
    assert import_crash("", signal.SIGILL) is None
    crash = import_crash(stderr.splitlines()[0] + "\nIllegal instruction\n", signal.SIGILL)
    assert crash["status"] == "no_onnxruntime" and "on pi" in crash["error"] and "/usr/bin/python3" in crash["error"]


@pytest.mark.parametrize("signum", [signal.SIGILL, signal.SIGBUS])
def test_message_names_the_signal(signum: int) -> None:
    what, fix = onnxruntime_crash(signum, "py", "host")
    assert signal.Signals(signum).name in what and "py -m pip install onnxruntime" in fix
    assert os.linesep not in what + fix
