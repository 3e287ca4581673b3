"""Out of fold: does the interpolation of the registered T1 and T1c change what detect finds?

``tumorseg detect`` brings a registered T1 and T1c onto the FLAIR's model grid through their rigid
transforms (``monai_core.preprocess.REGISTERED_INTERPOLATOR``). A cubic B-spline there costs 0.4 s of
CPU per sequence on the sample study and 2.3 s on a 1 mm scan of 155 slices; linear interpolation, which
detect uses since this measurement, a tenth. This benchmark measures what the choice does to the masks,
with networks that never saw the patients:

- every development patient's slices are stacked into volumes (0.94 x 0.94 x 5 mm, as the data set
  was made), and the T1 and T1c (where the data set has them, not a FLAIR copy) get a header moved
  by 4 degrees and 6 mm, so that detect registers them and resamples them through a tilted transform,
  as it does with a scanner's sequences;
- each patient is detected by the cross-validation networks of its own fold
  (``training/cv/recipe_b``, trained without it), once per interpolation;
- Dice against the data set's mask, per patient, and between the two interpolations' masks.

Result (2026-12-05, all 88 patients, 84 of them with a T1 or T1c): mean Dice 0.8575 with the cubic
B-spline, 0.8574 linear; linear minus B-spline -0.0000 (95% bootstrap -0.0012 to +0.0016), per
patient -0.0139 to +0.0485 (34 better, 45 worse, 5 the same); the two masks agree at a median Dice of 0.996.
Per patient: ``training/cv/registered_interpolation.json`` (``--out``).

Usage (about 3 s per patient and interpolation on 2 cores)::

    python training/registered_interpolation.py --data DATA/kaggle_3m --folds training/cv/recipe_b [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from monai_core import preprocess  # noqa: E402
from monai_core.data import DEFAULT_PATIENT_LIST, patient_folds, read_patient_list  # noqa: E402
from monai_core.detect import detect_case  # noqa: E402
from monai_core.evaluation import truth_masks  # noqa: E402
from monai_core.metrics import dice  # noqa: E402
from monai_core.pipeline import DEFAULT_BUNDLE, TumorSegPipeline  # noqa: E402
from monai_core.study import load_kaggle_case  # noqa: E402
from registration_cases import moved_header  # noqa: E402  (tests/: a header moved by a rigid transform)

SPACING = (0.94, 0.94, 5.0)
MOVE_DEGREES, MOVE_MM = 4.0, 6.0
INTERPOLATIONS = {"cubic B-spline": sitk.sitkBSpline, "linear": sitk.sitkLinear}


def fold_pipeline(folds_dir: Path, fold: int) -> TumorSegPipeline:
    """The bundle's inference with fold ``fold``'s networks (``training/cv/<recipe>/fold<k>``)."""
    return TumorSegPipeline(DEFAULT_BUNDLE, segmenter_weights=folds_dir / f"fold{fold}" / "model.pt",
                            classifier_weights=folds_dir / f"fold{fold}" / "model_classifier.pt")


def write_volumes(case: Path, out: Path) -> dict[str, str]:
    """FLAIR, T1 and T1c NIfTI of one patient (T1 and T1c only where they are not a FLAIR copy), the T1
    and T1c with their headers moved."""
    slices = load_kaggle_case(case).slices  # (N, 3, 256, 256): T1, FLAIR, T1c
    files = {}
    for name, channel in (("t1", 0), ("flair", 1), ("t1c", 2)):
        if name != "flair" and np.array_equal(slices[:, channel], slices[:, 1]):
            continue
        image = sitk.GetImageFromArray(np.ascontiguousarray(slices[:, channel] * 255.0))
        image.SetSpacing(SPACING)
        if name != "flair":
            image = _moved(image)
        files[name] = str(out / f"{name}.nii.gz")
        sitk.WriteImage(image, files[name])
    return files


def _moved(image: sitk.Image) -> sitk.Image:
    """The same voxels with the header rotated by MOVE_DEGREES about the volume's centre and shifted by MOVE_MM."""
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    return moved_header(image, sitk.Euler3DTransform(centre, 0.0, np.radians(MOVE_DEGREES / 2), np.radians(MOVE_DEGREES),
                                                     (MOVE_MM, 0.0, 0.0)))


def detect_with(interpolation: int, pipeline: TumorSegPipeline, files: dict, out: Path) -> np.ndarray:
    """detect's mask on the FLAIR grid (z, y, x), with the registered sequences resampled by ``interpolation``."""
    shipped = preprocess.REGISTERED_INTERPOLATOR
    preprocess.REGISTERED_INTERPOLATOR = interpolation  # read by to_model_space at each call
    try:
        detect_case(pipeline, out, flair=files["flair"], t1=files.get("t1"), t1c=files.get("t1c"), case_id="case", overwrite=True)
    finally:
        preprocess.REGISTERED_INTERPOLATOR = shipped
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case" / "segmentation.nii.gz"))) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="the LGG kaggle_3m folder")
    parser.add_argument("--folds", type=Path, default=ROOT / "training" / "cv" / "recipe_b")
    parser.add_argument("--limit", type=int, help="only the first N development patients")
    parser.add_argument("--out", type=Path, help="per-patient results as JSON")
    args = parser.parse_args()
    patients = read_patient_list(DEFAULT_PATIENT_LIST)
    fold_of = {patient: fold for fold, members in enumerate(patient_folds(patients)) for patient in members}
    pipelines, results = {}, []
    for patient in patients[: args.limit]:
        fold = fold_of[patient]
        if fold not in pipelines:
            pipelines[fold] = fold_pipeline(args.folds, fold)
        truth = truth_masks(args.data / patient)
        with tempfile.TemporaryDirectory() as tmp:
            files = write_volumes(args.data / patient, Path(tmp))
            masks = {name: detect_with(kind, pipelines[fold], files, Path(tmp) / "out") for name, kind in INTERPOLATIONS.items()}
        row = {"patient": patient, "fold": fold, "sequences": sorted(set(files) - {"flair"}),
               **{name: round(dice(mask, truth), 4) for name, mask in masks.items()},
               "between": round(dice(*masks.values()), 4)}
        results.append(row)
        print(json.dumps(row), flush=True)
    names = list(INTERPOLATIONS)
    table = np.array([[row[name] for name in names] for row in results])
    difference = table[:, 1] - table[:, 0]
    print(f"\n{len(results)} patients, out of fold")
    for name, column in zip(names, table.T):
        print(f"  {name:15s} mean Dice {column.mean():.4f}, median {np.median(column):.4f}")
    rng = np.random.default_rng(0)
    means = [rng.choice(difference, len(difference)).mean() for _ in range(2000)]
    print(f"  {names[1]} - {names[0]}: mean {difference.mean():+.4f} (95% bootstrap {np.percentile(means, 2.5):+.4f} to "
          f"{np.percentile(means, 97.5):+.4f}); per patient from {difference.min():+.4f} to {difference.max():+.4f}")
    print(f"  Dice between the two interpolations' masks: median {np.median([r['between'] for r in results]):.4f}, "
          f"lowest {min(r['between'] for r in results):.4f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
