"""Residual U-Net for 2D slice segmentation.

Written in the style of ``monai.networks.nets``: one network per file, constructor arguments
named for what they mean, the same code for 2D and 3D. The layers come straight from ``torch.nn``
rather than MONAI's factories so that inference never imports MONAI (about 4.5 s of a cold
``tumorseg detect`` on a 2-core CPU); the state-dict keys are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_NORM = {"batch": {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}, "instance": {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}}
_ACT = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU}


def _layer(table: dict, key, what: str):
    if key not in table:
        raise ValueError(f"unsupported {what} {key!r}; choose one of {sorted(table)}.")
    return table[key]

__all__ = ["ResidualBlock", "ResUNet"]


class ResidualBlock(nn.Module):
    """conv 3x3, norm, activation, conv 3x3, norm, plus a 1x1 projection shortcut, then activation.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input.
        out_channels: channels of the output.
        norm: ``"batch"`` or ``"instance"``.
        act: ``"relu"`` or ``"leakyrelu"``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, norm="batch", act="relu") -> None:
        super().__init__()
        conv = _layer(_CONV, spatial_dims, "spatial_dims")
        norm_type = _layer(_layer(_NORM, norm, "norm"), spatial_dims, "spatial_dims")
        act_type = _layer(_ACT, act, "act")
        self.body = nn.Sequential(
            conv(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            norm_type(out_channels),
            act_type(inplace=True),
            conv(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            norm_type(out_channels),
        )
        self.shortcut = nn.Sequential(conv(in_channels, out_channels, kernel_size=1, bias=False), norm_type(out_channels))
        self.act = act_type(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResUNet(nn.Module):
    """Residual U-Net: four down-sampling stages, a bridge, and four up-sampling stages with skips.

    Each stage is a :class:`ResidualBlock`. Down-sampling is 2x2 max pooling, up-sampling a 2x2
    transposed convolution whose output is concatenated with the skip of the same level.
    The input's spatial size must be divisible by 16.

    Args:
        spatial_dims: number of spatial dimensions, 2 for axial slices.
        in_channels: input channels (3: pre-contrast T1, FLAIR, post-contrast T1).
        out_channels: output channels (1 for a sigmoid tumour map).
        channels: feature channels of the four down levels followed by the bridge (five values).
        norm: ``"batch"`` or ``"instance"``.
        act: ``"relu"`` or ``"leakyrelu"``.

    References:
        Zhang Z, Liu Q, Wang Y. Road Extraction by Deep Residual U-Net. IEEE GRSL 2018.
        Buda M, Saha A, Mazurowski MA. Computers in Biology and Medicine 2019;109:218-225.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        norm: str = "batch",
        act: str = "relu",
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"channels needs five values (four levels and the bridge), got {len(channels)}.")
        *levels, bridge = (int(c) for c in channels)
        self.down = nn.ModuleList()
        previous = in_channels
        for c in levels:
            self.down.append(ResidualBlock(spatial_dims, previous, c, norm, act))
            previous = c
        self.pool = _layer(_MAX_POOL, spatial_dims, "spatial_dims")(kernel_size=2)
        self.bridge = ResidualBlock(spatial_dims, previous, bridge, norm, act)
        transposed = _layer(_CONV_TRANSPOSE, spatial_dims, "spatial_dims")
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        previous = bridge
        for c in reversed(levels):
            self.upsample.append(transposed(previous, c, kernel_size=2, stride=2))
            self.up.append(ResidualBlock(spatial_dims, 2 * c, c, norm, act))
            previous = c
        self.head = _CONV[spatial_dims](previous, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for level, (upsample, block) in enumerate(zip(self.upsample, self.up)):
            x = block(torch.cat([upsample(x), skips[-1 - level]], dim=1))
        return self.head(x)
