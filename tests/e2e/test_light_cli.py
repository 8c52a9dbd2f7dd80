"""A light orchestrator: `bench`, `compare` and `doctor` load neither torch nor pandas (a 512 MB board runs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


ROOT = Path(cli.__file__).resolve().parents[1]


def _install_requires() -> set[str]:
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()}


def test_the_light_requirements_are_the_full_installs_own_lines_and_every_package_is_installed() -> None:
    light = {line.strip() for line in (ROOT / "requirements-light.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert light and light <= _install_requires(), light - _install_requires()
    assert not any(name in line for line in light for name in ("torch", "pandas", "matplotlib"))
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].split(",")}
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
             if p.parent.parts[len(ROOT.parts)] in ("harness", "export", "targets")}
    assert found == listed, "setup.cfg's packages must list every package, or `pip install .` leaves it out"


@pytest.mark.slow
def test_the_light_install_runs_bench_compare_and_doctor_and_names_the_full_install(tmp_path: Path) -> None:
    """A fresh venv with requirements-light.txt only (no torch, pandas, matplotlib), as README says."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():  # a copy: pip would leave a build/ folder in the checkout
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((ROOT / name).read_bytes())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", str(src)], check=True, timeout=600)
    subprocess.run([*pip, "-r", str(src / "requirements-light.txt")], check=True, timeout=600)
    eb = str(venv / "bin" / "edgebench")
    model = onnx_models.mlp(tmp_path / "mlp.onnx")
    fast = ["--processes", "2", "--min-time", "0.05", "--min-iterations", "5", "-q"]

    def ok(*args: object) -> None:
        proc = subprocess.run([eb, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)

    ok("--help")
    ok("bench", model, "--out", "a", *fast)
    ok("bench", model, "--out", "b", *fast)
    ok("compare", "a", "b", "--out", "c", "-q")
    ok("doctor")
    proc = subprocess.run([eb, "compress", "--model", "zoo:digits-cnn", "--variants", "fp32", "--out", "x"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: `edgebench compress` needs torch")
    assert "without --no-deps" in proc.stderr and len(proc.stderr.splitlines()) == 1
