"""read_volume decompresses a .nii.gz once: ITK reads the copy that the data check decompressed."""

import gzip
import shutil

import numpy as np
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
