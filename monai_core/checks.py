"""Input checks: warnings when a study is unlike the training data. Never errors; the user decides.

Each warning has a stable ``code`` and a one-line ``message``. The thresholds were measured on the
raw volumes of TCGA-FG-6692 (FLAIR, T1, T1c and T2 of one session) and the 88 development patients:

- registration (Mattes mutual information at the result, 32 bins, sampled inside the FLAIR's head
  mask so that a skull-stripped study's empty background does not weigh in): see REGISTRATION_POOR
  and the false-alarm figures in README.md (tests/benchmarks/input_check_false_alarms.py). When the
  FLAIR and the sequence are both skull-stripped, the overlap of their brain outlines instead (see
  :func:`outline_overlap` and REGISTRATION_POOR_OUTLINE);
- same series twice (Pearson r over the head on the model grid): T1/T1c 0.65, FLAIR/T1 0.57 for
  distinct series, 1.0 for a copy. Above 0.97 the two inputs are the same images;
- a T2 given as FLAIR: in the voxels that are dark on T1 in the middle of the head (ventricles), the
  FLAIR is 0.48 x its median and the T2 1.78 x; above 1.2 the CSF is bright, as on a T2;
- skull stripping: the background is exactly zero and, at the edge of what is left, there is brain
  tissue rather than scalp and skull (see :func:`skull_and_scalp_visible`);
- geometry: the LGG slices come from axial acquisitions with 0.4-1.2 mm pixels and 2.5-7.5 mm slices.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["warning", "sequence_warnings", "geometry_warnings", "registration_metric", "registration_warning",
           "outline_overlap", "head_mask", "fill_holes", "lesion_warnings", "skull_and_scalp_visible", "edge_profile",
           "REGISTRATION_POOR", "REGISTRATION_POOR_OUTLINE", "SAME_SERIES_R"]

REGISTRATION_POOR = -0.12
# Dice of the two brain outlines of skull-stripped sequences after registration. Inside a stripped brain the
# mutual information of an aligned post-contrast T1 can be as weak as that of a misaligned one (README.md,
# "Input checks"), while the outline, the sharpest edge such a study has, moves with any misfit. Chosen
# on the first half of the development patients, checked on the second (input_check_false_alarms.py).
REGISTRATION_POOR_OUTLINE = 0.95
SAME_SERIES_R = 0.97
T2_CSF_RATIO = 1.2
STRIPPED_ZERO_FRACTION = 0.35
# The head's edge profile (median intensity 1 mm by 1 mm inwards from the edge, over the brain's median):
# a skull-stripped brain shows brain tissue from the first millimetre (>= EDGE_BRAIN_LIKE, no fall);
# a whole head shows scalp brighter than the brain, then the dark skull (a fall of more than EDGE_FALL),
# or a dim scalp well below the brain. Measured on the LGG FLAIRs with a zeroed background and with
# their brain masks applied (README.md, "Input checks").
EDGE_BRAIN_LIKE = 0.55
EDGE_FALL = 0.4
EDGE_SLICES = 8  # profiles from at most this many slices through the widest part of the head
PIXEL_MM = (0.4, 1.2)
SLICE_MM = (2.5, 7.5)
FOV_MM = (170.0, 300.0)
AXIAL_DEGREES = 30.0


def warning(code: str, message: str) -> dict:
    return {"code": code, "message": message}


def registration_metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                        head: sitk.Image | None = None) -> float:
    """Mattes mutual information of ``moving`` through ``transform`` onto ``fixed``, inside ``fixed``'s head (lower is better).

    Sampling only the head keeps the zero background of a skull-stripped study, shared by two
    co-registered sequences, from counting as agreement or hiding disagreement. ``head`` is
    :func:`head_mask` of ``fixed``, for a caller that scores several sequences against one FLAIR.

    The metric's image-gradient filters are off: they smooth both whole volumes for the metric's
    derivative, which an evaluation never reads (the value is the same to the last bit, at a third
    of the cost; tests/test_input_checks.py). The FLAIR and its head are cropped to the head's box
    first: the evaluation samples only the head and takes the FLAIR's intensity range inside it, so the
    value is the same to rounding (the sums split differently among threads; to the bit with one thread),
    while the voxels around the head are no longer visited (0.59 s
    of CPU down to 0.33 s on a 1 mm scan, 240x240x155; no change on the sample study's head, which
    fills its box).
    """
    head = head if head is not None else head_mask(fixed)
    fixed, head = _cropped_to(head, sitk.Cast(fixed, sitk.sitkFloat32), head)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=42)
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetMovingInitialTransform(transform)
    method.SetMetricFixedMask(head)
    return float(method.MetricEvaluate(fixed, sitk.Cast(moving, sitk.sitkFloat32)))


def _cropped_to(mask: sitk.Image, *images: sitk.Image) -> tuple[sitk.Image, ...]:
    """``images`` (on ``mask``'s grid) cut to the bounding box of ``mask``'s voxels; as they are if it has none."""
    voxels = sitk.GetArrayViewFromImage(mask)
    spans = [np.flatnonzero(voxels.any(axis=tuple(a for a in range(3) if a != axis))) for axis in (2, 1, 0)]
    if not all(len(span) for span in spans):
        return images
    start = [int(span[0]) for span in spans]
    size = [int(span[-1]) - first + 1 for span, first in zip(spans, start)]
    return tuple(sitk.RegionOfInterest(image, size, start) for image in images)


def outline_overlap(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                    head: sitk.Image | None = None) -> float:
    """Dice of ``fixed``'s head (holes filled) and ``moving``'s carried onto it by ``transform``, over the
    slices of ``fixed`` that both cover.

    For two skull-stripped sequences the head is the stripped brain, which one brain mask usually
    cut from both: aligned, the outlines coincide (0.95 and more); 10 mm off or another patient's
    brain, they do not. Slices only one of them covers are left out: a post-contrast slab that
    stops short of the vertex is not a misfit. ``head`` is :func:`head_mask` of ``fixed``.
    """
    head = head if head is not None else head_mask(fixed)
    carried = sitk.Resample(head_mask(moving), head, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    a, b = sitk.GetArrayViewFromImage(head) > 0, sitk.GetArrayViewFromImage(carried) > 0
    both = a.any(axis=(1, 2)) & b.any(axis=(1, 2))
    a, b = a[both], b[both]
    return float(2 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b)))


def registration_warning(name: str, fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                         fixed_stripped: bool, head: sitk.Image | None = None) -> dict | None:
    """registration_poor for one registered sequence, or None when it fits.

    A skull-stripped FLAIR and a sequence with an empty background (stripped too) are judged by their
    outlines (:func:`outline_overlap`), anything else by the mutual information inside the FLAIR's head
    (:func:`registration_metric`); ``head`` is :func:`head_mask` of ``fixed``. The edge test of
    :func:`skull_and_scalp_visible` is not used on the sequence: it was measured on FLAIRs, and a
    stripped T1's dark rim of CSF looks like skull to it.
    """
    label = name.upper()
    if fixed_stripped and _zero_fraction(moving) > STRIPPED_ZERO_FRACTION:
        overlap = outline_overlap(fixed, moving, transform, head)
        if overlap < REGISTRATION_POOR_OUTLINE:
            return warning("registration_poor", f"{label} did not align well with the FLAIR (the brain outlines "
                           f"overlap {overlap:.2f}); check that it is from the same session")
        return None
    metric = registration_metric(fixed, moving, transform, head)
    if metric > REGISTRATION_POOR:
        return warning("registration_poor", f"{label} did not align well with the FLAIR "
                       f"(mutual information {metric:.2f}); check that it is from the same session")
    return None


def _zero_fraction(image: sitk.Image) -> float:
    voxels = sitk.GetArrayViewFromImage(image)
    return float(np.mean(voxels == 0)) if voxels.size else 0.0


def head_mask(image: sitk.Image) -> sitk.Image:
    """The head of a volume as read: voxels above :func:`_foreground_level`, holes filled (the region
    :func:`registration_metric` samples; for a skull-stripped volume, the brain)."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    return fill_holes(image > _foreground_level(sitk.GetArrayViewFromImage(image)))


def fill_holes(binary: sitk.Image) -> sitk.Image:
    """``sitk.BinaryFillhole(binary)``, to the voxel: background that no face-connected path of background links to
    the volume's border becomes foreground.

    One labelling of the background (ITK's connected components, which use both cores) instead of ITK's
    reconstruction by dilation: a fifth to a half of the CPU on head masks (0.04 s against 0.18 s on the
    sample FLAIR), where the FLAIR's head mask was the last serial step before the registrations.
    """
    components = sitk.ConnectedComponent(binary == 0, False)  # kept in a name: the view below does not hold it
    labels = sitk.GetArrayViewFromImage(components)
    border = np.concatenate([np.take(labels, end, axis).ravel() for axis in range(labels.ndim) for end in (0, -1)])
    filled = np.ones(int(labels.max()) + 1, np.uint8)
    filled[border] = 0  # background reaching the border stays background
    filled[0] = 1  # label 0: the foreground itself
    out = sitk.GetImageFromArray(filled[labels])
    out.CopyInformation(binary)
    return out


def _foreground_level(voxels: np.ndarray) -> float:
    """Above this, a voxel is part of the head: 5% of the 99th percentile of the positive voxels."""
    positive = voxels[voxels > 0]
    return 0.05 * float(np.percentile(positive, 99)) if positive.size else 0.0


def edge_profile(image: sitk.Image, depth_mm: int = 16) -> tuple[np.ndarray, float] | None:
    """The head's edge, from outside in: (median intensity in each 1 mm ring / the brain's median, per slice), and
    the median over slices of the largest fall going inwards within the outer 8 mm to ``depth_mm``.

    Axial slices through the widest part of the head (at least half the largest head section that
    does not fill the frame); the head is what lies above :func:`_foreground_level`, holes filled.
    None when no slice has a head with a brain 25 mm deep inside it.
    """
    axial = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    voxels = sitk.GetArrayViewFromImage(axial)
    level = _foreground_level(voxels)
    areas = (voxels > level).reshape(len(voxels), -1).sum(axis=1)
    frame = voxels[0].size
    usable = (areas > 0) & (areas <= 0.85 * frame)  # a head filling the frame has no edge to look at
    if not usable.any():
        return None
    candidates = np.flatnonzero(usable & (areas >= 0.5 * np.percentile(areas[usable], 90)))
    chosen = candidates[np.linspace(0, len(candidates) - 1, min(EDGE_SLICES, len(candidates))).round().astype(int)]
    profiles, falls = [], []
    for z in sorted(set(chosen.tolist())):
        section = sitk.GetImageFromArray((voxels[z] > level).astype(np.uint8))
        section.SetSpacing(axial.GetSpacing()[:2])
        head = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(section, [2, 2]))
        head = sitk.RelabelComponent(sitk.ConnectedComponent(head), sortByObjectSize=True) == 1
        # GetArrayFromImage, not a view: a view does not keep its image alive, and this one is a temporary
        depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(head, insideIsPositive=True, squaredDistance=False,
                                                                    useImageSpacing=True))
        brain = voxels[z][depth > 25]
        if brain.size < 50 or np.median(brain) <= 0:
            continue
        rings = [voxels[z][(depth > mm) & (depth <= mm + 1)] for mm in range(depth_mm)]
        profile = np.array([np.median(r) if r.size else np.nan for r in rings]) / np.median(brain)
        profiles.append(profile)
        with np.errstate(invalid="ignore"):  # rings empty in a small head: not a fall
            falls.append(np.nanmax([np.nanmax(profile[:i + 1]) - np.nanmin(profile[i + 1:]) for i in range(8)]))
    if not profiles:
        return None
    return np.nanmedian(np.array(profiles), axis=0), float(np.median(falls))


