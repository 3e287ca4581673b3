"""Training side of the 2.5D segmenter (:mod:`monai_core.context`): the neighbours' FLAIR as channels 3 and 4."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform
from PIL import Image

from ..context import FLAIR

__all__ = ["AddContextFlaird"]


class AddContextFlaird(MapTransform):
    """Append the FLAIR of the slice below and above (``context``: their image paths, from
    :func:`monai_core.context.with_context`) to a (3, H, W) image in [0, 1], giving (5, H, W).

    A ``brain_gain`` (3,) of the skull-stripping augmentation gets the FLAIR's gain for the two new
    channels, so that a stripped study brightens its neighbours as it brightens the slice.
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, context_key: str = "context", gain_key: str = "brain_gain",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.context_key, self.gain_key = context_key, gain_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        neighbours = [np.asarray(Image.open(path).convert("RGB"))[:, :, FLAIR].astype(np.float32) / 255.0
                      for path in d[self.context_key]]
        for key in self.key_iterator(d):
            image = d[key]
            extra = torch.as_tensor(np.stack(neighbours), dtype=image.dtype)
            d[key] = torch.cat([image, extra.to(image.device)], dim=0) if isinstance(image, torch.Tensor) else np.concatenate([image, extra.numpy()])
        if self.gain_key in d:
            gain = np.asarray(d[self.gain_key], np.float32).reshape(-1)
            if len(gain) == 3:
                d[self.gain_key] = np.concatenate([gain, gain[[FLAIR, FLAIR]]])
        d.pop(self.context_key, None)
        return d
