"""--mlflow against a real MLflow tracking server (SQLite backend) started here on loopback, read back with
MlflowClient."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests import onnx_models
from tests.conftest import skip_or_fail
from tests.e2e.test_bench_cli import edgebench
from tests.sshd import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 in its own session; stopped by its process group (its PID) afterwards."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow is None:
        skip_or_fail("the mlflow server is not installed (pip install '.[test]' installs it)")
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                             "--artifacts-destination", str(home / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started, all in its session
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-bench")
    models = [onnx_models.mlp(folder / "fp32.onnx"), onnx_models.mlp(folder / "small.onnx", hidden=32, seed=1)]
    data = onnx_models.digits_npz(folder / "digits.npz")
    return folder, models, data


def runs_of(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_each_variant_and_target_is_one_run_with_its_params_metrics_tags_and_artifacts(mlflow_server, measured):
    from mlflow.tracking import MlflowClient

    folder, models, data = measured
    out = folder / "out"
    proc = edgebench("bench", *models, "--data", data, "--processes", "2", "--min-time", "0.1", "-q", "--out", out,
                     "--mlflow", mlflow_server, "--mlflow-experiment", "ci-bench", timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    runs = {r.data.params["variant"]: r for r in runs_of(mlflow_server, "ci-bench")}
    assert set(runs) == {"fp32", "small"}
    for variant, run in runs.items():
        row = summary.loc[variant]
        assert run.info.run_name == f"{variant} on local" and run.info.status == "FINISHED"
        assert run.data.params["target"] == "local" and run.data.params["model"] == row["model"]
        assert run.data.params["batch_size"] == str(row["batch_size"]) and "recipe" in run.data.params
        for metric in ("latency_ms_median", "latency_ms_p99", "latency_ms_ci95_low", "latency_ms_ci95_high",
                       "throughput_ips", "peak_rss_mb", "model_bytes", "params", "accuracy"):
            assert run.data.metrics[metric] == pytest.approx(float(row[metric]), rel=1e-9), metric
        assert run.data.tags["edgebench.artifact_sha256"] == row["artifact_sha256"]
        artifacts = {a.path for a in MlflowClient(tracking_uri=mlflow_server).list_artifacts(run.info.run_id)}
        assert "summary_row.csv" in artifacts


def test_a_folder_logged_again_is_not_duplicated_and_report_adds_plots(mlflow_server, measured):
    from mlflow.tracking import MlflowClient

    folder, models, data = measured
    out = folder / "again"
    proc = edgebench("bench", *models, "--data", data, "--processes", "2", "--min-time", "0.1", "-q", "--out", out,
                     timeout=300)
    assert proc.returncode == 0, proc.stderr
    for _ in range(2):
        proc = edgebench("report", out, "--mlflow", mlflow_server, "--mlflow-experiment", "ci-report", timeout=300)
        assert proc.returncode == 0, proc.stderr
    runs = runs_of(mlflow_server, "ci-report")
    assert len(runs) == 2 and "already there" in proc.stdout
    client = MlflowClient(tracking_uri=mlflow_server)
    report = {a.path for a in client.list_artifacts(runs[0].info.run_id, "report")}
    assert {"report/report.html", "report/accuracy_vs_latency.png"} <= report


def test_an_unreachable_server_costs_one_line_and_no_result(measured, tmp_path):
    _, models, _ = measured
    out = tmp_path / "out"
    start = time.monotonic()
    proc = edgebench("bench", models[0], "--processes", "2", "--min-time", "0.1", "-q", "--out", out, "--mlflow",
                     f"http://127.0.0.1:{free_port()}", timeout=300)
    assert proc.returncode == 1 and time.monotonic() - start < 120
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "could not log to MLflow" in line and f"edgebench report {out} --mlflow" in line
    assert "Traceback" not in proc.stderr
    assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["ok"]
