"""Two real execution providers over loopback SSH: one board user, two venvs (plain onnxruntime, and
onnxruntime-openvino), chosen with --python; the OpenVINO provider's fallback to CPU is detected."""

from __future__ import annotations

import pandas as pd
import pytest

from tests import onnx_models
from tests.e2e.test_bench_cli import FAST, edgebench

pytestmark = pytest.mark.ssh

OPENVINO = "OpenVINOExecutionProvider"


def test_doctor_lists_the_providers_of_each_venv(loopback_sshd, openvino_python):
    ssh = ["--target", loopback_sshd.alias, "--ssh-config", loopback_sshd.ssh_config]
    plain = edgebench("doctor", *ssh)
    ov = edgebench("doctor", *ssh, "--python", openvino_python)
    assert plain.returncode == 0 and ov.returncode == 0, plain.stdout + ov.stdout
    line = lambda text: next(x for x in text.splitlines() if "providers" in x)  # noqa: E731
    assert OPENVINO not in line(plain.stdout) and "CPUExecutionProvider" in line(plain.stdout)
    assert OPENVINO in line(ov.stdout)


def test_the_same_models_on_cpu_and_openvino_record_their_providers_and_the_fallback(
        loopback_sshd, openvino_python, tmp_path):
    mlp = onnx_models.mlp(tmp_path / "mlp.onnx")
    det = onnx_models.mlp_det(tmp_path / "det.onnx")  # Det: the OpenVINO provider leaves it to CPU
    ssh = ["--target", loopback_sshd.alias, "--ssh-config", loopback_sshd.ssh_config]
    cpu_out, ov_out = tmp_path / "cpu", tmp_path / "ov"
    cpu = edgebench("bench", mlp, det, *ssh, "--out", cpu_out, *FAST)
    ov = edgebench("bench", mlp, det, *ssh, "--python", openvino_python, "--provider", "openvino",
                   "--out", ov_out, *FAST[:-1])  # not quiet: the fallback warning must reach the console
    assert cpu.returncode == 0, cpu.stderr
    assert ov.returncode == 0, ov.stderr
    c = pd.read_csv(cpu_out / "summary.csv").set_index("variant")
    o = pd.read_csv(ov_out / "summary.csv").set_index("variant")
    assert (c["status"] == "ok").all() and (o["status"] == "ok").all()
    assert set(c["providers"]) == {"CPUExecutionProvider"} and c["provider_fallback_nodes"].isna().all()
    assert o.loc["mlp", "providers"] == OPENVINO and o.loc["mlp", "provider_fallback_nodes"] == 0
    assert o.loc["det", "providers"] == f"{OPENVINO};CPUExecutionProvider"
    assert o.loc["det", "provider_fallback_nodes"] >= 1 and "Det" in o.loc["det", "provider_fallback_ops"].split(",")
    assert f"{OPENVINO} could not take" in o.loc["det", "warnings"]
    assert f"{OPENVINO} could not take" in ov.stdout + ov.stderr
    assert o.loc["mlp", "onnxruntime_version"] != c.loc["mlp", "onnxruntime_version"]  # two onnxruntime builds
    assert o.loc["mlp", "settings_hash"] != c.loc["mlp", "settings_hash"]  # a provider is part of the identity


def test_the_plain_venv_refuses_the_openvino_provider_naming_what_it_offers(loopback_sshd, openvino_python, tmp_path):
    mlp = onnx_models.mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    proc = edgebench("bench", mlp, "--target", loopback_sshd.alias, "--ssh-config", loopback_sshd.ssh_config,
                     "--provider", "openvino", "--out", out, *FAST)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (row,) = pd.read_csv(out / "summary.csv").to_dict("records")
    assert row["status"] == "bad_provider" and "it offers" in row["error"] and "CPUExecutionProvider" in row["error"]
