"""Run the TumorSeg Slicer module against slicer-core, Slicer's real MRML libraries without the GUI.

slicer-core (PyPI) provides the real MRML scene, volume, segmentation, table and subject-hierarchy
nodes, the segmentations and terminologies logic, storage nodes (NRRD/NIfTI/.seg.nrrd readers and
writers) and ``slicer.util``. It has no Qt, so it lacks ``qt``, ``ctk`` and the Python module
framework ``slicer.ScriptedLoadableModule``. This file provides only those, as small stand-ins:
nothing in the module's logic path uses them (``qt`` is only touched by the GUI and by
``waitForCompletion=False``), and the stand-in ``qt``/``ctk`` have no attributes, so any use fails loudly.

Kept out of a ``tests/slicer/`` folder on purpose: slicer-core's ``slicer/__init__.py`` calls
``pkgutil.extend_path`` and imports every module of every ``slicer/`` folder on sys.path into the
``slicer`` namespace, and pytest puts ``tests/`` on sys.path.
"""

from __future__ import annotations

import sys
import types
import unittest
from pathlib import Path

import slicer  # slicer-core
import vtk

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "TumorSegExtension" / "TumorSeg"
SAMPLE_DIR = REPO / "tests" / "data" / "TCGA-FG-6692"


class _ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent

    def resourcePath(self, filename):
        return str(MODULE_DIR / "Resources" / filename)


class _ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent

    def resourcePath(self, filename):
        return str(MODULE_DIR / "Resources" / filename)


class _ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        name = type(self).__name__
        self.moduleName = name[: -len("Logic")] if name.endswith("Logic") else name


class _ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None):
        print(message)


def install():
    """Add the Qt-side names slicer-core lacks; a no-op for names that already exist."""
    for name in ("qt", "ctk"):
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name, f"stand-in for Slicer's {name}: no attributes")
    if "slicer.ScriptedLoadableModule" not in sys.modules:
        module = types.ModuleType("slicer.ScriptedLoadableModule", "stand-in for Slicer's scripted module base classes")
        module.ScriptedLoadableModule = _ScriptedLoadableModule
        module.ScriptedLoadableModuleWidget = _ScriptedLoadableModuleWidget
        module.ScriptedLoadableModuleLogic = _ScriptedLoadableModuleLogic
        module.ScriptedLoadableModuleTest = _ScriptedLoadableModuleTest
        sys.modules[module.__name__] = module
        slicer.ScriptedLoadableModule = module


def import_module():
    """The TumorSeg module (TumorSeg.py), imported as Slicer would from the module folder."""
    install()
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    import TumorSeg

    return TumorSeg


def new_scene():
    """A real MRML scene with the module logics that Slicer attaches to its scene at startup.

    The segmentations logic registers the segmentation converter rules (binary labelmap <-> closed
    surface) when it gets a scene; without it no segment can hold a binary labelmap.
    """
    scene = slicer.vtkMRMLScene()
    logics = [slicer.vtkSlicerSubjectHierarchyModuleLogic(), slicer.vtkSlicerSegmentationsModuleLogic()]
    for logic in logics:
        logic.SetMRMLScene(scene)
    scene._tumorsegKeep = logics  # keep the logics alive as long as the scene
    return scene


def load_volume(scene, path, name, labelmap=False):
    """Load a volume file into the scene with Slicer's own reader, as "Add data" does."""
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        raise RuntimeError(f"Slicer could not read {path}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def put_in_study(scene, nodes, patient="TCGA-FG-6692", study="MR brain"):
    """Place nodes under patient/study items, as loading a DICOM study does. Returns the study item."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patientItem = sh.CreateSubjectItem(sh.GetSceneItemID(), patient)
    studyItem = sh.CreateStudyItem(patientItem, study)
    for node in nodes:
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, studyItem)
        else:
            sh.CreateItem(studyItem, node)
    return studyItem


def ijk_to_ras(node):
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return [[matrix.GetElement(r, c) for c in range(4)] for r in range(4)]


def scene_node_ids(scene):
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
