"""Registration cases with a committed reference result, and how far two rigid results differ.

Each case registers a moving volume onto a fixed FLAIR as ``tumorseg detect`` does (T1 or T1c
onto the FLAIR). ``tests/data/registration_reference.json`` holds the transform that
``monai_core.preprocess.register_rigid`` gave for each case when it was written (see ``made_with``
there), so that a change to the registration shows; ``registration_reference_0.4.0.json`` holds
release 0.4.0's (ITK's shrink-factor pyramid), the result users had before. Cases:

- the bundled sample study (tests/data/TCGA-FG-6692, raw scanner volumes, 5.5 mm slices);
- the same T1 and T1c with their headers moved by a known rigid transform (misaligned by
  construction: the expected result is the sample's reference moved by that transform);
- the real skull-stripped scans of tests/data/bet (1 mm atlas grid, already aligned).

How far two results differ is measured where it matters, over the FLAIR's head: each transform
maps FLAIR points into the moving volume, and the distance between where the two put a point is
its displacement. Over the head's bounding box a rigid difference is largest at a corner, so the
largest displacement at the 8 corners bounds it over the whole head; the mean is over the head's
voxels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from monai_core.preprocess import euler_of as as_euler  # the Euler3DTransform inside a registration result

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "registration_reference.json"
REFERENCE_040 = ROOT / "tests" / "data" / "registration_reference_0.4.0.json"
SAMPLE = "tests/data/TCGA-FG-6692"
BET = "tests/data/bet"

# header moves of the derived cases: Euler angles (radians) and a shift (mm), applied about the origin
HEADER_MOVES = {
    "t1": ((0.10, -0.06, 0.14), (12.0, -9.0, 7.0)),
    "t1c": ((-0.12, 0.05, -0.08), (-10.0, 14.0, -5.0)),
}

# name -> (fixed, moving, header move of the moving volume or None)
CASES = {
    "sample t1": (f"{SAMPLE}/flair.nii.gz", f"{SAMPLE}/t1.nii.gz", None),
    "sample t1c": (f"{SAMPLE}/flair.nii.gz", f"{SAMPLE}/t1c.nii.gz", None),
    "sample t1 moved": (f"{SAMPLE}/flair.nii.gz", f"{SAMPLE}/t1.nii.gz", "t1"),
    "sample t1c moved": (f"{SAMPLE}/flair.nii.gz", f"{SAMPLE}/t1c.nii.gz", "t1c"),
    **{f"bet {patient} {name}": (f"{BET}/TCGA-{patient}/flair.nii.gz", f"{BET}/TCGA-{patient}/{name}.nii.gz", None)
       for patient in ("FG-6692", "DU-7294") for name in ("t1", "t1c")},
}


def header_move(name: str) -> sitk.Euler3DTransform:
    """The rigid transform that moves a derived case's voxels in physical space."""
    angles, shift = HEADER_MOVES[name]
    return sitk.Euler3DTransform((0.0, 0.0, 0.0), *angles, shift)


def moved_header(image: sitk.Image, move: sitk.Euler3DTransform) -> sitk.Image:
    """The same voxels, each at ``move`` of its old physical point (only the header changes)."""
    matrix = np.asarray(move.GetMatrix()).reshape(3, 3)
    out = sitk.Image(image)
    out.SetDirection((matrix @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    out.SetOrigin(move.TransformPoint(image.GetOrigin()))
    return out


def load_case(name: str) -> tuple[sitk.Image, sitk.Image]:
    """(fixed FLAIR, moving volume) of a case."""
    fixed, moving, move = CASES[name]
    moving_image = sitk.ReadImage(str(ROOT / moving))
    if move is not None:
        moving_image = moved_header(moving_image, header_move(move))
    return sitk.ReadImage(str(ROOT / fixed)), moving_image


def head_points(fixed: sitk.Image, count: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(the 8 corners of the head's bounding box, up to ``count`` head voxels), physical points.

    The head is the non-zero voxels of a skull-stripped volume (zeros outside the brain), else the
    voxels above Otsu's threshold.
    """
    array = sitk.GetArrayViewFromImage(fixed)
    if (array == 0).mean() > 0.3:
        mask = array > 0
    else:
        mask = sitk.GetArrayFromImage(sitk.OtsuThreshold(fixed, 0, 1)) > 0  # a view would outlive its temporary image
    voxels = np.argwhere(mask)[:, ::-1]  # x, y, z as SimpleITK indexes
    low, high = voxels.min(0), voxels.max(0)
    corners = [[(low, high)[c[a]][a] for a in range(3)] for c in np.ndindex(2, 2, 2)]
    inside = voxels[np.random.default_rng(0).choice(len(voxels), min(count, len(voxels)), replace=False)]

    def physical(indexes):
        return np.array([fixed.TransformIndexToPhysicalPoint([int(i) for i in index]) for index in indexes])

    return physical(corners), physical(inside)


def displacement(a: sitk.Transform, b: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Distance (mm) between where ``a`` and ``b`` map each point."""
    return np.array([np.linalg.norm(np.subtract(a.TransformPoint(p), b.TransformPoint(p))) for p in points])


def to_record(transform: sitk.Transform) -> dict:
    euler = as_euler(transform)
    return {"parameters": list(euler.GetParameters()), "center": list(euler.GetCenter())}


def from_record(record: dict) -> sitk.Euler3DTransform:
    euler = sitk.Euler3DTransform()
    euler.SetCenter(record["center"])
    euler.SetParameters(record["parameters"])
    return euler


def reference(name: str, path: Path = REFERENCE) -> sitk.Transform:
    """The committed reference transform of a case (``path``: :data:`REFERENCE_040` for release 0.4.0's)."""
    return from_record(json.loads(path.read_text())["cases"][name])


def expected_from_move(name: str, unmoved: sitk.Transform | None = None) -> sitk.Transform | None:
    """For a derived case, the unmoved case's result (default: its reference) followed by the header move:
    what a registration that only follows the images should find."""
    move = CASES[name][2]
    if move is None:
        return None
    unmoved = unmoved if unmoved is not None else reference(name.removesuffix(" moved"))
    return sitk.CompositeTransform([header_move(move), unmoved])  # applied last to first


def head_mutual_information(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, head: sitk.Image) -> float:
    """Mattes mutual information (32 bins, lower is better) over every voxel of the FLAIR's head at full
    resolution: a judge of alignment that no registration recipe samples or optimises as such."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetMovingInitialTransform(transform)
    method.SetMetricFixedMask(head)
    return float(method.MetricEvaluate(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)))
