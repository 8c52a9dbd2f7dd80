"""compress(): manifests, artifacts.csv, a failing variant among good ones, reuse, the CLI entry points."""

import argparse
import json
import shutil
import sys
from dataclasses import replace

import pytest

from export import build, cli
from export import manifest as mf
from export.build import BuildOptions, compress
from export.train import Recipe
from targets.errors import EdgebenchError
from targets.stored import sha256_file

FAST = BuildOptions(train_recipe=Recipe(epochs=2), finetune_recipe=Recipe(epochs=1, lr=1e-3),
                    structured_finetune_recipe=Recipe(epochs=1, lr=1e-3))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import os

    os.environ["EDGEBENCH_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    out = tmp_path_factory.mktemp("art")
    rows = compress("zoo:digits-cnn", ["fp32", "prune-l1:0.5", "cluster:8", "fp32+int8"], out, options=FAST)
    return out, rows


def test_manifest_fields(built):
    out, rows = built
    assert [r["status"] for r in rows] == ["ok"] * 4
    m = json.loads((out / "cluster_8" / "manifest.json").read_text())
    for key in ("schema_version", "variant", "recipe", "model", "input_shape", "model_sha256", "params",
                "nonzero_params", "macs", "model_bytes", "model_zip_bytes", "opset", "exporter",
                "parity_max_abs_diff", "unique_weight_values", "peak_activation_bytes", "accuracy",
                "precision_macro", "recall_macro", "f1_macro", "gmean", "confusion_matrix", "timings", "steps"):
        assert m.get(key) is not None, key
    assert m["variant"] == "cluster:8" and m["model_sha256"] == sha256_file(out / "cluster_8" / "model.onnx")
    assert max(m["unique_weight_values"].values()) <= 8
    q = json.loads((out / "fp32+int8" / "manifest.json").read_text())["quantization"]
    assert q["format"] == "QDQ" and q["calibration"] == "minmax" and q["n_calibration_samples"] > 0
    for r in rows:  # short names in every variant, the long ones beside the file
        assert r["names"]["compacted"] and r["names"]["bytes_after"] == r["model_bytes"] < r["names"]["bytes_before"]
        assert (out / r["variant_dir"] / "names.json").is_file()
    l1 = json.loads((out / "prune-l1_0.5" / "manifest.json").read_text())
    assert l1["nonzero_params"] < 0.6 * l1["params"] and "only the zipped size" in l1["note"]


def test_artifacts_csv_matches_manifests(built):
    out, rows = built
    back = mf.read_artifacts_csv(out / "artifacts.csv")
    assert [r["variant"] for r in back] == ["fp32", "prune-l1:0.5", "cluster:8", "fp32+int8"]
    assert back[0]["model_bytes"] == rows[0]["model_bytes"] and back[0]["schema_version"] == mf.SCHEMA_VERSION
    assert (out / "data.npz").is_file()


def test_reuse_of_built_artifacts(built):
    out, rows = built
    again = compress("zoo:digits-cnn", ["fp32", "cluster:8"], out, options=FAST)
    assert [r["reused"] for r in again] == [True, True]
    assert again[0]["model_sha256"] == rows[0]["model_sha256"]
    (out / "fp32" / "model.onnx").write_bytes(b"tampered")  # a changed file is not trusted:
    third = compress("zoo:digits-cnn", ["fp32"], out, options=FAST)  # restored from the user cache
    assert third[0]["reused_from"] and sha256_file(out / "fp32" / "model.onnx") == rows[0]["model_sha256"]
    (out / "fp32" / "model.onnx").write_bytes(b"tampered")
    shutil.rmtree(build._cached_artifact(rows[0]["inputs_hash"]))
    fourth = compress("zoo:digits-cnn", ["fp32"], out, options=FAST)  # ... or rebuilt when not cached
    assert fourth[0]["reused"] is False and fourth[0]["model_sha256"] == rows[0]["model_sha256"]


def test_another_output_folder_takes_built_artifacts_from_the_cache(built, tmp_path):
    out, rows = built
    messages = []
    again = compress("zoo:digits-cnn", ["prune-l1:0.5", "cluster:8"], tmp_path, options=FAST,
                     progress=messages.append)
    assert not any("building" in m for m in messages), messages
    assert [r["reused"] for r in again] == [True, True]
    assert again[1]["model_sha256"] == rows[2]["model_sha256"]
    assert sha256_file(tmp_path / "cluster_8" / "model.onnx") == rows[2]["model_sha256"]
    manifest = json.loads((tmp_path / "cluster_8" / "manifest.json").read_text())
    assert manifest["data_file"] == str(tmp_path / "data.npz")


def test_failing_variant_row_says_why_and_rest_is_built(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise EdgebenchError("static INT8 quantization failed: simulated")

    monkeypatch.setattr(build.int8, "build_static", boom)
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))  # nothing built elsewhere to reuse
    rows = compress("zoo:digits-cnn", ["fp32+int8", "fp32"], tmp_path / "out", options=FAST)
    assert rows[0]["status"] == "EdgebenchError" and "simulated" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and (tmp_path / "out" / "fp32" / "model.onnx").is_file()
    assert not (tmp_path / "out" / "fp32+int8" / "model.onnx").exists()
    csv_rows = mf.read_artifacts_csv(tmp_path / "out" / "artifacts.csv")
    assert csv_rows[0]["status"] == "EdgebenchError" and "simulated" in csv_rows[0]["error"]


