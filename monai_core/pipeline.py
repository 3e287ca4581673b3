"""The two networks of the bundle, loaded once and run on (N, 3, 256, 256) model-space slices.

Stage 1: the DenseNet121 gives each slice a tumour probability (at 128x128, as trained).
Stage 2: the ResUNet segments the slices whose probability reaches the classifier threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from monai.bundle import ConfigParser

from .inferers import CPUAutocastInferer
from .runtime import keep_freed_memory
from .weights import load_state_dict, sha256

__all__ = ["DEFAULT_BUNDLE", "SlicePrediction", "TumorSegPipeline"]

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
Progress = Callable[[str, float, str], None]


@dataclass
class SlicePrediction:
    """Per-slice classifier probabilities and the segmenter's probability maps (zero on skipped slices)."""

    slice_probability: np.ndarray  # (N,)
    positive: np.ndarray  # (N,) bool, probability >= classifier threshold
    tumour_probability: np.ndarray  # (N, 256, 256) float32


class TumorSegPipeline:
    """Both networks of a TumorSeg bundle, with the thresholds and sizes from ``configs/inference.json``.

    Args:
        bundle_dir: the bundle folder.
        verify_weights: check each weights file against the sha256 in ``configs/metadata.json``.
        segmenter_weights, classifier_weights: the user's own weights instead of the bundle's
            (not checksum-verified, because the user chose them).
    """

    def __init__(
        self,
        bundle_dir: str | Path = DEFAULT_BUNDLE,
        verify_weights: bool = True,
        segmenter_weights: str | Path | None = None,
        classifier_weights: str | Path | None = None,
    ) -> None:
        keep_freed_memory()
        self.bundle_dir = Path(bundle_dir)
        parser = ConfigParser()
        parser.read_config(str(self.bundle_dir / "configs" / "inference.json"))
        parser["bundle_root"] = str(self.bundle_dir)
        self.metadata = json.loads((self.bundle_dir / "configs" / "metadata.json").read_text())
        recorded = self.metadata.get("weights_sha256", {})
        self.classifier_threshold = float(parser["classifier_threshold"])
        self.mask_threshold = float(parser["mask_threshold"])
        self.classifier_size = int(parser["classifier_image_size"])
        self.classifier_batch = int(parser["classifier_batch_size"])
        self.segmenter_batch = int(parser["segmenter_batch_size"])
        self.inferer = CPUAutocastInferer()
        self.weights = {}
        self.segmenter = self._load(parser, "network_def", segmenter_weights, "models/model.pt", recorded, verify_weights)
        self.classifier = self._load(
            parser, "classifier_def", classifier_weights, "models/model_classifier.pt", recorded, verify_weights
        )

    def _load(self, parser, key, own_path, bundle_path, recorded, verify):
        network = parser.get_parsed_content(key)
        path = Path(own_path) if own_path else self.bundle_dir / bundle_path
        expected = None if own_path or not verify else recorded.get(bundle_path)
        if expected is None and verify and not own_path:
            from .errors import InputError

            raise InputError(path, "no sha256 recorded for these weights in configs/metadata.json")
        network.load_state_dict(load_state_dict(path, expected))
        self.weights[bundle_path] = expected or sha256(path)
        return network.eval().to(memory_format=torch.channels_last)

    @property
    def identity(self) -> dict:
        """Name, version and weights checksums, for report.json."""
        return {"name": self.metadata.get("name"), "version": self.metadata.get("version"), "sha256": dict(self.weights)}

    @torch.inference_mode()
    def classify(self, slices: torch.Tensor) -> np.ndarray:
        """Tumour probability of each slice."""
        out = []
        for batch in torch.split(slices, self.classifier_batch):
            small = F.interpolate(batch, size=(self.classifier_size,) * 2, mode="area")
            out.append(torch.softmax(self.inferer(small, self.classifier), dim=1)[:, 1])
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    @torch.inference_mode()
    def segment(self, slices: torch.Tensor) -> np.ndarray:
        """Tumour probability maps of the given slices, (n, 256, 256)."""
        out = [torch.sigmoid(self.inferer(b, self.segmenter))[:, 0] for b in torch.split(slices, self.segmenter_batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, *slices.shape[2:]), np.float32)

    def predict(self, slices: np.ndarray, progress: Progress | None = None) -> SlicePrediction:
        """Run both stages on (N, 3, 256, 256) float32 slices in [0, 1]."""
        progress = progress or (lambda *a: None)
        x = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))
        progress("classify", 0.0, f"classifying {len(x)} slices")
        probability = self.classify(x)
        positive = probability >= self.classifier_threshold
        tumour = np.zeros((len(x), *x.shape[2:]), np.float32)
        index = np.flatnonzero(positive)
        progress("segment", 0.0, f"segmenting {len(index)} flagged slices")
        if len(index):
            tumour[index] = self.segment(x[torch.from_numpy(index)])
        return SlicePrediction(probability, positive, tumour)