def skull_and_scalp_visible(image: sitk.Image) -> bool:
    """False when the FLAIR looks skull-stripped: zero background and brain tissue right at the edge.

    A scanner that writes zero outside the head gives a zero background too; what tells the two
    apart is the edge: scalp (brighter or darker than the brain) and the dark skull, or brain.
    """
    if _zero_fraction(image) <= STRIPPED_ZERO_FRACTION:
        return True  # the background is not empty: nothing was stripped
    measured = edge_profile(image)
    if measured is None:  # no section is 50 mm across: what is left is a piece of brain, never a whole head
        return False
    profile, fall = measured
    return not (np.nanmin(profile[1:10]) >= EDGE_BRAIN_LIKE and fall <= EDGE_FALL)


def _r(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    x, y = a[where], b[where]
    if x.size < 100 or x.std() == 0 or y.std() == 0:
        return 1.0 if np.array_equal(x, y) else 0.0
    return float(np.corrcoef(x, y)[0, 1])


def sequence_warnings(channels: dict[str, np.ndarray], flair_stripped: bool = False) -> list[dict]:
    """Warnings about the sequences: missing, duplicated, mislabelled, skull-stripped.

    (Misregistration is judged where the registration runs: :func:`registration_warning`.)

    Args:
        channels: "flair" and, when given, "t1" and "t1c" on the model grid, normalised (N, 256, 256).
        flair_stripped: the FLAIR as read looks skull-stripped (``not`` :func:`skull_and_scalp_visible`).
    """
    out = []
    flair = channels["flair"]
    head = flair > 0.05
    for name, label in (("t1", "pre-contrast T1"), ("t1c", "post-contrast T1")):
        if name not in channels:
            out.append(warning(f"{name}_missing", f"no {label}: the FLAIR was used in its place, as in training"))
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
    if flair_stripped:
        out.append(warning("skull_stripped", "the FLAIR looks skull-stripped (no scalp or skull around the brain, "
                           "zero outside it); the training images showed the whole head"))
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
