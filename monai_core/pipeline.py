"""The two networks of the bundle, loaded once and run on (N, 3, 256, 256) model-space slices.

Stage 1: the DenseNet121 gives each slice a tumour probability (at 128x128, as trained).
Stage 2: the ResUNet segments the slices whose probability reaches the classifier threshold.

Nothing here imports MONAI, which would add about 4.5 s to every cold ``tumorseg detect``: both
networks are built from ``torch.nn`` (:mod:`monai_core.networks`, MONAI's state-dict keys) and load the
bundle's state dicts, ``weights_only`` and checked against their recorded sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .autocast import cpu_autocast_forward
from .context import context_channels, context_step, segmenter_input
from .errors import InputError
from .networks import ResUNet, TorchDenseNet121
from .postprocess import MIRRORED_RULES, MaskSetting, cleaned_probability, estimate_midline
from .quality import QualityModel
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
    tumour_probability: np.ndarray  # (N, 256, 256) float32, zero outside the kept 3D components
    flipped_probability: np.ndarray | None = None  # the same from left-right flipped slices, on the mask's slices


def _with_weights(network: torch.nn.Module, architecture: str, state: dict, path) -> torch.nn.Module:
    """``network`` holding ``state``, in evaluation mode and channels-last; a state dict made for another
    architecture is refused with one line naming the file, not PyTorch's list of every missing key."""
    try:
        network.load_state_dict(state)
    except RuntimeError:
        raise InputError(path, f"these weights do not fit the bundle's {architecture}") from None
    return network.eval().to(memory_format=torch.channels_last)


