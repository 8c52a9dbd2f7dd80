"""Small models written the way third-party code is written, each with the one habit that broke edgebench.

Each class reproduces a pattern seen in a pip package's architecture (EfficientNet-PyTorch, MONAI, timm
and MobileNetV3 ports) at a size that trains in seconds. The corpus test runs the real packages.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PaddedConv2d(nn.Conv2d):
    """EfficientNet-PyTorch's Conv2dStaticSamePadding: pads in forward, then convolves."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class BNApart(nn.Module):
    """Convs and BatchNorms registered in separate lists (so never side by side in an nn.Sequential),
    every BatchNorm right after its conv in forward."""

    def __init__(self, cin: int = 1, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.convs = nn.ModuleList([PaddedConv2d(cin, width, 3, bias=False), PaddedConv2d(width, width, 3, bias=False),
                                    nn.Conv2d(width, width, 1, bias=False)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in self.convs])
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return self.head(x.mean((2, 3)))


class ShapeBranching(BNApart):
    """Python control flow on a tensor's size, which torch.fx cannot trace (torch.export can)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
            if x.shape[-1] > 16:  # fx: a Proxy in a Python `if`
                x = F.avg_pool2d(x, 2)
        return self.head(x.mean((2, 3)))


class SharedConvOutput(nn.Module):
    """A conv whose output feeds a BatchNorm AND a residual add: that BatchNorm cannot be folded."""

    def __init__(self, cin: int = 1, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.conv(x)
        return self.head(F.relu(self.bn(y) + y).mean((2, 3)))


class ErfcGELU(torch.autograd.Function):
    """A GELU written as an autograd.Function around erfc, an op the legacy exporter has no symbolic for."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd's protocol
        ctx.save_for_backward(x)
        return 0.5 * x * torch.special.erfc(-x / math.sqrt(2.0))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        cdf = 0.5 * torch.special.erfc(-x / math.sqrt(2.0))
        return grad * (cdf + x * torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))


class CustomActivationNet(nn.Module):
    """A small CNN whose activation is a custom autograd.Function (legacy export fails, dynamo works)."""

    def __init__(self, cin: int = 1, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ErfcGELU.apply(self.conv1(x))
        return self.head(ErfcGELU.apply(self.conv2(x)).mean((2, 3)))


class NumpyInside(nn.Module):
    """A value computed in numpy: an exporter freezes it into the file as a constant."""

    def __init__(self, cin: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        scale = torch.from_numpy(y.detach().numpy().std(axis=(2, 3), keepdims=True) + 1.0)
        return self.head((y / scale).mean((2, 3)))


class TupleOutput(nn.Module):
    """Returns (logits, [features]) like MONAI's ViT."""

    def __init__(self, cin: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f = F.relu(self.conv(x)).mean((2, 3))
        return self.head(f), [f]


class TimmAttention(nn.Module):
    """timm's layout: one qkv Linear, reshaped to (3, heads, head_dim) and unbound."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        a = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, -1))


class IndexedAttention(TimmAttention):
    """MONAI's layout: q, k, v indexed out of one tensor (``out[0]``), which Torch-Pruning cannot map to heads."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.out_proj = self.proj
        del self.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.out_proj((a @ v).transpose(1, 2).reshape(b, n, -1))


class TinyViT(nn.Module):
    """A two-block ViT over 8x8 patches with a class token and position embeddings."""

    def __init__(self, cin: int = 1, classes: int = 10, img: int = 16, patch: int = 4, dim: int = 64, heads: int = 4,
                 attention: type[nn.Module] = TimmAttention) -> None:
        super().__init__()
        self.patch = nn.Conv2d(cin, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([_Block(dim, heads, attention) for _ in range(2)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, attention: type[nn.Module]) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def indexed_vit() -> nn.Module:
    """TinyViT with MONAI-style attention (a factory for model specs)."""
    return TinyViT(attention=IndexedAttention)
