"""Networks of the TumorSeg bundle, from ``torch.nn`` only: the ResUNet segmenter and the DenseNet121 classifier
(with the state-dict keys of MONAI's, which the bundle trains)."""

from .densenet import DenseNet121
from .resunet import ResidualBlock, ResUNet

__all__ = ["DenseNet121", "ResidualBlock", "ResUNet"]
