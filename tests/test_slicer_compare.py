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
                currentSeg=currentSeg, motion=motion, lesion=lesion, study=study, current_mask=root / "current_mask.nii.gz",
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


def test_lps_to_ras_gives_slicer_the_same_motion():
    """A rigid motion in DICOM LPS, as change.json holds it, moves RAS points in a Slicer transform node the same way."""
    rng = np.random.default_rng(7)
    motion = sitk.Euler3DTransform((5.0, -3.0, 8.0), 0.3, -0.2, 0.1, (4.0, -9.0, 2.5))
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(motion.GetMatrix()).reshape(3, 3)
    matrix[:3, 3] = np.asarray(motion.TransformPoint((0.0, 0.0, 0.0)))
    node = slicer.vtkMRMLLinearTransformNode()
    vtk_matrix = vtk.vtkMatrix4x4()
    for r, row in enumerate(comparenodes.lpsToRas(matrix.tolist())):
        for c, value in enumerate(row):
            vtk_matrix.SetElement(r, c, value)
    node.SetMatrixTransformToParent(vtk_matrix)
    flip = np.array([-1.0, -1.0, 1.0])
    for point_lps in rng.uniform(-100, 100, (5, 3)):
        moved_ras = node.GetTransformToParent().TransformPoint((point_lps * flip).tolist())
        assert np.allclose(moved_ras, np.asarray(motion.TransformPoint(point_lps.tolist())) * flip, atol=1e-9)


def test_change_table_takes_its_percentages_from_change_json(studies, compared):
    """The table shows change.json's percentages, not its own: a changed figure in change.json is what it shows."""
    change = json.loads(json.dumps(compared["change"]))
    change["volume_change_percent"], change["bidimensional_product_change_percent"] = 12.4, -77.6
    table = comparenodes.changeTable(studies["scene"], change, "tampered").GetTable()
    rows = {table.GetValue(r, 0).ToString(): table.GetValue(r, 3).ToString() for r in range(table.GetNumberOfRows())}
    before, after = (change[s]["measurements"] for s in ("baseline", "followup"))
    assert rows["Volume (mL)"] == f"{after['volume_ml'] - before['volume_ml']:+.2f} (+12%)"
    assert rows["Bidimensional product (mm2)"].endswith(" (-78%)")
    assert "%" not in rows["Longest diameter (mm)"]  # change.json holds no percentage for a diameter
    # a lesion that resolved: no current diameters, change.json's -100%
    change["followup"]["measurements"] = {**dict.fromkeys(before), "volume_ml": 0.0}
    change["bidimensional_product_change_percent"] = -100.0
    rows = {r[0]: r[3] for r in comparenodes.changeRows(change)}
    assert rows["Bidimensional product (mm2)"] == "-100%" and rows["Longest diameter (mm)"] == "-"


