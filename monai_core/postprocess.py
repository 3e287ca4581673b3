"""3D clean-up of the slice masks: which connected components of the thresholded probabilities stay.

The segmenter sees one slice at a time, so its false positives are regions that a 3D view and the
classifier can judge: specks on single slices, and bright normal cortex (insula, temporal lobes),
often on both sides of the brain, on slices the classifier doubts. 0.3.0 kept the components of at
least a quarter of the largest one ("size"), which threw the lesion away whenever a false region was
larger. The "evidence" rules rank components by their probability mass weighted by the classifier's
slice probability, and "evidence_symmetry" also discounts components mirrored on the other side of
the brain. The rule and its parameter are chosen out of fold (``training/out_of_fold.py choose``).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["CLEANUP_RULES", "clean_up", "cleanup_setting", "components", "keep_main_components"]


def keep_main_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """``mask`` (slices, rows, columns) without the 3D components smaller than ``min_fraction`` x the largest.

    ``min_fraction`` 0 keeps everything, 1 keeps only the largest component (face connectivity):
    the "size" rule on a plain mask.
    """
    mask = np.asarray(mask, bool)
    if min_fraction <= 0 or not mask.any():
        return mask
    labels, table = components(mask, mask.astype(np.float32), np.ones(len(mask), np.float32), mirrored=False)
    return _by_size(table, min_fraction)[labels]




def mirrored_share(mask: np.ndarray, labels: np.ndarray, midline_margin: int = 12, tolerance: int = 3) -> np.ndarray:
    """Per component label (index = label): the share of its voxels whose left-right mirror image
    (columns mirrored about the slice centre, as the model space is centred on the head) falls on
    the mask, ignoring a band of ``midline_margin`` columns either side of the midline and within
    ``tolerance`` pixels. Normal cortex that looks like lesion is bilateral; an LGG rarely is."""
    mirror = sitk.GetArrayFromImage(sitk.BinaryDilate(
        sitk.GetImageFromArray(np.ascontiguousarray(mask[:, :, ::-1]).astype(np.uint8)), [tolerance, tolerance, 0]))
    columns = np.arange(mask.shape[-1])
    lateral = np.abs(columns - (mask.shape[-1] - 1) / 2) >= midline_margin
    counted = (labels > 0) & lateral[None, None, :]
    total = np.bincount(labels[counted], minlength=labels.max() + 1)
    mirrored = np.bincount(labels[counted & (mirror > 0)], minlength=labels.max() + 1)
    return mirrored / np.maximum(total, 1)


def components(mask: np.ndarray, probability: np.ndarray, slice_probability: np.ndarray, mirrored: bool = True) -> tuple[np.ndarray, dict]:
    """(labels, per-label table) of the 3D components of ``mask`` (label 0 = background):
    ``size``; ``evidence``, the summed segmenter probability with each voxel weighted by the
    classifier's probability for its slice; and, with ``mirrored``, ``mirrored``, the share mirrored
    on the other side (a dilation of the whole mask: left out when the rule does not need it)."""
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    weighted = probability * np.asarray(slice_probability, np.float32)[:, None, None]
    size = np.bincount(labels.ravel(), minlength=labels.max() + 1).astype(float)
    evidence = np.bincount(labels.ravel(), weights=weighted.ravel(), minlength=labels.max() + 1)
    size[0] = evidence[0] = 0.0
    table = {"size": size, "evidence": evidence}
    if mirrored:
        table["mirrored"] = mirrored_share(mask, labels)
    return labels, table


def _relative(score: np.ndarray, fraction: float) -> np.ndarray:
    kept = score >= fraction * score.max() if score.max() > 0 else np.zeros_like(score, bool)
    kept[0] = False
    return kept


def _by_size(table, fraction):
    return _relative(table["size"], fraction) if fraction > 0 else table["size"] > 0


def _by_evidence(table, fraction):
    return _relative(table["evidence"], fraction)


def _by_evidence_and_symmetry(table, fraction):
    score = table["evidence"] * (1.0 - table["mirrored"])
    return _relative(score if score.max() > 0 else table["evidence"], fraction)  # all mirrored: plain evidence


CLEANUP_RULES = {  # name: (kept labels from a component table and a parameter, parameters searched)
    "size": (_by_size, (0.0, 0.1, 0.25, 1.0)),  # 0.3.0: components of at least 0.25 of the largest
    "evidence": (_by_evidence, (0.05, 0.1, 0.25, 0.5)),
    "evidence_symmetry": (_by_evidence_and_symmetry, (0.05, 0.1, 0.25, 0.5)),
}
MIRRORED_RULES = {"evidence_symmetry"}  # the rules that read the table's "mirrored"


def clean_up(probability: np.ndarray, slice_probability: np.ndarray, mask_threshold: float, rule: str, parameter: float) -> np.ndarray:
    """The final mask: ``probability`` (slices, rows, columns) thresholded, then the components a
    clean-up rule keeps. ``evidence``: at least ``parameter`` of the strongest component's evidence,
    so that a large region on slices the classifier doubts cannot push out a smaller lesion both
    networks agree on; ``evidence_symmetry`` also discounts regions mirrored on both sides."""
    mask = probability >= mask_threshold
    if not mask.any():
        return mask
    labels, table = components(mask, probability, slice_probability, mirrored=rule in MIRRORED_RULES)
    return CLEANUP_RULES[rule][0](table, parameter)[labels]


def cleanup_setting(config: dict) -> tuple[str, float]:
    """``(rule, parameter)`` from an inference config: ``cleanup`` {rule, parameter}, or the 0.3.0
    ``min_component_fraction`` (the size rule)."""
    if "cleanup" in config:
        rule, parameter = config["cleanup"]["rule"], float(config["cleanup"]["parameter"])
        if rule not in CLEANUP_RULES:
            raise ValueError(f"unknown clean-up rule {rule!r}; known: {', '.join(CLEANUP_RULES)}")
        return rule, parameter
    return "size", float(config.get("min_component_fraction", 0.0))
