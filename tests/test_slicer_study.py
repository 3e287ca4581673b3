"""The Slicer module proposes FLAIR, T1 and T1c when a whole DICOM study is loaded (slicer-core, no GUI).

The issue's 19-series study (tests/dicom_studies.py) is loaded series by series with Slicer's own
volume reader, as the DICOM module does (a DICOM file list per volume, ``DICOM.instanceUIDs`` set,
placed under one patient and study). ``TumorSegLogic.proposeSeries`` must pick the same series as
``detect --study``, through the engine's ``choose-series`` in its own process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest

import slicer  # slicer-core
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dicom_studies as ds  # noqa: E402
import slicer_fixture as sf  # noqa: E402
from conftest import fail_after  # noqa: E402

# The logic runs the engine's series choice without a time limit of its own; here a generous last guard
# makes a hung engine fail the test instead of stopping the suite. Not a speed check.
WAIT_LIMIT_S = 600


@pytest.fixture(autouse=True)
def _fail_rather_than_hang():
    with fail_after(WAIT_LIMIT_S, "a test of the Slicer series proposal"):
        yield


TumorSeg = sf.import_module()
from TumorSegLib import studyseries  # noqa: E402  (importable once the module folder is on sys.path)

SERIES_ROLES = {"flair": 701, "t1": 901, "t1c": 1201}


def load_study(scene, folder: Path, uids: dict, patient: str, study: str) -> dict:
    """Each series as a scalar volume node, the way Slicer's DICOM plugin loads it; {series number: node}."""
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLScene(scene)
    nodes = {}
    for number in uids:
        files = sorted(str(p) for p in (folder / f"s{number:04d}").glob("*.dcm"))
        names = vtk.vtkStringArray()
        for name in files:
            names.InsertNextValue(name)
        description = pydicom.dcmread(files[0], stop_before_pixels=True).SeriesDescription
        node = volumes.AddArchetypeScalarVolume(files[0], f"{number}: {description}", 0, names)
        if node is None:  # Slicer reads each orientation of a three-plane localizer on its own; skip it here
            continue
        node.SetAttribute("DICOM.instanceUIDs", " ".join(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                                                          for f in files))
        nodes[number] = node
    sf.put_in_study(scene, list(nodes.values()), patient=patient, study=study)
    return nodes


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("slicer_study")
    scene = sf.new_scene()
    first = ds.philips_study(root / "first", full=False)
    second = ds.philips_study(root / "second", flair=False, full=False)
    nodes = load_study(scene, root / "first", first, "P1", "MR brain 1")
    others = load_study(scene, root / "second", second, "P2", "MR brain 2")
    return scene, nodes, others


def test_the_module_proposes_the_series_of_detect_study(scene):
    scene, nodes, _ = scene
    assert {701, 901, 1101, 1201} <= set(nodes)
    proposal = TumorSeg.TumorSegLogic().proposeSeries(nodes[301])  # any volume of the study
    assert {role: proposal.nodes[role] for role in SERIES_ROLES} == {role: nodes[n] for role, n in SERIES_ROLES.items()}
    assert "taken as pre-contrast" in proposal.reasons["t1"] and "taken as post-contrast" in proposal.reasons["t1c"]
    assert "which lack the FLAIR's orientation (2D axial)" in proposal.reasons["t1"]
    text = proposal.text().splitlines()
    assert text[0].startswith("FLAIR: 701: T2W_FLAIR_TRA (description 'T2W_FLAIR_TRA', series 701: the earliest")
    assert text[1].startswith("T1 (pre-contrast): 901: T1W_SE-TRA_FS (")
    assert text[3].startswith("Not used: ") and "1101 'T1W_3D_FFE_ COR CLEAR' (lacks the FLAIR's orientation" in text[3]


def test_only_the_reference_volumes_study_is_considered(scene):
    """Two studies in the scene: the second has no FLAIR, and its error names its own candidates only."""
    scene, nodes, others = scene
    with pytest.raises(TumorSeg.TumorSegError) as error:
        TumorSeg.TumorSegLogic().proposeSeries(others[901])
    message = str(error.value)
    assert "no FLAIR series found" in message and "\n" not in message
    assert others[901].GetAttribute("DICOM.instanceUIDs").split()[0] not in message  # series, not instances
    assert studyseries.studyVolumes(scene, nodes[701]) == [n for n in nodes.values()]


def test_volumes_not_from_dicom_give_a_clear_error():
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    with pytest.raises(TumorSeg.TumorSegError, match="None of the volumes was loaded from DICOM"):
        studyseries.proposeSeries([flair], runChooser=lambda files: pytest.fail("nothing to choose from"))


