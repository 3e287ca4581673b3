"""Reading DICOM MR series and choosing the FLAIR/T1/T1c series of a study.

The engine needs two things from a DICOM series: a SimpleITK image whose geometry comes from
ImagePositionPatient/ImageOrientationPatient, and the source datasets in the same slice order,
because a DICOM-SEG must reference the exact instances (and frames) it was derived from.
Both come from one sort (:func:`sorted_slices`) so that they cannot disagree.

Error messages name the folder or file and the problem, never patient-identifying tags.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_rescale
from pydicom.valuerep import TM

from ..errors import InputError
from .volumes import IDENTITY_TAGS

__all__ = [
    "SeriesInfo",
    "SeriesUids",
    "DicomSeries",
    "Slice",
    "SERIES_PATTERNS",
    "list_series",
    "read_series",
    "select_series",
    "series_choice",
    "series_role",
    "sorted_slices",
]

# Media Storage Directory (DICOMDIR): an index of files, not an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Slice spacing may vary by this fraction of the median spacing (scanner rounding) before a
# series is called irregular; a missing slice doubles one gap and is far above it.
_SPACING_RTOL = 0.01
# Positions closer than this (mm) along the normal are the same slice.
_DUPLICATE_TOL_MM = 1e-3
# Orientation cosines of different slices may differ by this much.
_ORIENTATION_ATOL = 1e-4

# Regular expressions (case-insensitive, searched in SeriesDescription and ProtocolName) that pick
# the series of a study. Roles are tried in this order and a series taken by an earlier role is
# not a candidate for a later one, so "T1 post" is never also a pre-contrast T1 and "T2 FLAIR" is
# never a T1. Callers may pass their own dict with the same keys to ``select_series``.
_T1_WORD = r"(?<![a-z0-9])t1(?![0-9])"  # "T1", "AX_T1_POST", not "T10"
_T1 = rf"{_T1_WORD}|mprage|mp-rage|spgr|bravo"
_CONTRAST = r"post|\+|(?<![a-z])gd(?![a-z])|gad|contrast|(?<![a-z])ce(?![a-z])"  # "+C", "C+", "Gd", "CE"
SERIES_PATTERNS: dict[str, str] = {
    # T2 FLAIR; a "T1 FLAIR" is T1-weighted and falls through to the T1 roles.
    "flair": rf"^(?!.*{_T1_WORD}).*(flair|dark[\s_-]*fluid|(?<![a-z])tirm(?![a-z]))",
    "t1c": rf"({_T1}).*({_CONTRAST})|({_CONTRAST}).*({_T1})",
    "t1": _T1,
}
_ROLE_OPTIONS = {"flair": "--flair-series", "t1": "--t1-series", "t1c": "--t1c-series"}


@dataclass
class SeriesInfo:
    """One series found in a folder, from headers only."""

    series_uid: str
    description: str
    protocol: str
    modality: str
    n_files: int
    files: list[Path]
    series_number: int | None = None
    n_frames: int = 0  # slices: files, or the frames of a multi-frame file
    start_s: float | None = None  # earliest AcquisitionTime (else SeriesTime), seconds after midnight
    reason: str = ""  # why select_series chose it, for the report and the console

    def summary(self) -> str:
        """One-line listing for messages: UID, description and slice count (no patient tags)."""
        text = self.description or self.protocol or "no description"
        return f"{self.series_uid} ({text!r}, {self.modality or '?'}, {self.n_frames} slices)"


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


# --------------------------------------------------------------------------- listing series


def _read_header(path: Path) -> Dataset | None:
    """The header of a DICOM file, or None for anything that is not a DICOM image file."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
        return None
    if ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_SOP_CLASS:
        return None
    if "SeriesInstanceUID" not in ds:
        return None
    return ds


def _walk_files(folder: Path):
    """All regular files under ``folder``, in a stable order."""
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield Path(root) / name


