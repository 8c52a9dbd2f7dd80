"""The standalone runner, run as a real subprocess through LocalTarget (the same path `bench` takes)."""

from __future__ import annotations

import ast
import json
import os
import stat
import sys

import numpy as np
import pytest

from targets.base import RUNNER_PATH
from targets.local import LocalTarget
from tests import onnx_models

FAST = {"min_iterations": 5, "min_time_s": 0.05, "warmup": {"min_iterations": 2, "min_time_s": 0.0}}


def run(spec: dict, timeout: float = 60.0, target: LocalTarget | None = None) -> dict:
    return (target or LocalTarget()).run({**FAST, **spec}, timeout=timeout)


def test_runner_imports_nothing_of_edgebench_or_torch():
    tree = ast.parse(RUNNER_PATH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "psutil"}, imported


def test_bench_reports_every_field(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}, "min_iterations": 30})
    assert doc["status"] == "ok", doc["error"]
    assert len(doc["latencies_ns"]) >= 30 and all(v > 0 for v in doc["latencies_ns"])
    assert len(doc["warmup_ns"]) >= 2
    assert doc["init_ms"] > 0 and doc["first_inference_ms"] > 0 and doc["throughput_ips"] > 0
    assert doc["rss_after_session_mb"] >= doc["rss_before_session_mb"] > 0
    assert doc["peak_rss_mb"] >= doc["rss_after_session_mb"] * 0.9
    machine = doc["machine"]
    for key in ("arch", "cpu_model", "cores", "ram_mb", "os", "python", "numpy", "onnxruntime", "providers"):
        assert machine[key], key
    assert "load_avg_1m" in doc["telemetry_start"] and "temp_c" in doc["telemetry_end"]
    assert doc["inputs"][0]["shape"] == [1, 1, 8, 8]
    for when in ("reference_before_ns", "reference_after_ns"):  # the machine's own speed, around the model
        assert set(doc[when]) == {"call", "compute"} and all(v > 0 for v in doc[when].values())


def test_the_reference_graphs_are_valid_onnx_that_computes_what_it_says():
    """The runner writes its reference models as protobuf bytes by hand (no onnx package on a board)."""
    import onnx
    import onnxruntime as ort

    from targets import runner

    for _, op, shape, _ in runner.REFERENCE_WORKLOADS:
        data = runner.reference_graph(op, shape)
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
        x = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        (y,) = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
        np.testing.assert_allclose(y, x @ x if op == "MatMul" else np.maximum(x, 0), rtol=1e-4, atol=1e-4)


def test_min_time_and_max_time_bound_the_loop(tmp_path):
    model = onnx_models.identity(tmp_path / "id.onnx")
    uncapped = {"max_iterations": 10**9}  # the default cap of 10,000 calls ends an Identity loop sooner
    doc = run({"files": {"model": str(model)}, "min_iterations": 1, "min_time_s": 0.3, "max_time_s": 0.3, **uncapped})
    total_s = sum(doc["latencies_ns"]) / 1e9
    assert 0.1 < total_s <= 0.31
    doc = run({"files": {"model": str(model)}, "min_iterations": 10**9, "min_time_s": 0.0, "max_time_s": 0.2})
    assert doc["status"] == "ok" and sum(doc["latencies_ns"]) / 1e9 <= 0.21


def test_dynamic_batch_follows_batch_size(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}, "batch": 8})
    assert doc["inputs"][0]["shape"] == [8, 1, 8, 8]
    assert doc["batch_size"] == 8
    # items/s counts items, not calls
    calls_per_s = len(doc["latencies_ns"]) / (sum(doc["latencies_ns"]) / 1e9)
    assert doc["throughput_ips"] > 4 * calls_per_s


def test_several_inputs(tmp_path):
    model = onnx_models.two_inputs(tmp_path / "add.onnx")
    doc = run({"files": {"model": str(model)}, "batch": 2})
    assert doc["status"] == "ok", doc["error"]
    assert [i["name"] for i in doc["inputs"]] == ["a", "b"]
    assert all(i["shape"] == [2, 3] for i in doc["inputs"])


def test_int64_inputs_with_a_symbolic_sequence_axis(tmp_path):
    model = onnx_models.token_embedding(tmp_path / "embed.onnx")
    doc = run({"files": {"model": str(model)}})
    assert doc["status"] == "bad_shape"
    assert "--shape ids=1,seq" in doc["error"] and "--input ids=" in doc["error"]
    doc = run({"files": {"model": str(model)}, "shapes": {"ids": [2, 128]}, "values": {"ids": {"random": True}}})
    assert doc["status"] == "ok", doc["error"]
    assert doc["inputs"][0]["type"] == "tensor(int64)" and doc["inputs"][0]["shape"] == [2, 128]


