"""Pruning and clustering on tiny models: real sparsity, physically removed channels, <= K values."""

import copy
import time

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from export import cluster, fold, prune
from export.data import load_dataset
from export.onnx_export import export_onnx, ort_session
from export.train import Recipe, per_step
from export.zoo import DigitsCNN, MixNet
from tests import wild_models
from targets.errors import EdgebenchError

TINY_FT = Recipe(epochs=1, lr=1e-3)


@pytest.fixture(scope="module")
def digits8():
    return load_dataset(None, (1, 1, 8, 8))


def _tiny_mixnet():
    torch.manual_seed(0)
    return MixNet(widths=(16, 32, 32), blocks=1).eval()


@pytest.mark.parametrize("allocation", prune.ALLOCATIONS)
def test_unstructured_reaches_sparsity(allocation):
    torch.manual_seed(0)
    m = DigitsCNN()
    steps = prune.prune_unstructured(m, 0.9, None, allocation=allocation, finetune=None)
    assert abs(prune.weight_sparsity(m) - 0.9) < 0.005
    assert steps[-1]["weight_sparsity"] == pytest.approx(prune.weight_sparsity(m), abs=1e-6)
    assert steps[-1]["method"] == f"magnitude-{allocation}"
    if allocation == "layerwise":
        for _, layer in prune.prunable_weights(m):
            assert float((layer.weight == 0).float().mean()) == pytest.approx(0.9, abs=0.02)


def test_lamp_never_empties_a_layer_that_global_magnitude_empties():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        m[2].weight.mul_(1e-3)  # a layer of small weights, like an SE reduction after training
    by_global, by_lamp = copy.deepcopy(m), copy.deepcopy(m)
    prune.prune_unstructured(by_global, 0.6, None, allocation="global", finetune=None)
    prune.prune_unstructured(by_lamp, 0.6, None, allocation="lamp", finetune=None)
    assert int((by_global[2].weight != 0).sum()) == 0
    alive = [int((layer.weight != 0).sum()) for _, layer in prune.prunable_weights(by_lamp)]
    assert min(alive) > 0
    assert prune.weight_sparsity(by_lamp) == pytest.approx(0.6, abs=0.005)
    with pytest.raises(EdgebenchError, match="allocation"):
        prune.prune_unstructured(copy.deepcopy(m), 0.5, None, allocation="random", finetune=None)


def test_iterative_steps_share_the_one_shot_finetuning_budget():
    assert per_step(Recipe(epochs=12, lr=1e-3), 3) == Recipe(epochs=4, lr=1e-3)
    assert per_step(Recipe(epochs=12), 5).epochs == 3 and per_step(Recipe(epochs=2), 3).epochs == 1
    assert per_step(Recipe(epochs=6), 1).epochs == 6 and per_step(None, 3) is None


def test_iterative_unstructured_with_finetune_keeps_zeros(digits8):
    torch.manual_seed(0)
    m = DigitsCNN(width=8)
    steps = prune.prune_unstructured(m, 0.8, digits8, iterations=2, finetune=TINY_FT)
    per_step = 1 - (1 - 0.8) ** 0.5
    assert [s["amount_of_remaining"] for s in steps] == [round(per_step, 6)] * 2
    assert steps[0]["weight_sparsity"] == pytest.approx(per_step, abs=0.01)
    assert steps[1]["weight_sparsity"] == pytest.approx(0.8, abs=0.01)  # fine-tuning did not revive zeros
    assert all(s["val_accuracy"] is not None for s in steps)


def _init_shapes(path):
    return {i.name: tuple(i.dims) for i in onnx.load(str(path)).graph.initializer}


def test_prune_ch_changes_onnx_shapes(tmp_path):
    torch.manual_seed(0)
    m = DigitsCNN(width=32).eval()
    export_onnx(m, (1, 1, 8, 8), tmp_path / "a.onnx")
    steps = prune.prune_channels(m, 0.5, (1, 1, 8, 8), None, round_to=8, finetune=None)
    export_onnx(m, (1, 1, 8, 8), tmp_path / "b.onnx")
    a = sorted(int(np.prod(s)) for s in _init_shapes(tmp_path / "a.onnx").values())
    b = sorted(int(np.prod(s)) for s in _init_shapes(tmp_path / "b.onnx").values())
    assert sum(b) < 0.4 * sum(a)
    conv_out = [s[0] for s in _init_shapes(tmp_path / "b.onnx").values() if len(s) == 4]
    assert conv_out and all(c % 8 == 0 for c in conv_out) and max(conv_out) <= 32
    assert 10 in [s[0] for s in _init_shapes(tmp_path / "b.onnx").values() if len(s) == 2]  # classes kept
    assert steps[0]["params_ratio"] < 0.4


def test_hard_architecture_survives_structured_pruning(tmp_path):
    """Residual adds, depthwise + grouped convs, a concat and SE gates: pruned, exported, still running."""
    m = _tiny_mixnet()
    n0 = prune.count_params(m)[0]
    groups = {n: mod.groups for n, mod in m.named_modules() if isinstance(mod, torch.nn.Conv2d) and mod.groups > 1}
    assert any(g == 2 for g in groups.values()) and len(groups) > 3  # grouped and depthwise present
    prune.prune_channels(m, 0.5, (1, 1, 8, 8), None, iterations=2, round_to=None, finetune=None)
    assert prune.count_params(m)[0] < 0.4 * n0
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        y = m(x)
    assert y.shape == (3, 10)
    export_onnx(m, (1, 1, 8, 8), tmp_path / "m.onnx")
    got = ort_session(tmp_path / "m.onnx").run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, y.numpy(), atol=1e-4)


