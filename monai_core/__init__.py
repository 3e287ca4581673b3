"""TumorSeg engine: networks, data, preprocessing, inference, metrics and the command line."""

__version__ = "0.4.0"
