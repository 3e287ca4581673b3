"""The TumorSeg Slicer module's logic against Slicer's real MRML nodes (slicer-core), without the GUI.

The LGG sample (TCGA-FG-6692) is loaded with Slicer's own reader, ``TumorSegLogic.process`` runs the
real ``monai_core detect`` in a subprocess, and the result is checked as MRML: the segment and its
terminology, the reference geometry, voxel-for-voxel agreement with the engine's file, overlap
with the ground-truth lesion, the slice table, the subject hierarchy, and .seg.nrrd storage. Only
``qt``, ``ctk`` and ``slicer.ScriptedLoadableModule`` are stand-ins (tests/slicer_fixture.py).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import slicer  # slicer-core: a test dependency, so a missing install fails rather than skips
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_api  # noqa: E402
import slicer_fixture as sf  # noqa: E402
from conftest import fail_after  # noqa: E402

# The logic's wait for the engine has no time limit of its own (a user's study may take long); in the tests,
# a generous last guard makes a hung engine fail the test instead of stopping the suite. Not a speed check.
WAIT_LIMIT_S = 1200


@pytest.fixture(autouse=True)
def _fail_rather_than_hang():
    with fail_after(WAIT_LIMIT_S, "a test of the Slicer logic"):
        yield

TumorSeg = sf.import_module()
TumorSegLogic = TumorSeg.TumorSegLogic
TumorSegError = TumorSeg.TumorSegError

DICE_FLOOR = 0.5


def _dice(a, b):
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def _export_tumor(segmentation_node, reference_node):
    """The Tumor segment as a labelmap array on ``reference_node``'s grid, through Slicer's export."""
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(TumorSeg.TUMOR_SEGMENT_ID)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_node)
    array = slicer.util.arrayFromVolume(labelmap).copy()
    matrix = sf.ijk_to_ras(labelmap)
    scene.RemoveNode(labelmap)
    return array, matrix


@pytest.fixture(scope="module")
def sample():
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    t1 = sf.load_volume(scene, sf.SAMPLE_DIR / "t1.nii.gz", "T1")
    t1c = sf.load_volume(scene, sf.SAMPLE_DIR / "t1c.nii.gz", "T1c")
    study = sf.put_in_study(scene, [flair, t1, t1c])
    return scene, flair, t1, t1c, study


@pytest.fixture(scope="module")
def detected(sample, tmp_path_factory):
    """One real run of process() on FLAIR + T1 + T1c, temporary files kept for comparison."""
    scene, flair, t1, t1c, study = sample
    logic = TumorSegLogic()
    logic.keepTemporaryFiles = True
    progress = []
    started = time.monotonic()
    with fail_after(WAIT_LIMIT_S, "detect in the Slicer logic"):
        segmentation = logic.process(flair, t1, t1c, progressCallback=lambda p, m: progress.append((p, m)))
    elapsed = time.monotonic() - started
    kept = tmp_path_factory.mktemp("detect") / "run"
    shutil.move(str(logic.lastTemporaryFolder), kept)
    report = json.loads((kept / "out" / "case" / "report.json").read_text())
    print(f"process() took {elapsed:.1f} s")
    return dict(logic=logic, segmentation=segmentation, progress=progress, kept=kept, report=report)


# --- the result as MRML ---------------------------------------------------------------------------


def test_one_tumor_segment_with_terminology(detected):
    segmentation = detected["segmentation"].GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetSegment("Tumor")
    assert segment is not None and segment.GetName() == "Tumor"
    serialized = vtk.reference("")
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), serialized)
    entry = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic().DeserializeTerminologyEntry(str(serialized), entry)
    codes = lambda obj: (obj.GetCodingSchemeDesignator(), obj.GetCodeValue(), obj.GetCodeMeaning())  # noqa: E731
    assert codes(entry.GetCategoryObject()) == ("SCT", "49755003", "Morphologically Altered Structure")
    assert codes(entry.GetTypeObject()) == ("SCT", "108369006", "Neoplasm")
    region = entry.GetAnatomicRegionObject() if hasattr(entry, "GetAnatomicRegionObject") else entry.GetRegionObject()
    assert codes(region) == ("SCT", "12738006", "Brain")


def test_reference_geometry_is_the_flair(sample, detected):
    _, flair, *_ = sample
    node = detected["segmentation"]
    assert node.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()) is flair
    geometry = node.GetSegmentation().GetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    matrix = vtk.vtkMatrix4x4()
    flair.GetIJKToRASMatrix(matrix)
    expected = slicer.vtkSegmentationConverter.SerializeImageGeometry(matrix, flair.GetImageData())
    assert geometry == expected


def test_labelmap_on_flair_grid_equals_engine_result_and_overlaps_lesion(sample, detected):
    scene, flair, *_ = sample
    mask, matrix = _export_tumor(detected["segmentation"], flair)
    assert mask.shape == slicer.util.arrayFromVolume(flair).shape
    assert np.allclose(matrix, sf.ijk_to_ras(flair), atol=1e-9)
    # The engine's own file, read independently of Slicer. Its grid is the NRRD the module wrote,
    # i.e. the FLAIR node's voxel order, so the arrays compare index for index.
    engine_image = sitk.ReadImage(str(detected["kept"] / "out" / "case" / "segmentation.nii.gz"))
    written = sitk.ReadImage(str(detected["kept"] / "input" / "flair.nrrd"))
    assert engine_image.GetSize() == written.GetSize()
    assert np.allclose(engine_image.GetOrigin(), written.GetOrigin(), atol=1e-3)
    assert np.allclose(engine_image.GetDirection(), written.GetDirection(), atol=1e-4)
    engine = sitk.GetArrayFromImage(engine_image)
    assert engine.any(), "the engine found no tumour on a patient with a tumour"
    assert np.array_equal(mask > 0, engine > 0)
    # Ground truth, loaded with Slicer's reader into the same scene.
    lesion = sf.load_volume(scene, sf.SAMPLE_DIR / "flair_lesion.nii.gz", "lesion", labelmap=True)
    assert np.allclose(sf.ijk_to_ras(lesion), sf.ijk_to_ras(flair), atol=1e-3)
    dice = _dice(mask, slicer.util.arrayFromVolume(lesion))
    print(f"Dice of the Tumor segment against flair_lesion.nii.gz: {dice:.3f}")
    assert dice > DICE_FLOOR


def test_probability_table_has_one_row_per_slice(sample, detected):
    _, flair, *_ = sample
    table_node = detected["segmentation"].GetNodeReference(TumorSeg.SEGMENTATION_TABLE_ROLE)
    assert table_node is not None and table_node.IsA("vtkMRMLTableNode")
    n_slices = flair.GetImageData().GetDimensions()[TumorSegLogic.axialAxis(flair)]
    assert table_node.GetNumberOfRows() == n_slices == len(detected["report"]["slices"])
    table = table_node.GetTable()
    for row, entry in enumerate(detected["report"]["slices"]):
        assert table.GetValueByName(row, "Slice").ToInt() == entry["index"]
        assert table.GetValueByName(row, "Tumor probability").ToDouble() == pytest.approx(entry["tumor_probability"])
        assert table.GetValueByName(row, "Positive").ToInt() == int(entry["positive"])
        assert table.GetValueByName(row, "Tumor pixels").ToInt() == entry["tumor_pixels"]
        uncertain = entry["index"] in detected["report"]["quality"]["uncertain_slices"]
        assert table.GetValueByName(row, "Uncertain").ToInt() == int(uncertain)
    assert sorted(e["index"] for e in detected["report"]["slices"]) == list(range(n_slices))


def test_quality_message_lists_low_confidence_and_warnings(detected):
    report = detected["report"]
    quality = report["quality"]
    assert {"confidence", "expected_dice", "flagged", "warnings"} <= quality.keys()
    assert quality["warnings"] == []  # FLAIR, T1 and T1c of one session: nothing to warn about
    assert (TumorSegLogic.qualityMessage(report) == "") == (not quality["flagged"])
    flagged = {**report, "quality": {"confidence": 0.21, "expected_dice": 0.43, "flagged": True, "uncertain_slices": [3, 4],
                                     "warnings": [{"code": "t1c_missing", "message": "no post-contrast T1"}]}}
    assert TumorSegLogic.qualityMessage(flagged).splitlines() == [
        "Low confidence: review this result carefully (confidence 0.21, expected Dice 0.43).",
        "Uncertain slices: 3, 4",
        "Warning: no post-contrast T1",
    ]
    clean = {**report, "quality": {"confidence": 0.9, "expected_dice": 0.88, "flagged": False, "uncertain_slices": [], "warnings": []}}
    assert TumorSegLogic.qualityMessage(clean) == ""


def test_slice_index_and_jump_position_match_the_mask(sample, detected):
    """Clicking a row jumps to sliceCenterRAS(index): a point inside the FLAIR slice that holds that row's tumour pixels."""
    _, flair, *_ = sample
    mask, _ = _export_tumor(detected["segmentation"], flair)
    axis = TumorSegLogic.axialAxis(flair)
    per_slice = (mask > 0).sum(axis=tuple(a for a in range(3) if a != 2 - axis))  # numpy order is (k, j, i)
    ras_to_ijk = np.linalg.inv(np.array(sf.ijk_to_ras(flair)))
    superior = []
    for entry in detected["report"]["slices"]:
        ras = TumorSegLogic.sliceCenterRAS(flair, entry["index"])
        ijk = ras_to_ijk @ np.array([*ras, 1.0])
        k = round(ijk[axis])
        assert abs(ijk[axis] - k) < 1e-6 and 0 <= k < per_slice.size
        assert per_slice[k] == entry["tumor_pixels"], f"slice {entry['index']} -> IJK {k}"
        superior.append(ras[2])
    # the engine's slices run from inferior to superior (DESIGN: the analysed axial axis)
    assert superior == sorted(superior)


