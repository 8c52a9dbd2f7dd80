"""The whole remote path on a real ARM build of onnxruntime: an emulated aarch64 board over SSH.

Timings under QEMU mean nothing, so only correctness is asserted: the probe and the results say
aarch64 on a Pi 4's Cortex-A72 (no dot-product instructions) or a Pi 5's Cortex-A76, an INT8 model
measures `ok` on both, the fake Pi sensors come back as telemetry, and onnxruntime 1.21.0, which dies
with SIGILL on a real Pi 4, dies here too and is reported with the release to install.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from targets.doctor import doctor, format_checks
from targets.ssh import SshTarget
from targets.telemetry import throttling_started, wait_for_cooldown
from targets.ssh import SshError
from tests.board import board_venv
from tests.sshd import wait_for

pytestmark = [pytest.mark.board, pytest.mark.ssh]

# Under emulation one inference of the small MLP takes milliseconds and onnxruntime's import seconds.
SPEC = {"min_time_s": 0.2, "min_iterations": 5, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}


@pytest.fixture
def board_target(arm64_board) -> SshTarget:
    target = SshTarget(arm64_board.alias, ssh_config=arm64_board.ssh_config)
    target.open()
    yield target
    target.close()


def test_probe_says_aarch64_with_pi_telemetry(board_target: SshTarget) -> None:
    doc = board_target.probe(timeout=120)
    assert doc["status"] == "ok"
    m = doc["machine"]
    assert m["arch"] == "aarch64"
    assert m["onnxruntime"] and m["numpy"]
    assert m["python_executable"].endswith("/.cache/edgebench/venv/bin/python")  # the provisioned venv
    # a Pi 4's Cortex-A72, named from cpuinfo's CPU part as on a real Pi, and said to be emulated
    assert m["cpu_model"] == "Cortex-A72" and m["cpu_emulated"] == "qemu cortex-a72"
    assert m["board_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    # the features come from the process's hwcap (what QEMU's CPU offers): ARMv8.0, no dot product
    assert m["cpu_features_source"] == "hwcap" and "asimd" in m["cpu_features"]
    assert "asimddp" not in m["cpu_features"] and "i8mm" not in m["cpu_features"]
    assert m["governor"] == "ondemand"
    tel = doc["telemetry_start"]
    assert tel["temp_c"] == pytest.approx(48.3)
    assert tel["throttle"]["raw"] == "0x50000"
    assert set(tel["throttle"]["flags"]) == {"under_voltage_since_boot", "throttled_since_boot"}
    assert tel["throttle"]["throttled_now"] is False


def test_int8_variant_runs_ok_on_arm(board_target: SshTarget, int8_model: Path) -> None:
    doc = board_target.run({"files": {"model": str(int8_model)}, **SPEC}, timeout=300)
    assert doc["status"] == "ok", doc.get("error")
    assert doc["machine"]["arch"] == "aarch64" and doc["machine"]["cpu_model"] == "Cortex-A72"
    assert "asimddp" not in doc["machine"]["cpu_features"]  # onnxruntime ran its ARMv8.0 integer kernels
    assert len(doc["latencies_ns"]) >= 5
    assert not throttling_started(doc)


def test_throttling_that_starts_during_a_run_is_seen(arm64_board, board_target: SshTarget, mlp_model: Path) -> None:
    calls = arm64_board.root / "tmp/edgebench-vcgencmd.calls"
    flags = arm64_board.root / "etc/edgebench/fake-throttled"
    calls.unlink(missing_ok=True)
    spec = {"files": {"model": str(mlp_model)}, **SPEC, "min_time_s": 3.0, "max_time_s": 3.0}
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(board_target.run(spec, timeout=300)))
    worker.start()
    try:
        # The board starts throttling right after the runner read its starting telemetry.
        assert wait_for(lambda: calls.exists() and "get_throttled" in calls.read_text(), timeout=120)
        flags.write_text("0x50005\n")
        worker.join(300)
    finally:
        flags.write_text("0x50000\n")
    assert result["status"] == "ok", result.get("error")
    assert throttling_started(result), (result["telemetry_start"], result["telemetry_end"])
    assert {"under_voltage", "throttled"} <= set(result["telemetry_end"]["throttle"]["flags"])


def test_cooldown_waits_for_the_board(arm64_board, board_target: SshTarget) -> None:
    arm64_board.set_temperature(83.0)
    timer = threading.Timer(2.0, arm64_board.set_temperature, args=(45.0,))
    try:
        hot = wait_for_cooldown(board_target, max_temp_c=60, timeout_s=1, poll_s=1)
        assert not hot.reached and hot.temp_c == pytest.approx(83.0) and "still at 83.0" in hot.message
        timer.start()
        cooled = wait_for_cooldown(board_target, max_temp_c=60, timeout_s=120, poll_s=1)
    finally:
        timer.cancel()
        arm64_board.set_temperature(48.3)
    assert cooled.reached and cooled.temp_c == pytest.approx(45.0) and cooled.waited_s >= 1


def test_board_without_onnxruntime_is_refused_with_the_fix(arm64_board) -> None:
    target = SshTarget(arm64_board.alias, ssh_config=arm64_board.ssh_config, python="/usr/bin/python3")
    try:
        with pytest.raises(Exception, match=r"numpy and onnxruntime missing for /usr/bin/python3.*--provision"):
            target.open()
    finally:
        target.close()


def test_doctor_on_the_board(board_target: SshTarget) -> None:
    checks = {c.name: c for c in doctor(board_target, timeout=120)}
    assert all(c.ok for c in checks.values() if c.required), format_checks(list(checks.values()))
    assert "aarch64" in checks["arch"].detail
    assert checks["cpu features"].ok and "asimd" in checks["cpu features"].detail
    assert checks["temperature"].ok and checks["throttle flags"].ok
    assert not checks["cpu governor"].ok and "performance" in checks["cpu governor"].fix


def test_pi5_board_has_dot_product_and_runs_int8(arm64_board_pi5, int8_model: Path) -> None:
    target = SshTarget(arm64_board_pi5.alias, ssh_config=arm64_board_pi5.ssh_config)
    target.open()
    try:
        doc = target.run({"files": {"model": str(int8_model)}, **SPEC}, timeout=300)
    finally:
        target.close()
    assert doc["status"] == "ok", doc.get("error")
    m = doc["machine"]
    assert m["cpu_model"] == "Cortex-A76" and m["cpu_emulated"] == "qemu cortex-a76"
    assert m["board_model"].startswith("Raspberry Pi 5") and m["cpu_max_freq_mhz"] == 2400.0
    assert "asimddp" in m["cpu_features"] and "i8mm" not in m["cpu_features"]


def test_onnxruntime_that_dies_on_a_pi4_is_reported_with_the_fix(arm64_board, arm64_board_pi5, mlp_model) -> None:
    """onnxruntime 1.21.0's aarch64 wheel (real, from PyPI) kills Python with SIGILL on a Cortex-A72, as on a
    real Pi 4 (onnxruntime issue 23957); on a Pi 5's Cortex-A76 it imports."""
    python = board_venv(arm64_board, "ort-1.21.0", "onnxruntime==1.21.0")
    pi4 = SshTarget(arm64_board.alias, ssh_config=arm64_board.ssh_config, python=python)
    try:
        ort = {c.name: c for c in doctor(pi4, timeout=180)}["onnxruntime"]
        assert not ort.ok and "SIGILL (illegal instruction)" in ort.detail and "1.21.0" in ort.detail
        assert f"{python} -m pip install onnxruntime==1.21.1" in ort.fix and "Cortex-A72" in ort.fix
        # a measurement started anyway (no open()): the runner dies on import, the harness says why
        with pytest.raises(SshError, match=r"SIGILL.*install instead: .*onnxruntime==1\.21\.1"):
            pi4.run({"files": {"model": str(mlp_model)}, **SPEC}, timeout=300)
        with pytest.raises(SshError, match=r"SIGILL"):
            pi4.open()
    finally:
        pi4.close()
    pi5 = SshTarget(arm64_board_pi5.alias, ssh_config=arm64_board_pi5.ssh_config, python=python)
    try:
        assert pi5.probe(timeout=180)["machine"]["onnxruntime"] == "1.21.0"
    finally:
        pi5.close()