def test_bad_specs_fail_before_long_work(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "train_cached", lambda *a, **k: pytest.fail("trained before validating"))
    with pytest.raises(EdgebenchError, match="Valid forms"):
        compress("zoo:digits-cnn", ["fp32", "prune-xx:0.5"], tmp_path)
    with pytest.raises(EdgebenchError, match="unknown zoo model"):
        compress("zoo:nope", ["fp32"], tmp_path)
    with pytest.raises(EdgebenchError, match="--prune-exclude 'feature' names no module"):
        compress("zoo:digits-cnn", ["prune-ch:0.5"], tmp_path, options=BuildOptions(prune_exclude=("feature",)))


def test_cli_run(tmp_path, capsys):
    p = argparse.ArgumentParser()
    cli.configure(p)
    args = p.parse_args(["--model", "zoo:digits-cnn", "--variants", "fp32,prune-ch:0.5", "--out", str(tmp_path),
                         "--finetune-epochs", "1", "--round-to", "8"])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert "variant" in out and "prune-ch:0.5" in out and "zip bytes" in out
    args = p.parse_args(["--model", "zoo:digits-cnn", "--variants", "cluster:300", "--out", str(tmp_path)])
    with pytest.raises(EdgebenchError):
        cli.run(args)


def test_a_model_torch_pruning_cannot_prune_gets_a_clear_row(tmp_path, monkeypatch):
    """forward() hard-codes the channel count, so removing channels breaks it: the row says why,
    and the variants that do not prune channels are still built."""
    net = tmp_path / "rigid.py"
    net.write_text(
        "import torch\nfrom torch import nn\n"
        "class Rigid(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 32, 3, padding=1)\n"
        "        self.fc = nn.Linear(32 * 8 * 8, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).reshape(-1, 32 * 8 * 8))\n"
        "def build():\n"
        "    return Rigid()\n")
    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))
    rows = compress(f"{net}:build", ["prune-ch:0.5", "fp32"], tmp_path / "out", input_shape=(1, 1, 8, 8),
                    options=FAST)
    assert rows[0]["status"] == "EdgebenchError" and "Torch-Pruning cannot" in rows[0]["error"]
    assert "prune-l1" in rows[0]["error"]  # the message names what to do instead
    assert rows[1]["status"] == "ok"


def test_a_model_that_cannot_be_exported_fails_before_any_training(tmp_path, monkeypatch, capfd):
    """cumprod has no ONNX conversion (legacy exporter; dynamo has none either, but takes 20 s to say so):
    one error, found before training, and the exporter's own output (its TorchScript graph) is in the
    log, not the terminal."""
    net = tmp_path / "cum.py"
    net.write_text("import torch\nfrom torch import nn\n"
                   "class Cum(nn.Module):\n"
                   "    def __init__(self):\n"
                   "        super().__init__()\n"
                   "        self.conv = nn.Conv2d(1, 8, 3, padding=1)\n"
                   "        self.fc = nn.Linear(8, 10)\n"
                   "    def forward(self, x):\n"
                   "        return self.fc(torch.cumprod(self.conv(x), dim=1).mean((2, 3)))\n"
                   "def build():\n"
                   "    return Cum()\n")
    monkeypatch.setattr(build, "train_cached", lambda *a, **k: pytest.fail("trained before checking the export"))
    lines = []
    with pytest.raises(EdgebenchError, match=r"\(legacy\) failed.*cumprod.*before any training"):
        compress(f"{net}:build", ["fp32", "fp32+int8"], tmp_path / "out", input_shape=(1, 1, 8, 8),
                 options=replace(FAST, exporter="legacy"), progress=lines.append)
    assert lines == ["checking that the model exports to ONNX before any training"]
    terminal = capfd.readouterr()
    log = (tmp_path / "out" / "compress.log").read_text()
    assert "Torch IR graph" in log and "Torch IR graph" not in terminal.err + terminal.out


@pytest.mark.slow
def test_dynamo_builds_what_legacy_cannot_and_the_manifest_says_so(tmp_path, capfd):
    """A custom autograd.Function the legacy exporter cannot convert: the preflight finds it once, every
    variant is exported by dynamo, and each manifest records why; progress reaches the terminal."""
    rows = compress("tests.wild_models:CustomActivationNet", ["fp32", "fp32+int8"], tmp_path / "out",
                    input_shape=(1, 1, 8, 8), options=FAST, progress=lambda s: print(s, file=sys.stderr))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r in rows:
        assert r["exporter"] == "dynamo" and r["export"]["fallback_from"][0]["exporter"] == "legacy"
        assert r["parity_max_abs_diff"] < 1e-3
    err = capfd.readouterr().err
    assert "the dynamo exporter is used" in err and "fp32+int8: building" in err
    assert "Warning" not in err and "warn(" not in err
