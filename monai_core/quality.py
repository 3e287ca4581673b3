"""A per-case confidence: how far to trust this segmentation, from the model's own behaviour.

Ingredients, all measured on the model grid and cheap (one extra segmenter pass on the few slices
that hold the lesion):

- ``flip_agreement``: Dice between the mask and the mask of the left-right flipped slices
  (test-time augmentation); a lesion the network is unsure of moves when the input is mirrored;
- ``volume_stability``: volume at probability 0.7 over volume at 0.3; a crisp lesion keeps its size;
- ``mean_probability``: mean segmenter probability inside the mask;
- ``classifier_support``: share of the mask's slices that the classifier itself calls tumour (p >= 0.5);
- ``log_volume_ml``: small lesions are segmented less reliably;
- ``empty``: no tumour at all. Every training study had one, so "no tumour" is never a confident answer.

A ridge regression (``configs/quality.json``, fitted by ``training/calibrate_quality.py`` on the
fold-0 validation patients and their robustness-benchmark variants) turns them into the expected
per-patient Dice. That number, clipped to [0, 1], is both ``expected_dice`` and ``confidence``: a
logistic model of "Dice >= 0.7" ranked the cases worse (leave-one-patient-out Spearman 0.44 against
0.69, AUROC for Dice < 0.7 0.63 against 0.89).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FEATURES", "MODEL_INPUTS", "case_features", "uncertain_slices", "QualityModel", "fit_linear"]

FEATURES = ("flip_agreement", "volume_stability", "mean_probability", "classifier_support", "log_volume_ml", "empty")
# The inputs of a newly fitted model. Out of fold over recipe B's folds 0-2 (54 patients, nested by fold), all six
# features gave AUROC 0.65 for Dice < 0.7: fitted on 36 patients with a few failures, classifier support and
# volume do not generalise; these three gave 0.85 (training/cv/README.md). An older model names its own inputs.
MODEL_INPUTS = ("flip_agreement", "volume_stability", "mean_probability")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def case_features(
    slice_probability: np.ndarray,
    tumour_probability: np.ndarray,
    flipped_probability: np.ndarray | None,
    mask_threshold: float,
    voxel_ml: float,
) -> dict[str, float]:
    """The confidence ingredients of one case.

    Args:
        slice_probability: (N,) classifier probabilities.
        tumour_probability: (N, H, W) final segmenter probabilities (zero outside the gate and clean-up).
        flipped_probability: (N, H, W) probabilities of the left-right flipped pass, flipped back,
            on the slices that hold the mask (zero elsewhere); None when not computed.
        mask_threshold: the shipped mask threshold.
        voxel_ml: the volume of one model-grid voxel in mL.
    """
    mask = tumour_probability >= mask_threshold
    if not mask.any():
        return {"flip_agreement": 0.0, "volume_stability": 0.0, "mean_probability": 0.0,
                "classifier_support": 0.0, "log_volume_ml": 0.0, "empty": 1.0}
    slices = mask.reshape(len(mask), -1).any(1)
    flipped = flipped_probability >= mask_threshold if flipped_probability is not None else mask
    strict = int((tumour_probability >= 0.7).sum())
    loose = int((tumour_probability >= 0.3).sum())
    return {
        "flip_agreement": _dice(mask, flipped),
        "volume_stability": strict / max(loose, 1),
        "mean_probability": float(tumour_probability[mask].mean()),
        "classifier_support": float((slice_probability[slices] >= 0.5).mean()),
        "log_volume_ml": float(np.log1p(mask.sum() * voxel_ml)),
        "empty": 0.0,
    }


def uncertain_slices(
    slice_probability: np.ndarray, tumour_probability: np.ndarray, flipped_probability: np.ndarray | None, mask_threshold: float
) -> list[int]:
    """Slices that make the case uncertain: the lesion changes when mirrored (slice Dice < 0.5), or the
    classifier and the segmenter disagree (one says tumour with probability >= 0.5, the other finds none)."""
    mask = tumour_probability >= mask_threshold
    has_tumour = mask.reshape(len(mask), -1).any(1)
    out = []
    for k in range(len(mask)):
        disagree = has_tumour[k] != (slice_probability[k] >= 0.5)
        moved = flipped_probability is not None and has_tumour[k] and _dice(mask[k], flipped_probability[k] >= mask_threshold) < 0.5
        if disagree or moved:
            out.append(k)
    return out


def _design(features: list[dict], inputs: tuple[str, ...]) -> np.ndarray:
    return np.array([[1.0, *[float(f[name]) for name in inputs]] for f in features])


def fit_linear(features: list[dict], targets: np.ndarray, inputs: tuple[str, ...] = MODEL_INPUTS,
               l2: float = 1.0) -> np.ndarray:
    """Coefficients (intercept first, then one per name of ``inputs``) of a ridge regression."""
    x, y = _design(features, inputs), np.asarray(targets, float)
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


@dataclass
class QualityModel:
    """The fitted expected-Dice model and the confidence below which a case is flagged."""

    linear: np.ndarray
    threshold: float
    inputs: tuple[str, ...] = MODEL_INPUTS

    @classmethod
    def load(cls, path: str | Path) -> "QualityModel":
        config = json.loads(Path(path).read_text())
        inputs = tuple(config["features"])
        if set(inputs) - set(FEATURES) or len(config["linear"]) != len(inputs) + 1:
            raise ValueError(f"{path}: fitted on features {config['features']} with {len(config['linear'])} "
                             f"coefficients; this code computes {FEATURES}")
        return cls(np.asarray(config["linear"]), float(config["flag_below"]), inputs)

    def expected_dice(self, features: dict) -> float:
        """The expected Dice; 0 for an empty mask: every training study had a lesion, so "no tumour" is never
        a confident answer, whatever the model's intercept."""
        if features.get("empty"):
            return 0.0
        return float(np.clip(_design([features], self.inputs)[0] @ self.linear, 0.0, 1.0))

    def assess(self, features: dict) -> dict:
        """``confidence``, ``expected_dice`` and ``flagged``, rounded for report.json."""
        expected = self.expected_dice(features)
        return {"confidence": round(expected, 3), "expected_dice": round(expected, 3), "flagged": bool(expected < self.threshold)}
