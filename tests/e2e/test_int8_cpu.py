"""INT8 on a CPU without VNNI, proven under an emulated Haswell (user-mode QEMU: AVX2, no VNNI).

onnxruntime's U8S8 kernels saturate on such CPUs. The build must not ship a form that loses accuracy
where it is measured, and a target that scores a file lower than the build machine did must say why.
QEMU emulates instructions, not timing: these tests read accuracy and CPU features, never latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.test_bench_cli import edgebench

RUNNER = Path(__file__).resolve().parents[2] / "targets" / "runner.py"
NO_VNNI = "avx, avx2, fma; no avx512_vnni, avx_vnni or amx_int8"


def _probe(python: str | Path) -> dict:
    proc = subprocess.run([str(python), str(RUNNER), "-"], input='{"mode": "probe"}', capture_output=True, text=True,
                          timeout=120)
    return json.loads(proc.stdout.splitlines()[-1])["machine"]


def test_the_runner_reads_the_cpu_the_process_sees(haswell_python):
    here = _probe(sys.executable)
    flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split(":", 1)[1].split())
    assert here["cpu_features_source"] == "cpuid" and set(here["cpu_features"]) <= flags
    assert "avx2" in here["cpu_features"]
    emulated = _probe(haswell_python)  # /proc/cpuinfo there still describes the host: cpuid does not
    assert emulated["cpu_features"] == ["avx", "avx2", "fma"] and "Haswell" in emulated["cpu_model"]


VARIANTS = ("fp32", "prune-ch:0.5", "cluster:16", "fp32+int8", "prune-ch:0.5+int8", "cluster:16+int8",
            "fp32+int8:u8s8")  # the default experiment's INT8 variants and their parents, plus a pinned U8S8


@pytest.fixture(scope="module")
def haswell_run(haswell_python, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The default model's variants built here with their INT8 forms measured on the emulated Haswell
    (--int8-select-on), then the INT8 files measured there (accuracy on the build's own test split)."""
    art, res = tmp_path_factory.mktemp("art"), tmp_path_factory.mktemp("res") / "r"
    proc = edgebench("compress", "--model", "zoo:resnet", "--input-shape", "1,1,32,32", "--variants", ",".join(VARIANTS),
                     "--int8-select-on", "local", "--python", haswell_python, "--out", art, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    bench = edgebench("bench", *(art / v.replace(":", "_") for v in VARIANTS if "+int8" in v), "--data",
                      art / "data.npz", "--python", haswell_python, "--processes", "1", "--min-time", "0.1",
                      "--min-iterations", "3", "--timeout", "900", "--out", res, timeout=3600)
    assert bench.returncode == 0, bench.stderr
    return art, res, bench


def _manifest(art: Path, variant: str) -> dict:
    return json.loads((art / variant.replace(":", "_") / "manifest.json").read_text())


@pytest.mark.slow
def test_the_default_models_int8_variants_keep_their_accuracy_on_a_cpu_without_vnni(haswell_run):
    art, res, _ = haswell_run
    rows = pd.read_csv(res / "summary.csv").set_index("variant")
    assert set(rows["accuracy_where"]) == {"target"} and set(rows["cpu_features"]) == {"avx avx2 fma"}
    for parent in ("fp32", "prune-ch:0.5", "cluster:16"):
        int8 = rows.loc[f"{parent}+int8"]
        float_accuracy = _manifest(art, parent)["accuracy"]  # float kernels: the same on every x86 CPU
        assert int8["int8_form"] in ("reduce", "s8s8"), parent
        assert abs(int8["accuracy"] - float_accuracy) <= 0.015, (parent, int8["accuracy"], float_accuracy)
        selection = _manifest(art, f"{parent}+int8")["quantization"]["selection"]
        assert selection["where"] == "target local" and selection["machine"]["cpu_features"] == ["avx", "avx2", "fma"]
        u8s8 = next(c for c in selection["candidates"] if c["form"] == "u8s8")
        assert u8s8["accuracy_change_points"] < -1.0  # measured: -19.5, -6.1, -18.1 points there
        assert "u8s8 lost more than 1 point here" in selection["reason"]


@pytest.mark.slow
def test_a_u8s8_file_losing_accuracy_on_the_target_is_blamed_on_its_kernels(haswell_run, haswell_python):
    art, res, bench = haswell_run
    pinned = _manifest(art, "fp32+int8:u8s8")  # measured on the emulated CPU while building: the build says so
    assert pinned["int8_warning"].startswith("the pinned INT8 form u8s8 loses") and NO_VNNI in pinned["int8_warning"]
    rows = pd.read_csv(res / "summary.csv").set_index("variant")
    u8s8 = rows.loc["fp32+int8:u8s8"]
    assert u8s8["int8_form"] == "u8s8" and "Haswell" in u8s8["cpu_model"]
    assert u8s8["build_accuracy"] - u8s8["accuracy"] > 0.05  # measured: 98.3% on the VNNI build machine, 79.7% here
    warning = f"here against {u8s8['build_accuracy']:.2%} on the build machine, same file and data"
    assert warning in u8s8["warnings"] and NO_VNNI in u8s8["warnings"] and "U8S8 sums can saturate" in u8s8["warnings"]
    assert "--variants fp32+int8:reduce" in u8s8["warnings"] and f"--python {haswell_python}" in u8s8["warnings"]
    assert warning in bench.stderr  # the console says it too
    assert "build machine" not in str(rows.loc["fp32+int8", "warnings"])  # the chosen form holds there
    assert edgebench("report", res).returncode == 0
    report = (res / "report.md").read_text()
    assert "the loss comes from this CPU's integer kernels" in report and NO_VNNI in report
