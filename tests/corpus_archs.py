"""PyTorch architectures from pip packages nobody here wrote, for `edgebench compress` (corpus test and
scripts/wild_archs.py).

Each entry pins the packages it needs (fetched by tests/corpus.py, no dependencies: these need only
torch and numpy, plus einops for MONAI's ViT) and names a factory below, so the model spec is
``tests.corpus_archs:<factory>`` with the repository and the unpacked packages on PYTHONPATH. Sizes fit
the bundled digits upsampled to 3x32x32 with 10 classes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
INPUT_SHAPE = (1, 3, 32, 32)
VARIANTS = "fp32,prune-ch:0.5,cluster:16,fp32+int8"


@dataclass(frozen=True)
class Arch:
    """One architecture: the packages it imports and its factory in this module."""

    name: str
    requirements: tuple[str, ...]
    factory: str

    @property
    def spec(self) -> str:
        return f"tests.corpus_archs:{self.factory}"


ARCHS = (
    Arch("EfficientNet-B0 (efficientnet-pytorch)", ("efficientnet-pytorch==0.7.1",), "efficientnet_b0"),
    Arch("DenseNet-121 (monai)", ("monai==1.6.1",), "densenet121"),
    Arch("ViT (monai)", ("monai==1.6.1", "einops==0.8.1"), "vit"),
)


def efficientnet_b0() -> nn.Module:
    """EfficientNet-B0: convs that pad in forward, BatchNorms registered apart, a Swish autograd.Function."""
    from efficientnet_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-b0", num_classes=10, image_size=32)


def densenet121() -> nn.Module:
    """DenseNet-121: BatchNorm before each conv (pre-activation) and concatenations everywhere."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=3, out_channels=10)


def vit() -> nn.Module:
    """A small ViT over 8x8 patches; returns (logits, hidden states), q/k/v indexed out of one tensor."""
    from monai.networks.nets import ViT

    return ViT(in_channels=3, img_size=(32, 32), patch_size=(8, 8), hidden_size=192, mlp_dim=768, num_layers=4,
               num_heads=4, classification=True, num_classes=10, spatial_dims=2)


def environment(folders: list[Path], cache: Path | None = None) -> dict[str, str]:
    """The environment of an `edgebench` subprocess that imports the packages in ``folders``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, folders), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if cache is not None:
        env["EDGEBENCH_CACHE"] = str(cache)
    return env


def save_seeded_weights(arch: Arch, env: dict[str, str], path: Path) -> None:
    """A seeded state_dict of ``arch`` (in a subprocess: the packages stay out of this process), so that
    `compress --weights` skips base training."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (f"import torch, tests.corpus_archs as a; torch.manual_seed(0); "
            f"torch.save(a.{arch.factory}().state_dict(), {str(path)!r})")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building {arch.name} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def compress_command(arch: Arch, weights: Path, out: Path) -> list[str]:
    """`edgebench compress` on ``arch`` with the given weights, every path once, one fine-tuning epoch."""
    return [sys.executable, "-m", "harness", "compress", "--model", arch.spec, "--weights", str(weights),
            "--input-shape", ",".join(map(str, INPUT_SHAPE)), "--variants", VARIANTS, "--finetune-epochs", "1",
            "--out", str(out)]
