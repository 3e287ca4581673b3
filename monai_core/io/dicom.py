"""Reading one DICOM MR series into a SimpleITK image, with its geometry from highdicom.

The engine needs two things from a DICOM series: a SimpleITK image whose geometry comes from
ImagePositionPatient/ImageOrientationPatient, and the source datasets in the same slice order,
because a DICOM-SEG must reference the exact instances (and frames) it was derived from.
highdicom (``get_volume_positions``, ``get_volume_from_series``, ``Image.get_volume``) sorts the
planes, checks that they form a regular volume, applies the modality rescale and builds the
affine. What highdicom refuses with a generic error (a missing slice, a gantry tilt, mixed
orientations, a pixel decoder failure) is explained here in one line that names the problem.

Error messages name the folder or file and the problem, never patient-identifying tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import InputError
from .common import IDENTITY_TAGS, MAX_VOXELS
from .dicom_headers import SeriesInfo, list_series, listing

__all__ = ["DicomSeries", "Slice", "read_series", "sorted_slices"]

# Slice spacing may vary by this fraction of the median spacing (scanner rounding) before a
# series is called irregular; a missing slice doubles one gap and is far above it.
_SPACING_RTOL = 0.01
# Positions closer than this (mm) along the normal are the same slice.
_DUPLICATE_TOL_MM = 1e-3
# Orientation cosines of different slices may differ by this much.
_ORIENTATION_ATOL = 1e-4
# Slices ordered along the normal row direction x column direction: z of the SimpleITK image.
_ALONG_NORMAL = dict(index_convention="RD", handedness="RIGHT_HANDED")


@dataclass
class Slice:
    """One 2D plane of a series: a single-frame dataset, or one frame of a multi-frame one."""

    dataset: Dataset
    frame: int | None  # 0-based frame index in a multi-frame dataset, None for single-frame
    position: np.ndarray  # ImagePositionPatient of the plane (mm)


@dataclass
class DicomSeries:
    """A DICOM series read as a 3D volume.

    ``image`` is a SimpleITK image whose z axis runs along the slice normal
    (row direction x column direction), and ``datasets`` are the source datasets in that z order
    (one dataset for an enhanced multi-frame series; ``frames`` then gives the frame index of each
    z slice, and is None for single-frame series).
    """

    image: sitk.Image
    datasets: list[Dataset]
    series_uid: str
    frames: list[int] | None = field(default=None)


def read_series(source, series_uid: str | None = None) -> DicomSeries:
    """Read one MR series from a folder (or a list of files) into a SimpleITK image and its sorted datasets.

    ``series_uid`` chooses among several series; without it the files must hold exactly one.
    Every problem that makes the geometry or pixels untrustworthy is an InputError.
    """
    where = Path(source) if isinstance(source, (str, os.PathLike)) else _common_folder(source)
    try:
        return _read_series(source, where, series_uid)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as error:
        # a header value of the wrong type or multiplicity (a single number where six are needed,
        # text in a number): the series is malformed. The value itself is not shown (patient data).
        raise InputError(where, f"malformed DICOM headers ({type(error).__name__})") from None


def _common_folder(files) -> Path:
    files = [Path(f) for f in files]
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")


def _read_series(source, where: Path, series_uid: str | None) -> DicomSeries:
    info = _choose_series(source, where, series_uid)
    if info.modality != "MR":
        raise InputError(where, f"series {info.series_uid} has modality {info.modality or 'unknown'}; "
                         f"TumorSeg needs MR images")
    datasets = [_read_full(path) for path in info.files]
    slices = sorted_slices(datasets, where)
    _check_size(slices, where)
    image = _image(datasets, slices, where)
    multi_frame = slices[0].frame is not None
    for tag, keyword in IDENTITY_TAGS.items():  # so that the report names the patient and study it belongs to
        image.SetMetaData(tag, str(getattr(slices[0].dataset, keyword, "") or ""))
    return DicomSeries(
        image=image,
        datasets=datasets if multi_frame else [s.dataset for s in slices],
        series_uid=info.series_uid,
        frames=[s.frame for s in slices] if multi_frame else None,
    )


def _choose_series(source, where: Path, series_uid: str | None) -> SeriesInfo:
    series = list_series(source)
    if not series:
        raise InputError(where, "no DICOM files found")
    if series_uid is not None:
        for info in series:
            if info.series_uid == series_uid:
                return info
        raise InputError(where, f"series {series_uid} not found; series here: {listing(series)}")
    if len(series) > 1:
        raise InputError(where, f"holds {len(series)} series: {listing(series)}; "
                         f"choose one by its SeriesInstanceUID or give a folder with one series")
    return series[0]


def _read_full(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # a file that was readable as a header but not in full
        raise InputError(path, f"cannot be read as DICOM: {error}") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(path, "has no pixel data")
    return ds


# --------------------------------------------------------------------------- slice order


def sorted_slices(datasets, where=None) -> list[Slice]:
    """The planes of ``datasets`` sorted along the slice normal (row x column direction).

    This is the one place that defines slice order: :func:`read_series` builds the image in it
    and the DICOM-SEG writer maps mask slices to source instances with it. The order is
    highdicom's (``get_volume_positions``); a set of planes that is not a regular volume (one
    orientation, one pixel grid, evenly spaced along the normal) is refused with the reason.
    """
    where = where or "DICOM series"
    planes = [plane for ds in datasets for plane in _planes(ds, where)]
    if not planes:
        raise InputError(where, "no image planes found")
    orientation = _orientation(planes[0].dataset, planes[0].frame, where)
    if not np.all(np.isfinite(orientation)) or np.linalg.norm(np.cross(orientation[:3], orientation[3:])) < 1e-3:
        raise InputError(where, "ImageOrientationPatient is not a valid pair of directions")
    for plane in planes[1:]:
        if not np.allclose(orientation, _orientation(plane.dataset, plane.frame, where), atol=_ORIENTATION_ATOL):
            raise InputError(where, "slices have different ImageOrientationPatient (a localizer or mixed stacks?)")
    _check_same_grid(planes, where)
    if len(planes) == 1:
        return planes
    if not all(np.all(np.isfinite(p.position)) for p in planes):
        raise InputError(where, "ImagePositionPatient holds values that are not finite")
    import highdicom as hd  # here, not at the top: a NIfTI detect never pays its 0.2 s import

    spacing, indices = hd.spatial.get_volume_positions(
        [p.position for p in planes], orientation, rtol=_SPACING_RTOL, **_ALONG_NORMAL)
    if spacing is None:
        raise InputError(where, _why_not_a_volume(planes, orientation))
    return [planes[i] for i in np.argsort(indices, kind="stable")]


def _why_not_a_volume(planes: list[Slice], orientation: np.ndarray) -> str:
    """Why highdicom found no regular volume: duplicates, a tilted stack, or uneven gaps."""
    normal = np.cross(orientation[:3], orientation[3:])
    distances = np.array([float(np.dot(p.position, normal)) for p in planes])
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order])
    if gaps.min() < _DUPLICATE_TOL_MM:
        return (f"two slices share the position {distances[order][int(np.argmin(gaps))]:.3f} mm along the normal "
                f"(duplicate slices, or several stacks/echoes/time points in one series)")
    step = planes[order[-1]].position - planes[order[0]].position
    along = float(np.dot(step, normal))
    if np.linalg.norm(step - along * normal) > _SPACING_RTOL * abs(along):
        return "slice positions are not along the slice normal (a gantry tilt, or a sheared stack)"
    return (f"slice spacing is irregular (gaps from {gaps.min():.3f} to {gaps.max():.3f} mm): "
            f"missing slices or an incomplete series")


def _planes(ds: Dataset, where) -> list[Slice]:
    """The planes of one dataset: itself, or each frame of an enhanced multi-frame image."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" in ds:
        if len(ds.PerFrameFunctionalGroupsSequence) != n_frames:
            raise InputError(where, f"{_name(ds)} declares {n_frames} frames but describes "
                             f"{len(ds.PerFrameFunctionalGroupsSequence)}")
        return [Slice(ds, i, _frame_position(ds, i, where)) for i in range(n_frames)]
    if n_frames > 1:
        raise InputError(where, f"multi-frame file {_name(ds)} has no per-frame geometry (not an enhanced image)")
    if "ImagePositionPatient" not in ds:
        raise InputError(where, f"file {_name(ds)} has no ImagePositionPatient")
    return [Slice(ds, None, np.array(ds.ImagePositionPatient, dtype=float))]


