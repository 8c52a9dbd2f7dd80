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


def test_shape_overrides_and_values_apply_to_the_models_that_have_the_input(tmp_path):
    ids = onnx_models.token_embedding(tmp_path / "ids.onnx")
    mlp = onnx_models.mlp(tmp_path / "mlp.onnx")
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7]})
    assert doc["status"] == "bad_input" and "--input ids=" in doc["error"]  # integer ids are never invented
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7]}, values={"ids": {"constant": 3}})
    assert doc["status"] == "ok", doc["error"]
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7], "nope": [1]}, values={"ids": {"random": True}})
    assert doc["status"] == "bad_shape" and "nope" in doc["error"]
    doc = paired({"ids": ids, "mlp": mlp}, shapes={"ids": [1, 7]},
                 values={"ids": {"random": True}, "sr": {"constant": 1}})
    assert doc["status"] == "bad_input" and "sr" in doc["error"]


def test_data_arrays_feed_each_model_its_own_inputs(tmp_path):
    import numpy as np

    ids = onnx_models.token_embedding(tmp_path / "ids.onnx")
    add = onnx_models.two_inputs(tmp_path / "add.onnx")
    data = tmp_path / "d.npz"
    np.savez(data, ids=np.arange(14).reshape(2, 7), a=np.ones((4, 3), np.float32), b=np.ones((4, 3), np.float32))
    doc = paired({"ids": ids, "add": add, "data": data}, models=["ids", "add"])
    assert doc["status"] == "ok", doc["error"]
    np.savez(data, ids=np.arange(14).reshape(2, 7), a=np.ones((4, 3), np.float32), c=np.ones((4, 3), np.float32))
    doc = paired({"ids": ids, "add": add, "data": data}, models=["ids", "add"], values={"b": {"constant": 0}})
    assert doc["status"] == "bad_data" and "c" in doc["error"]


def test_bad_block_settings_are_reported(tmp_path):
    a = onnx_models.identity(tmp_path / "a.onnx")
    doc = paired({"a": a, "b": a}, block_size=4, drop_per_block=4)
    assert doc["status"] == "bad_spec" and "drop_per_block" in doc["error"]


def test_block_plan_gives_slow_models_short_blocks():
    from targets.runner import block_plan

    ms = 1_000_000
    assert block_plan(40, 5, 0, 50 * ms) == (40, 5)  # no block time: the blocks asked for
    assert block_plan(40, 5, 250 * ms, 1 * ms) == (40, 5)  # a fast model fills 40 calls long before
    assert block_plan(40, 5, 250 * ms, 25 * ms) == (10, 1)
    assert block_plan(40, 5, 250 * ms, 50 * ms) == (5, 1)
    assert block_plan(40, 5, 250 * ms, 2000 * ms) == (2, 1)  # never fewer than one timed call
    assert block_plan(40, 0, 250 * ms, 2000 * ms) == (2, 0)


def test_a_slow_model_gets_short_blocks_and_the_round_ends_on_time(tmp_path):
    slow = onnx_models.matmul_chain(tmp_path / "slow.onnx", depth=8)  # tens of ms a call
    fast = onnx_models.mlp(tmp_path / "fast.onnx")
    # 20 blocks of a >= 2-call slow block take >= 0.8 s at any speed seen here; blocks sized from a warm-up
    # slowed by load once fitted 6 of them inside 0.3 s
    doc = paired({"slow": slow, "fast": fast}, block_size=40, drop_per_block=5, n_blocks=20, block_time_s=0.1,
                 max_time_s=0.3)
    assert doc["status"] == "ok", doc["error"]
    calls, dropped = doc["block_calls"]["slow"], doc["block_dropped"]["slow"]
    # ~9 ms a call on a quiet machine (11 calls fill 0.1 s), tens of ms under load (2-4): short blocks either
    # way, and the drop shrinks with the block but never below 1
    assert 2 <= calls < 40 and dropped == max(1, 5 * calls // 40)
    assert (doc["block_calls"]["fast"], doc["block_dropped"]["fast"]) == (40, 5)
    assert all(len(block) == calls - dropped for block in doc["blocks_ns"]["slow"])
    assert 2 <= doc["n_blocks"] < 20 and doc["n_blocks"] % 2 == 0  # the time cap ended it before 20 blocks
