"""The DICOM series in a folder or a list of files, from their headers only (no pixel data).

Choosing series (``monai_core.series_choice``), grouping a PACS export by study (``tumorseg
batch``) and finding the files of one series (``io.dicom.read_series``) all start here. Each
series keeps only the few attributes those need, never the datasets, so that a folder of many
studies costs one header read per file and little memory.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import TM

from ..errors import InputError

__all__ = ["SeriesInfo", "list_series", "dicom_files", "read_header", "plane_normal", "listing", "is_dicom_file"]

# Media Storage Directory (DICOMDIR): an index of files, not an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_ORIENTATION_ATOL = 1e-4  # direction cosines of two files closer than this are one orientation


@dataclass(eq=False)  # a series is itself, not its values: usable in sets and as a key
class SeriesInfo:
    """One series found among the files, from headers only (the first file's values, unless said)."""

    series_uid: str
    description: str
    protocol: str
    modality: str
    files: list[Path]
    series_number: int | None = None
    n_frames: int = 0  # slices: files, or the frames of a multi-frame file
    start_s: float | None = None  # earliest AcquisitionTime (else SeriesTime), seconds after midnight
    study_uid: str = ""
    sop_class: str = ""
    image_type: tuple[str, ...] = ()
    frame_of_reference: str = ""
    normal: tuple[float, float, float] | None = None  # unit slice normal (row x column direction)
    orientations: int = 0  # distinct ImageOrientationPatient values among the files
    acquisition: str = ""  # MRAcquisitionType: "2D", "3D" or "" when not given
    contrast_agent: str = ""  # ContrastBolusAgent
    diffusion: bool = False  # a diffusion b-value in the header
    temporal_positions: int = 1  # NumberOfTemporalPositions (perfusion, dynamic series)

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def name(self) -> str:
        """The name a reader knows the series by: SeriesDescription, else ProtocolName."""
        return self.description or self.protocol

    def summary(self) -> str:
        """One-line listing for messages: UID, description and slice count (no patient tags)."""
        text = self.description or self.protocol or "no description"
        return f"{self.series_uid} ({text!r}, {self.modality or '?'}, {self.n_frames} slices)"

    def label(self) -> str:
        """"series 701 'T2W_FLAIR_TRA'": how a person finds the series in a DICOM browser."""
        number = f"series {self.series_number}" if self.series_number is not None else f"series {self.series_uid}"
        return f"{number} {self.name!r}" if self.name else number


def is_dicom_file(path: Path) -> bool:
    """The DICM marker of the DICOM file format, or a .dcm/.ima name (files without the preamble)."""
    if path.suffix.lower() in (".dcm", ".ima"):
        return True
    try:
        with open(path, "rb") as stream:
            return stream.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_header(path: Path) -> Dataset | None:
    """The header of a DICOM file, or None for anything that is not a DICOM image file."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return None
    if ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_SOP_CLASS:
        return None
    if "SeriesInstanceUID" not in ds:
        return None
    return ds


def dicom_files(source) -> list[Path]:
    """The regular files under a folder (recursive, in a stable order), or the given list of files."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise InputError(folder, "is not a folder")
        found = []
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            found.extend(Path(root) / name for name in sorted(names))
        return found
    return [Path(p) for p in source]


def list_series(source: str | os.PathLike | Sequence) -> list[SeriesInfo]:
    """Every DICOM series under a folder (recursive) or among a list of files, from headers only.

    Non-DICOM files (READMEs, DICOMDIR, thumbnails) are skipped silently. Series are ordered by
    SeriesNumber, then UID, the order a DICOM browser shows them.
    """
    return _group(read_headers(dicom_files(source)))


def read_headers(files: Iterable[Path]) -> list[tuple[Path, Dataset]]:
    """(path, header) of each DICOM image file among ``files``."""
    return [(path, ds) for path in files if (ds := read_header(path)) is not None]


def _group(headers: list[tuple[Path, Dataset]]) -> list[SeriesInfo]:
    files: dict[str, list[Path]] = defaultdict(list)
    first: dict[str, Dataset] = {}
    frames: dict[str, int] = defaultdict(int)
    starts: dict[str, list[float]] = defaultdict(list)
    orientations: dict[str, list[np.ndarray]] = defaultdict(list)
    for path, ds in headers:
        uid = str(ds.SeriesInstanceUID)
        files[uid].append(path)
        first.setdefault(uid, ds)
        frames[uid] += _int(ds.get("NumberOfFrames"), 1)
        start = _seconds(ds.get("AcquisitionTime"))
        start = _seconds(ds.get("SeriesTime")) if start is None else start
        if start is not None:
            starts[uid].append(start)
        cosines = _cosines(ds)
        if cosines is not None and not any(np.allclose(cosines, seen, atol=_ORIENTATION_ATOL) for seen in orientations[uid]):
            orientations[uid].append(cosines)
    infos = [_series_info(uid, first[uid], sorted(paths), frames[uid], min(starts[uid], default=None), orientations[uid])
             for uid, paths in files.items()]
    return sorted(infos, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))


