"""Durable writes shared by every layer: unique temp names, whole-file replacement, one CSV cell convention."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from export import manifest as mf
from targets import fileio
from targets.errors import EdgebenchError


def test_a_fixed_temp_name_cannot_block_a_write(tmp_path):
    """Two commands into one folder collided on `artifacts.csv.tmp`; temp names are unique now."""
    (tmp_path / "artifacts.csv.tmp").mkdir()  # whatever holds the old fixed name
    mf.write_artifacts_csv(tmp_path / "artifacts.csv", [{"variant": "fp32", "reused": True}])
    mf.write_json_atomic(tmp_path / "manifest.json", {"a": 1})
    assert mf.read_artifacts_csv(tmp_path / "artifacts.csv")[0]["reused"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts.csv", "artifacts.csv.tmp", "manifest.json"]


def test_concurrent_writers_of_one_file_never_fail_or_mix(tmp_path):
    path = tmp_path / "summary.csv"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for _ in range(50):
                fileio.atomic_write_text(path, f"{n}\n" * 1000)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(path.read_text().splitlines())) == 1 and list(tmp_path.iterdir()) == [path]


def test_a_library_saves_into_a_temp_with_the_same_suffix(tmp_path):
    path = tmp_path / "data.npz"
    with fileio.atomic_output(path) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        np.savez(tmp, x=np.zeros(3))
    assert list(tmp_path.iterdir()) == [path] and np.load(path)["x"].shape == (3,)


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("old")
    with pytest.raises(ValueError), fileio.atomic_output(path) as tmp:
        tmp.write_text("half")
        raise ValueError("the exporter failed")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_an_unwritable_folder_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EdgebenchError, match=f"cannot write {blocker}/x.csv: "):
        fileio.atomic_write_text(blocker / "x.csv", "a")


def test_one_cell_convention():
    assert [fileio.csv_cell(v) for v in (None, float("nan"), True, False, 0, 1.5, "a")] == \
        ["", "", "true", "false", 0, 1.5, "a"]
