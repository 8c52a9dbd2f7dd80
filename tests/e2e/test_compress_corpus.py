"""`edgebench compress` on PyTorch architectures from pip packages (EfficientNet-B0, DenseNet-121, a ViT).

The real CLI in a subprocess, the packages fetched from the index at test time (tests/corpus.py), seeded
weights saved first (no base training), one fine-tuning epoch. Every variant must be built: a row
that is not `ok` would have to name its cause in one line, and none is expected for these three. The
data is a 300-image slice of the bundled digits so that the three fit in CI's budget (they are about
every path working, not accuracy); scripts/wild_archs.py runs the same on all of them.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from export import manifest as mf
from export.data import load_digits_dataset, write_npz
from tests.corpus import unpacked_wheel
from tests.corpus_archs import ARCHS, INPUT_SHAPE, VARIANTS, compress_command, environment, save_seeded_weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_slice(tmp_path_factory) -> str:
    d = load_digits_dataset(INPUT_SHAPE)
    x = np.concatenate([d.x_train, d.x_val, d.x_test])
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    keep = np.random.default_rng(0).permutation(len(x))[:300]
    return str(write_npz(tmp_path_factory.mktemp("data") / "digits300.npz", x[keep], y[keep]))


@pytest.mark.parametrize("arch", ARCHS, ids=[a.factory for a in ARCHS])
def test_every_variant_of_a_package_architecture_is_built(arch, digits_slice, tmp_path):
    env = environment([unpacked_wheel(r) for r in arch.requirements], cache=tmp_path / "cache")
    save_seeded_weights(arch, env, tmp_path / "weights.pt")
    out = tmp_path / "out"
    proc = subprocess.run(compress_command(arch, tmp_path / "weights.pt", out) + ["--data", digits_slice], env=env,
                          capture_output=True, text=True, timeout=1500)
    rows = mf.read_artifacts_csv(out / "artifacts.csv")
    problems = [f"{r['variant']}: {r['status']}: {r['error']}" for r in rows if r["status"] != "ok"]
    assert proc.returncode == 0 and not problems, "\n".join(problems) or proc.stderr[-2000:]
    assert [r["variant"] for r in rows] == VARIANTS.split(",")
    for r in rows:  # numbers from a file that computes what the model computes
        assert (out / r["variant_dir"] / "model.onnx").is_file() and r["accuracy"] is not None
        assert r["parity_max_abs_diff"] is not None and r["parity_max_abs_diff"] < 1e-2
    # the terminal shows progress and the table; what the libraries print is in compress.log
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr and "warn(" not in proc.stderr
    assert (out / "compress.log").is_file()
