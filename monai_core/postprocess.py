"""The final mask: how the two networks' outputs become the segmentation, computed here only.

The segmenter sees one slice at a time, so its false positives are regions that a 3D view and the
classifier can judge: specks on single slices, and bright normal cortex (insula, temporal lobes),
often on both sides of the brain, on slices the classifier doubts. A :class:`MaskSetting` holds
every choice between the networks and the mask:

1. the gate: only slices whose classifier probability reaches ``classifier_threshold`` are
   segmented (the others stay empty);
2. the segmenter's probability is thresholded at ``mask_threshold`` and split into 3D components;
3. confirmation (hysteresis across slices): a component is kept only if one of its slices reaches
   the classifier probability ``confirm``. The false regions of 0.3.0 lay on slices the classifier
   doubted (0.07-0.45) while the lesions reached 0.99, so a doubtful slice keeps its part of the
   mask only when it is joined in 3D to a confident one;
4. a clean-up rule over the remaining components: "size" (0.3.0: at least ``parameter`` of the
   largest), "evidence" (probability mass weighted by the classifier's slice probability, so a
   large region on doubted slices cannot push out a smaller lesion both networks agree on) or
   "evidence_symmetry" (evidence discounted by the share mirrored onto another component across
   the head's own midline: normal cortex that looks like lesion is bilateral, an LGG rarely is).

:func:`final_mask` is what ``tumorseg detect`` ships and what every evaluation measures
(``monai_core.evaluation``, ``training/robustness.py``, ``monai_core.selection``); the setting is
chosen out of fold by ``training/out_of_fold.py`` only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

__all__ = [
    "CLEANUP_RULES",
    "MIRRORED_RULES",
    "MaskSetting",
    "Midline",
    "cleaned_probability",
    "component_table",
    "estimate_midline",
    "final_mask",
    "gate",
    "kept_components",
    "keep_main_components",
]


@dataclass(frozen=True)
class MaskSetting:
    """Everything between the networks' probabilities and the final mask (see the module docstring)."""

    classifier_threshold: float = 0.05
    mask_threshold: float = 0.5
    rule: str = "size"
    parameter: float = 0.25
    confirm: float = 0.0  # 0: no confirmation

    def __post_init__(self) -> None:
        if self.rule not in CLEANUP_RULES:
            raise ValueError(f"unknown clean-up rule {self.rule!r}; known: {', '.join(CLEANUP_RULES)}")

    @classmethod
    def from_config(cls, config: dict) -> "MaskSetting":
        """From ``configs/inference.json``: ``classifier_threshold``, ``mask_threshold`` and ``cleanup``
        {rule, parameter, confirm}; a 0.3.0 config's ``min_component_fraction`` is the size rule."""
        cleanup = config.get("cleanup", {"rule": "size", "parameter": config.get("min_component_fraction", 0.0)})
        return cls(float(config["classifier_threshold"]), float(config["mask_threshold"]), cleanup["rule"],
                   float(cleanup["parameter"]), float(cleanup.get("confirm", 0.0)))

    def to_config(self) -> dict:
        """The entries of ``configs/inference.json`` that hold this setting."""
        return {"classifier_threshold": self.classifier_threshold, "mask_threshold": self.mask_threshold,
                "cleanup": {"rule": self.rule, "parameter": self.parameter, "confirm": self.confirm}}

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Midline:
    """The head's mid-sagittal line in every slice of the model grid: through (row centre, ``column``),
    turned by ``angle_degrees`` from the row axis. The model grid is centred on the field of view,
    not on the head, so mirroring about the slice centre misses by the head's offset and yaw."""

    column: float
    angle_degrees: float = 0.0