def _functional_item(ds: Dataset, frame: int, sequence: str):
    """The item of a functional-group macro for one frame, per-frame first, then shared."""
    per_frame = ds.PerFrameFunctionalGroupsSequence[frame]
    if sequence in per_frame:
        return per_frame[sequence][0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        return shared[0][sequence][0]
    return None


def _frame_position(ds: Dataset, frame: int, where) -> np.ndarray:
    item = _functional_item(ds, frame, "PlanePositionSequence")
    if item is None or "ImagePositionPatient" not in item:
        raise InputError(where, f"frame {frame + 1} of {_name(ds)} has no ImagePositionPatient")
    return np.array(item.ImagePositionPatient, dtype=float)


def _orientation(ds: Dataset, frame: int | None, where) -> np.ndarray:
    if frame is None:
        value = ds.get("ImageOrientationPatient")
    else:
        item = _functional_item(ds, frame, "PlaneOrientationSequence")
        value = None if item is None else item.get("ImageOrientationPatient")
    if value is None or len(value) != 6:
        raise InputError(where, f"file {_name(ds)} has no ImageOrientationPatient")
    cosines = np.array(value, dtype=float)
    return np.concatenate([cosines[:3] / np.linalg.norm(cosines[:3]), cosines[3:] / np.linalg.norm(cosines[3:])])


def _pixel_spacing(ds: Dataset, frame: int | None, where) -> tuple[float, float]:
    """(row spacing, column spacing) in mm."""
    source = ds if frame is None else _functional_item(ds, frame, "PixelMeasuresSequence")
    value = None if source is None else source.get("PixelSpacing")
    if value is None or len(value) != 2:
        raise InputError(where, f"file {_name(ds)} has no PixelSpacing")
    spacing = float(value[0]), float(value[1])
    if not all(np.isfinite(v) and v > 0 for v in spacing):
        raise InputError(where, f"invalid PixelSpacing {spacing} in {_name(ds)}")
    return spacing


def _check_same_grid(planes: list[Slice], where) -> None:
    first = planes[0]
    shape = (first.dataset.Rows, first.dataset.Columns)
    spacing = _pixel_spacing(first.dataset, first.frame, where)
    for plane in planes[1:]:
        if (plane.dataset.Rows, plane.dataset.Columns) != shape:
            raise InputError(where, "slices have different numbers of rows and columns")
        if not np.allclose(_pixel_spacing(plane.dataset, plane.frame, where), spacing, rtol=1e-4):
            raise InputError(where, "slices have different PixelSpacing")


def _check_size(slices: list[Slice], where) -> None:
    """Refuse a series that declares more voxels than any MR volume, before decoding allocates them."""
    ds = slices[0].dataset
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * columns * len(slices) > MAX_VOXELS:
        raise InputError(where, f"declares {columns}x{rows}x{len(slices)} voxels, more than any MR volume")


# --------------------------------------------------------------------------- voxels


def _image(datasets: list[Dataset], slices: list[Slice], where) -> sitk.Image:
    """The voxels (modality rescale applied) and geometry of highdicom's volume, as a SimpleITK image.

    highdicom indexes (slice, row, column); SimpleITK's x is the column, so the axes are reversed
    and the slice axis turned to run along row x column direction, the order of :func:`sorted_slices`.
    """
    import highdicom as hd  # imported where used (see sorted_slices)

    options = dict(dtype=np.float32, apply_real_world_transform=False, rtol=_SPACING_RTOL)
    try:
        if slices[0].frame is None:
            volume = hd.get_volume_from_series(datasets, orientation_tol=_ORIENTATION_ATOL, **options)
        else:
            volume = hd.Image.from_dataset(datasets[0], copy=False).get_volume(**options)
    except Exception as error:  # noqa: BLE001 - decoders and highdicom raise many types
        _explain_decoding(datasets, where)
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(where, f"cannot be read as a volume by highdicom: {text}") from None
    if volume.array.ndim != 3:
        raise InputError(where, "only single-channel (greyscale) images are supported")
    if not np.all(np.isfinite(volume.array)):
        raise InputError(where, "RescaleSlope/RescaleIntercept put intensities beyond the range of 32-bit floats")
    volume = volume.permute_spatial_axes((2, 1, 0))
    if np.dot(volume.direction[:, 2], slices[-1].position - slices[0].position) < 0:
        volume = volume.flip_spatial(2)
    image = volume.to_simpleitk()
    if not np.allclose(image.GetOrigin(), slices[0].position, atol=1e-3):
        raise AssertionError(f"{where}: highdicom's slice order differs from sorted_slices'")
    return image


def _explain_decoding(datasets: list[Dataset], where) -> None:
    """Raise the InputError of the first dataset whose pixels cannot be decoded, naming its file.

    Datasets decoded before are cached by pydicom, so only the failing one is decoded again.
    """
    for ds in datasets:
        try:
            ds.pixel_array
        except Exception as error:  # noqa: BLE001 - pydicom raises several types for missing or failing decoders
            syntax = ds.file_meta.get("TransferSyntaxUID")
            name = getattr(syntax, "name", syntax) or "unknown"
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(where, f"cannot decode pixel data of {_name(ds)} (transfer syntax {name}): {reason}") from None


def _name(ds: Dataset) -> str:
    """A file's base name for messages (the path is in the error already; no patient tags)."""
    filename = getattr(ds, "filename", None)
    return os.path.basename(filename) if isinstance(filename, str) and filename else "(in memory)"
