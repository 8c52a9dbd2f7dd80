"""A light orchestrator: `bench`, `compare` and `doctor` load neither torch nor pandas (a 512 MB board runs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import cli
from tests import onnx_models

HEAVY = ("torch", "pandas", "matplotlib", "sklearn", "onnxsim", "torch_pruning")

# Runs one command in a fresh interpreter and prints its exit code and the heavy modules it imported.
PROBE = """
import json, sys
from harness.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def loaded(*args: object) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_compare_and_doctor_never_import_torch_or_pandas(tmp_path: Path) -> None:
    model = onnx_models.identity(tmp_path / "id.onnx")
    fast = ["--processes", "2", "--min-time", "0.05", "--min-iterations", "5", "-q"]
    for out in ("a", "b"):
        assert loaded("bench", model, "--out", tmp_path / out, *fast) == {"code": 0, "heavy": []}
    assert loaded("compare", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "c", "-q") == {"code": 0, "heavy": []}
    assert loaded("doctor") == {"code": 0, "heavy": []}
    for command in ("bench", "compare", "doctor"):  # --help exits inside argparse: ask -X importtime instead
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", command, "--help"],
                              capture_output=True, text=True, timeout=120)
        imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
        assert proc.returncode == 0 and not imported & set(HEAVY), (command, imported & set(HEAVY))


def test_every_command_is_configured_and_only_the_chosen_one_is_imported() -> None:
    full = cli.build_parser()
    names = {name for name, _, _ in cli.COMMANDS}
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == names
    for name in names:
        assert sub.choices[name].get_default("func") is not None, name
    light = cli.build_parser("bench")
    sub = next(a for a in light._actions if a.dest == "command")
    assert sub.choices["bench"].get_default("func") is not None
    assert sub.choices["compress"].get_default("func") is None  # listed in --help, not imported


def test_no_module_imports_the_cli_back() -> None:
    root = Path(cli.__file__).resolve().parents[1]
    for folder in ("harness", "export", "targets"):
        for path in (root / folder).rglob("*.py"):
            if path.name in ("cli.py", "__main__.py") and path.parent.name == "harness":
                continue
            text = path.read_text(encoding="utf-8")
            assert "harness.cli" not in text and "from harness import cli" not in text, path
