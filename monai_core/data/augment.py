"""Training augmentation for what the LGG slices lack: missing sequences, skull stripping, fat suppression.

The Kaggle slices all have skull and scalp, all three sequences registered, and non-suppressed T1.
Real studies often do not. These MONAI dictionary transforms make such slices from the training
slices, *as the product would see them*: :func:`monai_core.preprocess.intensity_window` scales each
volume by the 99th percentile of its non-zero voxels, so a volume without skull or without scalp
fat comes out brighter. ``brain_gain`` (per channel, see
:func:`monai_core.data.brain_masks.attach_brain_masks`) is exactly that factor for the patient:
p99 of the whole volume / p99 of the brain. Intensity, bias-field, noise and resolution changes are
left to MONAI's own transforms in the bundle configs.

Channels: 0 pre-contrast T1, 1 FLAIR, 2 post-contrast T1, each in [0, 1].
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.transforms import MapTransform, RandomizableTransform

__all__ = ["RandReplaceWithFlaird", "RandSkullStripd", "RandFatSuppressd"]

FLAIR = 1
T1_CHANNELS = (0, 2)


def _tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


class RandReplaceWithFlaird(RandomizableTransform, MapTransform):
    """Replace the T1, the T1c or both (one third each) by the FLAIR, as inference does for a missing sequence."""

    def __init__(self, keys: Sequence[Hashable] | Hashable, prob: float = 0.3, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.channels: tuple[int, ...] = ()

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.channels = ((0,), (2,), (0, 2))[self.R.randint(3)]

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            image = _tensor(d[key]).clone()
            for channel in self.channels:
                image[channel] = image[FLAIR]
            d[key] = image
        return d


class RandSkullStripd(RandomizableTransform, MapTransform):
    """Everything outside the brain set to zero, and the brain brightened as the 99th-percentile rule would.

    Args:
        keys: the image key(s), (3, H, W).
        brain_key: the brain mask, (1, H, W) or (H, W), 1 inside the brain.
        gain_key: per-channel gain (3,), p99 of the whole volume over p99 of the brain.
        prob: probability of applying.
    """

    def __init__(
        self,
        keys: Sequence[Hashable] | Hashable,
        brain_key: str = "brain",
        gain_key: str = "brain_gain",
        prob: float = 0.3,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.brain_key, self.gain_key = brain_key, gain_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        brain = _tensor(d[self.brain_key]).float().reshape(1, *_tensor(d[self.brain_key]).shape[-2:])
        gain = _tensor(d[self.gain_key]).float().reshape(-1, 1, 1)
        for key in self.key_iterator(d):
            image = _tensor(d[key])
            d[key] = (image * brain * gain.to(image.dtype)).clamp(0.0, 1.0)
        return d


class RandFatSuppressd(RandomizableTransform, MapTransform):
    """Simulated fat-suppressed T1 and T1c: scalp and marrow darkened, the brain unchanged but rescaled.

    Outside the brain mask the T1 channels are multiplied by a factor drawn from ``factor_range``
    (fat suppression removes the brightest T1 signal, the scalp fat); the brain is then scaled by the
    patient's ``brain_gain``, because without that bright fat the 99th-percentile rule lands on the brain.
    """

    def __init__(
        self,
        keys: Sequence[Hashable] | Hashable,
        brain_key: str = "brain",
        gain_key: str = "brain_gain",
        prob: float = 0.2,
        factor_range: tuple[float, float] = (0.05, 0.4),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.brain_key, self.gain_key = brain_key, gain_key
        self.factor_range = factor_range
        self.factor = 1.0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.factor = float(self.R.uniform(*self.factor_range))

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        brain = _tensor(d[self.brain_key]).float().reshape(_tensor(d[self.brain_key]).shape[-2:])
        gain = _tensor(d[self.gain_key]).float().reshape(-1)
        outside = self.factor + (1.0 - self.factor) * brain  # 1 in the brain, factor outside
        for key in self.key_iterator(d):
            image = _tensor(d[key]).clone()
            for channel in T1_CHANNELS:
                image[channel] = (image[channel] * outside * gain[channel]).clamp(0.0, 1.0)
            d[key] = image
        return d
