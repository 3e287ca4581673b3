"""Networks of the TumorSeg bundle, from ``torch.nn`` only: the ResUNet segmenter and the DenseNet121 classifier
(with the state-dict keys of MONAI's, which the bundle trains)."""

from .densenet import TorchDenseNet121
from .resunet import ResidualBlock, ResUNet

__all__ = ["ResidualBlock", "ResUNet", "TorchDenseNet121"]
