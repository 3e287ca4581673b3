"""The Slicer API the TumorSeg module may use, and the check that it exists in the oldest Slicer it supports.

``SLICER_API`` lists every ``slicer.``/``qt.``/``ctk.``/``PyTorchUtils.`` attribute chain that the module's
files use (TumorSeg.py and every file of TumorSegLib/), with where it is defined. An entry whose
source is a path is Slicer's own API: ``tests/tools/slicer_api_manifest.py`` looks it up in the
Slicer sources at the minimum version's tag (``TumorSeg.MINIMUM_SLICER_VERSION``) and records the
defining line in ``tests/data/slicer_api/<tag>.json``; tests/test_slicer_module.py checks that the
module uses exactly the listed API and that every Slicer entry is in that record. Entries of Qt,
CTK and the PyTorch extension name their own source and are not looked up.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "TumorSegExtension" / "TumorSeg"
MANIFEST_DIR = REPO / "tests" / "data" / "slicer_api"
ROOTS = ("slicer", "qt", "ctk", "PyTorchUtils")

SLICER_API = {
    "slicer.ScriptedLoadableModule.ScriptedLoadableModule": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleLogic": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleTest": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleWidget": "Base/Python/slicer/ScriptedLoadableModule.py",
    "slicer.util.VTKObservationMixin": "Base/Python/slicer/util.py",
    "slicer.util.WaitCursor": "Base/Python/slicer/util.py",
    "slicer.util.arrayFromSegmentBinaryLabelmap": "Base/Python/slicer/util.py",
    "slicer.util.arrayFromVolume": "Base/Python/slicer/util.py",
    "slicer.util.childWidgetVariables": "Base/Python/slicer/util.py",
    "slicer.util.confirmOkCancelDisplay": "Base/Python/slicer/util.py",
    "slicer.util.createProgressDialog": "Base/Python/slicer/util.py",
    "slicer.util.errorDisplay": "Base/Python/slicer/util.py",
    "slicer.util.loadLabelVolume": "Base/Python/slicer/util.py",
    "slicer.util.loadUI": "Base/Python/slicer/util.py",
    "slicer.util.loadVolume": "Base/Python/slicer/util.py",
    "slicer.util.mainWindow": "Base/Python/slicer/util.py",
    "slicer.util.saveNode": "Base/Python/slicer/util.py",
    "slicer.util.setSliceViewerLayers": "Base/Python/slicer/util.py",
    "slicer.app.majorVersion": "Base/QTCore/qSlicerCoreApplication.h",
    "slicer.app.minorVersion": "Base/QTCore/qSlicerCoreApplication.h",
    "slicer.app.temporaryPath": "Base/QTCore/qSlicerCoreApplication.h",
    "slicer.app.processEvents": "Qt QCoreApplication::processEvents (slicer.app is a qSlicerCoreApplication)",
    "slicer.mrmlScene": "Base/Python/slicer/__init__.py",
    "slicer.mrmlScene.Clear": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.mrmlScene.EndCloseEvent": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.mrmlScene.GetFirstNodeByClass": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.mrmlScene.GetNumberOfNodes": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.mrmlScene.NodeAddedEvent": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.mrmlScene.StartCloseEvent": "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.dicomDatabase.fileForInstance": "CTK ctkDICOMDatabase::fileForInstance (slicer.dicomDatabase: Modules/Scripted/DICOM/DICOM.py)",
    "slicer.qMRMLNodeComboBox": "Libs/MRML/Widgets/qMRMLNodeComboBox.h",
    "slicer.qMRMLTableView": "Libs/MRML/Widgets/qMRMLTableView.h",
    "slicer.vtkMRMLLabelMapVolumeNode": "Libs/MRML/Core/vtkMRMLLabelMapVolumeNode.h",
    "slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole": "Libs/MRML/Core/vtkMRMLSegmentationNode.h",
    "slicer.vtkMRMLSegmentationStorageNode": "Libs/MRML/Core/vtkMRMLSegmentationStorageNode.h",
    "slicer.vtkMRMLSliceNode.JumpAllSlices": "Libs/MRML/Core/vtkMRMLSliceNode.h",
    "slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelPatient": "Libs/MRML/Core/vtkMRMLSubjectHierarchyConstants.h",
    "slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy": "Libs/MRML/Core/vtkMRMLSubjectHierarchyConstants.h",
    "slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode": "Libs/MRML/Core/vtkMRMLSubjectHierarchyNode.h",
    "slicer.vtkMRMLVolumeArchetypeStorageNode": "Libs/MRML/Core/vtkMRMLVolumeArchetypeStorageNode.h",
    "slicer.vtkSegment.GetTerminologyEntryTagName": "Libs/vtkSegmentationCore/vtkSegment.h",
    "slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode": "Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentationsModuleLogic.h",
    "slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode": "Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentationsModuleLogic.h",
    "qt.QFileDialog.getExistingDirectory": "Qt QFileDialog (PythonQt)",
    "qt.QFileDialog.getSaveFileName": "Qt QFileDialog (PythonQt)",
    "qt.QFormLayout": "Qt QFormLayout (PythonQt)",
    "qt.QHBoxLayout": "Qt QHBoxLayout (PythonQt)",
    "qt.QLabel": "Qt QLabel (PythonQt)",
    "qt.QLineEdit": "Qt QLineEdit (PythonQt)",
    "qt.QPushButton": "Qt QPushButton (PythonQt)",
    "qt.QTimer": "Qt QTimer (PythonQt)",
    "ctk.ctkCollapsibleButton": "CTK ctkCollapsibleButton (Libs/Widgets/ctkCollapsibleButton.h of CTK)",
    "PyTorchUtils.PyTorchUtilsLogic.getCompatibleComputationBackends": "SlicerPyTorch extension, PyTorchUtils/PyTorchUtils.py",
}


def module_files() -> list[Path]:
    """Every Python file of the module: TumorSeg.py and TumorSegLib/."""
    return [MODULE_DIR / "TumorSeg.py", *sorted((MODULE_DIR / "TumorSegLib").glob("*.py"))]


def slicer_source(chain: str) -> str | None:
    """The Slicer source file an entry names, or None for Qt, CTK and other projects."""
    source = SLICER_API[chain]
    return source if re.fullmatch(r"[A-Za-z0-9_/.]+\.(py|h)", source) else None


def api_chains(tree: ast.AST) -> set[str]:
    """Dotted attribute chains rooted at slicer/qt/ctk/PyTorchUtils, and the names imported from their modules."""
    chains = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ROOTS:
            chains.update(f"{node.module}.{alias.name}" for alias in node.names)
        if isinstance(node, ast.Attribute):
            parts, current = [], node
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in ROOTS:
                chains.add(".".join([current.id, *reversed(parts)]))
    # keep only maximal chains (slicer.util is implied by slicer.util.errorDisplay)
    return {c for c in chains if not any(other.startswith(c + ".") for other in chains)}


def used_api() -> dict[str, list[str]]:
    """chain -> the module files that use it."""
    used: dict[str, list[str]] = {}
    for path in module_files():
        for chain in api_chains(ast.parse(path.read_text())):
            used.setdefault(chain, []).append(path.relative_to(MODULE_DIR).as_posix())
    return used


def definition_line(text: str, name: str) -> tuple[int, str] | None:
    """(line number, line) that defines or declares ``name`` in a Slicer source file, or None."""
    patterns = [rf"^\s*(def|class)\s+{name}\b", rf"\bclass\s+\w*\s*{name}\b", rf"Q_PROPERTY\(.*\b{name}\b",
                rf"py:attribute::\s*{name}\b", rf"\b{name}\s*\(", rf"\b{name}\b\s*[,=]", rf"\b{name}\b"]
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if not line.strip().startswith(("//", "/*", "*", "#"))]  # code, not comments
    for pattern in patterns:
        for number, line in lines:
            if re.search(pattern, line):
                return number, line.strip()
    return None
