"""Every way a board can be unusable, over a real sshd: one clear line naming the host, within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from targets.doctor import doctor, format_checks
from targets.errors import TargetError
from targets.ssh import SshError, SshTarget
from tests.sshd import free_port, processes_of, scratch_dirs, session_pids, wait_for

pytestmark = pytest.mark.ssh


def _fails(target: SshTarget, match: str, within: float = 15.0) -> SshError:
    t0 = time.monotonic()
    try:
        with pytest.raises(SshError, match=match) as info:
            target.open()
    finally:
        target.close()
    assert time.monotonic() - t0 <= within
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """An ssh config without entries, so the user's ~/.ssh/config cannot change what is tested."""
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"UserKnownHostsFile {tmp_path / 'known_hosts'}\nGlobalKnownHostsFile /dev/null\n")
    return cfg


def test_closed_port_fails_fast_naming_the_host(empty_config: Path) -> None:
    port = free_port()
    err = _fails(SshTarget(f"ssh://edgepi@127.0.0.1:{port}", ssh_config=empty_config), "connection refused", 5)
    assert f"127.0.0.1:{port}" in str(err) and err.kind == "unreachable"


@pytest.mark.parametrize("address", ["192.0.2.1", "10.255.255.1"])
def test_unreachable_host_fails_within_15_s(empty_config: Path, address: str) -> None:
    # Unrouted addresses: depending on the network a timeout (after ConnectTimeout=10 s), "network
    # unreachable" or a refusal from a gateway; each must be one line naming the host within 15 s.
    err = _fails(SshTarget(f"ssh://pi@{address}", ssh_config=empty_config), address, 15)
    assert err.kind == "unreachable"


def test_unresolvable_host(empty_config: Path) -> None:
    err = _fails(SshTarget("ssh://pi@edgebench-no-such-board.invalid", ssh_config=empty_config), "cannot resolve host")
    assert "edgebench-no-such-board.invalid" in str(err)


def test_wrong_key_is_login_refused(loopback_sshd, tmp_path: Path) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cfg = loopback_sshd.write_client_config(tmp_path / "ssh_config", identity=key)
    err = _fails(SshTarget(loopback_sshd.alias, ssh_config=cfg), "login refused for edgepi@127.0.0.1")
    assert "ssh-agent" in str(err) and err.kind == "login"


def test_unknown_host_key_is_refused_unless_accepted(loopback_sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    cfg = loopback_sshd.write_client_config(tmp_path / "ssh_config", known_hosts=known)
    err = _fails(SshTarget(loopback_sshd.alias, ssh_config=cfg), "is unknown")
    assert "--accept-new-host-key" in str(err) and err.kind == "hostkey"
    target = SshTarget(loopback_sshd.alias, ssh_config=cfg, accept_new_host_key=True)
    target.open()
    target.close()
    assert known.read_text().strip(), "accept-new must record the key it trusted"


def test_changed_host_key_is_refused_even_with_accept_new(loopback_sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"{loopback_sshd.host_pattern()} {kind} {blob}\n")
    cfg = loopback_sshd.write_client_config(tmp_path / "ssh_config", known_hosts=known)
    for accept in (False, True):
        err = _fails(SshTarget(loopback_sshd.alias, ssh_config=cfg, accept_new_host_key=accept), "has changed")
        assert "ssh-keygen" in str(err) and "never accepts a changed key" in str(err)
        assert err.kind == "hostkey_changed" and "--accept-new-host-key" not in str(err)
    # doctor names the same fix, and never --accept-new-host-key (it cannot accept a changed key)
    lines = format_checks(doctor(SshTarget(loopback_sshd.alias, ssh_config=cfg)))
    fix = next(line for line in lines if "fix:" in line)
    assert f"ssh-keygen -f {known}" in fix and "--accept-new-host-key" not in "\n".join(lines)
    assert known.read_text().split()[2] == blob, "the pinned key must stay as it was"


def test_board_without_onnxruntime(loopback_sshd) -> None:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system python3 has onnxruntime here, so it cannot stand for a bare board")
    target = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config, python="/usr/bin/python3")
    err = _fails(target, "onnxruntime missing for /usr/bin/python3")
    assert f"edgebench doctor --target {loopback_sshd.alias} --provision" in str(err)


def test_missing_interpreter(loopback_sshd) -> None:
    target = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config, python="/opt/no/python3")
    _fails(target, "no Python interpreter /opt/no/python3")


