"""read_volume decompresses a .nii.gz once: ITK reads the copy that the data check decompressed."""

import gzip
import shutil
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import RAW
from monai_core.io import volumes
from monai_core.io.volumes import read_volume


def _same(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection()
            and np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))


def test_itk_reads_the_checked_copy_and_gets_the_same_volume(monkeypatch):
    read = []
    original = sitk.ImageFileReader.SetFileName
    monkeypatch.setattr(sitk.ImageFileReader, "SetFileName", lambda self, name: (read.append(name), original(self, name))[1])
    volume = read_volume(RAW / "flair.nii.gz")
    assert read and all(name.endswith("decompressed.nii") for name in read)  # not the .nii.gz a second time
    assert _same(volume, sitk.Cast(sitk.ReadImage(str(RAW / "flair.nii.gz")), sitk.sitkFloat32))


def test_without_scratch_space_the_original_file_is_read(monkeypatch, tmp_path):
    monkeypatch.setattr(volumes._Copy, "write", lambda self, data: self._close(keep=False))  # as on a full disk
    volume = read_volume(RAW / "t1.nii.gz")
    assert _same(volume, sitk.Cast(sitk.ReadImage(str(RAW / "t1.nii.gz")), sitk.sitkFloat32))
    plain = tmp_path / "t1.nii"  # an uncompressed file is read as it is, without a copy
    with gzip.open(RAW / "t1.nii.gz", "rb") as source, open(plain, "wb") as out:
        shutil.copyfileobj(source, out)
    assert _same(read_volume(plain), volume)


def _nifti(path, data, slope=1.0):
    """A NIfTI-1 file of ``data`` (x, y, z) with intensity scaling ``slope``, written with nibabel."""
    import nibabel as nib

    image = nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0]))
    image.header.set_slope_inter(slope, 0.0)
    nib.save(image, str(path))
    return path


def test_intensities_beyond_float32_are_refused_on_either_side(tmp_path):
    """The data check's largest magnitude is the larger of the two extremes: a huge negative value counts
    as much as a huge positive one, stored as float64 or reached through the header's scaling."""
    import pytest

    from monai_core.errors import InputError

    data = np.zeros((32, 32, 4))
    data[3, 4, 1] = 10.0
    assert read_volume(_nifti(tmp_path / "fine.nii.gz", data)).GetSize() == (32, 32, 4)
    for name, value, slope in (("high", 1e39, 1.0), ("low", -1e39, 1.0), ("scaled", -1000.0, 1e36)):
        extreme = data.astype(np.int16 if slope != 1.0 else np.float64)
        extreme[5, 6, 2] = value
        with pytest.raises(InputError, match="beyond the range of 32-bit floats"):
            read_volume(_nifti(tmp_path / f"{name}.nii.gz", extreme, slope))


def test_inflating_in_memory_reads_what_gzip_reads(monkeypatch, tmp_path):
    """The in-memory inflate (one zlib call per member) and gzip's streamed reader give the same volume."""
    in_memory = read_volume(RAW / "t1c.nii.gz")
    monkeypatch.setattr(volumes, "_INFLATE_IN_MEMORY", 0)  # every file streamed through gzip, as before
    assert _same(read_volume(RAW / "t1c.nii.gz"), in_memory)


def test_inflate_follows_gzip_members_and_stops_at_the_size_asked():
    data = bytes(range(256)) * 64
    two_members = gzip.compress(data[:5000]) + b"\0\0" + gzip.compress(data[5000:])  # NUL padding between members
    assert volumes._inflate(two_members, len(data)) == gzip.decompress(two_members) == data
    assert volumes._inflate(two_members, 6000) == data[:6000]  # no more than asked, across the member boundary
    assert volumes._inflate(two_members, 10 * len(data)) == data  # a shorter file gives what it holds


def test_inflate_refuses_a_cut_or_damaged_stream():
    whole = gzip.compress(bytes(range(256)) * 64)
    with pytest.raises(EOFError):
        volumes._inflate(whole[: len(whole) // 2], 1 << 20)
    with pytest.raises(zlib.error):
        volumes._inflate(whole[:-8] + bytes(8), 1 << 20)  # CRC and length of the trailer zeroed
