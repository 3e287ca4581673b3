"""Metrics used everywhere in TumorSeg (see DESIGN.md, "Metrics").

Per-patient Dice follows Buda et al.: all slices of a patient are stacked and Dice is computed
once per patient, 1.0 when prediction and ground truth are both empty.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from ignite.metrics import Metric

__all__ = ["dice", "per_patient_dice", "summarise", "PatientDice"]


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary arrays; 1.0 when both are empty."""
    p, t = np.asarray(prediction).astype(bool), np.asarray(truth).astype(bool)
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total


def summarise(values) -> dict:
    """Mean, median, quartiles and count of a list of per-patient values."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return {"n": 0}
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "mean": float(v.mean()), "median": float(median), "q1": float(q1), "q3": float(q3),
            "min": float(v.min()), "max": float(v.max())}


def per_patient_dice(counts: dict[str, list[int]]) -> dict[str, float]:
    """Dice per patient from accumulated ``[intersection, predicted, true]`` voxel counts."""
    return {p: 1.0 if (s := c[1] + c[2]) == 0 else 2.0 * c[0] / s for p, c in counts.items()}


class PatientDice(Metric):
    """Ignite metric: mean per-patient Dice over a validation run.

    ``output_transform`` must give a batch ``(logits, label)`` (an evaluator with ``decollate=False``),
    where ``label`` is a MetaTensor whose
    ``filename_or_obj`` metadata names the slice file; the patient is the file's folder.

    Args:
        threshold: probability above which a pixel is tumour.
    """

    def __init__(self, threshold: float = 0.5, output_transform=lambda x: x, device="cpu") -> None:
        self.threshold = threshold
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def update(self, output) -> None:
        logits, label = output
        names = label.meta["filename_or_obj"]
        names = [names] if isinstance(names, str) else names
        pred = (torch.sigmoid(logits.float()) >= self.threshold).flatten(1)
        true = (label > 0).flatten(1)
        for name, p, t in zip(names, pred, true):
            c = self._counts[Path(name).parent.name]
            c[0] += int((p & t).sum())
            c[1] += int(p.sum())
            c[2] += int(t.sum())

    def compute(self) -> float:
        scores = per_patient_dice(self._counts)
        return float(np.mean(list(scores.values()))) if scores else 0.0

