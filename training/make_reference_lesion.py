"""Map the Kaggle lesion mask of TCGA-FG-6692 onto its raw FLAIR grid (tests/data/TCGA-FG-6692/flair_lesion.nii.gz).

The Kaggle slices of this patient lie on the pre-contrast T1's grid, and the FLAIR was registered
onto that T1 (data README). So the mask goes: Kaggle 256x256 slices -> T1 model grid -> through
the inverse of the FLAIR-to-T1 registration -> the FLAIR grid. Usage:

    python training/make_reference_lesion.py KAGGLE_CASE_DIR RAW_DIR OUT.nii.gz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from monai_core.data import find_slices
from monai_core.io.volumes import read_volume
from monai_core.preprocess import from_model_space, model_grid, register_rigid


def kaggle_mask(case_dir: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(mask)) > 0 for _, _, mask in find_slices(case_dir)]).astype(np.float32)


def lesion_on_flair(case_dir: Path, raw_dir: Path) -> sitk.Image:
    t1 = read_volume(raw_dir / "t1.nii.gz")
    flair = read_volume(raw_dir / "flair.nii.gz")
    t1_to_flair = register_rigid(t1, flair)  # maps T1 points into FLAIR space
    return from_model_space(kaggle_mask(case_dir), model_grid(t1), flair, 0.5, t1_to_flair.GetInverse())


if __name__ == "__main__":
    case, raw, out = (Path(a) for a in sys.argv[1:4])
    sitk.WriteImage(lesion_on_flair(case, raw), str(out), useCompression=True)
    print(f"wrote {out}")
