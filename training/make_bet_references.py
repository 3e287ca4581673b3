"""Map a Kaggle (LGG) lesion mask onto the grid of a skull-stripped "raw_bet" study (tests/data/bet/).

Why: ``tumorseg detect`` should be scored on real skull-stripped input, against the LGG data set's
own masks. The BraTS-Toolkit examples in BrainLesion/tutorials (``BraTS-Toolkit/data/<P>/<P>_brainles/
raw_bet/``) hold skull-stripped T1, T1c and FLAIR of two LGG patients, but on an atlas grid (SRI24:
240x240x155, 1 mm, all sequences co-registered), not on any scanner grid. The Kaggle masks lie on the
scanner grid of the pre-contrast T1 (resized so that its smaller side is 256 and centre-cropped:
``model_grid(t1)``; data README, section tcga_lgg_raw; checked here by correlation).

How: the Kaggle mask is stacked onto ``model_grid(t1)`` of a T1 volume on that scanner grid (the raw
T1, or a skull-stripped T1 on the same native grid), the T1 is registered rigidly onto the raw_bet T1
(same sequence, same grid as the raw_bet FLAIR), and ``from_model_space`` resamples the mask through
that transform onto the raw_bet FLAIR grid (linear, threshold 0.5). The registration starts from
``register_rigid`` (Mattes MI, whole image), which is only roughly right against a skull-stripped
fixed image (whole-brain r about 0.79 for TCGA-FG-6692), and is refined by the same rigid MI
restricted to the (dilated) raw_bet brain (r 0.93). Registering the raw T1 straight onto the raw_bet
FLAIR fails (r 0.16), so the raw_bet T1 is the fixed image; the script checks that the raw_bet FLAIR
lies on the raw_bet T1 (rigid registration of one onto the other should move it by < 1 mm).

Without a T1 on the Kaggle grid, ``--kaggle-spacing PIXEL SLICE`` registers the Kaggle T1 channel
itself, stacked as a volume with that spacing, onto the raw_bet T1 (for TCGA-FG-6692 the two routes
give masks with Dice 0.998). ``--raw-flair``/``--raw-out`` also write the mask on the native FLAIR
grid, as training/make_reference_lesion.py does (inverse of the FLAIR-to-T1 registration).

Usage:

    python training/make_bet_references.py KAGGLE_CASE_DIR BET_DIR OUT.nii.gz
        (--t1 T1_ON_KAGGLE_GRID | --kaggle-spacing PIXEL_MM SLICE_MM)
        [--raw-flair RAW_FLAIR --raw-out OUT_RAW.nii.gz]

BET_DIR holds ``flair.nii.gz``/``t1.nii.gz`` or the toolkit's ``*_fla_bet.nii.gz``/``*_t1_bet.nii.gz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from monai_core.data import find_slices
from monai_core.io.volumes import read_volume
from monai_core.preprocess import from_model_space, model_grid, register_rigid, to_model_space
from make_reference_lesion import kaggle_mask  # training/ is on sys.path when run as a script

_NAMES = {
    "flair": ("flair.nii.gz", "*_fla_bet.nii.gz", "*_fla.nii.gz"),
    "t1": ("t1.nii.gz", "*_t1_bet.nii.gz", "*_t1.nii.gz"),
    "t1c": ("t1c.nii.gz", "*_t1c_bet.nii.gz", "*_t1c.nii.gz"),
}


def find_volume(folder: Path, sequence: str) -> Path:
    """The one file of a sequence in a folder, by the repo's or the toolkit's naming."""
    for pattern in _NAMES[sequence]:
        hits = sorted(folder.glob(pattern))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise SystemExit(f"{folder}: several files match {pattern}")
    raise SystemExit(f"{folder}: no {sequence} volume ({', '.join(_NAMES[sequence])})")


def kaggle_channel(case_dir: Path, channel: int) -> np.ndarray:
    """(N, 256, 256) float32 of one channel (0 pre-contrast T1, 1 FLAIR, 2 post-contrast T1)."""
    return np.stack([np.asarray(Image.open(image))[..., channel] for _, image, _ in find_slices(case_dir)]).astype(
        np.float32
    )


def pearson(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.corrcoef(a[where].ravel(), b[where].ravel())[0, 1])


def kaggle_grid_r(case_dir: Path, t1: sitk.Image, grid: sitk.Image) -> float:
    """Median per-slice r between the Kaggle T1 channel and the T1 resampled onto ``grid``.

    Only voxels above 1% of the resampled T1's 99th percentile count (not the B-spline's ringing
    around a skull-stripped brain), so a skull-stripped T1 works too.
    """
    kaggle = kaggle_channel(case_dir, 0)
    if kaggle.shape[0] != grid.GetSize()[2]:
        raise SystemExit(f"{case_dir}: {kaggle.shape[0]} slices, but the T1 has {grid.GetSize()[2]}")
    resampled = to_model_space(t1, grid)
    floor = 0.01 * np.percentile(resampled[resampled > 0], 99)
    values = [pearson(k, a, a > floor) for k, a in zip(kaggle, resampled) if (a > floor).sum() > 500]
    return float(np.median(values))


def _refine(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform) -> sitk.Euler3DTransform:
    """Rigid Mattes-MI registration restricted to the fixed image's (dilated) non-zero voxels."""
    fixed_f = sitk.Cast(fixed, sitk.sitkFloat32)
    moving_f = sitk.Cast(moving, sitk.sitkFloat32)
    brain = sitk.BinaryDilate(sitk.Cast(fixed_f > 0, sitk.sitkUInt8), [3, 3, 3])
    transform = sitk.Euler3DTransform(initial)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed=42)
    reg.SetMetricFixedMask(brain)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, gradientMagnitudeTolerance=1e-8
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed_f, moving_f)
    return transform


