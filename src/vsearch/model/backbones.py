"""Backbones built from scratch (``weights=None``: nothing is downloaded).

Why a narrow network by default: on a 2-core CPU the training budget is counted in image-steps,
and docs/measurements.md records that a narrow 4-stage CNN at 96 px learns far more in 8 minutes
than resnet18 at 128 px. The torchvision families stay available by name for GPU runs.

Every backbone maps ``float[B, 3, H, W]`` (normalised) to a feature map ``float[B, C, h, w]``
and reports ``out_channels`` and ``stride`` so heads can be sized without running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.ops.misc import Conv2dNormActivation

from vsearch.settings import BackboneName

NARROW = "narrow"
STEM_FINE, STEM_COARSE = 2, 4


class Backbone(nn.Module):
    """A feature extractor with a known channel count and total stride."""

    def __init__(self, body: nn.Module, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _stage(cin: int, cout: int, stride: int, blocks: int) -> nn.Sequential:
    """Residual stage from torchvision's ``BasicBlock`` (projection shortcut when shapes change)."""
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
        )
    layers: list[nn.Module] = [BasicBlock(cin, cout, stride=stride, downsample=down)]
    layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def narrow_cnn(
    widths: Sequence[int] = (32, 64, 128, 256), blocks: int = 1, stem_stride: int = 2
) -> Backbone:
    """A narrow residual CNN: a strided stem, then 4 stages (stride 1, 2, 2, 2).

    Why the stem stride is a knob: on a CPU the first, widest-resolution layers cost most per
    FLOP (memory-bound normalisation and activations). A stride-4 stem (two stride-2 convs)
    made the backbone ~4x faster at the same width in measurements on the 2-core machine,
    and spends the savings on a larger crop instead; a stride-2 stem keeps a finer grid for
    the box head (total stride 16: an 8x8 grid on a 128 px frame).

    Args:
        widths: channels of the first stage and of each following stage (4 values).
        blocks: residual blocks per stage.
        stem_stride: 2 (one stride-2 conv) or 4 (two, the first at half the width).
    """
    if len(widths) != 4 or min(widths) < 1:
        raise ValueError(f"widths must be 4 positive channel counts, got {list(widths)}")
    if stem_stride == STEM_FINE:
        layers: list[nn.Module] = [Conv2dNormActivation(3, widths[0], kernel_size=3, stride=2)]
    elif stem_stride == STEM_COARSE:
        half = max(1, widths[0] // 2)
        layers = [
            Conv2dNormActivation(3, half, kernel_size=3, stride=2),
            Conv2dNormActivation(half, widths[0], kernel_size=3, stride=2),
        ]
    else:
        raise ValueError(f"stem_stride must be {STEM_FINE} or {STEM_COARSE}, got {stem_stride}")
    cin = widths[0]
    for i, w in enumerate(widths):
        layers.append(_stage(cin, w, stride=1 if i == 0 else 2, blocks=blocks))
        cin = w
    return Backbone(nn.Sequential(*layers), out_channels=widths[-1], stride=8 * stem_stride)


def _torchvision_features(name: str) -> Backbone:
    """The convolutional trunk of a torchvision classifier, randomly initialised."""
    from torchvision import models

    net = getattr(models, name)(weights=None)
    if name.startswith("resnet"):
        body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool + fc
        channels = net.fc.in_features
    elif name.startswith("regnet"):
        body = nn.Sequential(net.stem, net.trunk_output)
        channels = net.fc.in_features
    else:  # mobilenet / efficientnet: ``features`` is the trunk
        body = net.features
        with torch.no_grad():
            channels = int(body(torch.zeros(1, 3, 64, 64)).shape[1])
    return Backbone(body, out_channels=int(channels), stride=32)


TORCHVISION_BACKBONES = tuple(b for b in get_args(BackboneName) if b != NARROW)


def build_backbone(
    name: str,
    widths: Sequence[int] = (32, 64, 128, 256),
    blocks: int = 1,
    stem_stride: int = STEM_FINE,
) -> Backbone:
    """A backbone by name: ``"narrow"`` or one of :data:`TORCHVISION_BACKBONES`.

    ``widths``, ``blocks`` and ``stem_stride`` only shape the narrow network.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name == NARROW:
        return narrow_cnn(widths, blocks, stem_stride)
    if name in TORCHVISION_BACKBONES:
        return _torchvision_features(name)
    known = ", ".join((NARROW, *TORCHVISION_BACKBONES))
    raise ValueError(f"unknown backbone {name!r}; choose one of: {known}")
