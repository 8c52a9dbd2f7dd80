"""Execution providers on this machine's onnxruntime: flags, identity, and the runner's checks and placement.

The plain onnxruntime wheel offers AzureExecutionProvider beside CPU; Azure takes no node of a local
model, so it is a real provider whose every node falls back to CPU. The OpenVINO provider over SSH is in
tests/test_providers_ssh.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime
import pandas as pd
import pytest

from harness.experiment import parse_experiment
from harness.measurement import RunSpec
from harness.providers import ProviderSpec, fallback_warning, parse_provider, parse_providers
from targets.errors import EdgebenchError
from tests import onnx_models
from tests.e2e.test_bench_cli import FAST, assert_one_line_error, edgebench
from tests.test_runner import run

OPENVINO = "OpenVINOExecutionProvider"


def test_provider_specs_take_short_names_and_options():
    assert parse_provider("openvino") == ProviderSpec(OPENVINO)
    assert parse_provider("CPU").name == "CPUExecutionProvider"
    spec = parse_provider("OpenVINOExecutionProvider:num_of_threads=1, device_type=CPU")
    assert spec.options == (("device_type", "CPU"), ("num_of_threads", "1"))
    assert spec.runner() == {"name": OPENVINO, "options": {"device_type": "CPU", "num_of_threads": "1"}}
    assert parse_provider("MyVendorExecutionProvider").name == "MyVendorExecutionProvider"  # the runner decides
    assert parse_providers(["cpu"]) == ()  # CPU alone is the default: the same measurement, the same identity


@pytest.mark.parametrize("texts, words", [
    (["openvino:device_type"], ["not key=value", "device_type=CPU"]),
    ([":x=1"], ["NAME[:key=value"]),
    (["openvino", "OpenVINOExecutionProvider"], ["given twice"]),
])
def test_a_malformed_provider_is_one_message(texts, words):
    with pytest.raises(EdgebenchError) as exc:
        parse_providers(texts)
    for word in words:
        assert word in str(exc.value)


def test_a_provider_is_part_of_a_measurements_identity():
    plain = RunSpec()
    assert "providers" not in plain.settings_key()  # results measured before --provider keep their hash
    ov = RunSpec(providers=parse_providers(["openvino:device_type=CPU,num_of_threads=1"]))
    same = RunSpec(providers=parse_providers(["OpenVINOExecutionProvider:num_of_threads=1,device_type=CPU"]))
    other = RunSpec(providers=parse_providers(["openvino:device_type=CPU"]))
    assert ov.settings_hash() == same.settings_hash()
    assert len({plain.settings_hash(), ov.settings_hash(), other.settings_hash()}) == 3
    assert ov.runner_spec(Path("m.onnx"))["providers"][0]["options"] == {"device_type": "CPU", "num_of_threads": "1"}
    assert "providers" not in plain.runner_spec(Path("m.onnx"))


def test_an_experiment_names_its_providers(tmp_path):
    doc = {"models": [{"name": "m", "model": "zoo:digits-cnn"}], "variants": ["fp32"],
           "measure": {"providers": ["openvino", "cpu"]}}
    (spec,) = parse_experiment(doc, tmp_path, "x.toml").run_specs()
    assert [p.name for p in spec.providers] == [OPENVINO, "CPUExecutionProvider"]
    with pytest.raises(EdgebenchError, match="measure.providers"):
        parse_experiment({**doc, "measure": {"providers": ["openvino:oops"]}}, tmp_path, "x.toml")


def test_a_provider_this_onnxruntime_lacks_is_one_error_listing_what_it_offers(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}, "providers": [{"name": OPENVINO}]})
    assert doc["status"] == "bad_provider"
    assert OPENVINO in doc["error"] and "CPUExecutionProvider" in doc["error"] and "--python" in doc["error"]


def test_cpu_only_sessions_are_not_profiled(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}})
    assert doc["status"] == "ok" and doc["providers"] == ["CPUExecutionProvider"] and "placement" not in doc


def test_nodes_a_provider_cannot_take_are_found_in_the_placement(tmp_path):
    if "AzureExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has no second provider")
    before = set(Path("/tmp").glob("edgebench-profile.*"))
    model = onnx_models.mlp_det(tmp_path / "det.onnx")
    asked = [{"name": "AzureExecutionProvider"}, {"name": "CPUExecutionProvider"}]
    doc = run({"files": {"model": str(model)}, "providers": asked})
    assert doc["status"] == "ok", doc["error"]
    placement = doc["placement"]
    assert placement["used"] == ["CPUExecutionProvider"]  # Azure took nothing: every node fell back
    assert len(placement["fallback"]) == placement["nodes"]["CPUExecutionProvider"] >= 3
    assert "Det" in {n["op"] for n in placement["fallback"]}
    warning = fallback_warning(parse_providers(["azure", "cpu"]), placement)
    assert warning and "took no node" in warning and "not a AzureExecutionProvider figure" in warning
    assert set(Path("/tmp").glob("edgebench-profile.*")) <= before  # the profile is not left behind


def test_bench_with_an_unknown_provider_is_a_row_and_one_line(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--provider", "NoSuchExecutionProvider", "--out", out, *FAST)
    assert_one_line_error(proc, "NoSuchExecutionProvider is not offered", "CPUExecutionProvider")
    (row,) = pd.read_csv(out / "summary.csv").to_dict("records")
    assert row["status"] == "bad_provider" and row["n_processes"] == 0
    kinds = [json.loads(line)["kind"] for line in (out / "processes.jsonl").read_text().splitlines()]
    assert kinds.count("process") == 1  # permanent: not retried per process
    assert_one_line_error(edgebench("bench", model, "--provider", "openvino:x"), "not key=value")