class TumorSegPipeline:
    """Both networks of a TumorSeg bundle, with the thresholds and sizes from ``configs/inference.json``.

    Args:
        bundle_dir: the bundle folder.
        segmenter_weights, classifier_weights: the user's own state dicts instead of the bundle's
            (not checksum-verified, because the user chose them; still ``weights_only``).
    """

    def __init__(
        self,
        bundle_dir: str | Path = DEFAULT_BUNDLE,
        segmenter_weights: str | Path | None = None,
        classifier_weights: str | Path | None = None,
    ) -> None:
        keep_freed_memory()
        self.bundle_dir = Path(bundle_dir)
        config = json.loads((self.bundle_dir / "configs" / "inference.json").read_text())
        self.metadata = json.loads((self.bundle_dir / "configs" / "metadata.json").read_text())
        self.recorded = self.metadata.get("weights_sha256", {})
        self.setting = MaskSetting.from_config(config)  # gate, mask threshold and clean-up (monai_core.postprocess)
        self.classifier_size = int(config["classifier_image_size"])
        self.classifier_batch = int(config["classifier_batch_size"])
        self.segmenter_batch = int(config["segmenter_batch_size"])
        self.weights = {}
        quality = self.bundle_dir / "configs" / "quality.json"
        self.quality = QualityModel.load(quality) if quality.is_file() else None
        self.segmenter = self._load_segmenter(config["network_def"], segmenter_weights)
        self.classifier = self._load_classifier(config["classifier_def"], classifier_weights)

    def _bundle_file(self, name: str) -> tuple[Path, str]:
        path = self.bundle_dir / name
        expected = self.recorded.get(name)
        if not expected:
            raise InputError(path, "no sha256 recorded for these weights in configs/metadata.json")
        self.weights[name] = expected
        return path, expected

    def _state(self, name: str, own_path) -> tuple[dict, Path]:
        """The state dict for the bundle's ``name`` and the file it came from: the user's own weights when
        given (the shipped architecture, no recorded checksum; their sha256 goes into report.json), else the
        bundle's file, checked against its recorded sha256."""
        if own_path:
            state = load_state_dict(own_path, None)  # first: a missing or unsafe file is refused in one line
            self.weights[name] = sha256(own_path)
            return state, Path(own_path)
        path, expected = self._bundle_file(name)
        return load_state_dict(path, expected), path

    def _load_segmenter(self, definition: dict, own_path) -> torch.nn.Module:
        arguments = {k: v for k, v in definition.items() if k != "_target_"}
        if definition.get("_target_") != "monai_core.networks.ResUNet":
            raise InputError(self.bundle_dir / "configs" / "inference.json", "network_def must be monai_core.networks.ResUNet")
        state, path = self._state("models/model.pt", own_path)
        if own_path:
            first = state.get("down.0.body.0.weight")
            if not isinstance(first, torch.Tensor) or first.ndim != 4:
                raise InputError(path, "these weights do not fit the bundle's ResUNet")
            arguments["in_channels"] = int(first.shape[1])  # the user's may be 2D or 2.5D
        self.context = context_channels(int(arguments.get("in_channels", 3)))  # a 2.5D segmenter (monai_core.context)
        return _with_weights(ResUNet(**arguments), "ResUNet", state, path)

    def _load_classifier(self, definition: dict, own_path) -> torch.nn.Module:
        arguments = {k: v for k, v in definition.items() if k != "_target_"}
        if definition.get("_target_") not in ("DenseNet121", "monai.networks.nets.DenseNet121"):
            raise InputError(self.bundle_dir / "configs" / "inference.json", "classifier_def must be DenseNet121")
        return _with_weights(TorchDenseNet121(**arguments), "DenseNet121", *self._state("models/model_classifier.pt", own_path))

    @property
    def classifier_threshold(self) -> float:
        return self.setting.classifier_threshold

    @property
    def mask_threshold(self) -> float:
        return self.setting.mask_threshold

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
            out.append(torch.softmax(cpu_autocast_forward(self.classifier, small), dim=1)[:, 1])
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    @torch.inference_mode()
    def segment(self, slices: torch.Tensor, index: np.ndarray | None = None, step: int = 1) -> np.ndarray:
        """Tumour probability maps of ``slices[index]`` (every slice by default), (n, 256, 256).
        A 2.5D segmenter also sees the FLAIR ``step`` slices below and above (:mod:`monai_core.context`)."""
        index = np.arange(len(slices)) if index is None else np.asarray(index, np.int64)
        if not len(index):
            return np.zeros((0, *slices.shape[2:]), np.float32)
        out = [torch.sigmoid(cpu_autocast_forward(self.segmenter, segmenter_input(slices, part, step, self.context)))[:, 0]
               for part in np.array_split(index, max(1, -(-len(index) // self.segmenter_batch)))]
        return torch.cat(out).numpy()

    def predict(self, slices: np.ndarray, progress: Progress | None = None, slice_spacing_mm: float | None = None) -> SlicePrediction:
        """Run both stages on (N, 3, 256, 256) float32 slices in [0, 1], ``slice_spacing_mm`` apart
        (None for a Kaggle stack: the training slices' own spacing)."""
        progress = progress or (lambda *a: None)
        step = context_step(slice_spacing_mm)
        x = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))
        progress("classify", 0.0, f"classifying {len(x)} slices")
        probability = self.classify(x)
        positive = probability >= self.classifier_threshold
        tumour = np.zeros((len(x), *x.shape[2:]), np.float32)
        index = np.flatnonzero(positive)
        progress("segment", 0.0, f"segmenting {len(index)} flagged slices")
        flipped = None
        if len(index):
            tumour[index] = self.segment(x, index, step)
            midline = estimate_midline(slices[:, 1]) if self.setting.rule in MIRRORED_RULES else None
            tumour = cleaned_probability(probability, tumour, self.setting, midline)
            flipped = self.flipped_segmentation(x, tumour >= self.mask_threshold, step)
        return SlicePrediction(probability, positive, tumour, flipped)

    def flipped_segmentation(self, slices: torch.Tensor, mask: np.ndarray, step: int = 1) -> np.ndarray:
        """Segmenter probabilities of the left-right mirrored slices that hold the mask, mirrored back.

        Test-time augmentation for the confidence (monai_core.quality): only the lesion's slices are
        run again, a small share of a study.
        """
        flipped = np.zeros(mask.shape, np.float32)
        index = np.flatnonzero(mask.reshape(len(mask), -1).any(1))
        if len(index):
            flipped[index] = self.segment(torch.flip(slices, dims=[-1]), index, step)[:, :, ::-1]
        return flipped