def _int(value, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _seconds(value) -> float | None:
    """A DICOM TM value ("HHMMSS.FFFFFF", or the old "HH:MM:SS") as seconds after midnight, or None."""
    text = str(value or "").replace(":", "").strip()
    try:
        time = TM(text) if text else None
    except ValueError:
        return None
    return None if time is None else time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6


def _cosines(ds: Dataset) -> np.ndarray | None:
    """ImageOrientationPatient of a single-frame file, or the shared/first frame's of an enhanced one."""
    value = ds.get("ImageOrientationPatient")
    if value is None:
        for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            groups = ds.get(sequence)
            item = groups[0].get("PlaneOrientationSequence") if groups else None
            if item:
                value = item[0].get("ImageOrientationPatient")
                break
    try:
        cosines = np.array([float(v) for v in value], dtype=float) if value is not None else None
    except (TypeError, ValueError):
        return None
    return cosines if cosines is not None and cosines.shape == (6,) and np.all(np.isfinite(cosines)) else None


def plane_normal(cosines: np.ndarray | None) -> tuple[float, float, float] | None:
    """The unit normal (row direction x column direction) of an ImageOrientationPatient, or None."""
    if cosines is None:
        return None
    normal = np.cross(cosines[:3], cosines[3:])
    length = float(np.linalg.norm(normal))
    return None if length < 1e-3 else tuple(float(v) for v in normal / length)


def _has_b_value(ds: Dataset) -> bool:
    """DiffusionBValue, at the top level or in the functional groups of an enhanced image."""
    if "DiffusionBValue" in ds:
        return True
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(sequence)
        if groups and "MRDiffusionSequence" in groups[0]:
            return True
    return False


def _series_info(uid: str, ds: Dataset, files: list[Path], n_frames: int, start_s: float | None,
                 orientations: list[np.ndarray]) -> SeriesInfo:
    number = ds.get("SeriesNumber")
    image_type = ds.get("ImageType") or ()
    image_type = (image_type,) if isinstance(image_type, str) else image_type
    return SeriesInfo(
        series_uid=uid,
        description=str(ds.get("SeriesDescription", "") or ""),
        protocol=str(ds.get("ProtocolName", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        files=files,
        series_number=_int(number, None) if number not in (None, "") else None,
        n_frames=n_frames,
        start_s=start_s,
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        sop_class=str(ds.get("SOPClassUID", "") or ""),
        image_type=tuple(str(v).strip().upper() for v in image_type),
        frame_of_reference=str(ds.get("FrameOfReferenceUID", "") or ""),
        normal=plane_normal(orientations[0]) if orientations else None,
        orientations=len(orientations),
        acquisition=str(ds.get("MRAcquisitionType", "") or "").strip().upper(),
        contrast_agent=str(ds.get("ContrastBolusAgent", "") or "").strip(),
        diffusion=_has_b_value(ds),
        temporal_positions=_int(ds.get("NumberOfTemporalPositions"), 1),
    )


def listing(series: list[SeriesInfo], limit: int = 20) -> str:
    """The series for a one-line message, cut short for studies with very many series."""
    text = "; ".join(s.summary() for s in series[:limit])
    return text + (f"; ... and {len(series) - limit} more" if len(series) > limit else "")