def list_series(folder) -> list[SeriesInfo]:
    """Every DICOM series under ``folder`` (recursive), read from headers only.

    Non-DICOM files (READMEs, DICOMDIR, thumbnails) are skipped silently. Series are ordered by
    SeriesNumber, then UID, the order a DICOM browser shows them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    files: dict[str, list[Path]] = defaultdict(list)
    first: dict[str, Dataset] = {}
    frames: dict[str, int] = defaultdict(int)
    starts: dict[str, list[float]] = defaultdict(list)
    for path in _walk_files(folder):
        ds = _read_header(path)
        if ds is None:
            continue
        uid = str(ds.SeriesInstanceUID)
        files[uid].append(path)
        first.setdefault(uid, ds)
        frames[uid] += int(ds.get("NumberOfFrames", 1) or 1)
        start = _seconds(ds.get("AcquisitionTime"))
        start = _seconds(ds.get("SeriesTime")) if start is None else start
        if start is not None:
            starts[uid].append(start)
    infos = [_series_info(uid, first[uid], sorted(paths), frames[uid], min(starts[uid], default=None))
             for uid, paths in files.items()]
    return sorted(infos, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))


def _seconds(value) -> float | None:
    """A DICOM TM value ("HHMMSS.FFFFFF", or the old "HH:MM:SS") as seconds after midnight, or None."""
    text = str(value or "").replace(":", "").strip()
    try:
        time = TM(text) if text else None
    except ValueError:
        return None
    return None if time is None else time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6


def _series_info(uid: str, ds: Dataset, files: list[Path], n_frames: int, start_s: float | None = None) -> SeriesInfo:
    number = ds.get("SeriesNumber")
    return SeriesInfo(
        series_uid=uid,
        description=str(ds.get("SeriesDescription", "") or ""),
        protocol=str(ds.get("ProtocolName", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        n_files=len(files),
        files=files,
        series_number=None if number in (None, "") else int(number),
        n_frames=n_frames,
        start_s=start_s,
    )


# --------------------------------------------------------------------------- choosing series


def select_series(study_dir, flair=None, t1=None, t1c=None, patterns=None) -> dict[str, SeriesInfo | None]:
    """Pick the FLAIR, pre-contrast T1 and post-contrast T1 series of a study folder.

    ``flair``, ``t1`` and ``t1c`` are SeriesInstanceUIDs that override the matching. Otherwise a
    series is matched by ``patterns`` (default :data:`SERIES_PATTERNS`) against its
    SeriesDescription and ProtocolName. Several matches for one role that share one description
    are repeats of one protocol (Philips names pre- and post-contrast T1 alike) and are told
    apart by acquisition order (:func:`_repeats_of_one_protocol`); several matches with different
    descriptions are ambiguous and raise an InputError listing the candidates; so does a study
    without FLAIR. T1 and T1c may be missing. Each chosen series' ``reason`` says why it was chosen.
    """
    study_dir = Path(study_dir)
    patterns = {**SERIES_PATTERNS, **(patterns or {})}
    series = [s for s in list_series(study_dir) if s.modality in ("MR", "")]
    if not series:
        raise InputError(study_dir, "no DICOM MR series found")
    chosen = _overrides(study_dir, series, {"flair": flair, "t1": t1, "t1c": t1c})
    taken = {s.series_uid for s in chosen.values() if s is not None}
    roles = {s.series_uid: series_role(s.description, s.protocol, patterns) for s in series}
    for role in ("flair", "t1c", "t1"):
        if role in chosen:
            continue
        candidates = [s for s in series if s.series_uid not in taken and roles[s.series_uid] == role]
        chosen.update(_match(study_dir, role, candidates, t1c_found=chosen.get("t1c") is not None))
    if chosen["flair"] is None:
        raise InputError(study_dir, f"no FLAIR series found among: {_listing(series)}; "
                         f"choose one with --flair-series UID")
    return {role: chosen[role] for role in ("flair", "t1", "t1c")}


def _overrides(study_dir: Path, series: list[SeriesInfo], uids: dict) -> dict[str, SeriesInfo]:
    """The series the caller chose by SeriesInstanceUID, checked to be MR series of the study."""
    by_uid = {s.series_uid: s for s in series}
    chosen = {}
    for role, uid in uids.items():
        if uid is None:
            continue
        if uid not in by_uid:
            raise InputError(study_dir, f"{_ROLE_OPTIONS[role]} {uid} is not an MR series here; "
                             f"series found: {_listing(series)}")
        chosen[role] = _because(by_uid[uid], f"given with {_ROLE_OPTIONS[role]}")
    return chosen


def _match(study_dir: Path, role: str, candidates: list[SeriesInfo], t1c_found: bool) -> dict:
    """{role: series or None} among its candidates; two same-named T1s without a T1c give T1 and T1c."""
    if not candidates:
        return {role: None}
    if len(candidates) == 1:
        return {role: _because(candidates[0], f"the only series that looks like {role.upper()}")}
    ordered = _repeats_of_one_protocol(candidates)
    if ordered is None:
        raise InputError(study_dir, f"several series look like {role.upper()}: {_listing(candidates)}; "
                         f"choose one with {_ROLE_OPTIONS[role]} UID")
    if role == "t1" and not t1c_found and len(ordered) == 2:
        # without contrast in the name, the scan repeated after the others is the post-contrast one
        return {"t1": _because(ordered[0], "the earlier of two same-named series, taken as pre-contrast"),
                "t1c": _because(ordered[1], "the later of two same-named series, taken as post-contrast")}
    return {role: _because(ordered[0], f"the earliest of {len(ordered)} same-named series")}


def _repeats_of_one_protocol(candidates: list[SeriesInfo]) -> list[SeriesInfo] | None:
    """Candidates in acquisition order (SeriesNumber, then start time) when they share one name.

    None when their names differ, or when number and time cannot order them: then the choice is
    the user's.
    """
    if len({(s.description or s.protocol).strip().casefold() for s in candidates}) != 1:
        return None
    keys = [(s.series_number is None, s.series_number or 0, s.start_s is None, s.start_s or 0.0) for s in candidates]
    if len(set(keys)) != len(keys):
        return None
    return [s for _, s in sorted(zip(keys, candidates), key=lambda pair: pair[0])]


def _because(info: SeriesInfo, why: str) -> SeriesInfo:
    """A copy of ``info`` whose reason names its description and number, then ``why``."""
    name = f"description {info.description!r}" if info.description else f"protocol {info.protocol!r}"
    number = f"series {info.series_number}" if info.series_number is not None else f"series {info.series_uid}"
    return replace(info, reason=f"{name}, {number}: {why}")


class SeriesUids(dict):
    """{role: SeriesInstanceUID}, the ``series_uids`` that detect takes, plus ``choice``.

    ``choice`` (from :func:`series_choice`) rides along the existing series_uids path so that
    report.json can record why each series was chosen without a new argument everywhere.
    """

    def __init__(self, uids: dict[str, str], choice: dict | None = None):
        super().__init__(uids)
        self.choice = choice


def series_choice(chosen: dict[str, SeriesInfo | None]) -> dict[str, dict]:
    """{role: {series_uid, series_number, description, reason}} of a :func:`select_series` result.

    A missing T1 or T1c gets null identifiers and a reason saying FLAIR stands in for it.
    """
    return {
        role: {
            "series_uid": info.series_uid if info else None,
            "series_number": info.series_number if info else None,
            "description": (info.description or info.protocol) if info else None,
            "reason": info.reason if info else f"no series looks like {role.upper()}; replaced by FLAIR",
        }
        for role, info in chosen.items()
    }


def series_role(description: str, protocol: str = "", patterns=None) -> str | None:
    """"flair", "t1c", "t1" or None for a series with this SeriesDescription and ProtocolName.

    Roles are tried in that order, so "T2 FLAIR" is never a T1 and "T1 post" never a plain T1.
    """
    patterns = {**SERIES_PATTERNS, **(patterns or {})}
    for role in ("flair", "t1c", "t1"):
        regex = re.compile(patterns[role], re.IGNORECASE)
        if regex.search(description or "") or regex.search(protocol or ""):
            return role
    return None


def _listing(series: list[SeriesInfo], limit: int = 20) -> str:
    """The series for a one-line message, cut short for studies with very many series."""
    text = "; ".join(s.summary() for s in series[:limit])
    return text + (f"; ... and {len(series) - limit} more" if len(series) > limit else "")


# --------------------------------------------------------------------------- reading a series



def read_series(folder, series_uid: str | None = None) -> DicomSeries:
    """Read one MR series from ``folder`` into a SimpleITK image and its sorted source datasets.

    ``series_uid`` chooses among several series in the folder; without it the folder must hold
    exactly one. Every problem that makes the geometry or pixels untrustworthy is an InputError.
    """
    folder = Path(folder)
    try:
        return _read_series(folder, series_uid)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as error:
        # a header value of the wrong type or multiplicity (a single number where six are needed,
        # text in a number): the series is malformed. The value itself is not shown (patient data).
        raise InputError(folder, f"malformed DICOM headers ({type(error).__name__})") from None


def _read_series(folder: Path, series_uid: str | None) -> DicomSeries:
    info = _choose_series(folder, series_uid)
    if info.modality != "MR":
        raise InputError(folder, f"series {info.series_uid} has modality {info.modality or 'unknown'}; "
                         f"TumorSeg needs MR images")
    datasets = [_read_full(path) for path in info.files]
    slices = sorted_slices(datasets, folder)
    _check_size(slices, folder)
    voxels = _pixel_stack(slices, folder)
    image = sitk.GetImageFromArray(voxels)
    _set_geometry(image, slices, folder)
    multi_frame = any(s.frame is not None for s in slices)
    for tag, keyword in IDENTITY_TAGS.items():  # so that the report names the patient and study it belongs to
        image.SetMetaData(tag, str(getattr(slices[0].dataset, keyword, "") or ""))
    return DicomSeries(
        image=image,
        datasets=datasets if multi_frame else [s.dataset for s in slices],
        series_uid=info.series_uid,
        frames=[s.frame for s in slices] if multi_frame else None,
    )


def _choose_series(folder: Path, series_uid: str | None) -> SeriesInfo:
    series = list_series(folder)
    if not series:
        raise InputError(folder, "no DICOM files found")
    if series_uid is not None:
        for info in series:
            if info.series_uid == series_uid:
                return info
        raise InputError(folder, f"series {series_uid} not found; series here: {_listing(series)}")
    if len(series) > 1:
        raise InputError(folder, f"holds {len(series)} series: {_listing(series)}; "
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


def sorted_slices(datasets, where=None) -> list[Slice]:
    """The planes of ``datasets`` sorted along the slice normal (row x column direction).

    This is the one place that defines slice order: :func:`read_series` builds the image from it
    and the DICOM-SEG writer maps mask slices to source instances with it. Checks that all planes
    share one orientation and pixel grid, that no two planes coincide, and that the spacing is
    regular, so a series with a missing slice is refused rather than silently stretched.
    """
    where = where or "DICOM series"
    planes = [plane for ds in datasets for plane in _planes(ds, where)]
    if not planes:
        raise InputError(where, "no image planes found")
    orientation = _orientation(planes[0].dataset, planes[0].frame, where)
    for plane in planes[1:]:
        other = _orientation(plane.dataset, plane.frame, where)
        if not np.allclose(orientation, other, atol=_ORIENTATION_ATOL):
            raise InputError(where, "slices have different ImageOrientationPatient (a localizer or mixed stacks?)")
    _check_same_grid(planes, where)
    normal = np.cross(orientation[:3], orientation[3:])
    distances = np.array([float(np.dot(p.position, normal)) for p in planes])
    order = np.argsort(distances, kind="stable")
    planes = [planes[i] for i in order]
    _check_spacing(distances[order], where)
    _check_alignment(planes, normal, where)
    return planes


def _planes(ds: Dataset, where) -> list[Slice]:
    """The planes of one dataset: itself, or each frame of an enhanced multi-frame image."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" in ds:
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
    return float(value[0]), float(value[1])


