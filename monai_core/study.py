"""Load a study into the model's slice space, remembering how to map results back.

A study is either scanner volumes (FLAIR required, T1 and T1c optional; NIfTI, NRRD or DICOM
series) or a Kaggle-layout folder of ``.tif`` slices that are already in model space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .checks import geometry_warnings, head_mask, registration_warning, sequence_warnings, skull_and_scalp_visible
from .io.volumes import read_source, series_identity
from .runtime import release_freed_memory
from .preprocess import (
    MODEL_SIZE,
    TRAINING_ORIENTATION,
    from_model_space,
    intensity_window,
    model_grid,
    register_rigid_all,
    to_model_space,
)

if TYPE_CHECKING:  # pydicom is imported only when a DICOM series is read (io.volumes)
    from .io.dicom import DicomSeries
    from .series_choice import StudyChoice

__all__ = ["Study", "load_volumes", "load_kaggle_case", "is_kaggle_case"]


@dataclass
class Study:
    """Model-space slices of one case and the geometry to map results back.

    ``flair`` is the output grid: the FLAIR volume, or ``None`` for a Kaggle folder, whose
    output grid is the slice stack itself.
    """

    case_id: str
    slices: np.ndarray  # (N, 3, 256, 256) float32 in [0, 1]
    inputs: dict
    flair: sitk.Image | None = None
    grid: sitk.Image | None = None
    timing: dict = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)  # input checks (monai_core.checks)
    flair_series: DicomSeries | None = None  # a DICOM FLAIR's sorted datasets, for DICOM-SEG and SR
    # the content digest of what the study was read from (monai_core.study_cache.study_key): set by the
    # warm engine's StudyCache, which keys its memory of results by it; None when not known
    source_digest: str | None = None

    def mask_on_input_grid(self, probability: np.ndarray, threshold: float) -> np.ndarray | sitk.Image:
        """Threshold model-space probabilities and map them onto the output grid."""
        if self.flair is None:
            return (probability >= threshold).astype(np.uint8)
        return from_model_space(probability, self.grid, self.flair, threshold)

    def pixels_per_slice(self, mask) -> list[int]:
        """Tumour pixels in each analysed axial slice (the model grid's slices)."""
        if self.flair is None:
            return [int(m.sum()) for m in mask]
        oriented = sitk.GetArrayFromImage(sitk.DICOMOrient(mask, TRAINING_ORIENTATION))
        return [int(s.sum()) for s in oriented]

    def voxel_ml(self) -> float | None:
        """Volume of one output voxel in mL, or None when the spacing is unknown (Kaggle slices)."""
        return None if self.flair is None else float(np.prod(self.flair.GetSpacing())) / 1000.0


def is_kaggle_case(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and any(path.glob("*_1.tif"))


def load_kaggle_case(case_dir: str | Path, case_id: str | None = None) -> Study:
    """A Kaggle-layout patient folder: ``<case>_<n>.tif`` slices, channels T1, FLAIR, T1c."""
    from PIL import Image

    from .data.lgg import find_slices

    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise InputError(case_dir, "no such folder")
    try:
        files = find_slices(case_dir)
    except ValueError as error:
        raise InputError(case_dir, str(error).split(": ", 1)[-1]) from None
    slices = []
    for _, image_path, _ in files:
        try:
            array = np.asarray(Image.open(image_path))
        except Exception as error:
            raise InputError(image_path, f"cannot read the slice ({type(error).__name__})") from None
        if array.shape != (MODEL_SIZE, MODEL_SIZE, 3):
            raise InputError(image_path, f"slice has shape {array.shape}, expected (256, 256, 3)")
        slices.append(array.transpose(2, 0, 1))
    stack = np.stack(slices).astype(np.float32) / 255.0
    # the data set put the FLAIR in place of a missing sequence
    channels = {"flair": stack[:, 1]}
    channels.update({name: stack[:, c] for name, c in (("t1", 0), ("t1c", 2)) if not np.array_equal(stack[:, c], stack[:, 1])})
    warnings = sequence_warnings(channels)
    inputs = {"kaggle": str(case_dir), "flair": None, "t1": None, "t1c": None}
    return Study(case_id or case_dir.name, stack, inputs, warnings=warnings)


def load_volumes(
    flair: str | Path,
    t1: str | Path | None = None,
    t1c: str | Path | None = None,
    case_id: str | None = None,
    progress: Callable[[str, float, str], None] | None = None,
    series_uids: dict[str, str] | None = None,
    choice: StudyChoice | None = None,
) -> Study:
    """Scanner volumes: T1 and T1c are registered to the FLAIR; all go onto the FLAIR's model grid.

    ``series_uids`` maps "flair", "t1", "t1c" to the SeriesInstanceUID to read when the path is a
    DICOM folder holding several series. ``choice`` (from :func:`monai_core.series_choice.choose_series`)
    gives a whole study's series instead: each is read from its own files, and report.json
    records why it was chosen. Each series is decoded once; the FLAIR's datasets stay on the
    Study for a DICOM-SEG.
    """
    import time

    progress = progress or (lambda *a: None)
    uids = dict(series_uids or {})
    sources = {"flair": flair, "t1": t1, "t1c": t1c}
    if choice is not None:
        uids = choice.uids()
        sources = {role: choice[role].files if choice[role] else None for role in sources}
        flair, t1, t1c = (choice.root if sources[role] else None for role in ("flair", "t1", "t1c"))
    timing = {}
    start = time.perf_counter()
    progress("load", 0.0, f"reading {Path(flair).name}")
    flair_image, flair_series = read_source(sources["flair"], uids.get("flair"))
    others = {name: read_source(sources[name], uids.get(name))[0] for name in ("t1", "t1c") if sources[name]}
    timing["read_s"] = time.perf_counter() - start

    grid = model_grid(flair_image)
    flair_channel = intensity_window(to_model_space(flair_image, grid))
    channels = {"flair": flair_channel}
    flair_stripped = not skull_and_scalp_visible(flair_image)
    warnings = geometry_warnings(flair_image)
    head = head_mask(flair_image) if others else None  # one FLAIR head for every sequence's registration check
    start = time.perf_counter()
    if others:
        progress("register", 0.0, f"registering {' and '.join(others)} to the FLAIR")
    misfits, registered = {}, {}

    def check_and_resample(name, transform):  # in the registration's own worker, as soon as it ends
        misfits[name] = registration_warning(name, flair_image, others[name], transform, flair_stripped, head)
        registered[name] = intensity_window(to_model_space(others[name], grid, transform))

    register_rigid_all(flair_image, others, {"t1": t1, "t1c": t1c}, then=check_and_resample)  # side by side, one per core
    for name in others:  # in a fixed order, whichever registration ended first
        warnings += [misfits[name]] if misfits[name] else []
        channels[name] = registered[name]
    timing["register_s"] = time.perf_counter() - start
    release_freed_memory()  # the read's and registrations' freed buffers must not lie under the networks' peak
    warnings += sequence_warnings(channels, flair_stripped)
    # a missing sequence is replaced by FLAIR, as in the training data
    stack = np.stack([channels.get("t1", flair_channel), flair_channel, channels.get("t1c", flair_channel)], axis=1)
    # absolute (links kept as given), so that tumorseg compare finds the FLAIR again from any working folder
    inputs = {name: str(Path(path).absolute()) if path else None for name, path in (("flair", flair), ("t1", t1), ("t1c", t1c))}
    if uids:
        inputs["series_uids"] = {name: uids.get(name) for name in ("flair", "t1", "t1c")}
    if choice is not None:
        inputs["series_choice"] = choice.report()
    identity = series_identity(flair_image)
    if identity:
        inputs["dicom"] = identity  # the FLAIR's patient and study: DICOM-SEG and PACS need them
    name = case_id or _case_name(Path(flair))
    return Study(name, np.ascontiguousarray(stack), inputs, flair_image, grid, timing, warnings, flair_series)


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
