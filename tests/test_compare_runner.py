"""The runner's paired mode (the measurement behind `edgebench compare`), run as a real subprocess."""

from __future__ import annotations

from targets.local import LocalTarget
from tests import onnx_models


def paired(files: dict, **spec) -> dict:
    base = {"mode": "paired", "files": {k: str(v) for k, v in files.items()}, "models": list(files),
            "block_size": 10, "drop_per_block": 2, "n_blocks": 3, "intra_op_threads": 1}
    return LocalTarget().run({**base, **spec}, timeout=60)


def test_blocks_alternate_in_even_counts_and_drop_the_first_calls(tmp_path):
    a = onnx_models.mlp(tmp_path / "a.onnx")
    b = onnx_models.mlp(tmp_path / "b.onnx", hidden=512)
    doc = paired({"a": a, "b": b})
    assert doc["status"] == "ok", doc["error"]
    assert doc["n_blocks"] == 4  # 3 asked, rounded up to a whole ABBA cycle
    for key in ("a", "b"):
        assert len(doc["blocks_ns"][key]) == 4 and all(len(block) == 8 for block in doc["blocks_ns"][key])


def test_min_time_adds_blocks(tmp_path):
    a = onnx_models.identity(tmp_path / "a.onnx")
    b = onnx_models.identity(tmp_path / "b.onnx")
    doc = paired({"a": a, "b": b}, min_time_s=0.2, n_blocks=2)
    assert doc["status"] == "ok" and doc["n_blocks"] > 2 and doc["n_blocks"] % 2 == 0


def test_shape_overrides_apply_to_the_models_that_have_the_input(tmp_path):
    ids = onnx_models.token_embedding(tmp_path / "ids.onnx")
    mlp = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7]})
    assert doc["status"] == "ok", doc["error"]
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7], "nope": [1]})
    assert doc["status"] == "bad_shape" and "nope" in doc["error"]


def test_bad_block_settings_are_reported(tmp_path):
    a = onnx_models.identity(tmp_path / "a.onnx")
    doc = paired({"a": a, "b": a}, block_size=4, drop_per_block=4)
    assert doc["status"] == "bad_spec" and "drop_per_block" in doc["error"]
