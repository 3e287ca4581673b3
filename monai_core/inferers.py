"""Inference on the CPU in bfloat16 with channels-last tensors.

MONAI's engines only autocast on CUDA; this inferer gives the same trainers and evaluators the
1.4-1.8x of bf16 autocast and the +25-45% of channels_last measured on a 2-core CPU.
"""

from __future__ import annotations

import torch

from monai.data import MetaTensor
from monai.inferers import Inferer

from .autocast import cpu_autocast_forward

__all__ = ["CPUAutocastInferer"]


class CPUAutocastInferer(Inferer):
    """Run ``network(inputs)`` under ``torch.autocast("cpu", bfloat16)``, return float32 outputs.

    Args:
        enabled: set False to run in float32 (for accuracy comparisons).
        channels_last: convert 4D inputs to channels-last memory format first.
    """

    def __init__(self, enabled: bool = True, channels_last: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.channels_last = channels_last

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        if isinstance(inputs, MetaTensor):  # metadata tracking costs Python time on every op
            inputs = inputs.as_tensor()
        return cpu_autocast_forward(network, inputs, *args, enabled=self.enabled, channels_last=self.channels_last, **kwargs)