def test_engine_counts_slices_from_inferior_to_superior():
    """sliceIJKIndex relies on this: monai_core orients the FLAIR grid to DICOM LPS (third axis towards S)."""
    from monai_core.preprocess import TRAINING_ORIENTATION

    assert TRAINING_ORIENTATION[2] == "S"


def test_results_are_in_the_flair_study(sample, detected):
    scene, flair, _, _, study = sample
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    table_node = detected["segmentation"].GetNodeReference(TumorSeg.SEGMENTATION_TABLE_ROLE)
    for node in (detected["segmentation"], table_node):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study


def test_report_volume_and_progress(detected):
    report = TumorSegLogic.reportFromSegmentation(detected["segmentation"])
    assert report == detected["report"]
    assert report["tumor_detected"] is True and report["tumor_volume_ml"] > 0
    fractions = [p for p, _ in detected["progress"]]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any("classif" in m.lower() or "segment" in m.lower() for _, m in detected["progress"]), detected["progress"]


def test_seg_nrrd_written_by_slicer_reads_back_with_slicerio(sample, detected, tmp_path):
    import slicerio

    _, flair, *_ = sample
    path = tmp_path / "tumor.seg.nrrd"
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(detected["segmentation"])
    seg = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in seg["segments"]] == ["Tumor"]
    terminology = seg["segments"][0]["terminology"]
    assert terminology["type"] == ["SCT", "108369006", "Neoplasm"]
    assert terminology["category"] == ["SCT", "49755003", "Morphologically Altered Structure"]
    assert terminology["anatomicRegion"] == ["SCT", "12738006", "Brain"]
    voxels = seg["voxels"]
    label = seg["segments"][0]["labelValue"]
    mask, _ = _export_tumor(detected["segmentation"], flair)
    assert int((voxels == label).sum()) == int((mask > 0).sum())


