"""MLflow: each (variant, target) row of a result folder as one MLflow run, for teams that track experiments there.

`--mlflow URI` on `run` and `bench` (and `edgebench report DIR --mlflow URI` for a folder measured earlier, or
when the server was down). Params say what was measured (model, variant and what it did, target, threads,
batch, providers, streams, INT8 form, settings hash), metrics what came out (latency percentiles and 95% CI,
throughput, memory, size, parameters, accuracy), tags where it came from (sha256, run folder, edgebench
version, host); artifacts are the variant's manifest, its summary row as a one-row CSV, and the folder's
plots and report. A row logged once is found again by its `edgebench.row` tag and not logged twice.

The folder is written first and stays the record: a server that cannot be reached costs one error line
naming the URI and the command that logs the folder later. The client is imported only here, from the
optional extra (`pip install 'edgebench[mlflow]'`, the skinny client).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from targets.errors import EdgebenchError
from targets.fileio import cell_number

DEFAULT_EXPERIMENT = "edgebench"
ROW_TAG = "edgebench.row"

PARAMS = ("model", "variant", "target", "threads", "batch_size", "providers", "streams", "stream_sessions",
          "int8_form", "settings_hash", "n_processes")
METRICS = ("latency_ms_median", "latency_ms_p90", "latency_ms_p95", "latency_ms_p99", "latency_ms_mean",
           "latency_ms_min", "latency_ms_max", "latency_ms_ci95_low", "latency_ms_ci95_high", "throughput_ips",
           "throughput_ips_streams", "init_ms", "first_inference_ms", "peak_rss_mb", "session_rss_mb", "model_bytes",
           "model_zip_bytes", "params", "nonzero_params", "macs", "accuracy", "precision_macro", "recall_macro",
           "f1_macro", "gmean", "reference_shift")
TAGS = ("artifact_sha256", "run_id", "timestamp_utc", "hostname", "cpu_model", "arch", "onnxruntime_version",
        "status", "error", "warnings")


def add_mlflow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", metavar="URI",
                   help="also log each (variant, target) as an MLflow run on this tracking server "
                        "(pip install 'edgebench[mlflow]')")
    p.add_argument("--mlflow-experiment", metavar="NAME", default=DEFAULT_EXPERIMENT,
                   help=f"the MLflow experiment the runs go to (default {DEFAULT_EXPERIMENT})")


def _client(uri: str) -> Any:
    # Fail in seconds, not minutes: the client's default is 7 retries with backoff on every request.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise EdgebenchError("--mlflow needs the MLflow client: pip install 'edgebench[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def row_key(row: dict[str, str], folder: Path) -> str:
    """One row's identity across re-logs: the folder, the measurement and when it was closed."""
    parts = [str(folder.resolve()), *(row.get(k) or "" for k in ("model", "variant", "target", "batch_size",
                                                                  "threads", "settings_hash", "timestamp_utc"))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _manifest(folder: Path, row: dict[str, str]) -> Path | None:
    """The variant's manifest.json (an artifact folder's), when the measured file sits in one."""
    path = Path(row.get("model_path") or "")
    for candidate in (path.parent / "manifest.json", folder / path.parent / "manifest.json"):
        if candidate.is_file():
            return candidate
    return None


def _describe(variant: str) -> str:
    try:
        from harness.report import describe_variant
    except ImportError:  # the light install has no report (pandas): the spec itself says what it is
        return variant
    return describe_variant(variant)


def log_folder(folder: Path, uri: str, experiment: str, progress: Any = print) -> int:
    """Log every row of folder/summary.csv not logged before; returns how many runs were created."""
    from harness.results import read_csv_rows

    client = _client(uri)
    rows = read_csv_rows(folder / "summary.csv") if (folder / "summary.csv").is_file() else []
    header = list(rows[0]) if rows else []
    plots = sorted(folder.glob("*.png")) + [p for p in (folder / "report.html", folder / "report.md") if p.is_file()]
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        created = 0
        for row in rows:
            key = row_key(row, folder)
            if client.search_runs([experiment_id], filter_string=f"tags.`{ROW_TAG}` = '{key}'", max_results=1):
                continue
            created += _log_row(client, experiment_id, folder, row, key, header, plots)
    except EdgebenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the client raises many kinds (connection, REST, permission)
        again = f"edgebench report {folder} --mlflow {uri}" + (
            f" --mlflow-experiment {experiment}" if experiment != DEFAULT_EXPERIMENT else "")
        raise EdgebenchError(f"could not log to MLflow at {uri} ({_reason(exc)}); the results are in {folder}: log "
                             f"them later with `{again}`") from None
    progress(f"mlflow: {created} run(s) logged to experiment {experiment} at {uri}"
             + (f" ({len(rows) - created} already there)" if len(rows) > created else ""))
    return created


def _log_row(client: Any, experiment_id: str, folder: Path, row: dict[str, str], key: str, header: list[str],
             plots: list[Path]) -> int:
    from mlflow.entities import Metric, Param, RunTag

    tags = {ROW_TAG: key, "edgebench.folder": str(folder.resolve()), "edgebench.version": _version(),
            **{f"edgebench.{k}": row[k][:5000] for k in TAGS if row.get(k)}}
    run = client.create_run(experiment_id, run_name=f"{row.get('variant')} on {row.get('target')}", tags=tags)
    run_id = run.info.run_id
    params = {k: row.get(k) or "" for k in PARAMS}
    params["recipe"] = _describe(row.get("variant") or "")
    metrics = {k: v for k in METRICS if (v := cell_number(row.get(k))) is not None and math.isfinite(v)}
    client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     tags=[RunTag("mlflow.note.content", f"edgebench {row.get('variant')} on {row.get('target')}")])
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary_row.csv"
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
        summary.write_text(buf.getvalue(), encoding="utf-8")
        client.log_artifact(run_id, str(summary))
    manifest = _manifest(folder, row)
    if manifest:
        client.log_artifact(run_id, str(manifest))
    for plot in plots:
        client.log_artifact(run_id, str(plot), artifact_path="report")
    client.set_terminated(run_id, "FINISHED" if row.get("status") == "ok" else "FAILED")
    return 1


def _reason(exc: Exception) -> str:
    """The client's exception in a few words (its text quotes whole URLs and nested exceptions)."""
    text = str(exc).strip()
    if any(mark in text for mark in ("Connection refused", "NewConnectionError", "Max retries exceeded")):
        return "the server does not answer: connection refused or unreachable"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 200 else first[:200] + " ..."


def _version() -> str:
    from harness import __version__

    return __version__


def log_if_asked(args: argparse.Namespace, folder: Path) -> int:
    """After a command wrote `folder`: log it when --mlflow was given. 0, or 1 after a failed log (the error
    line printed; the results stay in the folder)."""
    uri = getattr(args, "mlflow", None)
    if not uri:
        return 0
    try:
        log_folder(folder, uri, args.mlflow_experiment, progress=print)
    except EdgebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
