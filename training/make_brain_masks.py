"""Make brain masks for the LGG development patients (training/brain_masks.npz).

Why: many real inputs are skull-stripped before they reach TumorSeg, while the Kaggle LGG slices
still show the scalp. Training augmentation can zero everything outside these masks now and then so
the model also sees skull-stripped inputs. The masks are made once, offline, by this script; training
only reads them with ``monai_core.data.brain_masks.load_brain_masks`` and never needs the tool.

Tool: deepbet 1.0.2 (MIT licence, its two TorchScript models ship inside the PyPI wheel) on torch
2.13.0 (CPU), in a separate environment, e.g.::

    python3 -m venv .venv && .venv/bin/pip install torch==2.13.0
    .venv/bin/pip install deepbet==1.0.2 SimpleITK pillow

Usage (from the repo root; the repo goes on PYTHONPATH because that environment has no TumorSeg)::

    PYTHONPATH=. .venv/bin/python training/make_brain_masks.py --data DATA/kaggle_3m \
        --out training/brain_masks.npz [--patients LIST] [--threads 2] [--cache DIR] [--flair-margin -1]

``--cache DIR`` keeps each finished patient in ``DIR/<patient>.npz`` (with the settings it was made
with), so a run that was stopped goes on where it was; entries made with other settings are redone.

Method, per patient: the slices in ``find_slices`` order are stacked into a volume taken as
1 x 1 x 5 mm voxels (columns to patient left, rows to posterior, slice 1 lowest), linearly resampled
to 1 mm along z (deepbet ignores voxel sizes and nearest-resamples the head box to 256^3, so this
gives it a smooth head instead of 5 mm steps), and deepbet is run on the pre-contrast T1 (channel 0)
and on the FLAIR (channel 1); its output is read back at the original slice positions. Measured on
22 patients (Kaggle lesion masks used only as a check): the T1 mask is tight and clean but cuts
notches where a tumour reaches the cortex (up to 7.5% of a lesion outside it), while the FLAIR mask
keeps the tumour but spills into the scalp in the top slices of some patients (CS_4941, CS_5395,
HT_7855: +10-25 px rings); a plain union inherits that spill, a majority of the three channels
cuts lesions most. So the mask is the T1 mask plus the FLAIR mask where it lies within
``--flair-margin`` px (in plane; negative: no limit, i.e. the plain union) of the T1 mask (with 5 px:
0.4% of lesion pixels outside, against 1.3% for T1 alone and 0.1% for the union), then holes are
filled slice by slice and only the largest 3D connected component is kept. The shipped file (0.3.0
training) is the plain union, the default here; ``--flair-margin 5`` removes the scalp spill and is
meant for the next training run.
Where the T1 channel is a copy of the FLAIR (some Kaggle patients), deepbet runs once and the FLAIR
mask is used. Deterministic: fixed thread count, seeds and deterministic torch algorithms (two runs
gave identical files); nothing random is used anyway.

File format: one compressed ``.npz`` with, per patient ``P``, ``P`` = ``np.packbits(mask, axis=-1)``
of the bool ``(N, 256, 256)`` mask and ``__shape__P`` = ``[N, 256, 256]``; slice ``k`` is the ``k``-th
slice of ``find_slices``. ``__meta__`` is a JSON string with the tool, versions and settings. See
``monai_core/data/brain_masks.py``. A QC line per patient goes to stdout: slices, brain voxels, the
fraction of non-zero FLAIR pixels inside the mask, the Dice of the T1 and FLAIR masks and the count
of empty slices between non-empty ones (flagged when the channels disagree or a gap appears).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from monai_core.data import DEFAULT_PATIENT_LIST, find_slices, read_patient_list
from monai_core.data.brain_masks import META_KEY, pack_brain_masks

SLICE_MM = 5.0  # assumed slice spacing of the Kaggle volumes; pixels are taken as 1 mm
UPSAMPLE = 5  # z resampling factor before deepbet: 5 mm -> 1 mm
CHANNELS = {"t1": 0, "flair": 1}  # Kaggle channel order: pre-contrast T1, FLAIR, post-contrast T1
THRESHOLD = 0.5  # deepbet's default probability threshold
FLAIR_MARGIN_PX = -1  # the plain union: what the shipped training/brain_masks.npz holds (0.3.0)


def load_volume(case_dir: Path) -> np.ndarray:
    """uint8 ``(N, 256, 256, 3)`` of one patient, slices in ``find_slices`` order."""
    return np.stack([np.asarray(Image.open(image)) for _, image, _ in find_slices(case_dir)])


def upsample_z(volume: np.ndarray, factor: int) -> np.ndarray:
    """Linear interpolation along axis 0 so that every ``factor``-th slice is an original one."""
    n = volume.shape[0]
    z = np.arange((n - 1) * factor + 1) / factor
    low = np.minimum(np.floor(z).astype(int), n - 1)
    high = np.minimum(low + 1, n - 1)
    w = (z - low)[:, None, None].astype(np.float32)
    return (1 - w) * volume[low] + w * volume[high]


class Extractor:
    """deepbet on one channel of a Kaggle volume (imported here so TumorSeg itself never needs it)."""

    def __init__(self, threads: int):
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        from deepbet import BrainExtraction

        self.bet = BrainExtraction(no_gpu=True)

    def __call__(self, channel: np.ndarray) -> np.ndarray:
        """bool ``(N, H, W)`` brain mask of a ``(N, H, W)`` slice stack."""
        import nibabel as nib

        stack = upsample_z(channel.astype(np.float32), UPSAMPLE)
        data = np.ascontiguousarray(stack.transpose(2, 1, 0))  # (column, row, slice)
        # Columns run to the patient's left, rows to posterior, slices upward: an LPS-like grid,
        # which deepbet reorients to RAS itself.
        affine = np.diag([-1.0, -1.0, SLICE_MM / UPSAMPLE, 1.0])
        _, mask, _ = self.bet.run(nib.Nifti1Image(data, affine), threshold=THRESHOLD)
        mask = np.asarray(mask.dataobj).astype(bool).transpose(2, 1, 0)
        return mask[::UPSAMPLE]


def combine(t1: np.ndarray, flair: np.ndarray, margin: int = FLAIR_MARGIN_PX) -> np.ndarray:
    """T1 mask plus the FLAIR mask within ``margin`` px of it (per slice, disk-shaped; < 0: all of it)."""
    import SimpleITK as sitk

    if margin < 0:
        return t1 | flair
    near = sitk.BinaryDilate(sitk.GetImageFromArray(t1.astype(np.uint8)), [margin, margin, 0], sitk.sitkBall)
    return t1 | (flair & (sitk.GetArrayFromImage(near) > 0))


def postprocess(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice, then keep the largest 3D connected component."""
    import SimpleITK as sitk

    fill = sitk.BinaryFillhole
    filled = np.stack([sitk.GetArrayFromImage(fill(sitk.GetImageFromArray(s.astype(np.uint8)))) for s in mask])
    image = sitk.GetImageFromArray(filled.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, SLICE_MM))
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(image), sortByObjectSize=True)
    return sitk.GetArrayFromImage(labels) == 1


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def empty_gaps(mask: np.ndarray) -> int:
    """Empty slices between the first and the last non-empty slice."""
    filled = np.flatnonzero(mask.any(axis=(1, 2)))
    return 0 if filled.size == 0 else int(filled[-1] - filled[0] + 1 - filled.size)