def _check_same_grid(planes: list[Slice], where) -> None:
    first = planes[0]
    shape = (first.dataset.Rows, first.dataset.Columns)
    spacing = _pixel_spacing(first.dataset, first.frame, where)
    for plane in planes[1:]:
        if (plane.dataset.Rows, plane.dataset.Columns) != shape:
            raise InputError(where, "slices have different numbers of rows and columns")
        if not np.allclose(_pixel_spacing(plane.dataset, plane.frame, where), spacing, rtol=1e-4):
            raise InputError(where, "slices have different PixelSpacing")


def _check_spacing(distances: np.ndarray, where) -> None:
    gaps = np.diff(distances)
    if gaps.size and gaps.min() < _DUPLICATE_TOL_MM:
        i = int(np.argmin(gaps))
        raise InputError(where, f"two slices share the position {distances[i]:.3f} mm along the normal "
                         f"(duplicate slices, or several stacks/echoes/time points in one series)")
    if gaps.size > 1:
        median = float(np.median(gaps))
        worst = float(np.max(np.abs(gaps - median)))
        if worst > _SPACING_RTOL * median:
            raise InputError(where, f"slice spacing is irregular (gaps from {gaps.min():.3f} to {gaps.max():.3f} mm): "
                             f"missing slices or an incomplete series")


