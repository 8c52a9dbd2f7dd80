"""SshTarget beyond the shared contract: doctor/provision, one measurement at a time, cache, overhead."""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest

from targets.errors import TargetError
from targets.doctor import Check, doctor, format_checks, provision
from targets.local import LocalTarget
from targets.ssh import SshTarget, parse_target_spec
from tests import onnx_models

FAST = {"min_time_s": 0.05, "min_iterations": 5, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("ssh://pi@board.local:2222", ("board.local", "pi", 2222)),
        ("ssh://board", ("board", None, None)),
        ("ssh://[::1]:22", ("::1", None, 22)),
        ("pi", ("pi", None, None)),
        ("me@pi", ("pi", "me", None)),
    ],
)
def test_parse_target_spec(spec: str, expected: tuple) -> None:
    assert parse_target_spec(spec) == expected


@pytest.mark.parametrize("spec", ["ssh://", "ssh://pi/path", "ssh://pi:notaport", "-oProxyCommand=x", "a b"])
def test_bad_target_spec_says_the_form(spec: str) -> None:
    with pytest.raises(TargetError, match=r"ssh://\[user@\]host\[:port\]"):
        SshTarget(spec)


def test_format_checks_marks_failures_with_the_fix() -> None:
    lines = format_checks([Check("python", True, "3.11"), Check("onnxruntime", False, "missing", "pip install x"),
                           Check("temperature", False, "no sensor", "apt install y", required=False)])  # fmt: skip
    assert lines[0].startswith("ok") and lines[1].startswith("FAIL") and "fix: pip install x" in lines[2]
    assert lines[3].startswith("warn")


def test_doctor_local() -> None:
    checks = {c.name: c for c in doctor(LocalTarget())}
    assert checks["reachable"].ok and checks["onnxruntime"].ok and checks["python"].ok


@pytest.mark.ssh
def test_doctor_and_provision_over_ssh(loopback_sshd) -> None:
    target = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config)
    try:
        checks = {c.name: c for c in doctor(target)}
        assert all(c.ok for c in checks.values() if c.required), format_checks(list(checks.values()))
        assert checks["python"].detail.endswith("/.cache/edgebench/venv/bin/python")
        # Provisioning again is a no-op for pip ("already satisfied") and keeps the venv usable.
        import numpy
        import onnxruntime

        provision(target, packages=[f"numpy=={numpy.__version__}", f"onnxruntime=={onnxruntime.__version__}"])
        target.open()
    finally:
        target.close()


@pytest.mark.ssh
def test_doctor_names_what_is_missing_and_how_to_fix_it(loopback_sshd, tmp_path: Path) -> None:
    bare = SshTarget(loopback_sshd.alias, ssh_config=loopback_sshd.ssh_config, python="/usr/bin/python3")
    try:
        checks = {c.name: c for c in doctor(bare)}
    finally:
        bare.close()
    if checks["onnxruntime"].ok:
        pytest.skip("the system python3 has onnxruntime here")
    assert f"edgebench doctor --target {loopback_sshd.alias} --provision" in checks["onnxruntime"].fix
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cfg = loopback_sshd.write_client_config(tmp_path / "cfg", identity=key)
    locked_out = SshTarget(loopback_sshd.alias, ssh_config=cfg)
    try:
        checks = {c.name: c for c in doctor(locked_out)}
    finally:
        locked_out.close()
    assert checks["reachable"].ok and not checks["login"].ok and "ssh-copy-id" in checks["login"].fix


@pytest.mark.ssh
def test_one_measurement_at_a_time_per_board(ssh_target: SshTarget, mlp_model: Path) -> None:
    spec = {"files": {"model": str(mlp_model)}, **FAST, "min_time_s": 0.5}
    docs: list[dict] = []
    threads = [threading.Thread(target=lambda: docs.append(ssh_target.run(spec, 60))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [d["status"] for d in docs] == ["ok"] * 3
    spans = sorted((d["telemetry_start"]["time_unix"], d["telemetry_end"]["time_unix"]) for d in docs)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


@pytest.mark.ssh
def test_model_is_copied_once_and_cached_by_content(ssh_target: SshTarget, tmp_path: Path) -> None:
    model = onnx_models.mlp(tmp_path / "model.onnx", seed=12345)
    from targets.ssh_files import bundle_for

    remote = Path(ssh_target.cache_dir) / "models" / bundle_for(model).sha256 / "model.onnx"
    if remote.exists():
        remote.unlink()
    assert ssh_target.run({"files": {"model": str(model)}, **FAST}, 60)["status"] == "ok"
    first = remote.stat().st_mtime_ns
    assert ssh_target.run({"files": {"model": str(model)}, **FAST}, 60)["status"] == "ok"
    assert remote.stat().st_mtime_ns == first and remote.read_bytes() == model.read_bytes()


@pytest.mark.ssh
def test_model_with_external_data_is_copied_with_it(ssh_target: SshTarget, tmp_path: Path) -> None:
    import onnx

    src = onnx.load(str(onnx_models.mlp(tmp_path / "plain.onnx", seed=7)))
    (tmp_path / "ext").mkdir()
    onnx.save(src, str(tmp_path / "ext" / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
              size_threshold=0)  # fmt: skip
    doc = ssh_target.run({"files": {"model": str(tmp_path / "ext" / "model.onnx")}, **FAST}, 60)
    assert doc["status"] == "ok", doc.get("error")


@pytest.mark.ssh
def test_loopback_matches_local_and_costs_little_per_variant(ssh_target: SshTarget, tmp_path: Path) -> None:
    """Must show: same machine, so medians agree within 25%; a variant costs <= 0.5 s more over SSH."""
    variants = [onnx_models.mlp(tmp_path / f"v{i}.onnx", seed=100 + i, hidden=512) for i in range(4)]
    local = LocalTarget()
    spec = {**FAST, "min_time_s": 0.3, "min_iterations": 50}
    ratios, extra = [], []
    for model in variants:  # interleaved: the machine is shared and its speed drifts
        s = {**spec, "files": {"model": str(model)}}
        t0 = time.monotonic()
        d_ssh = ssh_target.run(s, 60)
        t1 = time.monotonic()
        d_loc = local.run(s, 60)
        t2 = time.monotonic()
        assert d_ssh["status"] == d_loc["status"] == "ok"
        ratios.append(statistics.median(d_ssh["latencies_ns"]) / statistics.median(d_loc["latencies_ns"]))
        # Wall time minus the runner's own time: what the transport added (a first copy included).
        extra.append(((t1 - t0) - d_ssh["wall_s"]) - ((t2 - t1) - d_loc["wall_s"]))
    print(f"ssh/local median ratios {[round(r, 3) for r in ratios]}; extra s per variant {[round(e, 3) for e in extra]}")
    assert 0.75 <= statistics.median(ratios) <= 1.25
    assert statistics.mean(extra) <= 0.5
