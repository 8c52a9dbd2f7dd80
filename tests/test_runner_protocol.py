"""One runner protocol: statuses, spec defaults and the version live in targets/runner.py; the harness
imports them and refuses a runner of another version."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from harness.bench import PERMANENT_FAILURES
from harness.measurement import RunSpec
from harness.paired import PairedOptions
from targets import local, runner
from targets.errors import TargetError
from targets.local import LocalTarget
from tests import onnx_models


def test_every_status_the_runner_raises_is_declared():
    source = Path(runner.__file__).read_text(encoding="utf-8")
    raised = set(re.findall(r'RunnerError\(\s*"([a-z_]+)"', source))
    assert raised and raised <= runner.STATUSES
    assert runner.PERMANENT_STATUSES <= PERMANENT_FAILURES


def test_the_harness_defaults_are_the_runners():
    spec, d = RunSpec(), runner.DEFAULTS
    assert (spec.min_iterations, spec.max_iterations, spec.min_time_s, spec.max_time_s) == (
        d["min_iterations"], d["max_iterations"], d["min_time_s"], d["max_time_s"])
    assert (spec.warmup_iterations, spec.warmup_time_s) == (d["warmup"]["min_iterations"], d["warmup"]["min_time_s"])
    paired = PairedOptions()
    assert (paired.block_size, paired.drop_per_block, paired.n_blocks) == (
        d["block_size"], d["drop_per_block"], d["n_blocks"])
    assert {f.name for f in fields(RunSpec)} >= {"min_iterations", "max_iterations"}


def test_a_spec_without_loop_settings_stops_at_the_shared_cap(tmp_path):
    model = onnx_models.identity(tmp_path / "id.onnx")
    doc = LocalTarget().run({"files": {"model": str(model)}, "min_time_s": 5, "max_time_s": 5}, timeout=60)
    assert doc["status"] == "ok" and len(doc["latencies_ns"]) == runner.DEFAULTS["max_iterations"]


def test_a_stale_runner_is_refused_with_what_to_do(tmp_path, monkeypatch):
    stale = tmp_path / "runner.py"
    source = Path(runner.__file__).read_text(encoding="utf-8")
    stale.write_text(source.replace(f"RUNNER_VERSION = {runner.RUNNER_VERSION}\n", "RUNNER_VERSION = 0\n", 1))
    monkeypatch.setattr(local, "RUNNER_PATH", stale)
    with pytest.raises(TargetError, match=rf"runner version 0.*speaks version {runner.RUNNER_VERSION}.*stale copy of runner.py"):
        LocalTarget().probe()
