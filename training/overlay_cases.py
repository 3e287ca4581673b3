"""Overlay figure of out-of-fold predictions: FLAIR with the reference mask (green) and the final mask (red).

One row per patient, one tile per chosen slice (0-based), from the cache that
``training/out_of_fold.py predict`` writes. The final mask here is gate 0.05 and mask 0.6, without the
clean-up: the figure shows where the networks see tumour, before any rule removes it.

    python training/overlay_cases.py --data DATA/kaggle_3m --cache runs/cv_b/oof/folds --out figure.png \\
        TCGA_CS_5395_19981004:4,6,10,12 TCGA_CS_6665_20010817:9,13,15,18
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from monai_core.data.lgg import find_slices  # noqa: E402

GATE, MASK = 0.05, 0.6


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` that touch a pixel outside it."""
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def patient_row(data: Path, cache: Path, patient: str, slices: list[int]) -> np.ndarray:
    with np.load(cache / f"{patient}.npz") as f:
        probability, truth, slice_probability = f["tumour_probability"].astype(np.float32), f["truth"].astype(bool), f["slice_probability"]
    files = find_slices(data / patient)
    tiles = []
    for z in slices:
        flair = np.asarray(Image.open(files[z][1]))[..., 1]
        rgb = np.stack([flair] * 3, -1).copy()
        rgb[outline(truth[z])] = (0, 255, 0)
        rgb[outline((probability[z] > MASK) & (slice_probability[z] > GATE))] = (255, 0, 0)
        tiles.append(rgb)
    return np.concatenate(tiles, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("rows", nargs="+", help="PATIENT:z,z,z")
    args = parser.parse_args(argv)
    rows = []
    for row in args.rows:
        patient, slices = row.split(":")
        rows.append(patient_row(args.data, args.cache, patient, [int(z) for z in slices.split(",")]))
    widths = {r.shape[1] for r in rows}
    if len(widths) != 1:
        raise SystemExit("error: give every patient the same number of slices")
    tmp = args.out.with_suffix(".tmp.png")
    Image.fromarray(np.concatenate(rows, 0)).save(tmp, optimize=True)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
