"""Build the corpus of malformed inputs for ``tumorseg detect`` from the repository's real samples.

Nothing here is committed as a binary: every case is a recipe that copies a real sample
(tests/data) and breaks one thing, so a reader sees exactly what each case exercises.

    python tests/malformed/make_corpus.py DEST        # writes DEST/<case>/... and lists the cases

Each :class:`Case` gives the ``tumorseg detect`` arguments (without ``-o``), the file or folder that
the one-line error must name, and a word the problem must contain. ``setup`` cases (read-only
output folder, full disk) also need the output folder prepared by the test, see ``output``.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
RAW_FLAIR = DATA / "TCGA-FG-6692" / "flair.nii.gz"
DICOM_SAMPLE = DATA / "dicom" / "PGBM-001_T1post"
KAGGLE_SAMPLE = DATA / "kaggle_3m" / "TCGA_HT_7680_19970202"

# Put into every DICOM case; it must never appear in an error message, a log or an output.
SECRET_NAME = "Zyxwvut^Quirinalis Secretpatient"
SECRET_ID = "SECRET-MRN-8675309"

# NIfTI-1 header field offsets (bytes), from nifti1.h
NII_DIM, NII_DATATYPE, NII_BITPIX, NII_PIXDIM, NII_VOX_OFFSET = 40, 70, 72, 76, 108
NII_SCL_SLOPE, NII_QFORM_CODE, NII_SFORM_CODE, NII_SROW = 112, 252, 254, 280


@dataclass
class Case:
    """One malformed input: ``args`` for ``tumorseg detect`` and what the error line must say."""

    name: str
    args: list[str]
    names: str  # the path the error line must contain
    problem: str  # a word (lower case) the problem must contain
    output: str | None = None  # None: an ordinary output folder; "readonly" or "full": see the tests
    tags: set = field(default_factory=set)


# --------------------------------------------------------------------------- base samples


def small_flair() -> nib.Nifti1Image:
    """A 64x64x8 crop of the real FLAIR, its header (qform, sform, pixdim, int16) kept."""
    return nib.load(RAW_FLAIR).slicer[72:136, 96:160, 9:17]


def nifti_bytes(image: nib.Nifti1Image | None = None) -> bytearray:
    """An uncompressed single-file NIfTI-1 (header, 4 bytes of extension flags, data)."""
    return bytearray((image or small_flair()).to_bytes())


def patch(blob: bytearray, offset: int, fmt: str, *values) -> bytearray:
    struct.pack_into("<" + fmt, blob, offset, *values)
    return blob


def with_data(array: np.ndarray, dtype=None) -> nib.Nifti1Image:
    """The small FLAIR's header and affine around other voxel values."""
    base = small_flair()
    image = nib.Nifti1Image(np.asarray(array, dtype=dtype or array.dtype), base.affine, base.header)
    image.header.set_data_dtype(dtype or array.dtype)
    image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
    return image


def write(path: Path, content: bytes, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(bytes(content), mtime=0) if compress else bytes(content))
    return path


def nrrd_header(sizes: str, encoding: str = "raw", kind: str = "short", extra: str = "") -> bytes:
    return (
        f"NRRD0004\ntype: {kind}\ndimension: {len(sizes.split())}\nsizes: {sizes}\n"
        f"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        f"space origin: (0,0,0)\nencoding: {encoding}\nendian: little\n{extra}\n"
    ).encode()


def dicom_series(dest: Path, n: int = 5, change=None, files=None) -> Path:
    """Copy the first ``n`` real DICOM slices to ``dest`` with the secret patient name, then ``change(ds, k)``."""
    dest.mkdir(parents=True, exist_ok=True)
    for k, source in enumerate(sorted(DICOM_SAMPLE.glob("*.dcm"))[:n]):
        ds = pydicom.dcmread(source)
        ds.PatientName = SECRET_NAME
        ds.PatientID = SECRET_ID
        if change is not None:
            change(ds, k)
        ds.save_as(dest / source.name, enforce_file_format=False)
    return dest