@pytest.mark.parametrize("override, words", [
    ({"x": [1, 3, 8, 8]}, "does not fit"),       # a fixed dimension changed
    ({"x": [1, 64]}, "does not fit"),            # rank changed
    ({"nope": [1, 1, 8, 8]}, "inputs are x"),    # unknown input name
])
def test_shape_overrides_that_do_not_fit(tmp_path, override, words):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = run({"files": {"model": str(model)}, "shapes": override})
    assert doc["status"] == "bad_shape" and words in doc["error"]


def test_accuracy_counts_a_confusion_matrix_from_the_data(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    data = onnx_models.digits_npz(tmp_path / "d.npz", n=150)
    doc = run({"files": {"model": str(model), "data": str(data)}, "accuracy": True})
    cm = np.array(doc["accuracy"]["confusion"])
    assert doc["accuracy"]["n"] == 150 and cm.sum() == 150
    # the same count computed here from the same model must agree
    import onnxruntime as ort

    d = np.load(data)
    pred = ort.InferenceSession(str(model)).run(None, {"x": d["x"]})[0].argmax(1)
    assert np.trace(cm) == int((pred == d["y"]).sum())


def test_data_inputs_feed_the_timed_loop(tmp_path):
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    data = onnx_models.digits_npz(tmp_path / "d.npz", n=10)
    doc = run({"files": {"model": str(model), "data": str(data)}, "batch": 4})
    assert doc["status"] == "ok", doc["error"]
    assert doc["inputs"][0]["source"] == "data" and doc["inputs"][0]["shape"] == [4, 1, 8, 8]


@pytest.mark.parametrize("make, status", [
    (lambda p: p / "missing.onnx", "missing_file"),
    (lambda p: (p / "junk.onnx").write_bytes(b"\x00junk") and p / "junk.onnx", "bad_model"),
])
def test_unusable_model_files(tmp_path, make, status):
    doc = run({"files": {"model": str(make(tmp_path))}})
    assert doc["status"] == status and doc["error"]


def test_a_model_onnxruntime_cannot_load_gets_a_readable_message(tmp_path):
    import onnx

    model = onnx_models.identity(tmp_path / "id.onnx")
    proto = onnx.load(str(model))
    proto.ir_version = 99
    onnx.save(proto, str(model))
    doc = run({"files": {"model": str(model)}})
    assert doc["status"] == "bad_model"
    assert "IR version" in doc["error"] and "onnxruntime_src" not in doc["error"]


def test_a_runner_that_overruns_is_stopped(tmp_path):
    model = onnx_models.identity(tmp_path / "id.onnx")
    doc = LocalTarget().run({"files": {"model": str(model)}, "min_time_s": 30, "max_time_s": 30,
                             "max_iterations": 10**9}, timeout=2)
    assert doc["status"] == "timeout" and "--timeout" in doc["error"]


def test_a_runner_that_crashes_becomes_a_failure_record(tmp_path):
    dying = tmp_path / "python"
    dying.write_text("#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\nkill -SEGV $$\n")
    dying.chmod(dying.stat().st_mode | stat.S_IEXEC)
    doc = LocalTarget(python=str(dying)).run({"files": {}}, timeout=10)
    assert doc["status"] == "crashed"
    assert "signal 11" in doc["error"] and "Segmentation fault" in doc["error"]


def test_probe_needs_no_model(tmp_path):
    doc = LocalTarget().probe()
    assert doc["status"] == "ok" and doc["machine"]["onnxruntime"]


def test_cpu_affinity_pins_the_process(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to tell pinning from no pinning")
    model = onnx_models.identity(tmp_path / "id.onnx")
    doc = run({"files": {"model": str(model)}, "cpu_affinity": [0]})
    assert doc["machine"]["cores"] == 1


def test_the_runner_prints_one_json_document_and_exit_code(tmp_path):
    import subprocess

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"files": {"model": str(tmp_path / "none.onnx")}}))
    proc = subprocess.run([sys.executable, str(RUNNER_PATH), str(spec)], capture_output=True, text=True)
    assert proc.returncode == 3
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "missing_file"


def test_peak_rss_is_the_runners_own_not_its_parents(tmp_path):
    """A runner forked from a big parent must not report the parent's memory (ru_maxrss survives exec)."""
    import numpy as np  # noqa: F401

    ballast = bytearray(600 * 1024 * 1024)  # this test process grows by 600 MB before forking the runner
    ballast[::4096] = b"x" * len(ballast[::4096])
    model = onnx_models.identity(tmp_path / "id.onnx")
    doc = run({"files": {"model": str(model)}})
    assert doc["peak_rss_mb"] < 400, doc["peak_rss_mb"]
    del ballast
