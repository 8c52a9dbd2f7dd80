"""Builds on a real Dask cluster on loopback (a scheduler and two workers, separate processes): one worker is
killed mid-build, every variant still arrives once, bit for bit the variant a local build makes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.sshd import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = "fp32,prune-l1:0.5,cluster:4,prune-ch:0.5"
COMPRESS = ["--model", "zoo:digits-cnn", "--variants", VARIANTS, "--finetune-epochs", "1"]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
                                start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """`dask scheduler` and two `dask worker`s (no nanny: a killed worker stays dead) on 127.0.0.1."""
    try:
        from distributed import Client
    except ImportError:
        skip_or_fail("Dask is not installed (pip install '.[test]' installs distributed)")
    dask = str(Path(sys.executable).parent / "dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                    tmp_path / "scheduler.log")]
    try:
        procs += [_start([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name",
                          f"w{i}"], tmp_path / f"worker{i}.log") for i in range(2)]
        client = Client(address, timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield address, client
        client.close()
    finally:
        for p in reversed(procs):  # workers first; each in a session of its own: its group is it and its children
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _compress(out: Path, cache: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "EDGEBENCH_CACHE": str(cache)}  # no artifact a build could take from the other
    return subprocess.Popen([sys.executable, "-m", "harness", "compress", *COMPRESS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "artifacts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len({r["variant"] for r in rows}), "a variant arrived twice"
    return {r["variant"]: r for r in rows}


def test_a_killed_worker_costs_no_variant_and_the_cluster_builds_what_a_local_build_does(cluster, tmp_path):
    address, client = cluster
    local = _compress(tmp_path / "local", tmp_path / "cache-local")
    _, err = local.communicate(timeout=900)
    assert local.returncode == 0, err

    remote = _compress(tmp_path / "remote", tmp_path / "cache-remote", "--executor", address.replace("tcp", "dask"))
    deadline = time.monotonic() + 600
    busy: dict = {}
    while not busy and time.monotonic() < deadline and remote.poll() is None:
        busy = {w: keys for w, keys in client.processing().items() if keys}
        time.sleep(0.2)
    assert busy, remote.communicate()
    time.sleep(2)  # well into a build: its process imported torch and is training
    victim = next(iter(busy))
    pid = client.run(os.getpid)[victim]
    os.kill(pid, signal.SIGKILL)
    _, err = remote.communicate(timeout=900)
    assert remote.returncode == 0, err

    built_here, built_there = _rows(tmp_path / "local"), _rows(tmp_path / "remote")
    assert set(built_there) == set(VARIANTS.split(","))
    survivors = set()
    for variant, row in built_there.items():
        assert row["status"] == "ok", row
        mine = built_here[variant]
        # the same model: same accuracy and parameter counts, and here (one machine, CPU) the same bytes
        for key in ("accuracy", "params", "nonzero_params", "model_sha256"):
            assert row[key] == mine[key], (variant, key)
        folder = tmp_path / "remote" / row["variant_dir"]
        manifest = json.loads((folder / "manifest.json").read_text())
        assert (folder / "model.onnx").is_file() and manifest["train_device"] == "cpu"
        if "built_on" in manifest:
            survivors.add(manifest["built_on"].rsplit(":", 1)[1])
    assert str(pid) not in survivors  # what the killed worker was building was built again by the other
    assert "built on" in err
