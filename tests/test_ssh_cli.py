"""`edgebench bench` on several targets at once, over the real loopback sshd (no SSH mocks)."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from tests import onnx_models
from tests.e2e.test_bench_cli import FAST, assert_one_line_error, edgebench


def test_two_targets_in_parallel_write_one_summary(loopback_sshd, tmp_path):
    models = [onnx_models.mlp(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    out = tmp_path / "out"
    proc = edgebench("bench", *models, "--target", "local", "--target", loopback_sshd.alias,
                     "--ssh-config", loopback_sshd.ssh_config, "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(zip(summary["target"], summary["variant"])) == sorted(
        (t, v) for t in ("local", loopback_sshd.alias) for v in ("m0", "m1"))
    assert (summary["status"] == "ok").all()
    machines = json.loads((out / "machine.json").read_text())["targets"]
    assert set(machines) == {"local", loopback_sshd.alias}
    samples = pd.read_csv(out / "samples.csv")
    assert set(samples["target"]) == {"local", loopback_sshd.alias}


def test_an_unreachable_target_does_not_cost_the_others_their_results(loopback_sshd, tmp_path):
    model = onnx_models.mlp(tmp_path / "m.onnx")
    out = tmp_path / "out"
    start = time.monotonic()
    proc = edgebench("bench", model, "--target", "local", "--target", "ssh://edgepi@127.0.0.1:1",
                     "--ssh-config", loopback_sshd.ssh_config, "--out", out, *FAST)
    assert time.monotonic() - start < 60
    assert_one_line_error(proc, "127.0.0.1")
    rows = pd.read_csv(out / "summary.csv").set_index("target")
    assert rows.loc["local", "status"] == "ok" and rows.loc["local", "n_processes"] == 2
    assert rows.loc["ssh://edgepi@127.0.0.1:1", "status"] == "target_error"


def test_compare_runs_its_paired_rounds_on_a_remote_board(loopback_sshd, tmp_path):
    small = onnx_models.mlp(tmp_path / "small.onnx", hidden=16)
    big = onnx_models.mlp(tmp_path / "big.onnx", hidden=2048)
    out = tmp_path / "out"
    proc = edgebench("compare", small, big, "--target", loopback_sshd.alias, "--ssh-config",
                     loopback_sshd.ssh_config, "--out", out, "--max-time", "40", "--round-time", "0.05",
                     "--block-size", "10", "--drop", "2", "--threads", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    (row,) = pd.read_csv(out / "comparison.csv").to_dict("records")
    assert row["target"] == loopback_sshd.alias and row["verdict"] == "slower" and row["ratio_ci95_low"] > 1


@pytest.mark.ssh
def test_input_values_travel_to_the_board_like_models(loopback_sshd, tmp_path):
    """A .npy given with --input is copied to the board; both targets report feeding the same values."""
    import numpy as np

    model = onnx_models.streaming(tmp_path / "stream.onnx")
    np.save(tmp_path / "state.npy", np.zeros((2, 1, 8), np.float32))
    out = tmp_path / "out"
    proc = edgebench("bench", model, "--shape", "input=1,64", "--input", f"state={tmp_path / 'state.npy'}",
                     "--input", "sr=16000", "--target", "local", "--target", loopback_sshd.alias,
                     "--ssh-config", loopback_sshd.ssh_config, "--out", out, *FAST)
    assert proc.returncode == 0, proc.stderr
    fed = pd.read_csv(out / "summary.csv").set_index("target")["inputs"]
    assert fed["local"] == fed[loopback_sshd.alias] == (
        "input:float32[1x64]:random; state:float32[2x1x8]:constant=state.npy; sr:int64[]:constant=16000")
