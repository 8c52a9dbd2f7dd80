"""docs/INTERFACE.md against the code: every command's flags (and defaults), the experiment's keys, the
result files and every column, in order. A flag or column added without a line there fails here."""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "INTERFACE.md"
_EMPTY_DEFAULTS = (None, False, (), [], "")


def sections() -> dict[str, list[list[str]]]:
    """Heading (without #'s) -> the rows of the tables under it, as lists of cells."""
    out: dict[str, list[list[str]]] = {}
    current = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            current = line.lstrip("#").strip()
            out[current] = []
        elif line.startswith("|") and not set(line) <= set("|- "):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            out[current].append(cells)
    return {k: rows[1:] for k, rows in out.items()}  # the first row of each table is its header


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def documented_flags(rows: list[list[str]]) -> dict[str, str]:
    """Each flag (or positional's metavar) named in the first column -> the row's default cell."""
    return {name: row[2] for row in rows for name in ticked(row[0])}


def test_every_command_has_its_section_and_no_other():
    doc = {h.removeprefix("`edgebench ").rstrip("`") for h in sections() if h.startswith("`edgebench ")}
    assert doc == {name for name, _, _ in COMMANDS}


@pytest.mark.parametrize("command", [name for name, _, _ in COMMANDS])
def test_every_flag_of_every_command_is_documented_with_its_default(command):
    parser = subparsers()[command]
    doc = documented_flags(sections()[f"`edgebench {command}`"])
    code: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for name in action.option_strings or [action.metavar or action.dest.upper()]:
            code[name] = action.default if action.option_strings else None
    assert sorted(doc) == sorted(code), "flags in docs/INTERFACE.md differ from the parser"
    for name, default in code.items():
        shown = "" if default in _EMPTY_DEFAULTS else f"`{default}`"
        assert doc[name] == shown, f"{command} {name}: the doc says default {doc[name]!r}, the parser {shown!r}"


def test_the_top_level_flags_are_documented():
    parser = build_parser()
    code = {o for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
            for o in a.option_strings}
    assert set(documented_flags(sections()["Exit codes and errors"])) == code


def _columns(heading: str) -> list[str]:
    return [ticked(row[0])[0] for row in sections()[heading]]


def test_the_columns_of_every_csv_are_documented_in_order():
    from export.manifest import CSV_COLUMNS
    from harness.compare import COMPARISON_COLUMNS
    from harness.results import SAMPLE_COLUMNS, SUMMARY_COLUMNS

    assert _columns("`summary.csv` columns") == list(SUMMARY_COLUMNS)
    assert _columns("`samples.csv` columns") == list(SAMPLE_COLUMNS)
    assert _columns("`comparison.csv` columns") == list(COMPARISON_COLUMNS)
    assert _columns("`artifacts.csv` columns") == list(CSV_COLUMNS)


def test_every_experiment_key_is_documented():
    from harness import experiment as ex

    tables = {"models": ex._MODEL_KEYS, "data": {"path"}, "build": ex._BUILD_KEYS, "measure": ex._MEASURE_KEYS}
    code = {("", k) for k in ex._TOP_KEYS - set(tables)} | {(t, k) for t, keys in tables.items() for k in keys}
    doc = set()
    for row in sections()["The experiment file (`edgebench run EXPERIMENT.toml`)"]:
        names = ticked(row[0])
        doc.add((names[0].strip("[]"), names[1]) if len(names) == 2 else ("", names[0]))
    assert doc == code


def test_every_file_a_bench_and_its_report_write_is_documented(tmp_path):
    """Run the real thing on a small model: whatever lands in the folder must be on the page."""
    from tests import onnx_models

    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    out = tmp_path / "out"
    for argv in (["bench", model, "--out", out, "--processes", "1", "--min-time", "0", "--max-time", "0.05",
                  "--min-iterations", "3", "-q"], ["report", out]):
        proc = subprocess.run([sys.executable, "-m", "harness", *map(str, argv)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
    names = [ticked(row[0])[0] for row in sections()["A result folder (`bench`, `run`)"]]
    patterns = [re.sub(r"<[^>]+>", "*", n).rstrip("/") for n in names]
    written = sorted(p.name for p in out.iterdir())
    assert {"summary.csv", "samples.csv", "report.md"} <= set(written)
    for name in written:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} is not in docs/INTERFACE.md"


def test_no_project_file_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    shared = ("../" + "shared", "/work/" + "shared")  # spelled in two halves so this file does not match
    hits = []
    for name in tracked.splitlines():
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        if any(s in text for s in shared):
            hits.append(name)
    assert not hits, f"these files point outside the repository: {hits}"
