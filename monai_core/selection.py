"""Choosing the final-mask setting by nested cross-validation: the only setting search there is.

Every setting of :data:`SETTINGS_GRID` is scored on every case once (:func:`score_table`, through
:mod:`monai_core.postprocess`'s own component table and rules, so that what is measured is what
ships). :func:`nested` then gives each outer group the setting that scores best on the *other*
groups, so every figure it returns comes from patients that chose nothing. ``training/out_of_fold.py``
drives it over the cached out-of-fold predictions of the development patients.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .metrics import summarise
from .postprocess import CLEANUP_RULES, MIRRORED_RULES, MaskSetting, Midline, component_table, gate, kept_components

__all__ = ["CLASSIFIER_GRID", "MASK_GRID", "CONFIRM_GRID", "SETTINGS_GRID", "Case", "score_table", "slice_rates",
           "best_setting", "nested", "figures"]

CLASSIFIER_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)  # 0.05 and up: a lower gate sends nearly every slice to the segmenter (speed)
MASK_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # 0.7-0.9: fold 1 of recipe B over-segments around its lesions
CONFIRM_GRID = (0.0, 0.5, 0.8, 0.95)
SETTINGS_GRID = [
    MaskSetting(c, m, rule, parameter, confirm)
    for c, m, confirm, (rule, parameter) in itertools.product(
        CLASSIFIER_GRID, MASK_GRID, CONFIRM_GRID, [(r, p) for r, (_, grid) in CLEANUP_RULES.items() for p in grid])
    if confirm == 0.0 or confirm > c  # a confirmation at or below the gate confirms everything
]


@dataclass
class Case:
    """One patient's network outputs on every slice, and the truth."""

    name: str
    slice_probability: np.ndarray  # (N,)
    tumour_probability: np.ndarray  # (N, H, W), the segmenter on every slice
    truth: np.ndarray  # (N, H, W) bool
    midline: Midline | None = None
    group: int = 0  # the outer cross-validation group


def score_table(cases: list[Case], grid: list[MaskSetting]) -> tuple[np.ndarray, np.ndarray]:
    """Per case (rows) and setting (columns): the Dice of the final mask, and its slice counts
    (tp, fn, tn, fp) against "the slice holds tumour". Components are labelled once per gate and
    mask threshold; confirmation and the rules then only pick labels."""
    dice_table = np.zeros((len(cases), len(grid)))
    counts = np.zeros((len(cases), len(grid), 4), np.int64)
    by_pair: dict[tuple, list[int]] = {}
    for j, s in enumerate(grid):
        by_pair.setdefault((s.classifier_threshold, s.mask_threshold), []).append(j)
    mirrored = any(s.rule in MIRRORED_RULES for s in grid)
    for i, case in enumerate(cases):
        truth = np.asarray(case.truth, bool)
        truth_voxels = int(truth.sum())
        tumour_slice = truth.reshape(len(truth), -1).any(1)
        tumour_probability = np.asarray(case.tumour_probability, np.float32)  # once, not per gate (cached as float16)
        for (classifier, threshold), columns in by_pair.items():
            probability = gate(case.slice_probability, tumour_probability, classifier)
            midline = (case.midline or Midline((truth.shape[-1] - 1) / 2)) if mirrored else None
            labels, table = component_table(probability >= threshold, probability, case.slice_probability, midline)
            overlap = np.bincount(labels[truth], minlength=len(table["size"]))
            on_slice = np.zeros((len(labels), len(table["size"])), bool)  # which labels each slice holds
            on_slice[table["slices"]] = True
            for j in columns:
                s = grid[j]
                kept = kept_components(table, s.rule, s.parameter, s.confirm)
                total = table["size"][kept].sum() + truth_voxels
                dice_table[i, j] = 1.0 if total == 0 else 2.0 * overlap[kept].sum() / total
                found = on_slice[:, kept].any(1)
                counts[i, j] = [(found & tumour_slice).sum(), (~found & tumour_slice).sum(),
                                (~found & ~tumour_slice).sum(), (found & ~tumour_slice).sum()]
    return dice_table, counts


def slice_rates(counts: np.ndarray) -> tuple[float, float]:
    """(sensitivity, specificity) from summed (tp, fn, tn, fp)."""
    tp, fn, tn, fp = counts
    return tp / max(tp + fn, 1), tn / max(tn + fp, 1)


def best_setting(dice_table: np.ndarray, counts: np.ndarray, columns: list[int], min_sensitivity: float) -> int:
    """The column with the best mean Dice among those whose final-mask slice sensitivity reaches the
    floor (all columns when none does); ties go to the earlier column of the grid."""
    sensitive = [j for j in columns if slice_rates(counts[:, j].sum(0))[0] >= min_sensitivity] or list(columns)
    means = dice_table[:, sensitive].mean(0)
    return sensitive[int(np.argmax(means))]


def nested(dice_table: np.ndarray, counts: np.ndarray, groups: np.ndarray, columns: list[int],
           min_sensitivity: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Out-of-fold Dice per case, the summed slice counts, and the column chosen for each group:
    each group is scored at the setting chosen on the others."""
    groups = np.asarray(groups)
    chosen_dice, chosen_counts, chosen = np.zeros(len(groups)), np.zeros(4, np.int64), {}
    for group in sorted(set(groups.tolist())):
        inside = groups == group
        j = best_setting(dice_table[~inside], counts[~inside], columns, min_sensitivity)
        chosen_dice[inside] = dice_table[inside, j]
        chosen_counts += counts[inside, j].sum(0)
        chosen[int(group)] = j
    return chosen_dice, chosen_counts, chosen


def figures(names: list[str], dice_values, slice_counts) -> dict:
    """The reported figures of a set of per-patient Dice values and summed slice counts."""
    sensitivity, specificity = slice_rates(slice_counts)
    values = np.asarray(dice_values, float)
    return {"dice": {k: round(v, 4) for k, v in summarise(values).items()},
            "below_0.4": int((values < 0.4).sum()), "below_0.5": int((values < 0.5).sum()),
            "slice_sensitivity": round(sensitivity, 4), "slice_specificity": round(specificity, 4),
            "slice_counts": dict(zip(("tp", "fn", "tn", "fp"), map(int, slice_counts))),
            "dice_per_patient": {n: round(float(d), 4) for n, d in zip(names, values)}}