def brain_mask(volume: np.ndarray, extract: Extractor, margin: int = FLAIR_MARGIN_PX) -> tuple[np.ndarray, dict]:
    """The brain mask of one patient and its QC numbers."""
    t1, flair = volume[..., CHANNELS["t1"]], volume[..., CHANNELS["flair"]]
    m_flair = extract(flair)
    m_t1 = m_flair if np.array_equal(t1, flair) else extract(t1)
    mask = postprocess(combine(m_t1, m_flair, margin))
    nonzero = flair > 0
    qc = {
        "slices": int(mask.shape[0]),
        "brain_voxels": int(mask.sum()),
        "flair_cov": float((mask & nonzero).sum() / max(1, nonzero.sum())),
        "dice_t1_flair": dice(m_t1, m_flair),
        "gaps": empty_gaps(mask),
        "t1_is_flair": bool(m_t1 is m_flair),
    }
    return mask, qc


def read_cache(path: Path | None, meta: dict) -> tuple[np.ndarray, dict] | None:
    """A patient's ``(mask, qc)`` from the cache when it was made with the same settings."""
    if path is None or not path.exists():
        return None
    with np.load(path) as entry:
        if str(entry["meta"]) != json.dumps(meta):
            return None
        return entry["mask"], json.loads(str(entry["qc"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="the kaggle_3m folder")
    parser.add_argument("--out", required=True, type=Path, help="the .npz to write")
    parser.add_argument("--patients", type=Path, default=DEFAULT_PATIENT_LIST, help="patient list file")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache", type=Path, help="folder for per-patient results, to resume a stopped run")
    parser.add_argument(
        "--flair-margin",
        type=int,
        default=FLAIR_MARGIN_PX,
        help="px the FLAIR mask may add around the T1 mask; < 0: no limit",
    )
    args = parser.parse_args(argv)

    import deepbet.utils
    import torch
    from importlib.metadata import version

    extract = Extractor(args.threads)
    meta = {
        "tool": "deepbet",
        "deepbet": version("deepbet"),
        "torch": torch.__version__,
        "models": sorted(p.name for p in Path(deepbet.utils.DATA_PATH, "models").glob("*.pt")),
        "channels": "deepbet on channel 0 (T1) plus deepbet on channel 1 (FLAIR) within flair_margin_px of it",
        "flair_margin_px": args.flair_margin,
        "voxel_mm": [SLICE_MM, 1.0, 1.0],
        "z_upsample": UPSAMPLE,
        "threshold": THRESHOLD,
        "postprocess": "2D hole filling per slice, largest 3D connected component",
        "slice_order": "monai_core.data.find_slices",
    }
    patients = read_patient_list(args.patients)
    masks, flagged, start = {}, [], time.time()
    print("patient slices brain_voxels flair_cov dice_t1_flair gaps flag", flush=True)
    for patient in patients:
        cached = None if args.cache is None else args.cache / f"{patient}.npz"
        found = read_cache(cached, meta)
        if found is None:
            found = brain_mask(load_volume(args.data / patient), extract, args.flair_margin)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                mask, qc = found
                np.savez_compressed(cached, mask=mask, qc=np.array(json.dumps(qc)), meta=np.array(json.dumps(meta)))
        mask, qc = found
        masks[patient] = mask
        flag = []
        if qc["gaps"]:
            flag.append("GAP")
        if not qc["t1_is_flair"] and qc["dice_t1_flair"] < 0.95:
            flag.append("DISAGREE")
        if flag:
            flagged.append(patient)
        print(
            f"{patient} {qc['slices']} {qc['brain_voxels']} {qc['flair_cov']:.3f} {qc['dice_t1_flair']:.3f}"
            f"{'(same)' if qc['t1_is_flair'] else ''} {qc['gaps']} {','.join(flag)}",
            flush=True,
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **pack_brain_masks(masks), **{META_KEY: np.array(json.dumps(meta))})
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), {len(masks)} patients in "
        f"{time.time() - start:.0f} s; flagged: {', '.join(flagged) or 'none'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
