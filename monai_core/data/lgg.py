"""The LGG MRI segmentation data set (Kaggle ``kaggle_3m`` layout) as MONAI data lists.

One item per axial slice: ``{"image", "label", "patient", "slice", "tumor"}``. Splits are made by
patient, never by slice, because neighbouring slices of one patient are nearly identical.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "DEFAULT_PATIENT_LIST",
    "read_patient_list",
    "find_slices",
    "lgg_datalist",
    "split_by_patient",
    "patient_folds",
    "tumour_sampling_weights",
]

DEFAULT_PATIENT_LIST = Path(__file__).resolve().parents[2] / "bundle" / "configs" / "development_patients.txt"
_SLICE = re.compile(r"^(?P<case>.+)_(?P<n>\d+)\.tif$")


def read_patient_list(path: str | Path) -> list[str]:
    """Patient (case folder) names, one per line; blank lines and ``#`` comments are ignored."""
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def find_slices(case_dir: str | Path) -> list[tuple[int, Path, Path]]:
    """``(slice_number, image, mask)`` for a Kaggle case folder, ordered by slice number.

    Raises ``ValueError`` when the numbering has gaps or an image has no mask, because a
    silently skipped slice would shift every slice after it in the 3D result.
    """
    case_dir = Path(case_dir)
    found = {}
    for path in case_dir.glob("*.tif"):
        match = _SLICE.match(path.name)
        if match and not path.name.endswith("_mask.tif"):
            found[int(match["n"])] = path
    if not found:
        raise ValueError(f"{case_dir}: no slice files named <case>_<n>.tif")
    numbers = sorted(found)
    if numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
        raise ValueError(f"{case_dir}: slice numbering has gaps (missing {missing[:5]})")
    slices = []
    for n in numbers:
        mask = found[n].with_name(found[n].name[: -len(".tif")] + "_mask.tif")
        slices.append((n, found[n], mask))
    return slices


def lgg_datalist(dataset_dir: str | Path, patients: list[str] | str | Path | None = None) -> list[dict]:
    """MONAI data list of every slice of the given patients.

    Args:
        dataset_dir: the ``kaggle_3m`` folder.
        patients: patient names, or a file listing them; default: the development list in the bundle.
    """
    dataset_dir = Path(dataset_dir)
    if patients is None or isinstance(patients, (str, Path)):
        patients = read_patient_list(patients or DEFAULT_PATIENT_LIST)
    missing = [p for p in patients if not (dataset_dir / p).is_dir()]
    if missing:
        raise ValueError(f"{dataset_dir}: {len(missing)} listed patients are missing, e.g. {missing[:3]}")
    items = []
    for patient in patients:
        for n, image, mask in find_slices(dataset_dir / patient):
            if not mask.is_file():
                raise ValueError(f"{image}: no mask file {mask.name}")
            tumor = int(np.asarray(Image.open(mask)).max() > 0)
            items.append({"image": str(image), "label": str(mask), "patient": patient, "slice": n, "tumor": tumor})
    return items


def patient_folds(patients: list[str], n_folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Shuffle the patients with a fixed seed and deal them into ``n_folds`` groups."""
    order = sorted(set(patients))
    random.Random(seed).shuffle(order)
    return [sorted(order[i::n_folds]) for i in range(n_folds)]


def split_by_patient(items: list[dict], fold: int = 0, n_folds: int = 5, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, validation)`` items; fold ``fold`` of ``n_folds`` patient groups is the validation set.

    ``fold`` -1 trains on every patient and validates on none (the shipped networks, once the
    settings have been chosen out of fold).
    """
    if fold < 0:
        return list(items), []
    folds = patient_folds([item["patient"] for item in items], n_folds, seed)
    validation = set(folds[fold])
    return [i for i in items if i["patient"] not in validation], [i for i in items if i["patient"] in validation]


def tumour_sampling_weights(items: list[dict], tumour_fraction: float = 0.5) -> list[float]:
    """Per-item weights so that a weighted sampler draws tumour slices with ``tumour_fraction`` probability."""
    positives = sum(item["tumor"] for item in items)
    negatives = len(items) - positives
    if positives == 0 or negatives == 0:
        return [1.0] * len(items)
    return [tumour_fraction / positives if item["tumor"] else (1 - tumour_fraction) / negatives for item in items]