def test_existing_output_node_keeps_other_segments(sample, detected):
    """Re-importing into a chosen segmentation replaces only its Tumor segment."""
    scene, flair, *_ = sample
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    node.GetSegmentation().AddEmptySegment("other", "Other")
    result = detected["logic"].importResult(
        flair, detected["kept"] / "out" / "case" / "segmentation.nii.gz", detected["report"], node
    )
    assert result is node
    assert sorted(node.GetSegmentation().GetSegmentIDs()) == ["Tumor", "other"]
    mask, _ = _export_tumor(node, flair)
    reference, _ = _export_tumor(detected["segmentation"], flair)
    assert np.array_equal(mask, reference)


def test_nonempty_mask_imports_voxel_for_voxel(sample, detected):
    """The import path with a known non-empty mask on the FLAIR grid (the ground-truth lesion file)."""
    scene, flair, *_ = sample
    node = detected["logic"].importResult(flair, sf.SAMPLE_DIR / "flair_lesion.nii.gz", detected["report"])
    mask, _ = _export_tumor(node, flair)
    lesion = sf.load_volume(scene, sf.SAMPLE_DIR / "flair_lesion.nii.gz", "lesion (reference)", labelmap=True)
    expected = slicer.util.arrayFromVolume(lesion) > 0
    assert expected.sum() > 1000
    assert np.array_equal(mask > 0, expected)