def brain_r(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> float:
    """r between the fixed image and the moving one resampled onto it, over the fixed non-zero voxels."""
    f = sitk.GetArrayFromImage(fixed)
    m = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    return pearson(f, m, f > 0)


def register_onto_bet(bet_t1: sitk.Image, moving: sitk.Image, label: str) -> sitk.Transform:
    """Rigid transform mapping raw_bet points into ``moving``'s space: register_rigid, then refined."""
    initial = register_rigid(bet_t1, moving)  # an Euler3DTransform
    refined = _refine(bet_t1, moving, initial)
    print(f"{label} -> raw_bet T1: brain r {brain_r(bet_t1, moving, initial):.3f} after register_rigid, "
          f"{brain_r(bet_t1, moving, refined):.3f} after the brain-masked refinement")
    return refined


def check_bet_aligned(bet_t1: sitk.Image, bet_flair: sitk.Image) -> float:
    """Largest shift (mm) over the brain's bounding box when the raw_bet FLAIR is registered onto its T1."""
    transform = _refine(bet_t1, bet_flair, sitk.Euler3DTransform())
    brain = np.argwhere(sitk.GetArrayFromImage(bet_t1) > 0)
    lo, hi = brain.min(0)[::-1], brain.max(0)[::-1]  # (x, y, z) indices
    shifts = []
    for corner in np.ndindex(2, 2, 2):
        index = [int(hi[i] if c else lo[i]) for i, c in enumerate(corner)]
        point = np.asarray(bet_t1.TransformIndexToPhysicalPoint(index))
        shifts.append(np.linalg.norm(np.asarray(transform.TransformPoint(point.tolist())) - point))
    return float(max(shifts))


def kaggle_volume(case_dir: Path, pixel: float, slice_mm: float, centre_on: sitk.Image) -> sitk.Image:
    """The Kaggle T1 channel as a volume (LPS array order, as model_grid) with the given spacing,
    centred on ``centre_on`` (the registration's starting point)."""
    image = sitk.GetImageFromArray(kaggle_channel(case_dir, 0))
    image.SetSpacing([pixel, pixel, slice_mm])

    def centre(im):
        return np.asarray(im.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in im.GetSize()]))

    image.SetOrigin((centre(centre_on) - centre(image)).tolist())
    return image


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", type=Path, help="Kaggle case folder (<case>_<n>.tif and _mask.tif)")
    parser.add_argument("bet", type=Path, help="folder with the raw_bet FLAIR and T1")
    parser.add_argument("out", type=Path, help="output mask on the raw_bet FLAIR grid (.nii.gz)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--t1", type=Path, help="pre-contrast T1 on the Kaggle grid (raw, or stripped on its native grid)")
    source.add_argument("--kaggle-spacing", type=float, nargs=2, metavar=("PIXEL_MM", "SLICE_MM"),
                        help="no T1: register the Kaggle T1 channel itself, with this spacing")
    parser.add_argument("--raw-flair", type=Path, help="native FLAIR of the same study (needs --t1)")
    parser.add_argument("--raw-out", type=Path, help="also write the mask on the --raw-flair grid")
    args = parser.parse_args(argv)
    if bool(args.raw_flair) != bool(args.raw_out) or (args.raw_flair and not args.t1):
        parser.error("--raw-flair and --raw-out go together, and need --t1")

    mask = kaggle_mask(args.case)
    bet_flair = read_volume(find_volume(args.bet, "flair"))
    bet_t1 = read_volume(find_volume(args.bet, "t1"))
    print(f"raw_bet FLAIR grid: size {bet_flair.GetSize()}, spacing {np.round(bet_flair.GetSpacing(), 3).tolist()}, "
          f"origin {np.round(bet_flair.GetOrigin(), 1).tolist()}")
    if not (bet_t1.GetSize() == bet_flair.GetSize() and np.allclose(bet_t1.GetOrigin(), bet_flair.GetOrigin())
            and np.allclose(bet_t1.GetSpacing(), bet_flair.GetSpacing())
            and np.allclose(bet_t1.GetDirection(), bet_flair.GetDirection())):
        raise SystemExit("the raw_bet T1 and FLAIR are not on one grid")
    print(f"raw_bet FLAIR registered onto raw_bet T1 moves by at most {check_bet_aligned(bet_t1, bet_flair):.2f} mm")

    if args.t1:
        t1 = read_volume(args.t1)
        grid = model_grid(t1)
        print(f"Kaggle T1 channel vs T1 on model_grid(T1): median slice r {kaggle_grid_r(args.case, t1, grid):.3f}")
        transform = register_onto_bet(bet_t1, t1, "T1")
    else:
        grid = kaggle_volume(args.case, *args.kaggle_spacing, bet_t1)
        transform = register_onto_bet(bet_t1, grid, "Kaggle T1 channel")
    lesion = from_model_space(mask, grid, bet_flair, 0.5, transform)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(lesion, str(args.out), useCompression=True)
    voxel_ml = np.prod(bet_flair.GetSpacing()) / 1000
    print(f"wrote {args.out}: {sitk.GetArrayViewFromImage(lesion).sum() * voxel_ml:.2f} mL")

    if args.raw_flair:
        flair = read_volume(args.raw_flair)
        t1_to_flair = register_rigid(t1, flair)  # maps T1 points into FLAIR space
        raw = from_model_space(mask, grid, flair, 0.5, t1_to_flair.GetInverse())
        args.raw_out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(raw, str(args.raw_out), useCompression=True)
        voxel_ml = np.prod(flair.GetSpacing()) / 1000
        print(f"wrote {args.raw_out}: {sitk.GetArrayViewFromImage(raw).sum() * voxel_ml:.2f} mL")


if __name__ == "__main__":
    main()