def estimate_midline(flair: np.ndarray, level: float = 0.08) -> Midline:
    """The head's midline from the FLAIR slices (N, H, W) in [0, 1]: the principal axis of the head's
    silhouette (each row filled between the head's left and right edges, all slices together) that
    runs closest to front-to-back, through its centroid. A mirror-symmetric shape has its symmetry
    axis among its principal axes, and the silhouette stays symmetric where a lesion makes the
    inside asymmetric. Falls back to the slice centre when there is no head, or no elongated one,
    to measure."""
    n, h, w = flair.shape
    head = flair > level
    any_head = head.any(axis=2)  # (N, H)
    left = head.argmax(axis=2)
    right = w - 1 - head[:, :, ::-1].argmax(axis=2)
    span = np.where(any_head, right - left + 1, 0).astype(float)  # pixels per filled row
    centre = (w - 1) / 2
    if span.sum() < 100:
        return Midline(centre, 0.0)
    rows = np.broadcast_to(np.arange(h, dtype=float), (n, h))
    mid_column = (left + right) / 2.0
    total = span.sum()
    r0 = (span * rows).sum() / total
    c0 = (span * mid_column).sum() / total
    # second moments of each filled row segment: its columns are uniform between left and right
    rr = (span * (rows - r0) ** 2).sum() / total
    rc = (span * (rows - r0) * (mid_column - c0)).sum() / total
    cc = (span * ((mid_column - c0) ** 2 + (span**2 - 1) / 12)).sum() / total
    values, vectors = np.linalg.eigh(np.array([[rr, rc], [rc, cc]]))
    if values[1] < 1.05 * values[0]:  # a round silhouette: its axes say nothing about the midline
        return Midline(float(c0), 0.0)
    axis = vectors[:, int(np.argmax(np.abs(vectors[0])))]  # (row, column) components, the more front-to-back one
    slope = axis[1] / axis[0]  # columns per row along the midline
    return Midline(float(c0 + slope * ((h - 1) / 2 - r0)), float(np.degrees(np.arctan(slope))))


def gate(slice_probability: np.ndarray, tumour_probability: np.ndarray, classifier_threshold: float) -> np.ndarray:
    """The segmenter's probabilities on the slices the classifier passes, zero on the others."""
    passed = np.asarray(slice_probability) >= classifier_threshold
    return np.where(passed[:, None, None], np.asarray(tumour_probability, np.float32), np.float32(0.0))


def _mirror(image: sitk.Image, midline: Midline) -> sitk.Image:
    """``image`` (a label volume, index space) reflected about the midline in every slice."""
    h = image.GetSize()[1]
    angle = np.radians(midline.angle_degrees)
    direction = np.array([np.sin(angle), np.cos(angle)])  # the line's direction in (x = column, y = row)
    reflection = 2.0 * np.outer(direction, direction) - np.eye(2)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([*reflection[0], 0.0, *reflection[1], 0.0, 0.0, 0.0, 1.0])
    transform.SetCenter((midline.column, (h - 1) / 2, 0.0))
    return sitk.Resample(image, image, transform, sitk.sitkNearestNeighbor, 0)


def _distance_to_midline(shape: tuple[int, int], midline: Midline) -> np.ndarray:
    h, w = shape
    angle = np.radians(midline.angle_degrees)
    rows, columns = np.mgrid[0:h, 0:w].astype(float)
    return np.abs((columns - midline.column) * np.cos(angle) - (rows - (h - 1) / 2) * np.sin(angle))


def mirrored_share(labels: np.ndarray, midline: Midline, midline_margin: int = 12, tolerance: int = 3) -> np.ndarray:
    """Per component label (index = label): the share of its voxels, outside a band of
    ``midline_margin`` pixels either side of the midline, whose mirror image falls within
    ``tolerance`` pixels of *another* component. A component's own reflection is no evidence of
    symmetry: a lesion that crosses the midline mirrors onto itself."""
    count = int(labels.max())
    if count == 0:
        return np.zeros(1)
    image = sitk.GetImageFromArray(labels.astype(np.uint32))
    radius = [tolerance, tolerance, 0]
    highest = sitk.GetArrayFromImage(_mirror(sitk.GrayscaleDilate(image, radius), midline))
    inverted = sitk.GetImageFromArray(np.where(labels > 0, count + 1 - labels, 0).astype(np.uint32))
    lowest_inverted = sitk.GetArrayFromImage(_mirror(sitk.GrayscaleDilate(inverted, radius), midline)).astype(np.int64)
    lowest = np.where(lowest_inverted > 0, count + 1 - lowest_inverted, 0)
    # a window that holds two different labels shows one of them as its highest or lowest
    other = ((highest > 0) & (highest != labels)) | ((lowest > 0) & (lowest != labels))
    lateral = _distance_to_midline(labels.shape[1:], midline) >= midline_margin
    counted = (labels > 0) & lateral[None]
    total = np.bincount(labels[counted], minlength=count + 1)
    mirrored = np.bincount(labels[counted & other], minlength=count + 1)
    return mirrored / np.maximum(total, 1)