def test_one_writer_for_every_file_the_engine_reads():
    """Volumes and segments reach the engine through TumorSegLib/nodewriter.py only, not through copies of it."""
    import ast

    writers = {}
    for path in [sf.MODULE_DIR / "TumorSeg.py", *sorted((sf.MODULE_DIR / "TumorSegLib").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("WriteData", "ExportSegmentsToLabelmapNode"):
                writers.setdefault(path.name, set()).add(node.attr)
    assert writers == {"nodewriter.py": {"WriteData", "ExportSegmentsToLabelmapNode"}}


def test_a_transformed_prior_flair_is_written_in_its_own_geometry_with_a_warning(studies, tmp_path, caplog):
    """The prior's transform is not applied (compare registers the studies), and the user is told so."""
    scene = studies["scene"]
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "prior FLAIR, moved by hand")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 25.0)
    transform.SetMatrixTransformToParent(matrix)
    flair.SetAndObserveTransformNodeID(transform.GetID())
    prior = studies["logic"].importResult(flair, sf.SAMPLE_DIR / "flair_lesion.nii.gz", {"case_id": "moved", "slices": []})
    with caplog.at_level("WARNING"):
        folder = comparenodes.writeCaseFolder(tmp_path / "case", flair, prior, {}, TumorSeg.TUMOR_SEGMENT_ID)
    assert [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()] == [
        "TumorSeg: the transform of 'prior FLAIR, moved by hand' is ignored; the engine registers the sequences and "
        "studies itself."]
    ijk_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(sf.ijk_to_ras(flair))  # its own, untransformed
    written = sitk.ReadImage(str(folder / "flair.nrrd"))
    assert np.allclose(written.GetOrigin(), ijk_to_lps[:3, 3], atol=1e-6)
    assert np.allclose(np.asarray(written.GetDirection()).reshape(3, 3) * written.GetSpacing(), ijk_to_lps[:3, :3],
                       atol=1e-6)
    # the mask on the FLAIR's own grid: in scanner space, voxel for voxel the lesion it was imported from
    mask = sitk.ReadImage(str(folder / "segmentation.nii.gz"))
    lesion = sitk.ReadImage(str(sf.SAMPLE_DIR / "flair_lesion.nii.gz"))
    assert mask.GetSize() == written.GetSize() and np.allclose(mask.GetOrigin(), written.GetOrigin(), atol=1e-3)
    on_lesion_grid = sitk.Resample(mask, lesion, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    assert np.array_equal(sitk.GetArrayViewFromImage(on_lesion_grid) > 0, sitk.GetArrayViewFromImage(lesion) > 0)


def test_the_current_study_and_labelmaps_are_refused_as_prior(studies):
    scene, logic = studies["scene"], studies["logic"]
    current, currentSeg = studies["currentFlair"], studies["currentSeg"]
    labelmap = sf.load_volume(scene, sf.SAMPLE_DIR / "flair_lesion.nii.gz", "lesion labelmap", labelmap=True)
    onCurrent = logic.importResult(current, studies["current_mask"], {"case_id": "again", "slices": []})
    nodes = scene.GetNumberOfNodes()
    for prior, message in ((current, "is the current FLAIR"), (labelmap, "is a labelmap"),
                           (currentSeg, "is the current result"), (onCurrent, "is a result on the current FLAIR")):
        with pytest.raises(TumorSeg.TumorSegError, match=message):
            logic.compareWithPrior(prior, current, currentSeg)
    assert scene.GetNumberOfNodes() == nodes and not logic.isRunning()


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


# ----------------------------------------------------------------------------------------- the panel section


class Panel:
    """The TumorSegWidget as CompareView sees it: layout, ui, parameter node, the real logic and ensureDependencies."""

    ensureDependencies = TumorSeg.TumorSegWidget.ensureDependencies  # the module's own: ask, then install

    def __init__(self, studies):
        import types

        import slicer_widgets as sw

        scene = studies["scene"]
        self.layout = sw.Widget()
        self.ui = types.SimpleNamespace(statusLabel=sw.Widget(), progressBar=sw.Widget(), applyButton=sw.Widget("Detect"))
        self.logic = studies["logic"]
        self._parameterNode = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
        self._parameterNode.SetNodeReferenceID(TumorSeg.FLAIR_ROLE, studies["currentFlair"].GetID())
        self._parameterNode.SetNodeReferenceID(TumorSeg.OUTPUT_ROLE, studies["currentSeg"].GetID())
        self.progress = []
        self.onProgressHook = None
        self.buttonsUpdated = 0
        self._install = None  # the widget's install state: none running

    def onProgress(self, progress, message):
        self.progress.append((progress, message))
        if self.onProgressHook:
            self.onProgressHook(progress, message)

    def updateButtons(self):  # the widget's: Detect is enabled again when nothing runs
        self.buttonsUpdated += 1
        self.ui.applyButton.enabled = True


@pytest.fixture
def view(studies, monkeypatch):
    """CompareView built on the widget stand-ins over the real scene, logic and engine: (view, panel, dialogs)."""
    import slicer_widgets as sw

    dialogs = sw.install(monkeypatch, studies["scene"], confirm=False)
    from TumorSegLib.compareview import CompareView

    panel = Panel(studies)
    view = CompareView(panel, TumorSeg.OUTPUT_ROLE, TumorSeg.FLAIR_ROLE, TumorSeg.TUMOR_SEGMENT_ID)
    return view, panel, dialogs


def change_nodes(scene):
    return [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())
            if scene.GetNthNode(i).GetAttribute(comparenodes.CHANGE_ATTRIBUTE)]


