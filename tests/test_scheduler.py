"""Scheduling, resume and the derived files, driven by FakeTarget (scripted runner documents): fast and exact.

The same paths run with real runner processes in tests/e2e/test_bench_cli.py, test_run_folder.py and
test_faults.py; here every number is scripted, so the assertions can be exact (and one is a golden file).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from harness.bench import BenchItem, measure
from harness.journal import read_journal
from harness.measurement import RunSpec
from harness.runfolder import RunFolder
from targets.errors import TargetError
from tests.fake_target import FakeTarget, runner_doc

GOLDEN = Path(__file__).with_name("golden")
MEDIANS = {"a.onnx": 1.0, "b.onnx": 2.0, "c.onnx": 4.0}


def items(*names: str) -> list[BenchItem]:
    return [BenchItem(n.split(".")[0], n.split(".")[0], Path("/models") / n, f"sha-{n}", {"model_bytes": 1000})
            for n in names]


def scripted(model: str, index: int, call: int) -> dict:
    return runner_doc(MEDIANS[model] + index / 1000)


def bench(out: Path, target: FakeTarget, models: list[BenchItem], processes: int = 4) -> list:
    with RunFolder(out) as folder:
        outcomes = measure(models, [target], RunSpec(processes=processes), folder, "run1", lambda m: None)
    return [r for o in outcomes for r in o.rows]


def test_every_round_visits_every_model_once_in_a_new_order(tmp_path):
    target = FakeTarget(scripted)
    rows = bench(tmp_path, target, items("a.onnx", "b.onnx", "c.onnx"))
    rounds = [target.calls[i:i + 3] for i in range(0, 12, 3)]
    assert all(sorted(m for m, _ in r) == ["a.onnx", "b.onnx", "c.onnx"] for r in rounds)
    assert all({i for _, i in r} == {n} for n, r in enumerate(rounds))
    assert len({tuple(m for m, _ in r) for r in rounds}) > 1  # shuffled, not one fixed order
    assert {r.variant: r.n_processes for r in rows} == {"a": 4, "b": 4, "c": 4}
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("variant")
    assert summary.loc["b", "latency_ms_min"] == pytest.approx(2.0 - 0.01)
    assert summary.loc["c", "n_samples"] == 80 and summary.loc["a", "model_bytes"] == 1000


def test_an_interrupted_run_resumes_with_only_the_missing_processes(tmp_path):
    def interrupted(model, index, call):
        if call == 7:
            raise KeyboardInterrupt
        return scripted(model, index, call)

    first = FakeTarget(interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench(tmp_path, first, items("a.onnx", "b.onnx", "c.onnx"))
    journaled = {(r["path"].split("/")[-1], r["process_index"]) for r in read_journal(tmp_path).records}
    assert len(journaled) == 6 and not (tmp_path / "summary.csv").exists()
    second = FakeTarget(scripted)
    bench(tmp_path, second, items("a.onnx", "b.onnx", "c.onnx"))
    assert set(second.calls).isdisjoint(journaled) and len(second.calls) == 6
    samples = pd.read_csv(tmp_path / "samples.csv")
    per_process = samples.groupby(["variant", "process_index"])["latency_ms"].min()
    for (variant, index), low in per_process.items():  # each model kept its own, scripted samples
        assert low == pytest.approx(MEDIANS[f"{variant}.onnx"] + index / 1000 - 0.01)
    assert not samples.duplicated(["variant", "process_index", "iteration"]).any()


def test_a_failed_model_is_redone_alone_and_its_neighbours_keep_their_samples(tmp_path):
    def b_is_broken(model, index, call):
        if model == "b.onnx":
            return {"status": "bad_model", "error": "not an ONNX file"}
        return scripted(model, index, call)

    first = FakeTarget(b_is_broken)
    rows = bench(tmp_path, first, items("a.onnx", "b.onnx"))
    assert {r.variant: r.status for r in rows} == {"a": "ok", "b": "bad_model"}
    assert first.calls.count(("b.onnx", 0)) == 1 and len([c for c in first.calls if c[0] == "b.onnx"]) == 1
    before = pd.read_csv(tmp_path / "samples.csv")
    second = FakeTarget(scripted)
    bench(tmp_path, second, items("a.onnx", "b.onnx"))
    assert {m for m, _ in second.calls} == {"b.onnx"}
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["variant"]) == ["a", "b"] and set(summary["status"]) == {"ok"}
    after = pd.read_csv(tmp_path / "samples.csv")
    pd.testing.assert_frame_equal(after[after["variant"] == "a"].reset_index(drop=True), before)


def test_a_target_lost_mid_run_closes_what_it_could_not_finish(tmp_path):
    def lost(model, index, call):
        if call > 4:
            raise TargetError("the board went away")
        return scripted(model, index, call)

    rows = bench(tmp_path, FakeTarget(lost), items("a.onnx", "b.onnx"))
    assert {r.status for r in rows} == {"target_error"} and len(rows) == 2
    records = read_journal(tmp_path).records
    assert sum(r["kind"] == "process" for r in records) == 4  # kept for a resume
    second = FakeTarget(scripted)
    bench(tmp_path, second, items("a.onnx", "b.onnx"))
    assert len(second.calls) == 4 and set(pd.read_csv(tmp_path / "summary.csv")["status"]) == {"ok"}


def test_summary_csv_matches_the_golden_file(tmp_path):
    """The whole derived row, column by column, for scripted samples (times and run ids normalised)."""
    bench(tmp_path, FakeTarget(scripted), items("a.onnx", "b.onnx"), processes=3)
    text = (tmp_path / "summary.csv").read_text()
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", text)
    golden = GOLDEN / "fake_bench_summary.csv"
    if not golden.exists():
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
        pytest.fail(f"wrote {golden}: review it and commit it")
    assert text == golden.read_text()


def test_precision_stops_a_steady_model_early_and_measures_a_noisy_one_to_the_cap(tmp_path):
    """--precision: a model whose processes agree stops at --processes; one whose processes differ by 20%
    gets fresh processes up to --max-processes, and its rows say how many it took."""
    def script(model, index, call):
        if model == "a.onnx":
            return runner_doc(1.0 + index / 10000)  # processes within 0.1%: the median is known at once
        return runner_doc(2.0 * (1.2 if index % 2 else 1.0))  # two levels 20% apart: never within 1%

    target = FakeTarget(script)
    with RunFolder(tmp_path) as folder:
        spec = RunSpec(processes=4, precision=0.01, max_processes=9)
        rows = {r.variant: r for o in measure(items("a.onnx", "b.onnx"), [target], spec, folder, "run1",
                                               lambda m: None) for r in o.rows}
    assert rows["a"].n_processes == 4 and rows["b"].n_processes == 9
    assert [i for m, i in target.calls if m == "b.onnx"] == list(range(9))
    assert (rows["a"].latency_ms_ci95_high - rows["a"].latency_ms_ci95_low) / 2 <= 0.01 * rows["a"].latency_ms_median
    assert spec.settings_key()["precision"] == 0.01 and "precision" not in RunSpec().settings_key()
