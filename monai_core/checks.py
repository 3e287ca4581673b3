"""Input checks: warnings when a study is unlike the training data. Never errors; the user decides.

Each warning has a stable ``code`` and a one-line ``message``. The thresholds were measured on the
raw volumes of TCGA-FG-6692 (FLAIR, T1, T1c and T2 of one session) and the 88 development patients:

- registration (Mattes mutual information at the result, 32 bins): -0.51 to -0.67 after registering
  T1, T1c and T2 to the FLAIR, -0.34 with the headers alone (16 mm off), -0.28 for another patient's
  T1 registered as well as it goes, -0.10 for a series 30 mm and 13 degrees off. Above -0.40 the
  channels are not aligned, and the network sees mismatched sequences;
- same series twice (Pearson r over the head on the model grid): T1/T1c 0.65, FLAIR/T1 0.57 for
  distinct series, 1.0 for a copy. Above 0.97 the two inputs are the same images;
- a T2 given as FLAIR: in the voxels that are dark on T1 in the middle of the head (ventricles), the
  FLAIR is 0.48 x its median and the T2 1.78 x; above 1.2 the CSF is bright, as on a T2;
- skull stripping: everything outside the brain is exactly zero;
- geometry: the LGG slices come from axial acquisitions with 0.4-1.2 mm pixels and 2.5-7.5 mm slices.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["warning", "sequence_warnings", "geometry_warnings", "registration_metric", "lesion_warnings",
           "REGISTRATION_POOR", "SAME_SERIES_R"]

REGISTRATION_POOR = -0.40
SAME_SERIES_R = 0.97
T2_CSF_RATIO = 1.2
STRIPPED_ZERO_FRACTION = 0.35
PIXEL_MM = (0.4, 1.2)
SLICE_MM = (2.5, 7.5)
FOV_MM = (170.0, 300.0)
AXIAL_DEGREES = 30.0


def warning(code: str, message: str) -> dict:
    return {"code": code, "message": message}


def registration_metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> float:
    """Mattes mutual information of ``moving`` resampled through ``transform`` onto ``fixed`` (lower is better)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=42)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetMovingInitialTransform(transform)
    return float(method.MetricEvaluate(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)))


def _r(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    x, y = a[where], b[where]
    if x.size < 100 or x.std() == 0 or y.std() == 0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def sequence_warnings(channels: dict[str, np.ndarray], registration: dict[str, float], flair_raw: np.ndarray | None) -> list[dict]:
    """Warnings about the sequences: missing, duplicated, mislabelled, skull-stripped, misregistered.

    Args:
        channels: "flair" and, when given, "t1" and "t1c" on the model grid, normalised (N, 256, 256).
        registration: mutual information of each registered sequence (see :func:`registration_metric`).
        flair_raw: the FLAIR's voxels as read, for the skull-stripping check (None for slice stacks).
    """
    out = []
    flair = channels["flair"]
    head = flair > 0.05
    for name, label in (("t1", "pre-contrast T1"), ("t1c", "post-contrast T1")):
        if name not in channels:
            out.append(warning(f"{name}_missing", f"no {label}: the FLAIR was used in its place, as in training"))
    for name, metric in registration.items():
        if metric > REGISTRATION_POOR:
            out.append(warning("registration_poor", f"{name.upper()} did not align well with the FLAIR "
                               f"(mutual information {metric:.2f}); check that it is from the same session"))
    if "t1" in channels and "t1c" in channels and _r(channels["t1"], channels["t1c"], head) > SAME_SERIES_R:
        out.append(warning("t1c_same_as_t1", "the post-contrast T1 shows the same images as the pre-contrast T1 "
                           "(same series twice, or pre and post swapped)"))
    for name in ("t1", "t1c"):
        if name in channels and _r(flair, channels[name], head) > SAME_SERIES_R:
            out.append(warning("flair_same_as_t1", f"the FLAIR shows the same images as the {name.upper()}: "
                               "is the FLAIR really a FLAIR?"))
    t1 = channels.get("t1", channels.get("t1c"))
    if t1 is not None and head.any():
        n = len(flair)
        middle = np.zeros_like(head)
        middle[n // 4: max(n // 4 + 1, 3 * n // 4), 80:176, 80:176] = True
        csf = middle & head & (t1 < 0.5 * np.median(t1[head]))
        if csf.sum() >= 200:
            ratio = float(np.median(flair[csf]) / max(np.median(flair[head]), 1e-6))
            if ratio > T2_CSF_RATIO:
                out.append(warning("flair_like_t2", f"the FLAIR has bright fluid (CSF {ratio:.1f} x the tissue median): "
                                   "it looks like a T2, on which the model was not trained"))
    if flair_raw is not None and flair_raw.size and float(np.mean(flair_raw == 0)) > STRIPPED_ZERO_FRACTION:
        out.append(warning("skull_stripped", "the FLAIR looks skull-stripped (everything outside the brain is zero); "
                           "the training images showed the whole head"))
    return out


def geometry_warnings(image: sitk.Image) -> list[dict]:
    """Warnings about the acquisition's geometry: pixel size, slice spacing, field of view, orientation."""
    out = []
    spacing = np.asarray(image.GetSpacing(), float)
    size = np.asarray(image.GetSize(), float)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    normal_axis = int(np.argmax(np.abs(direction[2])))  # the image axis closest to head-foot
    in_plane = [a for a in range(3) if a != normal_axis]
    angle = float(np.degrees(np.arccos(min(1.0, abs(direction[2, normal_axis])))))
    if normal_axis != 2 or angle > AXIAL_DEGREES:
        out.append(warning("non_axial", "the acquisition is not axial; it was resampled to axial slices, "
                           "and the training slices were all acquired axially"))
    pixel = spacing[in_plane]
    if pixel.min() < PIXEL_MM[0] or pixel.max() > PIXEL_MM[1]:
        out.append(warning("pixel_size", f"in-plane pixels of {pixel.min():.2f}-{pixel.max():.2f} mm, outside the "
                           f"training range {PIXEL_MM[0]}-{PIXEL_MM[1]} mm"))
    thickness = spacing[normal_axis]
    if not SLICE_MM[0] <= thickness <= SLICE_MM[1]:
        out.append(warning("slice_spacing", f"slices {thickness:.1f} mm apart, outside the training range "
                           f"{SLICE_MM[0]}-{SLICE_MM[1]} mm"))
    fov = size[in_plane] * pixel
    if fov.min() < FOV_MM[0] or fov.max() > FOV_MM[1]:
        out.append(warning("field_of_view", f"field of view {fov.min():.0f} x {fov.max():.0f} mm, outside the "
                           f"training range {FOV_MM[0]:.0f}-{FOV_MM[1]:.0f} mm"))
    return out


def lesion_warnings(mask: np.ndarray) -> list[dict]:
    """A lesion that touches the edge of the field of view may continue outside it. ``mask`` (z, y, x)."""
    mask = np.asarray(mask, bool)
    if not mask.any() or mask.ndim != 3:
        return []
    edges = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any() or mask[:, :, 0].any() or mask[:, :, -1].any()
    if edges and (len(mask) > 1):
        return [warning("lesion_at_edge", "the lesion touches the edge of the scanned volume and may continue "
                        "outside it; its volume may be underestimated")]
    return []
