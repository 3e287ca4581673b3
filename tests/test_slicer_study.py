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