def test_mask_on_another_grid_is_refused(sample, detected):
    scene, flair, t1, *_ = sample
    before = sf.scene_node_ids(scene)
    with pytest.raises(TumorSegError, match="not on the FLAIR's grid"):
        detected["logic"].importResult(flair, sf.SAMPLE_DIR / "t1.nii.gz", detected["report"])
    assert sf.scene_node_ids(scene) == before


def test_dicom_seg_export_from_a_dicom_loaded_volume(sample, tmp_path):
    """A volume loaded from a DICOM series the way Slicer's DICOM plugin does, exported as DICOM-SEG."""
    import pydicom

    _, nifti_flair, *_ = sample
    assert TumorSegLogic.dicomInstanceUIDs(nifti_flair) == []  # the export button stays disabled
    series_dir = sf.REPO / "tests" / "data" / "dicom" / "PGBM-001_T1post"
    files = sorted(str(p) for p in series_dir.glob("*.dcm"))
    scene = sf.new_scene()
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLScene(scene)
    file_list = vtk.vtkStringArray()
    for name in files:
        file_list.InsertNextValue(name)
    volume = volumes_logic.AddArchetypeScalarVolume(files[0], "T1post", 0, file_list)
    datasets = [pydicom.dcmread(name, stop_before_pixels=True) for name in files]
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(ds.SOPInstanceUID for ds in datasets))
    assert len(TumorSegLogic.dicomInstanceUIDs(volume)) == len(files)

    # a test mask on the series grid: bright voxels in the central slices
    array = slicer.util.arrayFromVolume(volume)
    mask = np.zeros(array.shape, np.uint8)
    mask[4:8] = array[4:8] > np.percentile(array, 99)
    mask_path = tmp_path / "mask.nrrd"
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "mask")
    slicer.util.updateVolumeFromArray(labelmap, mask)
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    labelmap.SetIJKToRASMatrix(matrix)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(mask_path))
    assert storage.WriteData(labelmap)
    scene.RemoveNode(labelmap)

    logic = TumorSegLogic()
    for flagged in (False, True):
        report = {"slices": [], "quality": {"confidence": 0.4 if flagged else 0.9, "flagged": flagged, "warnings": []}}
        segmentation = logic.importResult(volume, mask_path, report)
        output = tmp_path / f"tumor_{flagged}.dcm"
        logic.exportDicomSeg(segmentation, volume, files, output)
        seg = pydicom.dcmread(output)
        assert seg.Modality == "SEG"
        assert seg.StudyInstanceUID == datasets[0].StudyInstanceUID
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == datasets[0].SeriesInstanceUID
        assert int(np.asarray(seg.pixel_array).astype(bool).sum()) == int(mask.sum()) > 0
        # a flagged result carries its "low confidence" label into the SEG (README: "low confidence" in the DICOM-SEG)
        assert ("low confidence" in seg.SeriesDescription) == flagged
        assert ("low confidence" in getattr(seg.SegmentSequence[0], "SegmentDescription", "")) == flagged


