"""Read one MR volume from a NIfTI file, an NRRD file or a DICOM series folder, and check it.

Every problem with the input becomes an :class:`~monai_core.errors.InputError` that names the
file, so the command line can print one line and exit with code 2.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .common import IDENTITY_TAGS, MAX_SLICES, MAX_VOXELS, series_identity

if TYPE_CHECKING:  # pydicom costs a NIfTI read 0.3-0.9 s of start-up: imported in _read_volume for DICOM input
    from .dicom import DicomSeries

__all__ = ["MAX_VOXELS", "MAX_SLICES", "VOLUME_SUFFIXES", "IDENTITY_TAGS", "read_volume", "read_source",
           "check_volume", "series_identity"]

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _header(path: Path, source: Path | None = None) -> sitk.ImageFileReader:
    """ITK's reader of ``source`` (default ``path``) with the header read; errors name ``path``."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(source or path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(path, f"cannot read the image header ({_first_line(error)})") from None
    return reader


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    detail = [t for t in text if "Description:" in t or "ERROR" in t]
    return (detail or text or ["unknown error"])[-1].split("Description:")[-1].strip()[:200]


def read_mask(path) -> sitk.Image:
    """A segmentation as written (a 3D single-channel image, any values): ``read_volume`` would refuse an
    empty mask, which is a valid result. Callers decide what its values must be."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unreadable"
        raise InputError(path, f"cannot be read as an image: {reason}") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, "a segmentation must be a 3D single-channel image")
    return image


def read_volume(path, series_uid: str | None = None) -> sitk.Image:
    """A checked 3D float32 volume from a NIfTI/NRRD file or a DICOM series (see :func:`read_source`)."""
    return read_source(path, series_uid)[0]


def read_source(path, series_uid: str | None = None) -> tuple[sitk.Image, DicomSeries | None]:
    """A checked 3D float32 volume and, for DICOM input, the series it was read from.

    ``path`` is a NIfTI/NRRD file, a DICOM folder, or the list of a DICOM series' files.
    ``series_uid`` picks one series of a folder that holds several (a whole DICOM study). The
    :class:`DicomSeries` keeps the sorted source datasets (for a DICOM-SEG or SR), so that a
    series is decoded once however many outputs refer to it.
    """
    files = None if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    if files is not None and not files:
        raise InputError(None, "no DICOM files given")
    path = Path(path) if files is None else Path(os.path.commonpath([str(f.parent) for f in files]))
    if not path.exists():
        raise InputError(path, "no such file or folder")
    warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's multi-line warnings; problems raise InputError
    try:
        with tempfile.TemporaryDirectory(prefix="tumorseg-") as scratch:
            return _read_volume(path, files, series_uid, Path(scratch))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings)


def _read_volume(path: Path, files, series_uid: str | None, scratch: Path) -> tuple[sitk.Image, DicomSeries | None]:
    series = None
    if files is not None or path.is_dir():
        from .dicom import read_series

        series = read_series(path if files is None else files, series_uid)
        image = series.image
    else:
        if path.stat().st_size == 0:
            raise InputError(path, "the file is empty (0 bytes)")
        source = path
        if path.name.lower().endswith((".nii", ".nii.gz")):
            # before ITK, which zero-fills what it cannot read; ITK then reads the copy the check decompressed
            source = _check_nifti(path, scratch / "decompressed.nii") or path
        reader = _header(path, source)
        size = reader.GetSize()
        if len(size) >= 2 and min(size[:2]) < 16:
            raise InputError(path, f"a {'x'.join(map(str, size))} image is too small for brain MRI")
        if len(size) == 2 or size[2] == 1:
            raise InputError(path, f"a 2D image ({size[0]}x{size[1]}) where a 3D volume is needed")
        if len(size) == 4 and size[3] > 1:
            raise InputError(path, f"a 4D volume with {size[3]} volumes; extract the sequence to use as a 3D file")
        if reader.GetNumberOfComponents() != 1:
            raise InputError(path, f"{reader.GetNumberOfComponents()} components per voxel; a scalar MR volume is needed")
        voxels = int(np.prod([int(s) for s in size], dtype=np.float64))
        if voxels > MAX_VOXELS:
            raise InputError(path, f"declares {'x'.join(map(str, size))} voxels, more than any MR volume")
        if len(size) == 3:
            _check_slice_count(size, reader.GetDirection(), path)
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise InputError(path, f"cannot read the image data, the file may be truncated ({_first_line(error)})") from None
        if image.GetDimension() == 4:
            image = image[:, :, :, 0]
        _check_float32_range(image, path)
    volume = check_volume(sitk.Cast(image, sitk.sitkFloat32), path)
    for tag in IDENTITY_TAGS:  # the cast keeps no metadata; a DICOM series carries its identifiers on
        if image.HasMetaDataKey(tag):
            volume.SetMetaData(tag, image.GetMetaData(tag))
    return volume, series


def _check_nifti(path: Path, decompressed: Path | None = None) -> Path | None:
    """What ITK's NIfTI reader lets through silently, checked from the header and one pass over the data.

    With ``decompressed``, a gzipped file's header and voxel data are also written there as they
    are checked, and that path is returned, so that the caller decompresses the file only once.

    niftilib zero-fills the voxels missing from a truncated file, replaces NaN and Inf by 0, and
    reads a NIfTI-2 header it cannot use as no image at all; a 100000^3 declaration is refused here
    from the header alone. The data are read in blocks; a gzipped file is inflated in memory only up to
    :data:`_INFLATE_IN_MEMORY` (:func:`_voxel_stream`), so memory stays bounded.
    """
    try:
        header = _nifti_header(path)
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = header.get_data_dtype()
        magic = bytes(header["magic"]).rstrip(b"\0")
        pixdim = [float(v) for v in header["pixdim"][1 : 1 + min(3, len(shape))]]
        slope, inter = _slope_inter(header)
        offset = max(int(header["vox_offset"]), header.sizeof_hdr)
    except Exception as error:  # a damaged header fails in several ways (a NaN offset, an unknown data type)
        raise InputError(path, f"cannot read the NIfTI header ({_first_line(error) or type(error).__name__})") from None
    ndim = int(header["dim"][0])
    if not 1 <= ndim <= 7 or any(int(n) < 1 for n in header["dim"][1 : ndim + 1]):
        raise InputError(path, f"invalid dimensions in the header (dim {list(map(int, header['dim']))})")
    forms = [header["srow_x"], header["srow_y"], header["srow_z"]] if header["sform_code"] > 0 else []
    if header["qform_code"] > 0:
        forms += [header["quatern_b"], header["quatern_c"], header["quatern_d"]]
        forms += [header["qoffset_x"], header["qoffset_y"], header["qoffset_z"]]
    if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in forms):
        raise InputError(path, "the orientation (qform/sform) in the header is not finite")
    voxels = int(np.prod(shape, dtype=np.float64)) if shape else 0
    if voxels > MAX_VOXELS:
        raise InputError(path, f"declares {'x'.join(map(str, shape))} voxels, more than any MR volume")
    if not all(np.isfinite(v) and v > 0 for v in pixdim):
        raise InputError(path, f"invalid voxel spacing in the header (pixdim {', '.join(f'{v:g}' for v in pixdim)})")
    if magic not in (b"n+1", b"n+2") or dtype.kind not in "biuf":
        return None  # a header/image pair, or an RGB/complex type: ITK reads or refuses it
    expected = voxels * dtype.itemsize
    block = dtype.itemsize * (1 << 20)
    total, peak = 0, 0.0
    copy = _Copy(decompressed if decompressed is not None and _is_gzip(path) else None)
    try:
        with _voxel_stream(path, offset + expected) as stream, copy:
            skipped = 0
            while skipped < offset and (data := stream.read(min(1 << 20, offset - skipped))):
                skipped += len(data)
                copy.write(data)
            while skipped == offset and total < expected and (data := stream.read(min(block, expected - total))):
                total += len(data)
                copy.write(data)
                values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype=dtype)
                if dtype.kind == "f" and not np.all(np.isfinite(values)):
                    raise InputError(path, "the volume contains NaN or infinite values")
                if values.size:  # the largest magnitude is one of the two extremes: no float64 copy of the block
                    peak = max(peak, abs(float(values.max())), abs(float(values.min())))
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(path, f"cannot read the image data, the file may be truncated ({error})") from None
    if total < expected:
        raise InputError(path, f"the file is truncated: {total} of {expected} bytes of voxel data")
    if peak * abs(slope) + abs(inter) > _FLOAT32_MAX:
        raise InputError(path, f"intensities reach {peak * abs(slope) + abs(inter):.3g}, beyond the range of 32-bit floats")
    return copy.path


# Below this many bytes of header and voxels, a gzipped NIfTI is inflated in memory (:func:`_voxel_stream`).
_INFLATE_IN_MEMORY = 256 << 20


def _voxel_stream(path: Path, size: int):
    """A binary stream of the file's (decompressed) bytes, for :func:`_check_nifti` to read ``size`` of.

    gzip's own reader inflates 8 KB of the file per Python-level step (Python 3.11), and each step
    waits for the GIL while torch is being imported beside it: in a cold detect that made reading
    the sample study's three volumes take 1.3 s instead of 0.15 s. A gzipped file whose first
    ``size`` bytes fit in :data:`_INFLATE_IN_MEMORY` is therefore inflated with one zlib call per gzip
    member, which releases the GIL; a larger one is still streamed.
    """
    if not _is_gzip(path):
        return open(path, "rb")
    if size > _INFLATE_IN_MEMORY:
        return gzip.open(path, "rb")
    return io.BytesIO(_inflate(path.read_bytes(), size))


def _inflate(data: bytes, size: int) -> bytes:
    """The first ``size`` bytes that the gzip ``data`` holds (all of them if fewer), member after member.

    As gzip's reader does, a stream cut short raises EOFError, a damaged one zlib.error (the CRC is
    checked at the end of each member that is read to its end), and NUL padding between members is skipped.
    """
    parts, have = [], 0
    while data and have < size:
        member = zlib.decompressobj(wbits=31)  # gzip header and trailer
        part = member.decompress(data, size - have)
        parts.append(part)
        have += len(part)
        if have >= size:
            break
        if not member.eof:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        data = member.unused_data.lstrip(b"\0")
    return b"".join(parts)


class _Copy:
    """The decompressed copy of :func:`_check_nifti`. If it cannot be written (a full scratch disk),
    ``path`` becomes None and ITK reads the original file: the copy only saves time."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.stream = path, None

    def __enter__(self):
        if self.path is not None:
            try:
                self.stream = open(self.path, "wb")
            except OSError:
                self.path = None
        return self

    def write(self, data: bytes) -> None:
        if self.stream is not None:
            try:
                self.stream.write(data)
            except OSError:
                self._close(keep=False)

    def __exit__(self, kind, *_) -> None:
        self._close(keep=kind is None)

    def _close(self, keep: bool) -> None:
        if self.stream is not None:
            try:
                self.stream.close()
            except OSError:
                keep = False
        self.stream = None
        if not keep:
            self.path = None


