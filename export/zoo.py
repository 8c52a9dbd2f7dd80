"""Built-in architectures and model-spec loading (``zoo:NAME``, ``file.py:factory``, ``pkg.mod:factory``).

The zoo nets are written here because torchvision is not available on the boards or in CI. All take
``in_channels``, ``num_classes`` and (where it matters) an input size, so the same net serves the bundled
8x8 digits (upsampled) and a user's 3x224x224 images.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from targets.errors import EdgebenchError

DEFAULT_MODEL = "zoo:resnet"  # the main job's model (at 32x32): dense convs train fast on CPU, >= 1 ms at 1 thread


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv + BatchNorm (+ ReLU): the unit every zoo net is made of; BN is folded away at export."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DigitsCNN(nn.Module):
    """Small CNN for 1x8x8 digits: three convs, global pooling, one linear layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _cbr(in_channels, width), _cbr(width, 2 * width), nn.MaxPool2d(2), _cbr(2 * width, 2 * width)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_cbr(cin, hidden, 1))
        layers += [_cbr(hidden, hidden, 3, stride, groups=hidden), _cbr(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def _make_div(v: float, divisor: int = 8) -> int:
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class MobileNetV2(nn.Module):
    """MobileNetV2 with a width multiplier; small inputs (< 64 px) skip the first two stride-2 steps."""

    # (expand, channels, repeats, stride) as in the paper
    CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, width_mult: float = 1.0,
                 input_size: int = 224) -> None:
        super().__init__()
        small = input_size < 64  # keep spatial detail on tiny images instead of pooling it away
        c = _make_div(32 * width_mult)
        layers: list[nn.Module] = [_cbr(in_channels, c, 3, 1 if small else 2)]
        n_stride2 = 0
        for t, ch, n, s in self.CFG:
            cout = _make_div(ch * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                if stride == 2:
                    n_stride2 += 1
                    if small and n_stride2 <= 2:
                        stride = 1
                layers.append(InvertedResidual(c, cout, stride, t))
                c = cout
        last = _make_div(1280 * max(1.0, width_mult))
        layers.append(_cbr(c, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class VGG(nn.Module):
    """VGG-style plain stack of 3x3 convs with max pooling ('M' in the config)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 cfg: tuple = (32, 32, "M", 64, 64, "M", 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(_cbr(c, int(v)))
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_cbr(cin, cout, 3, stride), _cbr(cout, cout, 3, act=False))
        self.short = _cbr(cin, cout, 1, stride, act=False) if (stride != 1 or cin != cout) else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResNet(nn.Module):
    """Small ResNet for low-resolution inputs: a 3x3 stem and three stages of basic blocks."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (48, 96, 192),
                 blocks: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [_cbr(in_channels, widths[0])]
        c = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(BasicBlock(c, w, 2 if (i > 0 and b == 0) else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation gate: channel weights from global pooling, multiplied back onto the input."""

    def __init__(self, c: int, reduce: int = 4) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, max(8, c // reduce), 1)
        self.fc2 = nn.Conv2d(max(8, c // reduce), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class MixBlock(nn.Module):
    """1x1 expand, a 3x3 and a 5x5 depthwise branch concatenated (MixConv), an SE gate, a grouped 1x1
    projection, and a residual add when shapes match: every structure that makes channel pruning hard."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 2, groups: int = 2) -> None:
        super().__init__()
        e = cin * expand
        self.expand = _cbr(cin, e, 1)
        self.dw3 = _cbr(e, e, 3, stride, groups=e)
        self.dw5 = _cbr(e, e, 5, stride, groups=e)
        self.se = SqueezeExcite(2 * e)
        # groups=2 lines up with the concat halves, so a pruned channel of `expand` leaves equal groups
        self.project = _cbr(2 * e, cout, 1, groups=groups, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.expand(x)
        y = self.project(self.se(torch.cat([self.dw3(a), self.dw5(a)], 1)))
        return x + y if self.residual else y


class MixNet(nn.Module):
    """The zoo net nobody tuned for: residual adds, depthwise + grouped convs, a concat and SE gates."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128),
                 blocks: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [_cbr(in_channels, widths[0])]
        c = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                layers.append(MixBlock(c, w, 2 if (i > 0 and b == 0) else 1))
                c = w
        layers.append(_cbr(c, 2 * c, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _zoo_entry(cls: Callable[..., nn.Module], default_hw: int) -> Callable[..., tuple[nn.Module, tuple[int, ...]]]:
    def build(input_shape: tuple[int, ...] | None, num_classes: int) -> tuple[nn.Module, tuple[int, ...]]:
        shape = tuple(input_shape) if input_shape else (1, 1, default_hw, default_hw)
        kwargs: dict = {"in_channels": shape[1], "num_classes": num_classes}
        if cls is MobileNetV2:
            kwargs["input_size"] = shape[-1]
            kwargs["width_mult"] = 0.5 if shape[-1] < 64 else 1.0
        return cls(**kwargs), shape

    return build


# name -> builder(input_shape or None, num_classes) -> (model, input_shape)
ZOO: dict[str, Callable[[tuple[int, ...] | None, int], tuple[nn.Module, tuple[int, ...]]]] = {
    "digits-cnn": _zoo_entry(DigitsCNN, 8),
    "mobilenetv2": _zoo_entry(MobileNetV2, 32),
    "vgg": _zoo_entry(VGG, 32),
    "resnet": _zoo_entry(ResNet, 24),
    "mixnet": _zoo_entry(MixNet, 16),
}


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise EdgebenchError(
            f"model spec {spec!r} is not valid: use zoo:NAME (one of {', '.join(sorted(ZOO))}), "
            "path/to/file.py:factory or package.module:factory"
        )
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise EdgebenchError(f"model file {path} does not exist (model spec {spec!r})")
            mod_name = f"edgebench_user_model_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(mod_name, path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules[mod_name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except EdgebenchError:
        raise
    except Exception as exc:  # any import-time failure is the user's model file, say which
        raise EdgebenchError(
            f"cannot import model module {target!r}: {type(exc).__name__}: {exc}. "
            "Check the path / package name and that it imports on its own"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise EdgebenchError(f"{target!r} has no callable {attr!r}; the spec must name a function returning an nn.Module")
    return factory


class SelectOutput(nn.Module):
    """One tensor out of a model that returns a tuple, list or dict (a ViT's ``(logits, hidden_states)``).

    Training, pruning, export and accuracy all need one tensor: the first one found (depth first, dicts
    in their order) or the one named by ``key`` (a dict key, or a position in a tuple / list).
    The user's model is the child ``model``; its state_dict is loaded before wrapping.
    """

    def __init__(self, model: nn.Module, key: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.key = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pick_output(self.model(x), self.key)


def _first_tensor(out: object) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def pick_output(out: object, key: str | None = None) -> torch.Tensor:
    """The output tensor that stands for the model (see SelectOutput); EdgebenchError names what there is."""
    if key is None:
        found = _first_tensor(out)
        if found is None:
            raise EdgebenchError(f"the model returned {type(out).__name__} holding no tensor; "
                                 "its forward() must return a tensor, or a tuple / dict holding one")
        return found
    if isinstance(out, dict):
        if key not in out:
            raise EdgebenchError(f"--model-output {key!r}: the model's outputs are {', '.join(map(repr, out))}")
        return pick_output(out[key])
    if isinstance(out, (tuple, list)):
        if not key.lstrip("-").isdigit() or not -len(out) <= int(key) < len(out):
            raise EdgebenchError(f"--model-output {key!r}: the model returns a {type(out).__name__} of {len(out)}; "
                                 f"give a position 0..{len(out) - 1}")
        return pick_output(out[int(key)])
    raise EdgebenchError(f"--model-output {key!r}: the model returns one {type(out).__name__}, nothing to choose from")


def user_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``named_modules()`` with the user's own names (without SelectOutput's ``model.`` prefix)."""
    inner = model.model if isinstance(model, SelectOutput) else model
    return list(inner.named_modules())


def check_input_shape(model: nn.Module, shape: tuple[int, ...]) -> object:
    """Run one forward pass on zeros so a wrong ``--input-shape`` fails now with the model's own words.

    Returns the output (a tensor, or whatever structure the model returns)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(shape))
    except Exception as exc:
        raise EdgebenchError(
            f"input shape {','.join(map(str, shape))} does not fit the model: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Pass --input-shape 1,C,H,W matching the model"
        ) from exc
    finally:
        model.train(was_training)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state_dict with ``weights_only=True``; every mismatch is listed in the error."""
    path = Path(path)
    if not path.is_file():
        raise EdgebenchError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgebenchError(
            f"cannot load weights {path}: {type(exc).__name__}: {(str(exc).strip() or 'empty file').splitlines()[0]}. "
            "Save them with torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EdgebenchError(f"weights file {path} does not hold a state_dict (got {type(state).__name__})")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"shape mismatch {len(wrong)} (e.g. {'; '.join(wrong[:3])})")
        raise EdgebenchError(
            f"weights {path} do not match the model: {'; '.join(parts)}. Use the weights saved from this architecture"
        )
    model.load_state_dict(state)


def load_model(spec: str, weights: Path | None = None, input_shape: tuple[int, ...] | None = None,
               num_classes: int = 10, output: str | None = None) -> tuple[nn.Module, tuple[int, ...]]:
    """Build the model named by ``spec``, load ``weights`` if given, check the input shape fits.

    Returns the model in eval mode and the input shape (batch 1). For factories the shape comes from
    ``input_shape``, else a module-level ``INPUT_SHAPE`` or a model attribute ``input_shape``. A model
    that returns a tuple / list / dict (or any model, when ``output`` names one) is wrapped in
    SelectOutput so that everything downstream sees one tensor.
    """
    if spec.startswith("zoo:"):
        name = spec[4:]
        if name not in ZOO:
            raise EdgebenchError(f"unknown zoo model {name!r}; choose one of: {', '.join('zoo:' + n for n in sorted(ZOO))}")
        if input_shape is not None and len(input_shape) != 4:
            raise EdgebenchError(f"input shape {input_shape} must be 4 numbers 1,C,H,W for zoo models")
        model, shape = ZOO[name](input_shape, num_classes)
    else:
        factory = _import_factory(spec)
        try:
            model = factory()
        except Exception as exc:
            raise EdgebenchError(
                f"model factory {spec!r} failed: {type(exc).__name__}: {exc}. It must take no arguments "
                "and return an nn.Module"
            ) from exc
        if not isinstance(model, nn.Module):
            raise EdgebenchError(f"model factory {spec!r} returned {type(model).__name__}, not a torch nn.Module")
        module = sys.modules.get(getattr(factory, "__module__", ""), None)
        shape = input_shape or getattr(model, "input_shape", None) or getattr(module, "INPUT_SHAPE", None)
        if shape is None:
            raise EdgebenchError(f"no input shape known for {spec!r}: pass --input-shape 1,C,H,W")
        shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise EdgebenchError(f"input shape {shape} has a non-positive size")
    shape = (1, *shape[1:])
    if weights is not None:
        load_weights(model, weights)
    out = check_input_shape(model, shape)
    if output is not None or not isinstance(out, torch.Tensor):
        pick_output(out, output)  # a wrong --model-output fails here, before any long work
        model = SelectOutput(model, output)
    return model.eval(), shape
