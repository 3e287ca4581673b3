"""Fuzz the input loaders and the preprocessing with Hypothesis, mutating real headers.

The seeds are the repository's real samples: a crop of the TCGA-FG-6692 FLAIR (NIfTI-1, its own
header), three slices of the PGBM-001 DICOM series, and an NRRD header written from the same FLAIR
crop. Each example changes header fields to odd values, flips bytes, or truncates the file, then
reads it with :func:`monai_core.io.volumes.read_volume` and, when that succeeds, runs the
preprocessing (model grid, resampling, intensity window). The only acceptable failure is our own
:class:`~monai_core.errors.InputError`; anything else is a bug.

    python tests/fuzz/fuzz_loaders.py --minutes 10 [--crashes DIR]   # long run, reports the count
    pytest tests/test_fuzz_short.py                                  # short, deterministic mode
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "malformed"))
import make_corpus  # noqa: E402  (the real samples and NIfTI field offsets)

from monai_core.errors import InputError  # noqa: E402
from monai_core.io.volumes import read_volume  # noqa: E402
from monai_core.preprocess import intensity_window, model_grid, to_model_space  # noqa: E402

STATS = {"inputs": 0, "input_errors": 0, "loaded": 0}
CRASH_DIR: Path | None = None

# --------------------------------------------------------------------------- seeds (real headers)

NIFTI_SEED = bytes(make_corpus.nifti_bytes())
DICOM_SEED = [pydicom.dcmread(p) for p in sorted(make_corpus.DICOM_SAMPLE.glob("*.dcm"))[:3]]
_crop = np.asarray(make_corpus.small_flair().dataobj)
NRRD_SEED_HEADER = [
    "NRRD0004",
    "type: short",
    "dimension: 3",
    "sizes: 64 64 8",
    "space: left-posterior-superior",
    "space directions: (0.898,0,0) (0,0.898,0) (0,0,5.5)",
    "space origin: (-90,-110,-40)",
    "encoding: raw",
    "endian: little",
]
NRRD_SEED_DATA = _crop.transpose(2, 1, 0).astype("<i2").tobytes()

# NIfTI-1 fields worth breaking: (offset, struct format)
NIFTI_FIELDS = [
    (0, "i"),  # sizeof_hdr
    *[(40 + 2 * i, "h") for i in range(8)],  # dim
    (70, "h"),  # datatype
    (72, "h"),  # bitpix
    *[(76 + 4 * i, "f") for i in range(8)],  # pixdim
    (108, "f"),  # vox_offset
    (112, "f"),  # scl_slope
    (116, "f"),  # scl_inter
    (252, "h"),  # qform_code
    (254, "h"),  # sform_code
    *[(256 + 4 * i, "f") for i in range(6)],  # quatern_b..d, qoffset_x..z
    *[(280 + 4 * i, "f") for i in range(12)],  # srow_x, srow_y, srow_z
    (344, "4s"),  # magic
]
INTERESTING_INTS = [0, 1, -1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 64, 255, 256, 1024, 4096, 32767, -32768, 2**31 - 1]
INTERESTING_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, -1e30, 3.4e38, float("nan"), float("inf"), float("-inf")]

DICOM_KEYWORDS = [
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
    "PhotometricInterpretation", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "NumberOfFrames", "RescaleSlope", "RescaleIntercept",
    "Modality", "SeriesInstanceUID", "PlanarConfiguration", "SeriesNumber", "PixelData",
]
DICOM_VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 8, 12, 16, 32, 64, 65535, -1]),
    st.sampled_from(["", "0", "-1", "1e308", "nan", "inf", "abc", "1\\2", "0\\0\\0", "1\\0\\0\\0\\1\\0",
                     "0\\0\\0\\0\\0\\0", "MR", "CT", "RGB", "MONOCHROME1", "PALETTE COLOR", "YBR_FULL"]),
    st.lists(st.sampled_from([0.0, 1.0, -1.0, 1e30, float("nan"), float("inf"), 0.5]), min_size=0, max_size=7),
    st.none(),  # delete the element
)


# --------------------------------------------------------------------------- the target


def target(name: str, content: bytes | dict[str, bytes]) -> None:
    """Write the input, read it and preprocess it; only an InputError may come out."""
    STATS["inputs"] += 1
    folder = Path(tempfile.mkdtemp(prefix="tumorseg-fuzz-"))
    try:
        if isinstance(content, dict):
            path = folder / name
            path.mkdir()
            for file, data in content.items():
                (path / file).write_bytes(data)
        else:
            path = folder / name
            path.write_bytes(content)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = read_volume(path)
                grid = model_grid(image)
                slices = intensity_window(to_model_space(image, grid))
            assert slices.shape[1:] == (256, 256) and np.all(np.isfinite(slices))
            STATS["loaded"] += 1
        except InputError:
            STATS["input_errors"] += 1
        except BaseException:
            if CRASH_DIR is not None:
                _save_crash(path, name)
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _save_crash(path: Path, name: str) -> None:
    dest = CRASH_DIR / f"{time.strftime('%H%M%S')}-{STATS['inputs']}-{name}"
    if path.is_dir():
        shutil.copytree(path, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    (dest.parent / (dest.name + ".txt")).write_text(traceback.format_exc())


# --------------------------------------------------------------------------- strategies


@st.composite
def nifti_inputs(draw) -> tuple[str, bytes]:
    blob = bytearray(NIFTI_SEED)
    for _ in range(draw(st.integers(1, 4))):
        offset, fmt = draw(st.sampled_from(NIFTI_FIELDS))
        if fmt == "4s":
            value = draw(st.sampled_from([b"n+1\0", b"ni1\0", b"n+2\0", b"\0\0\0\0", b"n+1X"]))
        elif fmt == "f":
            value = draw(st.one_of(st.sampled_from(INTERESTING_FLOATS), st.floats(width=32)))
        else:
            bits = 31 if fmt == "i" else 15
            value = draw(st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(-(2**bits), 2**bits - 1)))
            value = int(np.clip(value, -(2**bits), 2**bits - 1))
        struct.pack_into("<" + fmt, blob, offset, value)
    for _ in range(draw(st.integers(0, 2))):  # raw byte flips in the header
        blob[draw(st.integers(0, 351))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    compressed = draw(st.booleans())
    return ("flair.nii.gz", gzip.compress(bytes(blob), mtime=0)) if compressed else ("flair.nii", bytes(blob))


@st.composite
def dicom_inputs(draw) -> tuple[str, dict[str, bytes]]:
    datasets = [copy.deepcopy(ds) for ds in DICOM_SEED]
    for _ in range(draw(st.integers(1, 4))):
        keyword = draw(st.sampled_from(DICOM_KEYWORDS))
        value = draw(DICOM_VALUES)
        which = draw(st.sampled_from(["all", 0, 1, 2]))
        for k, ds in enumerate(datasets):
            if which != "all" and which != k:
                continue
            try:
                if value is None:
                    if keyword in ds:
                        delattr(ds, keyword)
                elif keyword == "PixelData":
                    ds.PixelData = bytes(ds.PixelData)[: int(abs(value)) if isinstance(value, int) else 100]
                else:
                    setattr(ds, keyword, value)
            except Exception:
                pass  # pydicom refused the value itself; nothing to write
    files = {}
    for k, ds in enumerate(datasets):
        stream = io.BytesIO()
        try:
            ds.save_as(stream, enforce_file_format=False)
        except Exception:
            continue  # not even writable: not an input anyone can have
        data = bytearray(stream.getvalue())
        if draw(st.booleans()) and draw(st.booleans()):
            for _ in range(draw(st.integers(1, 3))):
                data[draw(st.integers(0, min(len(data) - 1, 2000)))] = draw(st.integers(0, 255))
        if draw(st.integers(0, 5)) == 0:
            data = data[: draw(st.integers(0, len(data)))]
        files[f"1-{k:02d}.dcm"] = bytes(data)
    return "series", files


@st.composite
def nrrd_inputs(draw) -> tuple[str, bytes]:
    lines = list(NRRD_SEED_HEADER)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(1, len(lines) - 1))
        key = lines[i].split(":")[0]
        value = draw(st.sampled_from([
            "", "0", "-1", "64 64", "64 64 8 2", "100000 100000 100000", "nan nan nan", "(0,0,0) (0,0,0) (0,0,0)",
            "(nan,0,0) (0,1,0) (0,0,1)", "(1,0,0) (0,1,0)", "gzip", "bzip2", "ascii", "hex", "float", "double",
            "uchar", "int64", "big", "abc", "(1e300,0,0) (0,1,0) (0,0,1)", "2", "4",
        ]))
        lines[i] = f"{key}: {value}"
    data = NRRD_SEED_DATA
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return "flair.nrrd", ("\n".join(lines) + "\n\n").encode() + data


def build_tests(examples: int, derandomize: bool):
    """The three Hypothesis tests with these settings."""
    common = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )

    @common
    @given(nifti_inputs())
    def fuzz_nifti(case):
        target(*case)

    @common
    @given(dicom_inputs())
    def fuzz_dicom(case):
        target(*case)

    @common
    @given(nrrd_inputs())
    def fuzz_nrrd(case):
        target(*case)

    return [fuzz_nifti, fuzz_dicom, fuzz_nrrd]


def main(argv=None) -> int:
    global CRASH_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--crashes", type=Path, default=Path(tempfile.gettempdir()) / "tumorseg-fuzz-crashes")
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space cap: a huge allocation is a crash")
    args = parser.parse_args(argv)
    import resource

    cap = int(args.memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    CRASH_DIR = args.crashes
    CRASH_DIR.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.minutes * 60
    crashes, rounds = [], 0
    while time.monotonic() < deadline:
        for test in build_tests(examples=50, derandomize=False):
            if time.monotonic() >= deadline:
                break
            rounds += 1
            try:
                test()
            except Exception as error:  # Hypothesis has shrunk it and saved the input; go on
                crashes.append(f"{test.__name__}: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}")
                print("CRASH", crashes[-1], flush=True)
        print(f"{STATS} after {rounds} rounds", flush=True)
    print(f"fuzzing done: {STATS['inputs']} inputs tried ({STATS['input_errors']} refused with InputError, "
          f"{STATS['loaded']} loaded and preprocessed), {len(crashes)} crashes; crash inputs in {CRASH_DIR}")
    for line in crashes:
        print("  " + line)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