# The NIfTI-1 and NIfTI-2 headers (nifti1.h, nifti2.h): the fields _check_nifti reads, the rest as padding.
# Read with numpy rather than nibabel, whose nifti1 module imports pydicom: 0.36 s of CPU that a NIfTI detect
# would pay before reading its first voxel.
_NIFTI1 = np.dtype([("sizeof_hdr", "i4"), ("_", "V36"), ("dim", "i2", 8), ("_1", "V14"), ("datatype", "i2"),
                    ("_2", "V4"), ("pixdim", "f4", 8), ("vox_offset", "f4"), ("scl_slope", "f4"), ("scl_inter", "f4"),
                    ("_3", "V132"), ("qform_code", "i2"), ("sform_code", "i2"), ("quatern_b", "f4"), ("quatern_c", "f4"),
                    ("quatern_d", "f4"), ("qoffset_x", "f4"), ("qoffset_y", "f4"), ("qoffset_z", "f4"),
                    ("srow_x", "f4", 4), ("srow_y", "f4", 4), ("srow_z", "f4", 4), ("_4", "V16"), ("magic", "S4")])
_NIFTI2 = np.dtype([("sizeof_hdr", "i4"), ("magic", "S4"), ("_0", "V4"), ("datatype", "i2"), ("_", "V2"), ("dim", "i8", 8),
                    ("_1", "V24"), ("pixdim", "f8", 8), ("vox_offset", "i8"), ("scl_slope", "f8"), ("scl_inter", "f8"),
                    ("_2", "V152"), ("qform_code", "i4"), ("sform_code", "i4"), ("quatern_b", "f8"), ("quatern_c", "f8"),
                    ("quatern_d", "f8"), ("qoffset_x", "f8"), ("qoffset_y", "f8"), ("qoffset_z", "f8"),
                    ("srow_x", "f8", 4), ("srow_y", "f8", 4), ("srow_z", "f8", 4), ("_3", "V44")])
