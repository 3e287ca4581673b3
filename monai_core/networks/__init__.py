"""Networks of the TumorSeg bundle: the ResUNet segmenter (the classifier is MONAI's DenseNet121)."""

from .resunet import ResidualBlock, ResUNet

__all__ = ["ResidualBlock", "ResUNet"]
