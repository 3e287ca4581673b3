"""How often each input check (monai_core.checks) fires on studies known to be fine, and on broken ones.

Every study goes through ``monai_core.study.load_volumes``, the path of ``tumorseg detect``
(registration included), and its warning codes are counted per group of studies:

- whole head: the sample study TCGA-FG-6692 (tests/data) as it is and with its background set to
  zero, as some scanners write it; the LGG development patients' slices stacked into volumes
  (0.94 x 0.94 x 5 mm), their background zero as in the data set;
- skull-stripped: the real BraTS Toolkit scans (tests/data/bet) and the LGG patients with their
  brain masks applied (training/brain_masks.npz), all sequences co-registered;
- misregistered (where registration_poor must fire): the FLAIR of one LGG patient with the T1 and
  T1c of the next, whole and skull-stripped, and the two real skull-stripped scans crossed.

A warning that fires on a group where it is not expected is a false alarm; README.md quotes the
table this prints. Usage (a few seconds per study on 2 cores)::

    python tests/benchmarks/input_check_false_alarms.py --data DATA/kaggle_3m [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from monai_core.checks import edge_profile  # noqa: E402
from monai_core.data import DEFAULT_PATIENT_LIST, find_slices, read_patient_list  # noqa: E402
from monai_core.data.brain_masks import load_brain_masks  # noqa: E402
from monai_core.study import load_volumes  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "TCGA-FG-6692"
BET = ROOT / "tests" / "data" / "bet"
CHECKS = ("skull_stripped", "registration_poor", "flair_like_t2", "t1c_same_as_t1", "flair_same_as_t1")
EXPECTED = {"skull-stripped": {"skull_stripped"}, "misregistered": {"registration_poor"},
            "misregistered, skull-stripped": {"registration_poor", "skull_stripped"}}
KAGGLE_SPACING = (0.94, 0.94, 5.0)


def write(array_or_image, path: Path) -> str:
    image = array_or_image
    if isinstance(array_or_image, np.ndarray):
        image = sitk.GetImageFromArray(array_or_image.astype(np.float32))
        image.SetSpacing(KAGGLE_SPACING)
    sitk.WriteImage(image, str(path))
    return str(path)


def zero_background(image: sitk.Image) -> sitk.Image:
    """The image with every voxel outside the head (filled slice by slice) set to zero, as a scanner may write it."""
    voxels = sitk.GetArrayFromImage(image)
    level = 0.05 * np.percentile(voxels[voxels > 0], 99)
    head = np.zeros(voxels.shape, bool)
    for z in range(len(voxels)):
        section = sitk.GetImageFromArray((voxels[z] > level).astype(np.uint8))
        filled = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(section, [2, 2]))
        head[z] = sitk.GetArrayViewFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(filled), sortByObjectSize=True) == 1)
    out = sitk.GetImageFromArray(np.where(head, voxels, 0).astype(np.float32))
    out.CopyInformation(image)
    return out


def lgg_channels(case: Path) -> dict[str, np.ndarray]:
    """FLAIR, and T1 and T1c where the data set has them (it put a FLAIR copy in place of a missing one)."""
    stack = np.stack([np.asarray(Image.open(p)) for _, p, _ in find_slices(case)]).astype(np.float32)
    channels = {"flair": stack[..., 1]}
    channels.update({n: stack[..., c] for n, c in (("t1", 0), ("t1c", 2)) if not np.array_equal(stack[..., c], stack[..., 1])})
    return channels


def studies(data: Path | None, masks_path: Path, limit: int | None):
    """(group, name, {sequence: file}) for every study, written into a scratch folder as NIfTI."""
    scratch = Path(tempfile.mkdtemp(prefix="tumorseg-checks-"))
    yield "whole head", "TCGA-FG-6692", {n: str(SAMPLE / f"{n}.nii.gz") for n in ("flair", "t1", "t1c")}
    zeroed = {n: write(zero_background(sitk.ReadImage(str(SAMPLE / f"{n}.nii.gz"), sitk.sitkFloat32)), scratch / f"fg_{n}.nii.gz")
              for n in ("flair", "t1", "t1c")}
    yield "whole head", "TCGA-FG-6692, background zeroed", zeroed
    for patient in ("TCGA-FG-6692", "TCGA-DU-7294"):
        yield "skull-stripped", f"{patient} (BraTS Toolkit)", {n: str(BET / patient / f"{n}.nii.gz") for n in ("flair", "t1", "t1c")}
    yield "misregistered, skull-stripped", "FG-6692 FLAIR with DU-7294 T1, T1c", {
        "flair": str(BET / "TCGA-FG-6692" / "flair.nii.gz"), "t1": str(BET / "TCGA-DU-7294" / "t1.nii.gz"),
        "t1c": str(BET / "TCGA-DU-7294" / "t1c.nii.gz")}
    if data is None:
        return
    masks = load_brain_masks(masks_path)
    patients = [p for p in read_patient_list(DEFAULT_PATIENT_LIST) if (data / p).is_dir()][:limit]
    previous = None
    for patient in patients:
        channels = lgg_channels(data / patient)
        brain = masks[patient]
        whole = {n: write(v, scratch / f"{patient}_{n}.nii.gz") for n, v in channels.items()}
        stripped = {n: write(v * brain, scratch / f"{patient}_{n}_bet.nii.gz") for n, v in channels.items()}
        yield "whole head", patient, whole
        yield "skull-stripped", patient, stripped
        if previous is not None:  # this patient's FLAIR with the T1s of the one before: registration cannot match them
            other_whole, other_stripped = previous
            yield "misregistered", patient, {"flair": whole["flair"], **{n: f for n, f in other_whole.items() if n != "flair"}}
            yield "misregistered, skull-stripped", patient, {"flair": stripped["flair"],
                                                             **{n: f for n, f in other_stripped.items() if n != "flair"}}
        previous = (whole, stripped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="the LGG kaggle_3m folder (without it: the repository's scans only)")
    parser.add_argument("--brain-masks", type=Path, default=ROOT / "training" / "brain_masks.npz")
    parser.add_argument("--limit", type=int, help="only the first N development patients")
    args = parser.parse_args()
    fired: dict[str, Counter] = defaultdict(Counter)
    counts: Counter = Counter()
    for group, name, files in studies(args.data, args.brain_masks, args.limit):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = load_volumes(files["flair"], files.get("t1"), files.get("t1c"), case_id=name)
        codes = {w["code"] for w in study.warnings}
        counts[group] += 1
        fired[group].update(codes)
        profile = edge_profile(study.flair)
        edge = "" if profile is None else f"edge min {np.nanmin(profile[0][1:10]):.2f}, fall {profile[1]:.2f}"
        print(f"{group:32s} {name:40s} {' '.join(sorted(codes & set(CHECKS))) or '-':40s} {edge}", flush=True)
    print("\ncheck                 " + "".join(f"{g[:30]:>32s}" for g in counts))
    for check in CHECKS:
        cells = []
        for group, n in counts.items():
            mark = "" if check in EXPECTED.get(group, set()) else " FA"
            cells.append(f"{fired[group][check]}/{n}{mark}")
        print(f"{check:22s}" + "".join(f"{c:>32s}" for c in cells))
    print("FA: a false alarm when it fires (the group is known to be fine for this check)")


if __name__ == "__main__":
    main()
