"""What a device stores for a model: one definition for bench, compress and the SSH model cache."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import onnx

from harness.bench import load_item
from targets import stored
from targets.ssh_files import bundle_for
from tests import onnx_models

STORED_FACTS = ("model_bytes", "model_zip_bytes", "sha256", "params", "nonzero_params", "opset")


def _with_external_data(src: Path, folder: Path) -> Path:
    folder.mkdir()
    model = onnx.load(str(src))
    out = folder / "model.onnx"
    onnx.save_model(model, str(out), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    return out


def test_a_model_as_a_file_and_as_an_artifact_folder_has_the_same_facts(tmp_path):
    model = onnx_models.mlp(tmp_path / "a.onnx")
    folder = tmp_path / "fp32"
    folder.mkdir()
    shutil.copy(model, folder / "model.onnx")
    # A manifest written by an older build, whose zipped size counted a .zip archive's headers (they carry the
    # file's name, so the same bytes zipped as a.onnx and as model.onnx differed).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(model, "model.onnx")
    (folder / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "variant": "fp32", "model": "mlp", "model_zip_bytes": len(buf.getvalue()),
        "model_bytes": 1, "accuracy": 0.9}))
    as_file, as_folder = load_item(model), load_item(folder)
    assert as_file.ok and as_folder.ok
    assert {k: as_file.facts[k] for k in STORED_FACTS} == {k: as_folder.facts[k] for k in STORED_FACTS}
    assert as_file.sha256 == as_folder.sha256 == stored.sha256_file(model)
    assert as_folder.facts["accuracy"] == 0.9  # what only the build knows still comes from the manifest
    assert as_file.facts["model_zip_bytes"] == stored.zip_deflated_bytes([model]) < len(buf.getvalue())


def test_external_data_is_stored_counted_and_copied_by_one_rule(tmp_path):
    model = _with_external_data(onnx_models.mlp(tmp_path / "a.onnx"), tmp_path / "ext")
    data = model.with_name("model.onnx.data")
    files = stored.stored_files(model)
    assert files == [model, data]
    facts = stored.size_facts(model)
    assert facts["model_bytes"] == model.stat().st_size + data.stat().st_size
    assert facts["model_zip_bytes"] == stored.zip_deflated_bytes(files)
    item = load_item(model)
    assert item.ok and item.facts["model_bytes"] == facts["model_bytes"]
    assert [rel for rel, _ in bundle_for(model).members] == ["model.onnx", "model.onnx.data"]


def test_a_missing_external_data_file_is_named(tmp_path):
    model = _with_external_data(onnx_models.mlp(tmp_path / "a.onnx"), tmp_path / "ext")
    model.with_name("model.onnx.data").unlink()
    item = load_item(model)
    assert item.status == "missing_file" and "model.onnx.data" in item.error


def test_external_data_inside_subgraphs_and_constants_is_found(tmp_path):
    path, _ = onnx_models.constant_weights(tmp_path / "c.onnx")
    model = onnx.load(str(path))
    onnx.save_model(model, str(tmp_path / "c2.onnx"), save_as_external_data=True, location="c2.data",
                    size_threshold=0, convert_attribute=True)
    loaded = onnx.load(str(tmp_path / "c2.onnx"), load_external_data=False)
    assert stored.external_data_names(loaded) == ["c2.data"]


def test_a_location_outside_the_folder_is_not_copied_to_a_board():
    assert stored.safe_name("w.data") and stored.safe_name("sub/w.data")
    assert not stored.safe_name("../w.data") and not stored.safe_name("/etc/passwd") and not stored.safe_name("")
