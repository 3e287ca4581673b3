"""DenseNet121 for slice classification, from ``torch.nn`` only, with the state-dict keys of MONAI's.

The bundle trains ``monai.networks.nets.DenseNet121`` (``classifier_def`` in the bundle's configs) and
ships its state dict. Inference builds this network instead and loads that state dict unchanged
(``weights_only``, sha256-checked): importing MONAI would add about 4.5 s to every cold ``tumorseg
detect``, and the TorchScript export that inference ran before costs two slow calls while its
profiling executor specialises the graph (0.41 and 0.32 s against 0.16 s on the sample study's 26
slices; this module's first call takes 0.22 s). The layers, their order and their names follow
MONAI's DenseNet, so that the outputs are MONAI's to the bit (tests/test_networks.py).

Reference: Huang G, Liu Z, van der Maaten L, Weinberger KQ. Densely Connected Convolutional Networks.
CVPR 2017.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["TorchDenseNet121"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
_GLOBAL_POOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def _dims(table: dict, spatial_dims: int):
    if spatial_dims not in table:
        raise ValueError(f"unsupported spatial_dims {spatial_dims!r}; choose 2 or 3.")
    return table[spatial_dims]


class _DenseLayer(nn.Module):
    """norm, ReLU, 1x1 conv to ``bn_size * growth_rate`` channels, norm, ReLU, 3x3 conv to ``growth_rate``;
    the output is the input with those new channels appended."""

    def __init__(self, spatial_dims: int, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        conv, norm = _dims(_CONV, spatial_dims), _dims(_NORM, spatial_dims)
        bottleneck = bn_size * growth_rate
        self.layers = nn.Sequential(OrderedDict([
            ("norm1", norm(in_channels)),
            ("relu1", nn.ReLU(inplace=True)),
            ("conv1", conv(in_channels, bottleneck, kernel_size=1, bias=False)),
            ("norm2", norm(bottleneck)),
            ("relu2", nn.ReLU(inplace=True)),
            ("conv2", conv(bottleneck, growth_rate, kernel_size=3, padding=1, bias=False)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], 1)


class _Transition(nn.Sequential):
    """norm, ReLU, 1x1 conv, 2x2 average pooling: between dense blocks, halving size and channels."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__(OrderedDict([
            ("norm", _dims(_NORM, spatial_dims)(in_channels)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", _dims(_CONV, spatial_dims)(in_channels, out_channels, kernel_size=1, bias=False)),
            ("pool", _dims(_AVG_POOL, spatial_dims)(kernel_size=2, stride=2)),
        ]))


class TorchDenseNet121(nn.Module):
    """DenseNet-121 (dense blocks of 6, 12, 24 and 16 layers, growth rate 32) in MONAI's layout.

    Not named ``DenseNet121``: MONAI's config parser looks a bare ``"_target_": "DenseNet121"`` up in every
    loaded module whose name starts with "monai", ``monai_core`` included, and would take this class
    for the bundle's training configs, which mean MONAI's (and pass it arguments it lacks).

    Args:
        spatial_dims: 2 for axial slices.
        in_channels: input channels (3: pre-contrast T1, FLAIR, post-contrast T1).
        out_channels: logits (2: no tumour, tumour).
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 2,
                 init_features: int = 64, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 bn_size: int = 4) -> None:
        super().__init__()
        conv, norm = _dims(_CONV, spatial_dims), _dims(_NORM, spatial_dims)
        self.features = nn.Sequential(OrderedDict([
            ("conv0", conv(in_channels, init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", norm(init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", _dims(_MAX_POOL, spatial_dims)(kernel_size=3, stride=2, padding=1)),
        ]))
        channels = init_features
        for number, layers in enumerate(block_config, start=1):
            block = nn.Sequential()
            for index in range(1, layers + 1):
                block.add_module(f"denselayer{index}", _DenseLayer(spatial_dims, channels, growth_rate, bn_size))
                channels += growth_rate
            self.features.add_module(f"denseblock{number}", block)
            if number < len(block_config):
                self.features.add_module(f"transition{number}", _Transition(spatial_dims, channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", norm(channels))
        self.class_layers = nn.Sequential(OrderedDict([
            ("relu", nn.ReLU(inplace=True)),
            ("pool", _dims(_GLOBAL_POOL, spatial_dims)(1)),
            ("flatten", nn.Flatten(1)),
            ("out", nn.Linear(channels, out_channels)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_layers(self.features(x))
