"""A forward pass on the CPU in bfloat16 with channels-last tensors, float32 out.

Kept free of MONAI imports: the inference path (``tumorseg detect``, the Slicer module) uses it
directly, because importing MONAI costs about 4.5 s of a cold command line on a 2-core CPU.
Training goes through :class:`monai_core.inferers.CPUAutocastInferer`, which wraps this function.
"""

from __future__ import annotations

import torch

__all__ = ["cpu_autocast_forward"]


def cpu_autocast_forward(
    network, inputs: torch.Tensor, *args, enabled: bool = True, channels_last: bool = True, **kwargs
) -> torch.Tensor:
    """``network(inputs, *args, **kwargs)`` under ``torch.autocast("cpu", bfloat16)``; 4D inputs go channels-last first."""
    if channels_last and inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        outputs = network(inputs, *args, **kwargs)
    return outputs.float()