def test_dicom_seg_export_error_is_one_line(sample, detected, tmp_path):
    """Exporting against a series of another grid: the engine refuses, and its one line is the message."""
    _, flair, *_ = sample
    files = sorted(str(p) for p in (sf.REPO / "tests" / "data" / "dicom" / "PGBM-001_T1post").glob("*.dcm"))
    with pytest.raises(TumorSegError) as error:
        detected["logic"].exportDicomSeg(detected["segmentation"], flair, files, tmp_path / "x.dcm")
    assert "\n" not in str(error.value) and "differs from the DICOM series" in str(error.value)
    assert not (tmp_path / "x.dcm").exists()


# --- cancel and errors -------------------------------------------------------------------------


def _group_pids(pgid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list the process tree")
def test_cancel_part_way_ends_process_tree_and_leaves_scene_unchanged(sample):
    scene, flair, t1, t1c, _ = sample
    logic = TumorSegLogic()
    before = sf.scene_node_ids(scene)
    seen = {}

    def on_progress(fraction, message):
        run = logic._run
        # Cancel once the engine itself has reported progress (it is running, models loading or later).
        if fraction > 0.05 and "pid" not in seen and run is not None:
            seen.update(pid=run.process.pid, temp=run.tempDir, message=message, group=_group_pids(run.process.pid))
            logic.cancel()

    assert logic.process(flair, t1, t1c, progressCallback=on_progress) is None
    assert "pid" in seen, "the engine never reported progress"
    assert seen["group"], "the engine process was not running when cancelled"
    for reaper in _engine(logic).reapers:  # cancel returned at once; the engine is reaped in the background
        reaper.join(timeout=120)
    deadline = time.monotonic() + 120  # a bound on waiting for the kernel to reap, not a speed check
    while _group_pids(seen["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_pids(seen["pid"]) == []
    for pid in seen["group"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not Path(seen["temp"]).exists()
    assert sf.scene_node_ids(scene) == before
    assert not logic.isRunning()


_SLOW_TO_REAP_ENGINE = """
import json, os, subprocess, sys
# a process in a session of its own that keeps the engine's stdout open, as a stray subprocess would:
# the engine's output reader cannot end until it does
holder = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"], stdin=subprocess.DEVNULL,
                          start_new_session=True)  # waits until the test kills it
pidFile = os.path.join(os.path.dirname(__file__), "..", "holder.pid")
with open(pidFile + ".tmp", "w") as out:
    out.write(str(holder.pid))
os.replace(pidFile + ".tmp", pidFile)
print(json.dumps({"ready": True, "pid": os.getpid(), "model_loads": 1, "load_s": 0}), flush=True)
for line in sys.stdin:
    print(json.dumps({"stage": "classify", "progress": 0.5, "message": "classifying"}), flush=True)
"""


def _process_state(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see a process's state")
def test_cancel_returns_at_once_and_the_engine_is_reaped_in_the_background(tmp_path):
    """Cancel must not wait for the engine to end: here its process cannot be reaped, and its output
    cannot close, until the test lets them; cancel returns all the same, and the engine ends afterwards."""
    import threading

    workDir = tmp_path / "engine"
    (workDir / "monai_core").mkdir(parents=True)
    (workDir / "monai_core" / "__init__.py").write_text("")
    (workDir / "monai_core" / "engine.py").write_text(_SLOW_TO_REAP_ENGINE)
    engine = TumorSeg.Engine(sys.executable, workDir)
    run = engine.submit({"flair": "x"}, tmp_path / "temp", tmp_path / "case")
    progress = []
    deadline = time.monotonic() + 120  # a bound on starting Python, not a speed check
    while not progress and time.monotonic() < deadline:
        run.pump(lambda fraction, message: progress.append(message))
        time.sleep(0.02)
    assert progress == ["classifying"], run.log
    holder = int((workDir / "holder.pid").read_text())

    reapable = threading.Event()  # the engine process may be waited for only once this is set
    wait = run.process.wait
    run.process.wait = lambda *args, **kwargs: (reapable.wait(), wait(*args, **kwargs))[1]
    returned = threading.Event()
    threading.Thread(target=lambda: (run.cancel(), returned.set()), daemon=True).start()
    try:
        assert returned.wait(timeout=120), "cancel waited for the engine process to be reaped"  # for good, if it waits
        assert run.cancelled and engine.process is None  # detached: the next request starts a new engine
        # killed (the kernel ends it as soon as it runs again) and not reaped: a zombie, until the test allows it
        deadline = time.monotonic() + 120
        while _process_state(run.process.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _process_state(run.process.pid) == "Z"
        reaper = engine.reapers[-1]
        assert reaper.is_alive() and run.reader.is_alive()
    finally:
        reapable.set()
        os.kill(holder, signal.SIGKILL)
    reaper.join(timeout=120)
    assert not reaper.is_alive() and not run.reader.is_alive()
    assert run.process.returncode == -signal.SIGKILL and _process_state(run.process.pid) is None

    (workDir / "holder.pid").unlink()
    second = engine.submit({"flair": "x"}, tmp_path / "temp2", tmp_path / "case2")  # a new engine process
    deadline = time.monotonic() + 120
    while not (workDir / "holder.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert second.process.pid != run.process.pid and engine.isAlive()
    second.cancel()
    os.kill(int((workDir / "holder.pid").read_text()), signal.SIGKILL)
    engine.reapers[-1].join(timeout=120)
    assert second.process.returncode == -signal.SIGKILL


def test_engine_error_reaches_the_caller_as_one_line(tmp_path):
    """A FLAIR the engine refuses: its 'tumorseg: error:' line becomes the TumorSegError message."""
    scene = sf.new_scene()
    flair = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "blank")
    image = vtk.vtkImageData()
    image.SetDimensions(64, 64, 8)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    image.GetPointData().GetScalars().Fill(0)
    flair.SetAndObserveImageData(image)
    before = sf.scene_node_ids(scene)
    logic = TumorSegLogic()
    with pytest.raises(TumorSegError) as error:
        logic.process(flair)
    message = str(error.value)
    assert "\n" not in message and "empty" in message, message
    assert "tumorseg: error:" in error.value.details
    assert sf.scene_node_ids(scene) == before
    assert not logic.isRunning()


# --- the warm engine -----------------------------------------------------------------------------


def _engine(logic):
    """The session's warm engine process (TumorSegLib/engine.py) that the logic's runs use."""
    return TumorSeg.sharedEngine(logic.pythonExecutable(), logic.engineDirectory())


def test_second_run_reuses_the_warm_engine(sample):
    """Two clicks: one engine process, the models loaded once, and the same result.

    The second click is faster because it skips starting Python, importing torch and loading the
    networks; that is shown by the PID and the load count, not by timing (tests/benchmarks/slicer_warm_engine.py).
    """
    scene, flair, t1, t1c, _ = sample
    TumorSegLogic.stopEngine()  # the first click starts the engine, whatever ran before
    logic = TumorSegLogic()
    runs = []
    for _ in range(2):
        messages = []
        segmentation = logic.process(flair, t1, t1c, progressCallback=lambda p, m: messages.append(m))
        engine = _engine(logic)
        runs.append(dict(segmentation=segmentation, messages=messages, pid=engine.pid, alive=engine.isAlive(),
                         starts=engine.starts, loads=engine.modelLoads, answer=engine.lastAnswer))
    first, second = runs
    assert first["segmentation"] is not None and second["segmentation"] is not None
    assert first["alive"] and second["alive"], "the engine should stay alive between runs"
    assert second["pid"] == first["pid"]
    assert (second["starts"], second["loads"]) == (1, 1)
    engine = {"pid": first["pid"], "model_loads": 1, "study_reads": 1, "prediction_runs": 1, "prediction_reuses": 0,
              "result_runs": 1}
    assert first["answer"]["engine"] == {**engine, "requests": 1, "study_reuses": 0, "result_reuses": 0}
    # the second click writes the same volumes to a new folder: the engine reuses the study and what it made of it
    assert second["answer"]["engine"] == {**engine, "requests": 2, "study_reuses": 1, "result_reuses": 1}
    assert "loading the models" in first["messages"] and "loading the models" not in second["messages"]
    # the same study, so the very same result: segment and report (but for where the inputs were written, and timing)
    assert np.array_equal(_export_tumor(first["segmentation"], flair)[0], _export_tumor(second["segmentation"], flair)[0])
    reports = [TumorSegLogic.reportFromSegmentation(run["segmentation"]) for run in runs]
    for report in reports:
        assert report.pop("inputs")["flair"].endswith("flair.nrrd") and report.pop("timing_s") is not None
    assert reports[0] == reports[1] and reports[0]["tumor_detected"]
    assert not logic.isRunning()

    # one voxel of the T1c changed in Slicer: read, registered and analysed again, not served from memory
    changed = sf.load_volume(scene, sf.SAMPLE_DIR / "t1c.nii.gz", "T1c changed")
    try:
        voxels = slicer.util.arrayFromVolume(changed)
        voxels[voxels.shape[0] // 2, voxels.shape[1] // 2, voxels.shape[2] // 2] += 100
        slicer.util.arrayFromVolumeModified(changed)
        assert logic.process(flair, t1, changed) is not None
        counts = _engine(logic).lastAnswer["engine"]
        assert counts["pid"] == first["pid"] and counts["requests"] == 3
        assert (counts["study_reads"], counts["study_reuses"], counts["result_runs"], counts["result_reuses"]) == (2, 1, 2, 1)
    finally:
        scene.RemoveNode(changed)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list the process tree")
def test_cancel_ends_the_warm_engine_and_the_next_run_starts_a_new_one(sample):
    scene, flair, t1, t1c, _ = sample
    logic = TumorSegLogic()
    assert logic.process(flair, t1, t1c) is not None
    engine = _engine(logic)
    warm_pid = engine.pid
    before = sf.scene_node_ids(scene)
    seen = {}

    def on_progress(fraction, message):
        run = logic._run
        if fraction > 0.05 and "pid" not in seen and run is not None:
            seen.update(pid=run.process.pid, temp=run.tempDir, group=_group_pids(run.process.pid))
            logic.cancel()

    assert logic.process(flair, t1, t1c, progressCallback=on_progress) is None
    assert seen.get("pid") == warm_pid, "the second run should run on the warm engine"
    assert seen["group"]
    for reaper in engine.reapers:
        reaper.join(timeout=120)
    deadline = time.monotonic() + 120  # a bound on waiting for the kernel to reap, not a speed check
    while _group_pids(warm_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_pids(warm_pid) == []
    assert not engine.isAlive()
    assert not Path(seen["temp"]).exists()
    assert sf.scene_node_ids(scene) == before

    third = logic.process(flair, t1, t1c)
    assert third is not None and third.GetSegmentation().GetSegment("Tumor") is not None
    engine = _engine(logic)
    assert engine.isAlive() and engine.pid != warm_pid
    assert engine.lastAnswer["engine"] == {"pid": engine.pid, "requests": 1, "model_loads": 1, "study_reads": 1,
                                           "study_reuses": 0, "prediction_runs": 1, "prediction_reuses": 0,
                                           "result_runs": 1, "result_reuses": 0}
    assert not logic.isRunning()


def test_module_never_imports_the_engine_in_slicers_python():
    """Slicer's own Python stays free of torch: the module and TumorSegLib import no engine package."""
    files = [sf.MODULE_DIR / "TumorSeg.py", *sorted((sf.MODULE_DIR / "TumorSegLib").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] not in ("torch", "monai", "monai_core"), f"{path.name} imports {name}"


# --- dependencies ------------------------------------------------------------------------------


def test_requirements_are_installed_in_this_environment():
    assert TumorSegLogic.slicerVersionProblem() is None
    assert TumorSegLogic.missingRequirements() == []
    assert TumorSegLogic.installPlan().steps == []


def test_missing_requirement_is_reported(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("monai==1.6.1\nno-such-distribution-tumorseg==1.0\ntorch==0.0.1\n")
    assert TumorSegLogic.missingRequirements(requirements) == ["no-such-distribution-tumorseg==1.0", "torch==0.0.1"]


# --- static check of the Slicer API the module uses -----------------------------------------------


def _manifest():
    import json

    version = ".".join(str(v) for v in TumorSeg.MINIMUM_SLICER_VERSION)
    path = slicer_api.MANIFEST_DIR / f"v{version}.0.json"
    assert path.is_file(), f"no record of Slicer {version}'s API: run tests/tools/slicer_api_manifest.py SLICER_GIT_DIR"
    return json.loads(path.read_text())


def test_every_file_of_the_module_uses_only_the_listed_api():
    """TumorSeg.py and every file of TumorSegLib/ (the compare view and nodes too)."""
    used = slicer_api.used_api()
    assert {"TumorSeg.py", "TumorSegLib/comparenodes.py", "TumorSegLib/compareview.py"} <= {f for files in used.values() for f in files}
    unknown = {chain: files for chain, files in used.items() if chain not in slicer_api.SLICER_API}
    assert not unknown, f"Slicer API not in tests/slicer_api.py (add it, then run tests/tools/slicer_api_manifest.py): {unknown}"
    unused = sorted(set(slicer_api.SLICER_API) - set(used))
    assert not unused, f"allow-list entries the module no longer uses: {unused}"


def test_the_listed_slicer_api_exists_in_the_minimum_slicer_version():
    """Every Slicer entry was found in the sources of the minimum version's tag (the record the tool made)."""
    manifest = _manifest()
    assert manifest["tag"] == "v{}.{}.0".format(*TumorSeg.MINIMUM_SLICER_VERSION)
    assert len(manifest["commit"]) == 40
    slicer_entries = {chain for chain in slicer_api.SLICER_API if slicer_api.slicer_source(chain)}
    assert slicer_entries == set(manifest["entries"]), (
        f"entries not checked against Slicer {manifest['tag']}: {sorted(slicer_entries - set(manifest['entries']))}; "
        f"stale: {sorted(set(manifest['entries']) - slicer_entries)} (run tests/tools/slicer_api_manifest.py)")
    for chain, found in manifest["entries"].items():
        assert found["file"] == slicer_api.SLICER_API[chain]
        assert chain.split(".")[-1] in found["text"]


def test_what_slicer_core_provides_exists_there_too():
    """The VTK classes, their static methods and slicer.util, for real, in slicer-core."""
    for chain in slicer_api.used_api():
        parts = chain.split(".")
        if parts[0] == "slicer" and (parts[1].startswith("vtk") or parts[1] == "util"):
            obj = slicer
            for part in parts[1:]:
                assert hasattr(obj, part), f"{chain} does not exist in slicer-core"
                obj = getattr(obj, part)


def test_api_check_detects_unknown_names():
    tree = ast.parse("import slicer\nslicer.util.noSuchFunction()\nslicer.vtkMRMLScene().GetNodes()\nqt.QTimer.singleShot(0, f)\n"
                     "PyTorchUtils.PyTorchUtilsLogic.installTorch()")
    assert slicer_api.api_chains(tree) == {"slicer.util.noSuchFunction", "slicer.vtkMRMLScene", "qt.QTimer.singleShot",
                                           "PyTorchUtils.PyTorchUtilsLogic.installTorch"}


def test_definition_lookup_finds_declarations_not_comments():
    header = "/// \\sa JumpAllSlices()\nclass VTK_MRML_EXPORT vtkMRMLSliceNode : public vtkMRMLAbstractViewNode\n" \
             "  static void JumpAllSlices(vtkMRMLScene* scene, double r);\n"
    assert slicer_api.definition_line(header, "JumpAllSlices") == (3, "static void JumpAllSlices(vtkMRMLScene* scene, double r);")
    assert slicer_api.definition_line(header, "vtkMRMLSliceNode")[0] == 2
    assert slicer_api.definition_line(header, "SetTerminology") is None