def test_kmeans_rows_and_speed():
    w = np.random.default_rng(0).normal(0, 0.05, 2_200_000).astype(np.float32)
    for init in cluster.INITS:
        # CPU time of this process: the shared machine's neighbours must not decide this budget
        t0 = time.process_time()
        c, labels = cluster.kmeans_rows(w[None], 16, init)
        elapsed = time.process_time() - t0
        assert c.shape == (1, 16) and np.all(np.diff(c[0]) >= 0)
        assert np.abs(c[0, labels[0]] - w).mean() < 0.01
        assert elapsed < 2.0, f"{init} took {elapsed:.2f}s"
    # rows are clustered apart: each row's values come from its own codebook
    rows = np.stack([np.random.default_rng(i).normal(0, 10.0 ** -i, 500) for i in range(4)]).astype(np.float32)
    c, labels = cluster.kmeans_rows(rows, 4)
    approx = np.take_along_axis(c, labels, axis=1)
    assert np.all(np.abs(approx - rows).mean(axis=1) < 0.5 * np.abs(rows).mean(axis=1))  # 4-level Lloyd: ~0.35
    assert cluster.max_values_per_channel(approx) <= 4 and len(np.unique(approx)) > 4
    c, labels = cluster.kmeans_rows(np.array([[1.0, 1.0, 2.0]]), 4)
    assert sorted(set(c[0, labels[0]])) == [1.0, 2.0]


def test_bn_folding_preserves_outputs():
    m = _tiny_mixnet()
    with torch.no_grad():  # non-trivial BN statistics, else folding is nearly the identity
        for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        y0 = m(x)
    folded, record = fold.fold_batchnorm(m, x)
    assert record["folded"] > 0 and record["left"] == 0 and record["tracer"] == "torch.fx"
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), y0, atol=1e-4, rtol=1e-4)


def test_cluster_keeps_k_values_after_folding_and_finetune(tmp_path, digits8):
    torch.manual_seed(0)
    m = DigitsCNN(width=8).eval()
    clustered, steps = cluster.cluster_model(m, 4, digits8, finetune=TINY_FT)
    assert [s["step"] for s in steps] == ["fold_batchnorm", "kmeans", "finetune"]
    assert max(cluster.unique_values_per_layer(clustered).values()) <= 4
    export_onnx(clustered, (1, 1, 8, 8), tmp_path / "c.onnx")
    for init in onnx.load(str(tmp_path / "c.onnx")).graph.initializer:
        a = numpy_helper.to_array(init)
        if a.ndim >= 2:  # conv / linear weights as the device will load them
            assert np.unique(a).size <= 4, init.name


def _parity(model, shape, path):
    x = torch.rand(3, *shape[1:])
    with torch.no_grad():
        want = model.eval()(x).numpy()
    export_onnx(model, shape, path)
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_vit_heads_and_mlp_widths_are_pruned(tmp_path):
    """timm's attention layout: Torch-Pruning's num_heads support prunes head dims alike in every head
    (the heads stay), the embedding width and the MLP widths; head_dim follows, and the export agrees."""
    torch.manual_seed(0)
    m = wild_models.TinyViT()
    steps = prune.prune_channels(m, 0.5, (1, 1, 16, 16), None, round_to=8, finetune=None)
    attn = m.blocks[0].attn
    assert steps[0]["attention"] == "heads" and steps[0]["note"] is None
    assert attn.num_heads == 4 and attn.qkv.out_features == 96 and attn.head_dim == 8  # 3 x 4 heads x 8 dims
    assert m.blocks[0].mlp[0].out_features == 128 and m.norm.normalized_shape == (32,)
    _parity(m, (1, 1, 16, 16), tmp_path / "vit.onnx")


def test_attention_kept_whole_when_torch_pruning_cannot_follow_its_heads(tmp_path):
    """MONAI's layout (q, k, v indexed out of one tensor): the heads are kept whole through a customized
    pruner, the embedding and MLP widths are still pruned, and the step says so."""
    torch.manual_seed(0)
    m = wild_models.indexed_vit()
    steps = prune.prune_channels(m, 0.5, (1, 1, 16, 16), None, round_to=8, finetune=None)
    attn = m.blocks[0].attn
    assert steps[0]["attention"] == "whole" and "attention heads kept whole" in steps[0]["note"]
    assert "IndexedAttention" in steps[0]["note"]
    assert attn.qkv.out_features == 192 and attn.qkv.in_features == 32 and attn.out_proj.out_features == 32
    assert m.blocks[0].mlp[0].out_features == 128
    _parity(m, (1, 1, 16, 16), tmp_path / "vit.onnx")


def test_prune_exclude_keeps_named_modules_whole():
    torch.manual_seed(0)
    m = wild_models.TinyViT()
    prune.prune_channels(m, 0.5, (1, 1, 16, 16), None, round_to=None, finetune=None, exclude=("blocks.1.mlp.*",))
    assert m.blocks[1].mlp[0].out_features == 256 and m.blocks[0].mlp[0].out_features == 128
    with pytest.raises(EdgebenchError, match=r"--prune-exclude 'block.9' names no module.*blocks\.0"):
        prune.prune_channels(wild_models.TinyViT(), 0.5, (1, 1, 16, 16), None, exclude=("block.9",))
