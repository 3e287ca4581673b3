"""Read one MR volume from a NIfTI file, an NRRD file or a DICOM series folder, and check it.

Every problem with the input becomes an :class:`~monai_core.errors.InputError` that names the
file, so the command line can print one line and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

__all__ = ["MAX_VOXELS", "VOLUME_SUFFIXES", "read_volume", "check_volume"]

MAX_VOXELS = 1024**3 // 2  # 512 Mi voxels: far above any MR series, refused before allocation
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _header(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(path, f"cannot read the image header ({_first_line(error)})") from None
    return reader


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    detail = [t for t in text if "Description:" in t or "ERROR" in t]
    return (detail or text or ["unknown error"])[-1].split("Description:")[-1].strip()[:200]


def read_volume(path: str | Path) -> sitk.Image:
    """A checked 3D float32 volume from a NIfTI/NRRD file or a DICOM series folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        from .dicom import read_series

        image = read_series(path).image
    else:
        if path.stat().st_size == 0:
            raise InputError(path, "the file is empty (0 bytes)")
        reader = _header(path)
        size = reader.GetSize()
        if len(size) == 2 or size[2] == 1:
            raise InputError(path, f"a 2D image ({size[0]}x{size[1]}) where a 3D volume is needed")
        if len(size) == 4 and size[3] > 1:
            raise InputError(path, f"a 4D volume with {size[3]} volumes; extract the sequence to use as a 3D file")
        if reader.GetNumberOfComponents() != 1:
            raise InputError(path, f"{reader.GetNumberOfComponents()} components per voxel; a scalar MR volume is needed")
        voxels = int(np.prod([int(s) for s in size], dtype=np.float64))
        if voxels > MAX_VOXELS:
            raise InputError(path, f"declares {'x'.join(map(str, size))} voxels, more than any MR volume")
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise InputError(path, f"cannot read the image data, the file may be truncated ({_first_line(error)})") from None
        if image.GetDimension() == 4:
            image = image[:, :, :, 0]
    return check_volume(sitk.Cast(image, sitk.sitkFloat32), path)


def check_volume(image: sitk.Image, path) -> sitk.Image:
    """Refuse volumes the model cannot use: not 3D, degenerate geometry, non-finite or empty data."""
    if image.GetDimension() != 3:
        raise InputError(path, f"a {image.GetDimension()}D image where a 3D volume is needed")
    size = image.GetSize()
    if min(size[:2]) < 16 or size[2] < 1:
        raise InputError(path, f"a {'x'.join(map(str, size))} volume is too small for brain MRI")
    spacing = np.asarray(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {tuple(spacing)}")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-3:
        raise InputError(path, "the orientation matrix is singular")
    array = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(array)):
        raise InputError(path, "the volume contains NaN or infinite values")
    if float(array.max()) <= float(array.min()):
        raise InputError(path, "the volume is empty (every voxel has the same value)")
    return image