def test_the_prior_selector_offers_no_labelmap(studies, view):
    selector = view[0].priorSelector
    labelmap = sf.load_volume(studies["scene"], sf.SAMPLE_DIR / "flair_lesion.nii.gz", "a labelmap", labelmap=True)
    offered = selector.nodes()
    assert labelmap not in offered
    assert studies["priorSeg"] in offered and studies["currentFlair"] in offered  # results and FLAIRs are
    with pytest.raises(ValueError, match="not offered"):
        selector.setCurrentNode(labelmap)


def test_the_current_flair_is_refused_as_its_own_prior(studies, view):
    view, panel, dialogs = view
    view.priorSelector.setCurrentNode(studies["currentFlair"])
    nodes = studies["scene"].GetNumberOfNodes()
    view.compareButton.click()
    assert dialogs.errors == ["'current FLAIR' is the current FLAIR: choose the prior study's FLAIR or its TumorSeg result."]
    assert dialogs.confirmations == [] and panel.progress == []  # refused before anything else
    assert studies["scene"].GetNumberOfNodes() == nodes and not view.running


def test_compare_installs_the_engine_packages_first(studies, view, tmp_path, monkeypatch):
    """A Slicer without the engine's packages is asked to install them; declining compares nothing."""
    view, panel, dialogs = view
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tumorseg-absent-package==1.0\n")
    monkeypatch.setattr(TumorSegLogic, "requirementsFile", classmethod(lambda cls: requirements))
    view.priorSelector.setCurrentNode(studies["priorSeg"])
    nodes = studies["scene"].GetNumberOfNodes()
    view.compareButton.click()
    assert len(dialogs.confirmations) == 1 and "tumorseg-absent-package==1.0" in dialogs.confirmations[0]
    assert panel.progress == [] and studies["scene"].GetNumberOfNodes() == nodes and not view.running


def test_the_compare_button_cancels_a_running_comparison(studies, view):
    """Clicked while comparing, the button cancels: the engine ends, nothing is added, the panel is ready again."""
    view, panel, dialogs = view
    view.priorSelector.setCurrentNode(studies["priorSeg"])
    seen = {}

    def whileRunning(progress, message):
        if studies["logic"].isRunning() and "run" not in seen:  # the engine has the request
            seen.update(run=studies["logic"]._run, text=view.compareButton.text, detect=panel.ui.applyButton.enabled,
                        selector=view.priorSelector.enabled)
            view.compareButton.click()  # the user's second click, while Slicer processes events

    panel.onProgressHook = whileRunning
    before = change_nodes(studies["scene"])
    view.compareButton.click()
    assert (seen["text"], seen["detect"], seen["selector"]) == ("Cancel", False, False)
    assert seen["run"].cancelled
    for reaper in seen["run"].engine.reapers:  # cancel returned at once; the engine is reaped in the background
        reaper.join(timeout=120)
    assert seen["run"].process.poll() is not None  # the engine process ended
    assert not seen["run"].tempDir.exists()
    assert panel.ui.statusLabel.text == "Compare cancelled." and dialogs.errors == []
    assert view.compareButton.text == "Compare with prior..." and view.priorSelector.enabled
    assert panel.ui.applyButton.enabled and panel.buttonsUpdated >= 1
    assert change_nodes(studies["scene"]) == before and not studies["logic"].isRunning()
    # and the next comparison runs in a new engine
    panel.onProgressHook = None
    view.compareButton.click()
    assert panel.ui.statusLabel.text == "Compared with the prior study." and len(change_nodes(studies["scene"])) == len(before) + 1