def _check_alignment(planes: list[Slice], normal: np.ndarray, where) -> None:
    """Refuse stacks whose slice origins drift sideways (sheared/tilted): the image grid could not
    represent them with an orthogonal direction matrix."""
    if len(planes) < 2:
        return
    step = planes[-1].position - planes[0].position
    along = float(np.dot(step, normal))
    sideways = float(np.linalg.norm(step - along * normal))
    if sideways > _SPACING_RTOL * abs(along):
        raise InputError(where, "slice positions are not along the slice normal (tilted or sheared stack)")


def _check_size(slices: list[Slice], where) -> None:
    """Refuse a series that declares more voxels than any MR volume, before decoding allocates them."""
    from .volumes import MAX_VOXELS

    ds = slices[0].dataset
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * columns * len(slices) > MAX_VOXELS:
        raise InputError(where, f"declares {columns}x{rows}x{len(slices)} voxels, more than any MR volume")


def _slice_spacing(slices: list[Slice]) -> float:
    """Distance between slices; for a single slice, the header's nominal spacing."""
    if len(slices) > 1:
        return float(np.linalg.norm(slices[-1].position - slices[0].position) / (len(slices) - 1))
    ds = slices[0].dataset
    return float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)


def _set_geometry(image: sitk.Image, slices: list[Slice], where) -> None:
    first = slices[0]
    orientation = _orientation(first.dataset, first.frame, where)
    normal = np.cross(orientation[:3], orientation[3:])
    row_spacing, column_spacing = _pixel_spacing(first.dataset, first.frame, where)
    spacing = (column_spacing, row_spacing, _slice_spacing(slices))
    if not all(np.isfinite(v) and v > 0 for v in spacing) or not np.all(np.isfinite(first.position)):
        raise InputError(where, f"invalid voxel spacing {spacing} or position in the headers")
    if not np.all(np.isfinite(orientation)) or abs(np.linalg.det(np.reshape(
            np.concatenate([orientation, normal]), (3, 3)))) < 1e-3:
        raise InputError(where, "ImageOrientationPatient is not a valid pair of directions")
    image.SetOrigin(tuple(float(v) for v in first.position))
    image.SetSpacing(spacing)
    # SimpleITK's direction is row-major: column k is the direction of index axis k (x, y, z).
    direction = np.column_stack([orientation[:3], orientation[3:], normal])
    image.SetDirection(tuple(float(v) for v in direction.ravel()))