# NIfTI datatype codes; void: none, binary, RGB, all, RGBA (ITK reads or refuses those itself)
_NIFTI_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
                 1280: "u8", 1536: "g", 32: "c8", 1792: "c16", 2048: "G", 0: "V1", 1: "V1", 128: "V3", 255: "V1",
                 2304: "V4"}


class _NiftiHeader:
    """A NIfTI-1 or NIfTI-2 header as written, with nibabel's accessors for what _check_nifti reads."""

    def __init__(self, raw: bytes, layout: np.dtype, byteorder: str) -> None:
        self.sizeof_hdr = layout.itemsize
        self.byteorder = byteorder
        self._fields = np.frombuffer(raw[: layout.itemsize], dtype=layout.newbyteorder(byteorder))[0]

    def __getitem__(self, name: str):
        return self._fields[name]

    def get_data_shape(self) -> tuple[int, ...]:
        dim = self._fields["dim"]
        return (0,) if int(dim[0]) == 0 else tuple(int(d) for d in dim[1 : int(dim[0]) + 1])

    def get_data_dtype(self) -> np.dtype:
        code = int(self._fields["datatype"])
        if code not in _NIFTI_DTYPES:
            raise ValueError(f"unknown data type code {code}")
        return np.dtype(_NIFTI_DTYPES[code]).newbyteorder(self.byteorder)


