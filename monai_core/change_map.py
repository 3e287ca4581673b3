"""The change segmentation of ``tumorseg compare``: New, Resolved and Stable tumour on the baseline grid.

One labelmap (1 New, 2 Resolved, 3 Stable) is written three ways: NIfTI for scripts, a 3D Slicer
``.seg.nrrd`` with one named segment per label, and a PNG of the slices that changed most, so a
reader can check the registration and the change at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .preprocess import TRAINING_ORIENTATION

__all__ = ["CHANGE_SEGMENTS", "change_labelmap", "label_volumes_ml", "write_change_seg_nrrd", "write_change_overlay"]

# label value, name, colour; the order is the .seg.nrrd's label order (slicerio numbers them 1, 2, 3)
CHANGE_SEGMENTS = (
    (1, "New", (0.9, 0.2, 0.2)),
    (2, "Resolved", (0.2, 0.5, 1.0)),
    (3, "Stable", (1.0, 0.85, 0.2)),
)


def change_labelmap(baseline: sitk.Image, followup: sitk.Image) -> sitk.Image:
    """1 where only the follow-up has tumour, 2 where only the baseline has, 3 where both; baseline grid."""
    before = sitk.GetArrayViewFromImage(baseline) > 0
    after = sitk.GetArrayViewFromImage(followup) > 0
    labels = np.zeros(before.shape, np.uint8)
    labels[after & ~before] = 1
    labels[before & ~after] = 2
    labels[before & after] = 3
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(baseline)
    return image


def label_volumes_ml(labelmap: sitk.Image) -> dict[str, float]:
    """{"new_ml", "resolved_ml", "stable_ml"} of a change labelmap."""
    counts = np.bincount(sitk.GetArrayViewFromImage(labelmap).ravel(), minlength=4)
    voxel_ml = float(np.prod(labelmap.GetSpacing())) / 1000.0
    return {f"{name.lower()}_ml": round(float(counts[value]) * voxel_ml, 3) for value, name, _ in CHANGE_SEGMENTS}


def write_change_seg_nrrd(labelmap: sitk.Image, path: Path) -> None:
    """A 3D Slicer segmentation with the segments "New", "Resolved" and "Stable" (slicerio)."""
    import slicerio

    voxels = sitk.GetArrayFromImage(labelmap).transpose(2, 1, 0)  # (i, j, k)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.asarray(labelmap.GetDirection()).reshape(3, 3) * np.asarray(labelmap.GetSpacing())
    ijk_to_lps[:3, 3] = labelmap.GetOrigin()
    segmentation = slicerio.create_segmentation(voxels.shape, ijk_to_lps)
    for value, name, colour in CHANGE_SEGMENTS:
        slicerio.add_segment(segmentation, voxels == value, {"id": name, "name": name, "color": list(colour)})
    slicerio.write_segmentation(str(path), segmentation)


def write_change_overlay(baseline: sitk.Image, followup: sitk.Image, labelmap: sitk.Image, path: Path,
                         count: int = 6) -> list[int]:
    """PNG of the ``count`` axial slices with the most New + Resolved tumour; returns their indices.

    Top row: the baseline FLAIR; bottom row: the registered follow-up FLAIR, both with the change
    labels in colour, cropped to the tumour with a margin so that a one-voxel rim of growth shows.
    Slices are those of report.json (training orientation), shown as radiologists read them (patient
    right on the left, anterior up). With no change, the slices with the most tumour are shown,
    and with no tumour the middle slice. Drawn with Pillow: matplotlib would take most of compare's time.
    """
    from PIL import Image, ImageDraw

    def oriented(image):
        return sitk.GetArrayFromImage(sitk.DICOMOrient(image, TRAINING_ORIENTATION))

    before, after, labels = oriented(baseline), oriented(followup), oriented(labelmap)
    chosen = _slices_to_show(labels, count)
    spacing = sitk.DICOMOrient(labelmap, TRAINING_ORIENTATION).GetSpacing()
    crop = _crop(labels[chosen], spacing)
    rows = [(volume, title, np.percentile(volume, [1, 99.5]))
            for volume, title in ((before, "baseline"), (after, "follow-up"))]
    tiles = [[(_tile(volume[k][crop], labels[k][crop], window, spacing), f"{title}, slice {k}") for k in chosen]
             for volume, title, window in rows]
    width, height = tiles[0][0][0].size
    text, gap = 14, 6
    canvas = Image.new("RGB", (len(chosen) * (width + gap) + gap, 2 * (height + text + gap) + gap + text), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(tiles):
        for c, (tile, title) in enumerate(row):
            x, y = gap + c * (width + gap), gap + r * (height + text + gap)
            draw.text((x, y), title, fill="black")
            canvas.paste(tile, (x, y + text))
    x, y = gap, canvas.height - text - gap // 2
    for _, name, colour in CHANGE_SEGMENTS:
        draw.rectangle((x, y + 2, x + 10, y + 12), fill=tuple(int(255 * v) for v in colour))
        draw.text((x + 14, y), name, fill="black")
        x += 90
    canvas.save(path, format="PNG")
    return chosen


def _tile(image: np.ndarray, labels: np.ndarray, window, spacing, size: int = 240):
    """One slice in grey with the labels blended in colour, scaled to square millimetres, ``size`` px wide."""
    from PIL import Image

    low, high = window
    grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1)[..., None].repeat(3, axis=-1)
    for value, _, colour in CHANGE_SEGMENTS:
        alpha = 0.35 if value == 3 else 0.8  # growth and shrinkage stand out over stable tumour
        where = labels == value
        grey[where] = (1 - alpha) * grey[where] + alpha * np.asarray(colour)
    picture = Image.fromarray((grey * 255).round().astype(np.uint8))
    mm_per_px = max(image.shape[1] * spacing[0], image.shape[0] * spacing[1]) / size
    shape = tuple(max(1, round(n * mm / mm_per_px)) for n, mm in zip(image.shape[::-1], spacing[:2]))
    upscale = shape[0] >= image.shape[1]
    return picture.resize(shape, Image.NEAREST if upscale else Image.BOX)


def _slices_to_show(labels: np.ndarray, count: int) -> list[int]:
    per_slice = labels.reshape(len(labels), -1)
    changed = ((per_slice == 1) | (per_slice == 2)).sum(axis=1)
    score = changed if changed.any() else (per_slice > 0).sum(axis=1)
    if not score.any():
        return [len(labels) // 2]
    top = np.argsort(-score, kind="stable")[:count]
    return sorted(int(k) for k in top if score[k] > 0)


def _crop(labels: np.ndarray, spacing, margin_mm: float = 25.0) -> tuple[slice, slice]:
    """In-plane box around all labels of the shown slices, plus a margin; the whole slice without labels."""
    rows, columns = np.nonzero(labels.any(axis=0))
    if len(rows) == 0:
        return slice(None), slice(None)
    pad_r, pad_c = int(np.ceil(margin_mm / spacing[1])), int(np.ceil(margin_mm / spacing[0]))
    return (slice(max(0, rows.min() - pad_r), rows.max() + pad_r + 1),
            slice(max(0, columns.min() - pad_c), columns.max() + pad_c + 1))
