"""The Slicer module's "Compare with prior" on slicer-core: real MRML nodes, the real engine process.

The prior study is the LGG sample's raw FLAIR with its reference lesion; the current study is the
same head moved by a known rigid motion (5 degrees, 8 mm, as tests/test_compare.py) with the lesion
grown by one voxel in-plane, both loaded with Slicer's reader and imported as TumorSeg results.
``compareWithPrior`` runs ``compare`` in the warm engine and must give back the New, Resolved and
Stable segments, a transform that carries the prior onto the current FLAIR, and the change table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import slicer
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_fixture as sf  # noqa: E402
from conftest import fail_after  # noqa: E402

# The logic's wait for the engine has no time limit of its own (a user's study may take long); in the tests,
# a generous last guard makes a hung engine fail the test instead of stopping the suite. Not a speed check.
WAIT_LIMIT_S = 1200


@pytest.fixture(autouse=True)
def _fail_rather_than_hang():
    with fail_after(WAIT_LIMIT_S, "a test of the Slicer logic"):
        yield
from test_compare import known_motion, moved, write_case  # noqa: E402

TumorSeg = sf.import_module()
TumorSegLogic = TumorSeg.TumorSegLogic
comparenodes = TumorSeg.comparenodes


def segment_voxels(node, segment_id):
    """Voxels of a segment in its (shared) binary labelmap, on the grid it was read on (no transform applied)."""
    from vtk.util import numpy_support

    segment = node.GetSegmentation().GetSegment(segment_id)
    image = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    return int((numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()) == segment.GetLabelValue()).sum())


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("slicer_compare")
    flair = sitk.ReadImage(str(sf.SAMPLE_DIR / "flair.nii.gz"))
    lesion = sitk.Cast(sitk.ReadImage(str(sf.SAMPLE_DIR / "flair_lesion.nii.gz")), sitk.sitkUInt8)
    grown = sitk.BinaryDilate(lesion, [1, 1, 0], sitk.sitkCross)
    motion = known_motion()
    sitk.WriteImage(moved(flair, motion), str(root / "current_flair.nii.gz"))
    sitk.WriteImage(moved(grown, motion), str(root / "current_mask.nii.gz"))
    added = int(sitk.GetArrayViewFromImage(grown).sum()) - int(sitk.GetArrayViewFromImage(lesion).sum())
    priorFolder = write_case(root / "prior_case", sf.SAMPLE_DIR / "flair.nii.gz", lesion)

    scene = sf.new_scene()
    logic = TumorSegLogic()
    report = {"case_id": "r", "tumor_detected": True, "slices": [], "quality": {}}
    priorFlair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "prior FLAIR")
    priorSeg = logic.importResult(priorFlair, sf.SAMPLE_DIR / "flair_lesion.nii.gz", {**report, "case_id": "prior"})
    currentFlair = sf.load_volume(scene, root / "current_flair.nii.gz", "current FLAIR")
    study = sf.put_in_study(scene, [currentFlair])
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    sh.SetItemAttribute(study, "DICOM.StudyDate", "20200701")  # as DICOM import sets it
    currentSeg = logic.importResult(currentFlair, root / "current_mask.nii.gz", {**report, "case_id": "current"})
    return dict(scene=scene, logic=logic, priorFolder=priorFolder, priorSeg=priorSeg, currentFlair=currentFlair,
                currentSeg=currentSeg, motion=motion, lesion=lesion, study=study,
                added_ml=added * float(np.prod(flair.GetSpacing())) / 1000.0)


@pytest.fixture(scope="module")
def compared(studies):
    progress = []
    with fail_after(WAIT_LIMIT_S, "compare in the Slicer logic"):
        changeNode, tableNode = studies["logic"].compareWithPrior(
            studies["priorSeg"], studies["currentFlair"], studies["currentSeg"], dates=("2020-01-01", "2020-07-01"),
            progressCallback=lambda p, m: progress.append((p, m)))
    yield dict(changeNode=changeNode, tableNode=tableNode, progress=progress,
               change=json.loads(changeNode.GetAttribute(comparenodes.CHANGE_ATTRIBUTE)))
    TumorSegLogic.stopEngine()


def test_change_segments_hold_the_known_growth(studies, compared):
    node, change = compared["changeNode"], compared["change"]
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == \
        ["New", "Resolved", "Stable"]
    spacing = np.prod(sitk.ReadImage(str(sf.SAMPLE_DIR / "flair.nii.gz")).GetSpacing()) / 1000.0
    volumes = {name: segment_voxels(node, name) * spacing for name in comparenodes.CHANGE_SEGMENT_IDS}
    assert volumes["New"] - volumes["Resolved"] == pytest.approx(studies["added_ml"], rel=0.03)
    assert volumes["Stable"] == pytest.approx(change["baseline"]["measurements"]["volume_ml"], rel=0.03)
    assert change["volume_change_ml"] == pytest.approx(studies["added_ml"], rel=0.02)
    assert compared["progress"][-1] == (1.0, "Done.")
    assert not studies["logic"].isRunning()


def test_transform_carries_the_prior_onto_the_current_flair(studies, compared):
    transformNode = compared["changeNode"].GetParentTransformNode()
    assert transformNode is not None
    matrix = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToParent(matrix)
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(studies["lesion"])
    centroid_lps = np.asarray(statistics.GetCentroid(1))
    true_lps = np.asarray(studies["motion"].TransformPoint(centroid_lps.tolist()))
    flip = np.array([-1.0, -1.0, 1.0])
    found_ras = np.asarray(matrix.MultiplyPoint([*(centroid_lps * flip), 1.0]))[:3]
    assert np.linalg.norm(found_ras - true_lps * flip) < 1.0  # mm


def test_change_table_and_dates(studies, compared):
    table = compared["tableNode"].GetTable()
    rows = {table.GetValue(r, 0).ToString(): [table.GetValue(r, c).ToString() for c in range(1, 4)]
            for r in range(table.GetNumberOfRows())}
    change = compared["change"]
    before, after = (change[s]["measurements"]["volume_ml"] for s in ("baseline", "followup"))
    assert rows["Volume (mL)"][:2] == [f"{before:.2f}", f"{after:.2f}"]
    assert rows["Volume (mL)"][2].startswith(f"{after - before:+.2f} (+")
    assert rows["RANO 2.0, volumetric (+40% / -65%)"][2] == change["volumetric"]["category"]
    assert rows["RANO, bidimensional (+25% / -50%)"][2] == change["category"]
    # the current study's DICOM StudyDate (subject hierarchy) wins over the date given
    assert rows["Study date"] == ["2020-01-01", "2020-07-01", "182 days"]
    assert change["followup"]["date_source"] == "DICOM StudyDate"
    assert compared["changeNode"].GetNodeReference(comparenodes.CHANGE_TABLE_ROLE) is compared["tableNode"]
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(studies["scene"])
    assert sh.GetItemParent(sh.GetItemByDataNode(compared["changeNode"])) == studies["study"]


def test_prior_case_folder_gives_the_same_change(studies, compared):
    changeNode, _ = studies["logic"].compareWithPrior(studies["priorFolder"], studies["currentFlair"], studies["currentSeg"])
    change = json.loads(changeNode.GetAttribute(comparenodes.CHANGE_ATTRIBUTE))
    assert change["volume_change_ml"] == pytest.approx(compared["change"]["volume_change_ml"], abs=1e-6)
    assert change["baseline"]["case"] == str(studies["priorFolder"])


def test_bad_prior_is_one_line(studies, tmp_path):
    with pytest.raises(TumorSeg.TumorSegError, match="holds no report.json"):
        studies["logic"].compareWithPrior(tmp_path, studies["currentFlair"], studies["currentSeg"])
    empty = studies["scene"].AddNewNodeByClass("vtkMRMLSegmentationNode", "not a result")
    with pytest.raises(TumorSeg.TumorSegError, match="is not a TumorSeg result"):
        studies["logic"].compareWithPrior(empty, studies["currentFlair"], studies["currentSeg"])
    assert not studies["logic"].isRunning()


def test_lps_to_ras_maps_points_as_the_lps_transform_does():
    """A rigid transform in LPS, applied to points given in RAS: the RAS matrix must move each point to
    the RAS of where the LPS matrix moves it. (The Slicer API the compare helpers use is checked with the
    rest of the module in tests/test_slicer_module.py.)"""
    rotation = sitk.VersorRigid3DTransform()
    rotation.SetRotation((0.3, 1.0, 0.2), 0.4)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(rotation.GetMatrix()).reshape(3, 3)
    lps[:3, 3] = [5.0, -6.0, 7.0]
    ras = np.asarray(comparenodes.lpsToRas(lps.tolist()))
    for point_ras in ([0.0, 0.0, 0.0], [10.0, -20.0, 30.0], [-45.5, 12.25, 80.0]):
        point_lps = np.array([-point_ras[0], -point_ras[1], point_ras[2], 1.0])
        moved_lps = lps @ point_lps
        expected_ras = [-moved_lps[0], -moved_lps[1], moved_lps[2]]
        assert np.allclose((ras @ np.array([*point_ras, 1.0]))[:3], expected_ras, atol=1e-9)


def test_prior_flair_without_a_result_is_detected_first(studies):
    """The prior study's FLAIR alone: the module detects it (the real networks), then compares."""
    scene = studies["scene"]
    priorFlair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "prior FLAIR, no result")
    changeNode, tableNode = studies["logic"].compareWithPrior(priorFlair, studies["currentFlair"], studies["currentSeg"])
    change = json.loads(changeNode.GetAttribute(comparenodes.CHANGE_ATTRIBUTE))
    detected = change["baseline"]["measurements"]["volume_ml"]
    spacing_ml = np.prod(studies["lesion"].GetSpacing()) / 1000.0
    reference = int(sitk.GetArrayViewFromImage(studies["lesion"]).sum()) * spacing_ml  # the reference lesion
    assert 0.5 * reference < detected < 1.5 * reference  # the detection found the lesion, not the whole head
    assert tableNode.GetNumberOfRows() == len(comparenodes.changeRows(change))
    assert not studies["logic"].isRunning()