def _pixel_stack(slices: list[Slice], where) -> np.ndarray:
    """The (z, y, x) voxel array, with the modality rescale applied when the header has one."""
    decoded: dict[int, np.ndarray] = {}
    planes = []
    for plane in slices:
        key = id(plane.dataset)
        if key not in decoded:
            decoded[key] = _decode(plane.dataset, where)
        array = decoded[key]
        planes.append(array if plane.frame is None else array[plane.frame])
    volume = np.stack(planes)
    if volume.ndim != 3:
        raise InputError(where, "only single-channel (greyscale) images are supported")
    return volume


def _decode(ds: Dataset, where) -> np.ndarray:
    """Pixel values of one dataset; decoder failures become one clear InputError."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        array = ds.pixel_array
    except Exception as error:  # pydicom raises several types for missing or failing decoders
        name = getattr(syntax, "name", syntax) or "unknown"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(where, f"cannot decode pixel data of {_name(ds)} (transfer syntax {name}): {reason}") from None
    if _has_rescale(ds):
        array = apply_rescale(array, ds)
        if not np.all(np.isfinite(array)) or float(np.max(np.abs(array), initial=0.0)) > float(np.finfo(np.float32).max):
            raise InputError(where, f"RescaleSlope/RescaleIntercept of {_name(ds)} put intensities beyond the range of 32-bit floats")
        array = array.astype(np.float32)
    return array


def _has_rescale(ds: Dataset) -> bool:
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if "SharedFunctionalGroupsSequence" in ds:
        item = ds.SharedFunctionalGroupsSequence[0].get("PixelValueTransformationSequence")
        if item:
            slope, intercept = item[0].get("RescaleSlope"), item[0].get("RescaleIntercept")
    return (slope is not None and float(slope) != 1.0) or (intercept is not None and float(intercept) != 0.0)


def _name(ds: Dataset) -> str:
    """A file's base name for messages (the path is in the error already; no patient tags)."""
    filename = getattr(ds, "filename", None)
    return os.path.basename(filename) if isinstance(filename, str) and filename else "(in memory)"