def _run_in_thread(target: SshTarget, spec: dict, timeout: float) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def work() -> None:
        try:
            out["doc"] = target.run(spec, timeout)
        except TargetError as exc:
            out["error"] = exc
        out["t_end"] = time.monotonic()

    thread = threading.Thread(target=work)
    thread.start()
    return thread, out


def test_connection_killed_mid_measurement(loopback_sshd, ssh_target: SshTarget, mlp_model: Path) -> None:
    spec = {"files": {"model": str(mlp_model)}, "min_time_s": 4, "max_time_s": 4}
    thread, out = _run_in_thread(ssh_target, spec, timeout=60)
    # " runner.py -": a measurement's runner (run in its scratch folder), not the board lock's (a full path)
    assert wait_for(lambda: processes_of(loopback_sshd.user, " runner.py -"), timeout=20)
    for pid in session_pids(loopback_sshd):
        os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    thread.join(30)
    assert isinstance(out.get("error"), SshError), out
    assert out["error"].kind == "lost" and loopback_sshd.alias in str(out["error"])
    assert out["t_end"] - t_kill < 5
    # The orphaned runner ends on its own (a closed pipe or the remote time limit) and its scratch goes.
    assert wait_for(lambda: not scratch_dirs(loopback_sshd.user), timeout=30)
    # The target reconnects for the next measurement, and takes the board's lock again first (it went with
    # the connection): no measurement runs without it.
    first_lock = ssh_target.board_lock
    assert ssh_target.run({"files": {"model": str(mlp_model)}, "min_time_s": 0.05}, 60)["status"] == "ok"
    assert ssh_target._board_lock.held
    assert ssh_target.board_lock["holder"]["since_unix"] > first_lock["holder"]["since_unix"]


def test_runner_killed_on_the_board(loopback_sshd, ssh_target: SshTarget, mlp_model: Path) -> None:
    # max_iterations too: at the default 10,000 calls the tiny model's run ends in ~0.2 s, before the kill
    spec = {"files": {"model": str(mlp_model)}, "min_time_s": 20, "max_time_s": 20, "max_iterations": 10**9}
    thread, out = _run_in_thread(ssh_target, spec, timeout=60)
    pids = wait_for(lambda: processes_of(loopback_sshd.user, " runner.py -"), timeout=20)
    assert pids
    time.sleep(0.5)
    for pid in processes_of(loopback_sshd.user, " runner.py -"):
        if Path(f"/proc/{pid}/exe").resolve().name.startswith("python"):
            os.kill(pid, signal.SIGKILL)
    thread.join(30)
    doc = out["doc"]
    assert doc["status"] == "crashed"
    assert "killed by signal 9" in doc["error"] and loopback_sshd.alias in doc["error"]
    assert wait_for(lambda: not scratch_dirs(loopback_sshd.user), timeout=10)


def test_remote_disk_full(loopback_sshd, ssh_target: SshTarget, tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    models = Path(ssh_target.cache_dir) / "models"
    # Cover the board's model cache with a 1 MB filesystem, keeping the runner the target already staged.
    runner_dir = Path(ssh_target._runner()).parent
    saved = tmp_path / "runner"
    subprocess.run(["cp", "-a", str(runner_dir), str(saved)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(models)], check=True)
    try:
        subprocess.run(["cp", "-a", str(saved), str(runner_dir)], check=True)
        with pytest.raises(SshError, match="disk of edgepi-loop is full") as info:
            ssh_target.run({"files": {"model": str(big)}}, 60)
        assert info.value.kind == "remote"
    finally:
        subprocess.run(["umount", str(models)], check=True)


def test_scratch_dir_is_private_and_removed(loopback_sshd, ssh_target: SshTarget, mlp_model: Path) -> None:
    seen: list[int] = []

    def watch() -> None:
        dirs = wait_for(lambda: scratch_dirs(loopback_sshd.user), timeout=20, step=0.02)
        seen.extend(d.stat().st_mode & 0o777 for d in dirs)

    watcher = threading.Thread(target=watch)
    watcher.start()
    doc = ssh_target.run({"files": {"model": str(mlp_model)}, "min_time_s": 1.5}, 60)
    watcher.join()
    assert doc["status"] == "ok"
    assert seen and all(mode == 0o700 for mode in seen)
    assert not scratch_dirs(loopback_sshd.user)