def _nifti_header(path: Path) -> _NiftiHeader:
    """The NIfTI-1 or NIfTI-2 header as written, without nibabel's fixes (which would hide the problem)."""
    with (gzip.open if _is_gzip(path) else open)(path, "rb") as stream:
        raw = stream.read(540)
    if len(raw) < 348:
        raise ValueError(f"{len(raw)} bytes, shorter than a NIfTI header")
    for layout in (_NIFTI2, _NIFTI1):  # told apart, and the byte order found, by sizeof_hdr
        for byteorder in "<>":
            if int.from_bytes(raw[:4], "little" if byteorder == "<" else "big") == layout.itemsize:
                if len(raw) < layout.itemsize:
                    raise ValueError(f"{len(raw)} bytes, shorter than a NIfTI-2 header")
                return _NiftiHeader(raw, layout, byteorder)
    raise ValueError("not a NIfTI header")


def _slope_inter(header) -> tuple[float, float]:
    """The intensity scaling of a NIfTI header (1, 0 when unset, as niftilib reads it)."""
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if not np.isfinite(slope) or slope == 0:
        return 1.0, 0.0
    return slope, inter if np.isfinite(inter) else 0.0


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(2) == b"\x1f\x8b"


def _check_slice_count(size, direction, path) -> None:
    """Refuse a volume with more axial slices (after reorientation) than :data:`MAX_SLICES`."""
    probe = sitk.Image([2, 3, 5], sitk.sitkUInt8)  # tells which input axis becomes the slice axis
    try:
        probe.SetDirection([float(v) for v in direction])
        axis = (2, 3, 5).index(sitk.DICOMOrient(probe, "LPS").GetSize()[2])
    except RuntimeError:
        raise InputError(path, "the orientation matrix is singular") from None
    if int(size[axis]) > MAX_SLICES:
        raise InputError(path, f"has {size[axis]} axial slices, more than TumorSeg handles ({MAX_SLICES})")


def _check_float32_range(image: sitk.Image, path) -> None:
    """Refuse 64-bit intensities that would overflow the float32 the pipeline works in."""
    if image.GetPixelID() not in (sitk.sitkFloat64, sitk.sitkInt64, sitk.sitkUInt64):
        return
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(path, "the volume contains NaN or infinite values")
    peak = float(np.max(np.abs(array.astype(np.float64, copy=False)))) if array.size else 0.0
    if peak > _FLOAT32_MAX:
        raise InputError(path, f"intensities reach {peak:.3g}, beyond the range of 32-bit floats")


def check_volume(image: sitk.Image, path) -> sitk.Image:
    """Refuse volumes the model cannot use: not 3D, degenerate geometry, non-finite or empty data."""
    if image.GetDimension() != 3:
        raise InputError(path, f"a {image.GetDimension()}D image where a 3D volume is needed")
    size = image.GetSize()
    if min(size[:2]) < 16:
        raise InputError(path, f"a {'x'.join(map(str, size))} volume is too small for brain MRI")
    if size[2] < 2:
        raise InputError(path, f"a 2D image ({size[0]}x{size[1]}, one slice) where a 3D volume is needed")
    spacing = np.asarray(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {tuple(spacing)}")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-3:
        raise InputError(path, "the orientation matrix is singular")
    _check_slice_count(size, image.GetDirection(), path)
    array = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(array)):
        raise InputError(path, "the volume contains NaN or infinite values")
    if float(array.max()) <= float(array.min()):
        raise InputError(path, "the volume is empty (every voxel has the same value)")
    return image