def test_files_come_from_the_dicom_database_when_slicer_has_one(scene):
    """In Slicer the files are found by instance UID in the DICOM database; the storage node is the fallback."""
    _, nodes, _ = scene
    node = nodes[901]
    uids = node.GetAttribute("DICOM.instanceUIDs").split()
    database = {uid: f"/db/{uid}.dcm" for uid in uids}
    assert studyseries.dicomFiles(node, database.get) == [database[uid] for uid in uids]
    stored = studyseries.dicomFiles(node)
    assert len(stored) == len(uids) and all(Path(f).name.startswith("IM") for f in stored)


# --------------------------------------------------------------------------- the panel: propose, show why, let the user change


class Timer:
    """qt.QTimer's part the view uses; the test fires it by calling the view's slot."""

    def __init__(self):
        self.interval, self.started, self.slots = 0, 0, []

    def setSingleShot(self, single):
        self.single = single

    def connect(self, signal, slot):
        self.slots.append(slot)

    def start(self):
        self.started += 1


@pytest.fixture
def panel(scene, monkeypatch):
    """The study choice of the panel over the real scene, logic and engine (Qt widgets are recording stand-ins)."""
    import contextlib
    import types

    import qt
    import slicer_widgets

    from TumorSegLib.studyview import StudySeriesView

    scene, nodes, others = scene
    dialogs = slicer_widgets.install(monkeypatch, scene)
    monkeypatch.setattr(qt, "QTimer", Timer, raising=False)
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    parameters = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    observed = []
    widget = types.SimpleNamespace(ui=types.SimpleNamespace(inputsFormLayout=slicer_widgets.Widget()),
                                   logic=TumorSeg.TumorSegLogic(), _parameterNode=parameters, _running=False,
                                   addObserver=lambda *args: observed.append(args))
    roles = {"flair": TumorSeg.FLAIR_ROLE, "t1": TumorSeg.T1_ROLE, "t1c": TumorSeg.T1C_ROLE}
    view = StudySeriesView(widget, roles)
    yield types.SimpleNamespace(view=view, parameters=parameters, nodes=nodes, others=others, roles=roles,
                                dialogs=dialogs, observed=observed)
    scene.RemoveNode(parameters)


def chosen(panel) -> dict:
    return {role: panel.parameters.GetNodeReference(reference) for role, reference in panel.roles.items()}


def test_the_panel_proposes_shows_why_and_keeps_the_users_choice(panel):
    view, nodes = panel.view, panel.nodes
    assert [args[1] for args in panel.observed] == [slicer.vtkMRMLScene.NodeAddedEvent]  # loading a study is seen
    view.onNodeAdded()
    assert view.timer.started == 1  # many nodes arrive: one proposal once they have
    view.onVolumesAdded()  # the study loaded last has no FLAIR: nothing is proposed, and no dialog interrupts
    assert chosen(panel) == {"flair": None, "t1": None, "t1c": None} and panel.dialogs.errors == []

    panel.parameters.SetNodeReferenceID(TumorSeg.FLAIR_ROLE, nodes[301].GetID())  # a volume of the first study
    view.button.click()  # "Choose series from study": that volume's study
    assert chosen(panel) == {role: nodes[n] for role, n in SERIES_ROLES.items()}
    assert view.label.visible and view.label.text.startswith("FLAIR: 701: T2W_FLAIR_TRA (description")
    assert "taken as post-contrast" in view.label.text and "Not used: " in view.label.text

    view.userChanged()  # the user picks the 3D coronal T1 instead
    panel.parameters.SetNodeReferenceID(TumorSeg.T1_ROLE, nodes[1101].GetID())
    view.onVolumesAdded()  # more volumes arrive: the user's choice stays
    assert chosen(panel)["t1"] is nodes[1101] and chosen(panel)["flair"] is nodes[701]

    view.button.click()  # asked again: the proposal replaces it
    assert chosen(panel)["t1"] is nodes[901]
    assert panel.dialogs.errors == []


def test_the_button_on_a_study_without_flair_shows_the_error(panel):
    panel.parameters.SetNodeReferenceID(TumorSeg.FLAIR_ROLE, panel.others[901].GetID())
    panel.view.userChanged()
    panel.view.button.click()
    [error] = panel.dialogs.errors
    assert "no FLAIR series found" in error
    assert chosen(panel)["flair"] is panel.others[901]  # nothing changed
