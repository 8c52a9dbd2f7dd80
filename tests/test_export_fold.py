"""BatchNorm folding along the traced graph, and clustering's codebook form when folding is impossible."""

import pytest
import torch

from export import cluster, fold
from export.data import load_dataset
from export.onnx_export import export_onnx
from export.train import Recipe
from export.zoo import DigitsCNN
from tests import wild_models


def _random_bn_stats(model):
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial statistics, else folding is nearly the identity
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def digits16():
    return load_dataset(None, (1, 1, 16, 16))


@pytest.mark.parametrize("make, tracer", [(wild_models.BNApart, "torch.fx"),
                                          (wild_models.ShapeBranching, "torch.export")])
def test_every_bn_after_a_conv_is_folded_whatever_the_registration_order(make, tracer):
    """Convs (one a padding subclass) and BatchNorms live in separate lists: the old order-based fold
    refused all three; the graph says each BatchNorm follows its conv. Where torch.fx cannot trace the
    forward (a Python `if` on a size), torch.export finds the same pairs."""
    m = _random_bn_stats(make())
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        want = m(x)
    folded, record = fold.fold_batchnorm(m, x)
    assert record == {"folded": 3, "left": 0, "blocked": 0, "tracer": tracer}
    assert not any(isinstance(b, torch.nn.BatchNorm2d) for b in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), want, atol=1e-4, rtol=1e-4)
    assert any(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules())  # the original is untouched


def test_a_bn_that_cannot_be_folded_makes_clustering_per_channel(tmp_path, digits16):
    """The conv's output also feeds a residual add, so its BatchNorm stays; an exporter may still fold it
    into the conv, scaling each output channel. cluster:K then uses K values per output channel, which
    that scaling cannot spread, and says why; the exported file holds <= K values per channel."""
    m = _random_bn_stats(wild_models.SharedConvOutput())
    clustered, steps = cluster.cluster_model(m, 4, digits16, finetune=Recipe(epochs=1, lr=3e-4))
    folding, kmeans = steps[0], steps[1]
    assert folding["folded"] == 1 and folding["blocked"] == 1
    assert kmeans["codebook"] == "channel" and "cannot be folded" in kmeans["why"]
    path = tmp_path / "c.onnx"
    export_onnx(clustered, (1, 1, 16, 16), path)
    held = cluster.file_codebook_stats(path)
    assert held["file_max_values_per_channel"] <= 4 < held["file_max_values_per_layer"]


def test_per_layer_and_per_channel_codebooks_in_the_file(tmp_path, digits16):
    """cluster:K keeps <= K values per layer in the ONNX file; cluster-ch:K <= K per output channel (more
    per layer). Both files, encoded as indices + codebooks, would be a fraction of their float bytes."""
    torch.manual_seed(0)
    base = _random_bn_stats(DigitsCNN(width=16))
    held = {}
    for codebook in cluster.CODEBOOKS:
        model, steps = cluster.cluster_model(base, 4, digits16, finetune=None, codebook=codebook)
        assert steps[1]["codebook"] == codebook and steps[0]["folded"] == 3
        export_onnx(model, (1, 1, 16, 16), tmp_path / f"{codebook}.onnx")
        held[codebook] = cluster.file_codebook_stats(tmp_path / f"{codebook}.onnx")
    assert held["layer"]["file_max_values_per_layer"] <= 4
    assert held["channel"]["file_max_values_per_channel"] <= 4 < held["channel"]["file_max_values_per_layer"]
    for codebook, h in held.items():
        assert h["index_codebook_bytes_estimate"] < 0.4 * (tmp_path / f"{codebook}.onnx").stat().st_size


def test_clusters_share_gradients_per_channel():
    torch.manual_seed(0)
    m = DigitsCNN(width=8)
    clusters = cluster.Clusters(m, 3, codebook="channel")
    for _, layer in cluster.prunable_weights(m):
        assert cluster.max_values_per_channel(layer.weight.detach().numpy()) <= 3
    m(torch.rand(4, 1, 8, 8)).sum().backward()
    clusters.share_gradients(m)
    for _, layer in cluster.prunable_weights(m):  # one gradient per (channel, cluster): values stay shared
        with torch.no_grad():
            layer.weight -= 0.1 * layer.weight.grad
        assert cluster.max_values_per_channel(layer.weight.detach().numpy()) <= 3
