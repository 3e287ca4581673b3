"""``tumorseg detect`` end to end with the shipped weights: outputs, geometry and accuracy on real studies."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from conftest import BET, KAGGLE, RAW, ROOT, run_cli
from monai_core.detect import detect_case
from monai_core.metrics import dice

BET_DICE_FLOOR = 0.70  # measured 0.773 with the 0.3.0 bundle (0.718 with 0.2.0; bundle/docs/robustness_real.md)


@pytest.fixture(scope="module")
def raw_result(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    report = detect_case(
        pipeline, out, flair=RAW / "flair.nii.gz", t1=RAW / "t1.nii.gz", t1c=RAW / "t1c.nii.gz",
        case_id="FG6692", seg_nrrd=True, overlay=True,
    )
    return out / "FG6692", report


def test_raw_volumes_segmentation_overlays_the_flair_and_finds_the_lesion(raw_result):
    folder, report = raw_result
    flair = sitk.ReadImage(str(RAW / "flair.nii.gz"))
    seg = sitk.ReadImage(str(folder / "segmentation.nii.gz"))
    assert seg.GetSize() == flair.GetSize() and seg.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(seg.GetOrigin(), flair.GetOrigin(), atol=1e-3)
    assert np.allclose(seg.GetDirection(), flair.GetDirection(), atol=1e-5)
    assert np.allclose(seg.GetSpacing(), flair.GetSpacing(), atol=1e-5)
    assert np.allclose(nib.load(folder / "segmentation.nii.gz").affine, nib.load(RAW / "flair.nii.gz").affine, atol=1e-3)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(RAW / "flair_lesion.nii.gz")))
    assert dice(sitk.GetArrayFromImage(seg), truth) >= 0.80
    voxel_ml = np.prod(flair.GetSpacing()) / 1000
    assert report["tumor_volume_ml"] == pytest.approx(sitk.GetArrayFromImage(seg).sum() * voxel_ml, rel=1e-3)


def test_report_follows_the_output_contract(raw_result):
    folder, report = raw_result
    on_disk = json.loads((folder / "report.json").read_text())
    assert on_disk == report
    assert {"case_id", "inputs", "tumor_detected", "tumor_volume_ml", "slices", "bundle", "timing_s"} <= report.keys()
    assert report["inputs"]["flair"].endswith("flair.nii.gz") and report["inputs"]["t1c"].endswith("t1c.nii.gz")
    assert [s["index"] for s in report["slices"]] == list(range(26))
    assert all({"index", "tumor_probability", "positive", "tumor_pixels"} == s.keys() for s in report["slices"])
    assert report["tumor_detected"] and any(s["positive"] for s in report["slices"])
    assert report["tumor_slices"] == sum(1 for s in report["slices"] if s["tumor_pixels"] > 0) > 0
    assert set(report["bundle"]["sha256"]) == {"models/model.pt", "models/model_classifier.pt"}  # what ran
    assert sorted(p.name for p in folder.iterdir()) == [
        "overlay.png", "report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"
    ]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_seg_nrrd_reads_back_with_slicerio_as_one_tumor_segment(raw_result):
    folder, _ = raw_result
    segmentation = slicerio.read_segmentation(str(folder / "segmentation.seg.nrrd"))
    assert slicerio.segment_names(segmentation) == ["Tumor"]
    segment = slicerio.segment_from_name(segmentation, "Tumor")
    assert segment["terminology"]["type"][1] == "108369006"
    voxels = slicerio.extract_segments(segmentation, [("Tumor", 1)])["voxels"]
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "segmentation.nii.gz"))).transpose(2, 1, 0)
    assert np.array_equal(voxels > 0, nifti > 0)


def test_kaggle_folder_output_is_the_slice_stack(pipeline, tmp_path):
    case = KAGGLE / "TCGA_FG_6692_20020606"
    report = detect_case(pipeline, tmp_path, kaggle_dir=case)
    image = nib.load(tmp_path / case.name / "segmentation.nii.gz")
    data = np.asanyarray(image.dataobj)
    assert data.shape == (256, 256, 26) and data.dtype == np.uint8
    assert report["tumor_volume_ml"] is None
    assert [s["tumor_pixels"] for s in report["slices"]] == [int(data[:, :, k].sum()) for k in range(26)]
    from PIL import Image

    truth = np.stack([np.asarray(Image.open(case / f"{case.name}_{k + 1}_mask.tif")) > 0 for k in range(26)], axis=-1)
    assert dice(data, truth) >= 0.75  # [:, :, k] is slice file k+1, rows and columns as the tif


def test_cli_refuses_to_overwrite_and_keeps_the_old_result(tmp_path):
    case = KAGGLE / "TCGA_HT_7680_19970202"
    first = run_cli("detect", case, "-o", tmp_path, "--progress", "none")
    assert first.returncode == 0, first.stderr
    report = tmp_path / case.name / "report.json"
    written = json.loads(report.read_text())
    checked = sum(s["positive"] for s in written["slices"])
    assert f"tumour on {written['tumor_slices']} of 21 slices; {checked} checked by the segmenter" in first.stdout
    before = report.read_bytes()
    again = run_cli("detect", case, "-o", tmp_path, "--progress", "json")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("tumorseg: error:") and "Traceback" not in again.stderr
    assert report.read_bytes() == before
    forced = run_cli("detect", case, "-o", tmp_path, "--overwrite", "--progress", "json")
    assert forced.returncode == 0
    stages = [json.loads(line)["stage"] for line in forced.stderr.splitlines() if line.startswith("{")]
    assert stages[0] == "load" and stages[-1] == "done" and "classify" in stages


def test_detect_never_imports_monai(tmp_path):
    """Importing MONAI costs about 4.5 s of a cold command line; the inference path does without it."""
    script = (
        "import sys\n"
        "from monai_core.cli import main\n"
        f"code = main(['detect', {str(KAGGLE / 'TCGA_HT_7680_19970202')!r}, '-o', {str(tmp_path)!r}, '--progress', 'none'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'monai', 'ignite', 'highdicom', 'matplotlib'})\n"
        "sys.exit(f'{code} {heavy}' if code or heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_real_skull_stripped_study_is_segmented_and_recognised(pipeline, tmp_path):
    """The BraTS Toolkit's skull-stripped, 1 mm atlas-space scans of a fold-0 development patient."""
    folder = BET / "TCGA-DU-7294"
    report = detect_case(pipeline, tmp_path, flair=folder / "flair.nii.gz", t1=folder / "t1.nii.gz",
                         t1c=folder / "t1c.nii.gz", case_id="bet")
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bet" / "segmentation.nii.gz")))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "flair_lesion.nii.gz")))
    assert dice(seg, truth) >= BET_DICE_FLOOR
    codes = {w["code"] for w in report["quality"]["warnings"]}
    assert {"skull_stripped", "slice_spacing"} <= codes  # 1 mm slices, zero outside the brain