def kaggle_case(dest: Path, n: int = 3, case: str = "TCGA_XX_0000_20000101") -> Path:
    """A Kaggle-layout folder with the first ``n`` real slices of the small sample, renamed to ``case``."""
    dest.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        shutil.copyfile(KAGGLE_SAMPLE / f"{KAGGLE_SAMPLE.name}_{k}.tif", dest / f"{case}_{k}.tif")
    return dest


# --------------------------------------------------------------------------- the cases


def build(dest: str | Path) -> list[Case]:
    """Write every case under ``dest`` and return them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def flair_case(name, path, problem, tags=(), extra=()):
        cases.append(Case(name, ["--flair", str(path), *extra], str(path), problem, tags=set(tags)))

    good = write(dest / "good" / "flair_small.nii", nifti_bytes())  # valid: used as FLAIR for the T1 cases
    good_gz = dest / "good" / "flair_small.nii.gz"
    nib.save(small_flair(), good_gz)
    valid_nii = bytes(nifti_bytes())

    # ---- NIfTI: empty, truncated, inconsistent header
    flair_case("nifti_zero_byte", write(dest / "nifti_zero_byte" / "flair.nii.gz", b""), "empty")
    flair_case("nifti_zero_byte_uncompressed", write(dest / "nifti_zero_byte_raw" / "flair.nii", b""), "empty")
    gz = good_gz.read_bytes()
    flair_case("nifti_truncated_gz", write(dest / "nifti_truncated_gz" / "flair.nii.gz", gz[: len(gz) // 2]), "truncated")
    flair_case("nifti_truncated_in_header", write(dest / "nifti_truncated_header" / "flair.nii", valid_nii[:200]), "header")
    flair_case("nifti_truncated_data", write(dest / "nifti_truncated_data" / "flair.nii", valid_nii[:-5000]), "truncated")
    flair_case("nifti_header_only", write(dest / "nifti_header_only" / "flair.nii", valid_nii[:352]), "truncated")
    flair_case(
        "nifti_dims_exceed_data",
        write(dest / "nifti_dims_exceed_data" / "flair.nii", patch(nifti_bytes(), NII_DIM, "8h", 3, 64, 64, 80, 1, 1, 1, 1)),
        "truncated",
    )
    flair_case(
        "nifti_vox_offset_past_end",
        write(dest / "nifti_vox_offset" / "flair.nii", patch(nifti_bytes(), NII_VOX_OFFSET, "f", 1e7)),
        "truncated",
    )
    flair_case(
        "nifti_zero_pixdim",
        write(dest / "nifti_zero_pixdim" / "flair.nii", patch(nifti_bytes(), NII_PIXDIM + 4, "3f", 0.0, 0.898, 5.5)),
        "spacing",
    )
    flair_case(
        "nifti_negative_pixdim",
        write(dest / "nifti_negative_pixdim" / "flair.nii", patch(nifti_bytes(), NII_PIXDIM + 4, "3f", 0.898, 0.898, -5.5)),
        "spacing",
    )
    flair_case(
        "nifti_nan_pixdim",
        write(dest / "nifti_nan_pixdim" / "flair.nii", patch(nifti_bytes(), NII_PIXDIM + 4, "3f", float("nan"), 0.898, 5.5)),
        "spacing",
    )
    singular = nifti_bytes()
    patch(singular, NII_QFORM_CODE, "2h", 0, 1)  # sform only
    patch(singular, NII_SROW, "12f", 0.9, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0)  # third row and column zero
    flair_case("nifti_singular_affine", write(dest / "nifti_singular_affine" / "flair.nii", singular), "singular")
    sform = nifti_bytes()
    patch(sform, NII_SROW + 8, "f", float("-inf"))  # found by the fuzz harness: printed an SVD dump
    flair_case("nifti_infinite_sform", write(dest / "nifti_infinite_sform" / "flair.nii", sform), "not finite")
    flair_case(
        "nifti_negative_dim",
        write(dest / "nifti_negative_dim" / "flair.nii", patch(nifti_bytes(), NII_DIM, "8h", 3, -64, 64, 8, 1, 1, 1, 1)),
        "dimensions",
    )
    flair_case(
        "nifti_bad_datatype",
        write(dest / "nifti_bad_datatype" / "flair.nii", patch(nifti_bytes(), NII_DATATYPE, "2h", 1234, 16)),
        "header",
    )
    flair_case(
        "nifti_not_an_image",
        write(dest / "nifti_not_an_image" / "flair.nii.gz", b"<html>404 Not Found</html>\n" * 40),
        "header",
    )

    # ---- 2D, 4D, vector, tiny, absurdly large
    flair_case("nifti_2d", _save(dest / "nifti_2d" / "flair.nii.gz", nib.Nifti1Image(np.arange(4096, dtype=np.int16).reshape(64, 64), np.eye(4))), "2d")
    flair_case(
        "nifti_single_slice_3d",
        _save(dest / "nifti_single_slice" / "flair.nii.gz", nib.Nifti1Image(np.arange(4096, dtype=np.int16).reshape(64, 64, 1), np.eye(4))),
        "2d",
    )
    four_d = np.stack([np.asarray(small_flair().dataobj)] * 3, axis=-1)
    flair_case("nifti_4d", _save(dest / "nifti_4d" / "flair.nii.gz", nib.Nifti1Image(four_d, small_flair().affine)), "4d")
    rgb = np.zeros((64, 64, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.arange(64)[:, None, None]
    flair_case("nifti_rgb", _save(dest / "nifti_rgb" / "flair.nii.gz", nib.Nifti1Image(rgb, np.eye(4))), "components")
    flair_case("nifti_1x1x1", _save(dest / "nifti_1x1x1" / "flair.nii.gz", nib.Nifti1Image(np.ones((1, 1, 1), np.int16), np.eye(4))), "small")
    flair_case(
        "nifti_huge_declared_32767_cubed",
        write(dest / "nifti_huge_nifti1" / "flair.nii", patch(nifti_bytes(), NII_DIM, "8h", 3, 32767, 32767, 32767, 1, 1, 1, 1)[:4000]),
        "voxels",
        tags={"huge"},
    )
    flair_case("nifti2_huge_declared_100000_cubed", write(dest / "nifti2_huge" / "flair.nii", _nifti2_huge()), "voxels", tags={"huge"})
    thin = np.tile(np.arange(16 * 16, dtype=np.uint8).reshape(16, 16, 1), (1, 1, 4096))
    flair_case("nifti_too_many_slices", _save(dest / "nifti_too_many_slices" / "flair.nii.gz", nib.Nifti1Image(thin, np.eye(4))), "slices", tags={"huge"})

    # ---- values: NaN, Inf, constant, overflow
    data = np.asarray(small_flair().dataobj).astype(np.float32)
    nan = data.copy()
    nan[10:20, 10:20, 3] = np.nan
    flair_case("nifti_nan", _save(dest / "nifti_nan" / "flair.nii.gz", with_data(nan)), "nan")
    inf = data.copy()
    inf[30, 30, 4] = np.inf
    flair_case("nifti_inf", _save(dest / "nifti_inf" / "flair.nii.gz", with_data(inf)), "infinite")
    flair_case("nifti_constant", _save(dest / "nifti_constant" / "flair.nii.gz", with_data(np.full(data.shape, 417, np.int16))), "same value")
    flair_case("nifti_all_zero", _save(dest / "nifti_all_zero" / "flair.nii.gz", with_data(np.zeros(data.shape, np.uint8))), "same value")
    huge_values = data.astype(np.float64) * 1e300
    flair_case("nifti_float64_beyond_float32", _save(dest / "nifti_float64_overflow" / "flair.nii.gz", with_data(huge_values)), "range")
    slope = nifti_bytes()
    patch(slope, NII_SCL_SLOPE, "2f", 3e37, 0.0)  # int16 x 3e37 overflows float32
    flair_case("nifti_scl_slope_overflow", write(dest / "nifti_scl_slope_overflow" / "flair.nii", slope), "range")
    nrrd_nan = nan.transpose(2, 1, 0).astype("<f4").tobytes()  # NRRD: fastest axis first
    flair_case("nrrd_nan", write(dest / "nrrd_nan" / "flair.nrrd", nrrd_header("64 64 8", kind="float") + nrrd_nan), "nan")

    # ---- T1 problems: named by the T1 path
    far = small_flair()
    far = nib.Nifti1Image(np.asarray(far.dataobj), far.affine @ _translation(0, 0, 5000), far.header)
    t1_far = _save(dest / "t1_no_overlap" / "t1.nii.gz", far)
    cases.append(Case("t1_does_not_overlap_flair", ["--flair", str(good), "--t1", str(t1_far)], str(t1_far), "overlap"))
    t1_nan = _save(dest / "t1_nan" / "t1 with nan.nii.gz", with_data(nan))
    cases.append(Case("t1c_nan_named", ["--flair", str(good), "--t1c", str(t1_nan)], str(t1_nan), "nan"))
    missing = dest / "t1_missing" / "no such t1.nii.gz"
    cases.append(Case("t1_missing_file", ["--flair", str(good), "--t1", str(missing)], str(missing), "no such"))

    # ---- NRRD
    flair_case("nrrd_zero_byte", write(dest / "nrrd_zero_byte" / "flair.nrrd", b""), "empty")
    flair_case(
        "nrrd_truncated",
        write(dest / "nrrd_truncated" / "flair.nrrd", nrrd_header("64 64 8") + b"\x01\x00" * 1000),
        "truncated",
    )
    flair_case(
        "nrrd_huge_declared_100000_cubed",
        write(dest / "nrrd_huge" / "flair.nrrd", nrrd_header("100000 100000 100000") + b"\x00" * 64),
        "voxels",
        tags={"huge"},
    )
    flair_case(
        "nrrd_negative_size",
        write(dest / "nrrd_negative_size" / "flair.nrrd", nrrd_header("64 -64 8") + b"\x00" * 64),
        "header",
    )
    flair_case(
        "nrrd_gzip_corrupt",
        write(dest / "nrrd_gzip_corrupt" / "flair.nrrd", nrrd_header("64 64 8", "gzip") + b"\x1f\x8b\x08\x00garbage" * 50),
        "truncated",
    )
    flair_case(
        "nrrd_4d",
        write(dest / "nrrd_4d" / "flair.nrrd", nrrd_header("32 32 8 3", extra="").replace(
            b"space directions: (1,0,0) (0,1,0) (0,0,1)", b"space directions: (1,0,0) (0,1,0) (0,0,1) none"
        ).replace(b"space: left-posterior-superior\n", b"space: left-posterior-superior\nkinds: domain domain domain list\n")
            + np.arange(32 * 32 * 8 * 3, dtype=np.int16).tobytes()),
        "4d",
    )

    # ---- DICOM
    def dicom_case(name, folder, problem, names=None):
        cases.append(Case(name, ["--flair", str(folder)], str(names or folder), problem, tags={"dicom"}))

    zero = dest / "dicom_zero_byte"
    zero.mkdir()
    (zero / "1-07.dcm").write_bytes(b"")
    dicom_case("dicom_zero_byte", zero, "no dicom")
    folder = dicom_series(dest / "dicom_truncated_pixels")
    victim = sorted(folder.glob("*.dcm"))[2]
    victim.write_bytes(victim.read_bytes()[:-40000])
    dicom_case("dicom_truncated_pixels", folder, "1-09.dcm")
    folder = dicom_series(dest / "dicom_truncated_header")
    victim = sorted(folder.glob("*.dcm"))[2]
    victim.write_bytes(victim.read_bytes()[:700])
    dicom_case("dicom_truncated_header", folder, "incomplete series")  # pydicom reads the stub as a non-image file
    dicom_case("dicom_no_pixel_data", dicom_series(dest / "dicom_no_pixel_data", change=_drop("PixelData")), "pixel data")
    dicom_case(
        "dicom_no_pixel_data_one_file",
        dicom_series(dest / "dicom_no_pixel_data_one", change=lambda ds, k: k == 3 and _drop("PixelData")(ds, k)),
        "pixel data",
    )
    dicom_case(
        "dicom_no_image_position",
        dicom_series(dest / "dicom_no_position", change=lambda ds, k: k == 1 and _drop("ImagePositionPatient")(ds, k)),
        "imagepositionpatient",
    )

    def duplicate(ds, k):
        if k == 2:
            ds.ImagePositionPatient = pydicom.dcmread(sorted(DICOM_SAMPLE.glob("*.dcm"))[1]).ImagePositionPatient

    dicom_case("dicom_duplicate_positions", dicom_series(dest / "dicom_duplicate", change=duplicate), "share the position")

    def other_series(ds, k):
        if k % 2:
            ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"

    dicom_case("dicom_mixed_series", dicom_series(dest / "dicom_mixed_series", change=other_series), "2 series")
    folder = dicom_series(dest / "dicom_missing_slice")
    sorted(folder.glob("*.dcm"))[2].unlink()
    dicom_case("dicom_missing_slice", folder, "irregular")

    def as_ct(ds, k):
        ds.Modality = "CT"

    dicom_case("dicom_ct_modality", dicom_series(dest / "dicom_ct", change=as_ct), "modality ct")

    def unsupported_syntax(ds, k):
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2, no pixel decoder
        ds.PixelData = encapsulate([bytes(ds.PixelData[:20000])])

    dicom_case("dicom_unsupported_transfer_syntax", dicom_series(dest / "dicom_mpeg2", change=unsupported_syntax), "transfer syntax")

    def private_syntax(ds, k):
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7.8.9"  # unknown private syntax
        ds.PixelData = encapsulate([bytes(ds.PixelData[:20000])])

    dicom_case("dicom_unknown_transfer_syntax", dicom_series(dest / "dicom_private_syntax", change=private_syntax), "1-07.dcm")
    dicom_case("dicom_single_slice", dicom_series(dest / "dicom_single_slice", n=1), "2d")

    def huge_rows(ds, k):
        ds.Rows, ds.Columns = 65535, 65535

    dicom_case("dicom_huge_rows_columns", dicom_series(dest / "dicom_huge_rows", change=huge_rows), "voxels")

    def rgb_dicom(ds, k):
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.Rows, ds.Columns = 160, 130  # same byte count as 320x260 greyscale, 16-bit

    dicom_case("dicom_rgb", dicom_series(dest / "dicom_rgb", change=rgb_dicom), "greyscale")

    def nan_spacing(ds, k):
        ds.PixelSpacing = ["0", "0.6875"]

    dicom_case("dicom_zero_pixel_spacing", dicom_series(dest / "dicom_zero_spacing", change=nan_spacing), "spacing")

    def rescale_overflow(ds, k):
        ds.RescaleSlope, ds.RescaleIntercept = "1e300", "0"

    dicom_case("dicom_rescale_overflow", dicom_series(dest / "dicom_rescale_overflow", change=rescale_overflow), "range")

    # found by the fuzz harness (tests/fuzz): crashes before the fix
    def single_orientation(ds, k):
        ds.ImageOrientationPatient = "1"  # one value where six are needed

    dicom_case("dicom_orientation_single_value", dicom_series(dest / "dicom_orientation_one", change=single_orientation), "malformed")

    def nan_orientation(ds, k):
        ds.ImageOrientationPatient = ["nan", "0", "0", "0", "1", "0"]

    dicom_case("dicom_nan_orientation", dicom_series(dest / "dicom_nan_orientation", change=nan_orientation), "orientation")

    def bad_frames(ds, k):
        ds.NumberOfFrames = "1000000"

    dicom_case("dicom_bogus_number_of_frames", dicom_series(dest / "dicom_bogus_frames", change=bad_frames), "frame")

    # ---- Kaggle folders
    def kaggle(name, folder, problem, names=None):
        cases.append(Case(name, [str(folder)], str(names or folder), problem, tags={"kaggle"}))

    folder = kaggle_case(dest / "kaggle_gap" / "TCGA_XX_0000_20000101", n=4)
    (folder / "TCGA_XX_0000_20000101_3.tif").unlink()
    kaggle("kaggle_numbering_gap", folder, "gaps")
    folder = kaggle_case(dest / "kaggle_mixed_sizes" / "TCGA_XX_0000_20000101")
    Image.open(folder / "TCGA_XX_0000_20000101_2.tif").resize((128, 128)).save(folder / "TCGA_XX_0000_20000101_2.tif")
    kaggle("kaggle_mixed_sizes", folder, "shape", names=folder / "TCGA_XX_0000_20000101_2.tif")
    folder = kaggle_case(dest / "kaggle_grey" / "TCGA_XX_0000_20000101")
    Image.open(folder / "TCGA_XX_0000_20000101_3.tif").convert("L").save(folder / "TCGA_XX_0000_20000101_3.tif")
    kaggle("kaggle_greyscale_slice", folder, "shape", names=folder / "TCGA_XX_0000_20000101_3.tif")
    folder = kaggle_case(dest / "kaggle_truncated" / "TCGA_XX_0000_20000101")
    tif = folder / "TCGA_XX_0000_20000101_2.tif"
    tif.write_bytes(tif.read_bytes()[:5000])
    kaggle("kaggle_truncated_tif", folder, "cannot read", names=tif)
    tif = kaggle_case(dest / "kaggle_zero_byte" / "TCGA_XX_0000_20000101") / "TCGA_XX_0000_20000101_1.tif"
    tif.write_bytes(b"")
    kaggle("kaggle_zero_byte_tif", tif.parent, "cannot read", names=tif)
    empty = dest / "kaggle_empty" / "TCGA_XX_0000_20000101"
    empty.mkdir(parents=True)
    kaggle("kaggle_empty_folder", empty, "not a kaggle")
    folder = kaggle_case(dest / "kaggle unicode" / "TCGA ünï 脑 case", case="TCGA ünï 脑 case")
    bad = folder / "TCGA ünï 脑 case_2.tif"
    bad.write_bytes(b"II*\x00garbage")
    kaggle("kaggle_unicode_and_spaces", folder, "cannot read", names=bad)
    bad = write(dest / "names" / "FLAIR scan ünïcødé 脑 (copy).nii.gz", gz[:3000])
    flair_case("nifti_unicode_and_spaces_truncated", bad, "truncated")

    # ---- outputs: a valid small Kaggle case written where it cannot be
    valid = kaggle_case(dest / "valid" / "TCGA_XX_0000_20000101")
    cases.append(Case("output_read_only", [str(valid)], "{out}", "write", output="readonly", tags={"output"}))
    cases.append(Case("output_disk_full", [str(valid)], "{out}", "space", output="full", tags={"output"}))
    cases.append(Case("output_disk_full_volume", ["--flair", str(good)], "{out}", "space", output="full", tags={"output"}))
    return cases


def _save(path: Path, image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def _translation(x, y, z) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


def _drop(keyword):
    def change(ds, k):
        if keyword in ds:
            delattr(ds, keyword)
        return True

    return change


def _nifti2_huge() -> bytes:
    """A NIfTI-2 header declaring 100000^3 int16 voxels, followed by a few bytes (no data)."""
    header = nib.Nifti2Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((100000, 100000, 100000))
    header.set_zooms((1.0, 1.0, 1.0))
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 544
    return header.binaryblock + b"\x00" * 4 + b"\x00" * 1024


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    for case in build(argv[0]):
        print(f"{case.name}\t{' '.join(case.args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