def component_table(mask: np.ndarray, probability: np.ndarray, slice_probability: np.ndarray,
                    midline: Midline | None = None) -> tuple[np.ndarray, dict]:
    """(labels, per-label table) of the 3D components of ``mask`` (label 0 = background):
    ``size``; ``evidence``, the summed segmenter probability with each voxel weighted by the
    classifier's probability for its slice; ``peak``, the highest classifier probability among
    the component's slices; and, given a ``midline``, ``mirrored`` (:func:`mirrored_share`)."""
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    slice_probability = np.asarray(slice_probability, np.float32)
    count = int(labels.max())
    weighted = probability * slice_probability[:, None, None]
    size = np.bincount(labels.ravel(), minlength=count + 1).astype(float)
    evidence = np.bincount(labels.ravel(), weights=weighted.ravel(), minlength=count + 1)
    peak = np.zeros(count + 1)
    for z in np.flatnonzero(mask.reshape(len(mask), -1).any(1)):
        present = np.unique(labels[z])
        peak[present] = np.maximum(peak[present], slice_probability[z])
    size[0] = evidence[0] = peak[0] = 0.0
    table = {"size": size, "evidence": evidence, "peak": peak}
    if midline is not None:
        table["mirrored"] = mirrored_share(labels, midline)
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


def kept_components(table: dict, rule: str, parameter: float, confirm: float = 0.0) -> np.ndarray:
    """Per label: kept by confirmation and then by the clean-up rule, which ranks only the confirmed."""
    confirmed = table["peak"] >= confirm
    ranked = {key: np.where(confirmed, value, 0.0) for key, value in table.items()}
    return CLEANUP_RULES[rule][0](ranked, parameter) & confirmed


def final_mask(slice_probability: np.ndarray, tumour_probability: np.ndarray, setting: MaskSetting,
               midline: Midline | None = None) -> np.ndarray:
    """The final mask (slices, rows, columns) of the two networks' outputs at ``setting``.

    ``tumour_probability`` may hold the segmenter's output on every slice or only on the gated ones
    (zero elsewhere): the gate is applied here either way. ``midline`` is needed only by the rules
    in :data:`MIRRORED_RULES` (default: the slice centre)."""
    probability = gate(slice_probability, tumour_probability, setting.classifier_threshold)
    mask = probability >= setting.mask_threshold
    if not mask.any():
        return mask
    if setting.rule in MIRRORED_RULES and midline is None:
        midline = Midline((mask.shape[-1] - 1) / 2)
    labels, table = component_table(mask, probability, slice_probability, midline if setting.rule in MIRRORED_RULES else None)
    return kept_components(table, setting.rule, setting.parameter, setting.confirm)[labels]


def cleaned_probability(slice_probability: np.ndarray, tumour_probability: np.ndarray, setting: MaskSetting,
                        midline: Midline | None = None) -> np.ndarray:
    """The gated probabilities with the dropped components set to zero: ``>= mask_threshold`` gives
    :func:`final_mask`, and the probabilities under the threshold stay for the confidence
    (``monai_core.quality``), as ``tumorseg detect`` keeps them."""
    probability = gate(slice_probability, tumour_probability, setting.classifier_threshold)
    probability[(probability >= setting.mask_threshold) & ~final_mask(slice_probability, probability, setting, midline)] = 0.0
    return probability


def keep_main_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """``mask`` (slices, rows, columns) without the 3D components smaller than ``min_fraction`` x the largest
    (the "size" rule on a plain mask, for masks that have no probabilities, such as a compare's)."""
    mask = np.asarray(mask, bool)
    if min_fraction <= 0 or not mask.any():
        return mask
    labels, table = component_table(mask, mask.astype(np.float32), np.ones(len(mask), np.float32))
    return _by_size(table, min_fraction)[labels]