# --------------------------------------------------------------------------- start-up (issue 27)


def test_a_cold_detect_loads_the_models_while_reading_and_writes_the_same_mask(raw_result, tmp_path):
    """The command line loads torch and the weights in a thread while the study is read and registered:
    the mask is the same as with a pipeline loaded beforehand, and a NIfTI study imports neither the DICOM
    readers nor nibabel (whose NIfTI module imports pydicom)."""
    script = (
        "import sys, threading\n"
        "from monai_core.cli import main\n"
        "loaded_in = []\n"
        "import monai_core.commands.detect as command\n"
        "load = command._load_pipeline\n"
        "command._load_pipeline = lambda bundle: (loaded_in.append(threading.current_thread().name), load(bundle))[1]\n"
        f"code = main(['detect', '--flair', {str(RAW / 'flair.nii.gz')!r}, '--t1', {str(RAW / 't1.nii.gz')!r},"
        f" '--t1c', {str(RAW / 't1c.nii.gz')!r}, '--case-id', 'FG6692', '-o', {str(tmp_path)!r}, '--progress', 'none'])\n"
        "unneeded = sorted(m for m in sys.modules if m in {'monai_core.io.dicom', 'monai_core.series_choice', 'highdicom',"
        " 'pydicom', 'nibabel'})\n"
        "sys.exit(f'{code} {unneeded} {loaded_in}' if code or unneeded or loaded_in == ['MainThread'] or not loaded_in else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    folder, _ = raw_result
    cold = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "FG6692" / "segmentation.nii.gz")))
    warm = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "segmentation.nii.gz")))
    assert cold.any() and np.array_equal(cold, warm)


def test_the_models_load_with_one_torch_thread_and_the_count_is_restored(monkeypatch):
    """Building the pipeline is ~1800 tiny tensor operations: one thread, not OpenMP workers spinning
    beside the study's registration; the networks then run with the threads they had."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    import monai_core.commands.detect as command
    import monai_core.pipeline

    seen = []
    monkeypatch.setattr(monai_core.pipeline, "TumorSegPipeline", lambda bundle: seen.append(torch.get_num_threads()) or "built")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with ThreadPoolExecutor(1) as loader:  # as a cold detect loads it, beside the main thread
            assert loader.submit(command._load_pipeline, None).result() == "built"
            assert loader.submit(torch.get_num_threads).result() == 2
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_study_that_cannot_be_read_waits_for_the_loading_models_then_fails(tmp_path, monkeypatch):
    """The read's error wins, but only once the loading thread has ended (no thread left importing torch)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import monai_core.detect as detect
    from monai_core.errors import InputError

    read_failed = threading.Event()

    def failing_read(*args, **kwargs):
        read_failed.set()
        raise InputError(tmp_path / "flair.nii.gz", "the file is truncated")

    def slow_load():
        assert read_failed.wait(timeout=600)  # ends only after the read has failed
        return "pipeline"

    monkeypatch.setattr(detect, "read_case", failing_read)
    with ThreadPoolExecutor(1) as executor:
        loading = executor.submit(slow_load)
        with pytest.raises(InputError, match="truncated"):
            detect.detect_case(loading, tmp_path, flair=tmp_path / "flair.nii.gz")
        assert loading.done() and loading.result() == "pipeline"


def test_the_loaders_own_error_is_raised_after_the_read(tmp_path, monkeypatch):
    from concurrent.futures import Future

    import monai_core.detect as detect
    from monai_core.errors import InputError

    failed = Future()
    failed.set_exception(InputError(tmp_path / "model.pt", "weights checksum mismatch"))
    read = []
    monkeypatch.setattr(detect, "read_case", lambda *a, **k: read.append(1) or (None, {}))
    with pytest.raises(InputError, match="checksum"):
        detect.detect_case(failed, tmp_path, flair=RAW / "flair.nii.gz")
    assert read == [1]
