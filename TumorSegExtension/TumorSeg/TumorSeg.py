"""TumorSeg: detect and segment a brain tumour on a FLAIR MRI with the TumorSeg engine (monai_core).

The module is thin. It converts between MRML nodes and the engine's files and shows progress:
the inputs are written to a temporary folder in their own geometry, ``monai_core`` detects in a
separate process that stays warm between runs (``PythonSlicer -m monai_core.engine``, with the
models loaded once; TumorSegLib/engine.py), and the result comes back as a segmentation node on the
FLAIR's grid with one "Tumor" segment and a table of per-slice tumour probabilities.
``TumorSegLogic`` works without the GUI::

    logic = TumorSegLogic()
    segmentationNode = logic.process(flairNode, t1Node, t1cNode)
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from TumorSegLib import comparenodes, install
from TumorSegLib.compareview import CompareView
from TumorSegLib.engine import Engine, sharedEngine, stopSharedEngine
from TumorSegLib.errors import TumorSegError
from TumorSegLib.nodewriter import writeSegmentLabelmap, writeVolume
from TumorSegLib import studyseries
from TumorSegLib.studyview import StudySeriesView

# Standard terminology of the result segment (serialized as Slicer's terminology logic does):
# category Morphologically Altered Structure (SCT 49755003), type Neoplasm (SCT 108369006),
# anatomic region Brain (SCT 12738006), from the DICOM master lists shipped with Slicer.
TUMOR_TERMINOLOGY = (
    "Segmentation category and type - DICOM master list"
    "~SCT^49755003^Morphologically Altered Structure"
    "~SCT^108369006^Neoplasm"
    "~^^"
    "~Anatomic codes - DICOM master list"
    "~SCT^12738006^Brain"
    "~^^"
)
TUMOR_SEGMENT_ID = "Tumor"
TUMOR_SEGMENT_NAME = "Tumor"
TUMOR_COLOR = (0.86, 0.24, 0.22)

# Node reference roles and parameter names kept in the module's parameter node (saved with the scene).
FLAIR_ROLE = "InputFLAIR"
T1_ROLE = "InputT1"
T1C_ROLE = "InputT1c"
OUTPUT_ROLE = "OutputSegmentation"
TABLE_ROLE = "SliceTable"
# Reference from the output segmentation to its slice table, so that results can be shown again.
SEGMENTATION_TABLE_ROLE = "TumorSegSliceTable"
REPORT_ATTRIBUTE = "TumorSeg.Report"

# Sequences whose IJK-to-RAS differ by less than this (mm, and in direction cosines) are on the same grid.
# NIfTI keeps the geometry in float32, which changes it by a few micrometres.
GEOMETRY_TOLERANCE = 1e-3

ENGINE_PACKAGE = "monai_core"
# Installed extension: the engine and the bundle sit in TumorSegLib/ beside this file (see CMakeLists.txt).
ENGINE_SUBDIR = "TumorSegLib"
# Slicer ships these itself; replacing them from PyPI could break Slicer, so they are not in requirements.txt,
# and the install holds them at the versions Slicer has (TumorSegLib/install.py).
PROVIDED_BY_SLICER = ("numpy", "SimpleITK")
# The oldest Slicer the module supports: 5.10 is the first with a Python (3.12) that torch==2.13.0 and
# monai==1.6.1 install on (they need 3.10+; Slicer 5.8 has 3.9). tests/test_slicer_module.py checks every
# Slicer API the module uses against this version's sources (tests/data/slicer_api/).
MINIMUM_SLICER_VERSION = (5, 10)
MINIMUM_PYTHON = (3, 10)


#
# TumorSeg
#


class TumorSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "TumorSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["TumorSeg contributors"]
        self.parent.helpText = (
            "Detect a brain tumour on a FLAIR MRI (optionally with pre- and post-contrast T1): a DenseNet121 "
            "classifies every axial slice, a ResUNet segments the flagged slices, and the result is a 'Tumor' "
            "segment on the FLAIR's grid with the per-slice probabilities. Research use only; not for diagnosis."
        )
        self.parent.acknowledgementText = (
            "Built on MONAI and 3D Slicer. Trained on the LGG MRI segmentation data set (Buda et al., "
            "Computers in Biology and Medicine 2019) from TCGA-LGG in The Cancer Imaging Archive."
        )
        problem = TumorSegLogic.slicerVersionProblem()  # checked when Slicer starts and registers the module
        if problem:
            logging.error(f"TumorSeg: {problem}")
            self.parent.helpText = f"<b>{problem}</b><br>" + self.parent.helpText


#
# TumorSegWidget
#


class TumorSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUIFromParameterNode = False
        self._running = False
        self._versionProblem = None
        self._install = None  # the InstallRun of the Python packages, while it runs
        self._installDialog = None
        self._installTimer = None
        self._afterInstall = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TumorSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = TumorSegLogic()
        self._versionProblem = TumorSegLogic.slicerVersionProblem()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.flairSelector, self.ui.t1Selector, self.ui.t1cSelector, self.ui.outputSegmentationSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.exportDicomSegButton.connect("clicked(bool)", self.onExportDicomSeg)
        self.ui.sliceTableView.connect("clicked(QModelIndex)", self.onSliceTableClicked)

        self.ui.progressBar.hide()
        self.ui.statusLabel.text = self._versionProblem or ""
        self.compareView = CompareView(self, OUTPUT_ROLE, FLAIR_ROLE, TUMOR_SEGMENT_ID)  # "Compare with prior"
        self.studyView = StudySeriesView(self, {"flair": FLAIR_ROLE, "t1": T1_ROLE, "t1c": T1C_ROLE})  # whole studies
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()
        if self._install is not None:
            self._install.cancel()
        if self.logic:
            self.logic.cancel()
        TumorSegLogic.stopEngine()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        if self.logic:
            self.logic.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.GetNodeReference(FLAIR_ROLE) and not self.studyView.propose(quiet=True):
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.SetNodeReferenceID(FLAIR_ROLE, firstVolumeNode.GetID())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode is not None:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self._updatingGUIFromParameterNode = True
        try:
            self.ui.flairSelector.setCurrentNode(self._parameterNode.GetNodeReference(FLAIR_ROLE))
            self.ui.t1Selector.setCurrentNode(self._parameterNode.GetNodeReference(T1_ROLE))
            self.ui.t1cSelector.setCurrentNode(self._parameterNode.GetNodeReference(T1C_ROLE))
            self.ui.outputSegmentationSelector.setCurrentNode(self._parameterNode.GetNodeReference(OUTPUT_ROLE))
            self.updateButtons()
            self.showResults(self._parameterNode.GetNodeReference(OUTPUT_ROLE))
        finally:
            self._updatingGUIFromParameterNode = False

    def updateParameterNodeFromGUI(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self.studyView.userChanged()
        wasModified = self._parameterNode.StartModify()
        self._parameterNode.SetNodeReferenceID(FLAIR_ROLE, self.ui.flairSelector.currentNodeID)
        self._parameterNode.SetNodeReferenceID(T1_ROLE, self.ui.t1Selector.currentNodeID)
        self._parameterNode.SetNodeReferenceID(T1C_ROLE, self.ui.t1cSelector.currentNodeID)
        self._parameterNode.SetNodeReferenceID(OUTPUT_ROLE, self.ui.outputSegmentationSelector.currentNodeID)
        self._parameterNode.EndModify(wasModified)

    def updateButtons(self):
        flairNode = self._parameterNode.GetNodeReference(FLAIR_ROLE) if self._parameterNode else None
        installing = self._install is not None
        if self._running:
            self.ui.applyButton.text = "Cancel"
            self.ui.applyButton.toolTip = "Stop the detection; nothing is added to the scene."
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.text = "Detect tumor"
            if self._versionProblem or installing:
                self.ui.applyButton.toolTip = self._versionProblem or "Installing the Python packages..."
            else:
                self.ui.applyButton.toolTip = "Detect and segment the tumour on the FLAIR." if flairNode else "Select a FLAIR volume."
            self.ui.applyButton.enabled = flairNode is not None and not installing and not self._versionProblem
        if getattr(self, "compareView", None) is not None:  # Compare waits for the install as Detect does
            self.compareView.compareButton.enabled = not (self._running or installing or self._versionProblem)
        for widget in (self.ui.flairSelector, self.ui.t1Selector, self.ui.t1cSelector, self.ui.outputSegmentationSelector):
            widget.enabled = not self._running
        segmentationNode = self._parameterNode.GetNodeReference(OUTPUT_ROLE) if self._parameterNode else None
        self.ui.exportDicomSegButton.enabled = (
            not self._running
            and segmentationNode is not None
            and segmentationNode.GetSegmentation().GetSegment(TUMOR_SEGMENT_ID) is not None
            and bool(TumorSegLogic.dicomInstanceUIDs(flairNode))
        )

    def showResults(self, segmentationNode):
        tableNode = segmentationNode.GetNodeReference(SEGMENTATION_TABLE_ROLE) if segmentationNode else None
        report = TumorSegLogic.reportFromSegmentation(segmentationNode)
        message = TumorSegLogic.qualityMessage(report) if report else ""
        self.ui.qualityWarningLabel.text = message
        self.ui.qualityWarningLabel.visible = bool(message)
        if report is None:
            self.ui.volumeValueLabel.text = "-"
            self.ui.flaggedSlicesValueLabel.text = "-"
            self.ui.sliceTableView.setMRMLTableNode(None)
            return
        volume = report.get("tumor_volume_ml")
        self.ui.volumeValueLabel.text = "unknown (no voxel spacing)" if volume is None else f"{volume:.2f} mL"
        slices = report.get("slices", [])
        checked = sum(1 for s in slices if s.get("positive"))
        tumour = report.get("tumor_slices", sum(1 for s in slices if s.get("tumor_pixels")))
        self.ui.flaggedSlicesValueLabel.text = f"tumour on {tumour} of {len(slices)}; {checked} checked by the segmenter"
        self.ui.sliceTableView.setMRMLTableNode(tableNode)

    # Dependencies

    def ensureDependencies(self, then=None):
        """True when the engine's Python packages are there.

        Otherwise, after asking the user, installs them in the background (child pip processes, a
        progress dialog with Cancel; Detect and Compare stay disabled until it ends), returns False,
        and calls ``then()`` once they are installed.
        """
        problem = self.logic.slicerVersionProblem()
        if problem:
            slicer.util.errorDisplay(problem, windowTitle="TumorSeg")
            return False
        if self._install is not None:
            return False
        try:
            plan = self.logic.installPlan()
        except TumorSegError as error:
            slicer.util.errorDisplay(str(error), windowTitle="TumorSeg: install dependencies")
            return False
        if not plan.steps:
            return True
        question = ("TumorSeg needs these Python packages, which will be downloaded and installed into Slicer "
                    "(this can take several minutes and about 1 GB of disk):\n\n"
                    + "\n".join(install.describe(r) for r in plan.missing))
        if plan.torchSource:
            question += f"\n\nPyTorch: {plan.torchSource}. The engine runs on the CPU."
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle="TumorSeg: install dependencies"):
            return False
        self._install = self.logic.startInstall(plan)
        self._afterInstall = then
        self._installDialog = slicer.util.createProgressDialog(
            windowTitle="TumorSeg: installing Python packages", labelText=plan.steps[0].label, maximum=100, value=0)
        self._installDialog.connect("canceled()", self.onCancelInstall)
        self._installTimer = qt.QTimer()
        self._installTimer.setInterval(200)
        self._installTimer.connect("timeout()", self.onInstallTimer)
        self._installTimer.start()
        self.ui.statusLabel.text = "Installing Python packages..."
        self.updateButtons()
        return False

    def onInstallTimer(self):
        run = self._install
        if run is None:
            return
        run.pump(self.onInstallProgress)
        if not run.finished():
            return
        self._installTimer.stop()
        self._installTimer = None
        self._installDialog.close()
        self._installDialog = None
        self._install, then, self._afterInstall = None, self._afterInstall, None
        run.close()
        self.updateButtons()
        if run.cancelled:
            self.ui.statusLabel.text = "Installing Python packages was cancelled."
        elif run.error is not None:
            self.ui.statusLabel.text = "Installing Python packages failed."
            slicer.util.errorDisplay(f"Installing the Python packages failed:\n{run.error}",
                                     windowTitle="TumorSeg: install dependencies", detailedText=run.error.details)
        else:
            self.ui.statusLabel.text = "Python packages installed."
            if then:
                then()

    def onInstallProgress(self, fraction, message):
        if self._installDialog is not None:
            self._installDialog.value = min(99, int(100 * fraction))  # 100 would close the dialog before the end
            self._installDialog.labelText = message

    def onCancelInstall(self):
        if self._install is not None:
            self._install.cancel()  # returns at once; the timer sees the run end

    # Run and cancel

    def onApplyButton(self):
        if self._running:
            self.ui.statusLabel.text = "Cancelling..."
            self.logic.cancel()
            return
        if not self.ensureDependencies(then=self.onApplyButton):
            return
        flairNode = self._parameterNode.GetNodeReference(FLAIR_ROLE)
        outputNode = self._parameterNode.GetNodeReference(OUTPUT_ROLE)
        self._running = True
        self.updateButtons()
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        try:
            self.logic.process(
                flairNode,
                self._parameterNode.GetNodeReference(T1_ROLE),
                self._parameterNode.GetNodeReference(T1C_ROLE),
                outputNode,
                waitForCompletion=False,
                progressCallback=self.onProgress,
                completedCallback=self.onCompleted,
            )
        except Exception as error:  # an input that cannot be written, or the engine cannot start
            self.onCompleted(None, error)

    def onProgress(self, progress, message):
        self.ui.progressBar.value = int(round(100 * progress))
        self.ui.statusLabel.text = message

    def onCompleted(self, segmentationNode, error=None):
        self._running = False
        self.ui.progressBar.hide()
        if error is not None:
            self.ui.statusLabel.text = "Failed."
            slicer.util.errorDisplay(
                f"Tumour detection failed:\n{error}",
                windowTitle="TumorSeg",
                detailedText=getattr(error, "details", "") or "",
            )
        elif segmentationNode is None:
            self.ui.statusLabel.text = "Cancelled."
        else:
            self._parameterNode.SetNodeReferenceID(OUTPUT_ROLE, segmentationNode.GetID())
            tableNode = segmentationNode.GetNodeReference(SEGMENTATION_TABLE_ROLE)
            self._parameterNode.SetNodeReferenceID(TABLE_ROLE, tableNode.GetID() if tableNode else None)
            report = TumorSegLogic.reportFromSegmentation(segmentationNode)
            self.ui.statusLabel.text = "Tumour detected." if report and report.get("tumor_detected") else "No tumour detected."
            flairNode = self._parameterNode.GetNodeReference(FLAIR_ROLE)
            slicer.util.setSliceViewerLayers(background=flairNode, fit=True)
        self.updateButtons()
        self.showResults(self._parameterNode.GetNodeReference(OUTPUT_ROLE))

    # Results

    def onSliceTableClicked(self, modelIndex):
        segmentationNode = self._parameterNode.GetNodeReference(OUTPUT_ROLE)
        flairNode = self._parameterNode.GetNodeReference(FLAIR_ROLE)
        tableNode = segmentationNode.GetNodeReference(SEGMENTATION_TABLE_ROLE) if segmentationNode else None
        if not tableNode or not flairNode:
            return
        row = self.ui.sliceTableView.sortFilterProxyModel().mapToSource(modelIndex).row()
        sliceIndex = int(tableNode.GetTable().GetValueByName(row, "Slice").ToInt())
        r, a, s = TumorSegLogic.sliceCenterRAS(flairNode, sliceIndex)
        slicer.vtkMRMLSliceNode.JumpAllSlices(slicer.mrmlScene, r, a, s)

    def onExportDicomSeg(self):
        flairNode = self._parameterNode.GetNodeReference(FLAIR_ROLE)
        segmentationNode = self._parameterNode.GetNodeReference(OUTPUT_ROLE)
        sourceFiles = [slicer.dicomDatabase.fileForInstance(uid) for uid in TumorSegLogic.dicomInstanceUIDs(flairNode)]
        if not all(sourceFiles):
            slicer.util.errorDisplay("The FLAIR's DICOM files are no longer in the DICOM database.", windowTitle="TumorSeg")
            return
        outputPath = qt.QFileDialog.getSaveFileName(
            slicer.util.mainWindow(), "Export DICOM-SEG", f"{flairNode.GetName()}_TumorSeg.dcm", "DICOM files (*.dcm)"
        )
        if not outputPath:
            return
        try:
            with slicer.util.WaitCursor():
                self.logic.exportDicomSeg(segmentationNode, flairNode, sourceFiles, outputPath)
        except TumorSegError as error:
            slicer.util.errorDisplay(f"DICOM-SEG export failed:\n{error}", windowTitle="TumorSeg", detailedText=error.details)
            return
        self.ui.statusLabel.text = f"Wrote {outputPath}"


#
# TumorSegLogic
#


class TumorSegLogic(ScriptedLoadableModuleLogic):
    """Runs ``monai_core`` detection on MRML volume nodes and turns its output into MRML nodes.

    The detection runs in the session's warm engine process (TumorSegLib/engine.py), which keeps
    the models loaded between runs; cancel ends it and the next run starts a new one.
    Usable without the GUI (from the Python console, a script, or tests).
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.keepTemporaryFiles = False  # for debugging: keep the inputs and outputs of the last run
        self.inputFileExtension = ".nrrd"  # NRRD keeps the volume geometry in double precision
        self.lastTemporaryFolder = None
        self._run = None
        self._timer = None

    # Locations

    @staticmethod
    def moduleDirectory():
        return Path(__file__).resolve().parent

    @classmethod
    def engineDirectory(cls):
        """The folder holding ``monai_core/`` and ``bundle/``: TumorSegLib/ when installed, else the source tree."""
        moduleDir = cls.moduleDirectory()
        for candidate in (moduleDir / ENGINE_SUBDIR, moduleDir.parent.parent):
            if (candidate / ENGINE_PACKAGE / "__init__.py").is_file():
                return candidate
        raise TumorSegError(f"The TumorSeg engine ({ENGINE_PACKAGE}) is missing from {moduleDir / ENGINE_SUBDIR}.")

    @staticmethod
    def pythonExecutable():
        """PythonSlicer inside Slicer (Slicer sets sys.executable to it), the current interpreter elsewhere."""
        executable = sys.executable
        if executable and "python" in os.path.basename(executable).lower():
            return executable
        pythonSlicer = shutil.which("PythonSlicer")
        if not pythonSlicer:
            raise TumorSegError("PythonSlicer executable not found.")
        return pythonSlicer

    @classmethod
    def requirementsFile(cls):
        return cls.moduleDirectory() / "Resources" / "requirements.txt"

    # Dependencies

    @staticmethod
    def slicerVersionProblem(slicerVersion=None, pythonVersion=None):
        """Why this Slicer cannot run TumorSeg (older than MINIMUM_SLICER_VERSION), or None.

        :param slicerVersion: (major, minor); by default the running application's (none outside Slicer).
        """
        if slicerVersion is None and hasattr(slicer, "app"):
            slicerVersion = (int(slicer.app.majorVersion), int(slicer.app.minorVersion))
        needed = ".".join(str(v) for v in MINIMUM_SLICER_VERSION)
        if slicerVersion is not None and tuple(slicerVersion)[:2] < MINIMUM_SLICER_VERSION:
            return (f"TumorSeg needs 3D Slicer {needed} or later (PyTorch 2.13 needs Python 3.10+); "
                    f"this is Slicer {slicerVersion[0]}.{slicerVersion[1]}.")
        pythonVersion = tuple(pythonVersion or sys.version_info[:2])
        if pythonVersion < MINIMUM_PYTHON:
            return (f"TumorSeg needs Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or later for PyTorch 2.13 "
                    f"(3D Slicer {needed} or later); this Python is {pythonVersion[0]}.{pythonVersion[1]}.")
        return None

    @classmethod
    def readRequirements(cls, requirementsFile=None):
        """The requirements (``packaging`` Requirement objects) of Resources/requirements.txt (TumorSegLib/install.py)."""
        return install.readRequirements(requirementsFile or cls.requirementsFile())

    @classmethod
    def missingRequirements(cls, requirementsFile=None):
        """The requirements (``name==version``) that apply here and are not installed at a version they accept."""
        return [str(r) for r in install.missingRequirements(cls.readRequirements(requirementsFile))]

    @classmethod
    def installPlan(cls, requirementsFile=None):
        """The pip commands that install the missing requirements (TumorSegLib/install.py); no steps if none is missing."""
        return install.installPlan(cls.readRequirements(requirementsFile), keep=PROVIDED_BY_SLICER)

    @classmethod
    def startInstall(cls, plan):
        """Start the plan's pip commands in child processes; pump the returned InstallRun until it is finished."""
        return install.InstallRun(cls.pythonExecutable(), plan, getattr(getattr(slicer, "app", None), "temporaryPath", None))

    @classmethod
    def installRequirements(cls, requirementsFile=None, progressCallback=None):
        """Install the missing requirements and wait (scripts, the module's self-test).

        :raises TumorSegError: with pip's first ERROR line, and pip's output as details.
        """
        plan = cls.installPlan(requirementsFile)
        if not plan.steps:
            return
        run = cls.startInstall(plan)
        try:
            run.wait(progressCallback, idle=slicer.app.processEvents if hasattr(slicer, "app") else None)
        finally:
            run.close()

    # Geometry helpers (no image processing: IJK-to-RAS arithmetic for navigation and checks)

    @staticmethod
    def ijkToRasMatrix(volumeNode):
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        return [[matrix.GetElement(row, column) for column in range(4)] for row in range(4)]

    @classmethod
    def axialAxis(cls, volumeNode):
        """The IJK axis (0, 1 or 2) closest to the superior direction: the axis slices are counted along."""
        matrix = cls.ijkToRasMatrix(volumeNode)
        columns = [[matrix[row][axis] for row in range(3)] for axis in range(3)]
        return max(range(3), key=lambda axis: abs(columns[axis][2]) / max(1e-12, sum(c * c for c in columns[axis]) ** 0.5))

    @classmethod
    def sliceIJKIndex(cls, volumeNode, sliceIndex):
        """The IJK index along the axial axis of the engine's slice ``sliceIndex``.

        monai_core counts slices along the axial axis from inferior to superior (it orients the
        FLAIR grid to DICOM LPS before slicing), whichever way the volume's own axis points.
        """
        axis = cls.axialAxis(volumeNode)
        count = volumeNode.GetImageData().GetDimensions()[axis]
        pointsSuperior = cls.ijkToRasMatrix(volumeNode)[2][axis] > 0
        return sliceIndex if pointsSuperior else count - 1 - sliceIndex

    @classmethod
    def sliceCenterRAS(cls, volumeNode, sliceIndex):
        """RAS position of the centre of the engine's slice ``sliceIndex`` (0-based, inferior to superior)."""
        dimensions = volumeNode.GetImageData().GetDimensions()
        ijk = [(d - 1) / 2.0 for d in dimensions]
        ijk[cls.axialAxis(volumeNode)] = float(cls.sliceIJKIndex(volumeNode, sliceIndex))
        matrix = cls.ijkToRasMatrix(volumeNode)
        return tuple(sum(matrix[row][c] * v for c, v in enumerate(ijk + [1.0])) for row in range(3))

    def proposeSeries(self, referenceNode=None):
        """FLAIR, T1 and T1c among the DICOM volumes of ``referenceNode``'s study (or the scene), with the reasons.

        The engine's series choice (``tumorseg choose-series``, as ``detect --study``) runs on the
        volumes' DICOM files; returns a ``TumorSegLib.studyseries.SeriesProposal``.
        """
        scene = referenceNode.GetScene() if referenceNode is not None else slicer.mrmlScene
        volumes = studyseries.studyVolumes(scene, referenceNode)
        chooser = studyseries.engineChooser(self.pythonExecutable(), self.engineDirectory())
        return studyseries.proposeSeries(volumes, chooser)

    @staticmethod
    def dicomInstanceUIDs(volumeNode):
        """SOP instance UIDs a volume was loaded from (empty when it did not come from DICOM)."""
        if volumeNode is None:
            return []
        return (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()

    @staticmethod
    def qualityMessage(report):
        """The warning box's text: a low confidence and every input warning; empty when there is nothing to say."""
        quality = report.get("quality") or {}
        lines = []
        if quality.get("flagged"):
            confidence = quality.get("confidence")
            expected = quality.get("expected_dice")
            detail = f" (confidence {confidence:.2f}, expected Dice {expected:.2f})" if confidence is not None else ""
            lines.append(f"Low confidence: review this result carefully{detail}.")
            uncertain = quality.get("uncertain_slices") or []
            if uncertain:
                lines.append("Uncertain slices: " + ", ".join(str(i) for i in uncertain[:20]) + (" ..." if len(uncertain) > 20 else ""))
        lines += [f"Warning: {w['message']}" for w in quality.get("warnings", [])]
        return "\n".join(lines)

    @staticmethod
    def isLowConfidence(report):
        """True when the engine flagged the result (``quality.flagged`` in its report)."""
        return bool(((report or {}).get("quality") or {}).get("flagged"))

    @staticmethod
    def reportFromSegmentation(segmentationNode):
        text = segmentationNode.GetAttribute(REPORT_ATTRIBUTE) if segmentationNode else None
        return json.loads(text) if text else None

    # Processing

    def process(
        self,
        flairNode,
        t1Node=None,
        t1cNode=None,
        outputSegmentationNode=None,
        waitForCompletion=True,
        progressCallback=None,
        completedCallback=None,
    ):
        """Detect the tumour on ``flairNode``.

        :param flairNode: FLAIR vtkMRMLScalarVolumeNode (required); the result lies on its grid.
        :param t1Node: pre-contrast T1 volume node, or None.
        :param t1cNode: post-contrast T1 volume node, or None.
        :param outputSegmentationNode: segmentation node whose "Tumor" segment is replaced; a new one if None.
        :param waitForCompletion: block until done and return the segmentation node (None if cancelled).
            If False, return at once; the run continues on Qt timer events and ``completedCallback``
            receives ``(segmentationNode or None, error or None)``.
        :param progressCallback: called with ``(fraction 0..1, message)``.
        :raises TumorSegError: with the engine's one-line message when detection fails (waitForCompletion only).
        """
        problem = self.slicerVersionProblem()
        if problem:
            raise TumorSegError(problem)
        if flairNode is None or flairNode.GetImageData() is None:
            raise TumorSegError("A FLAIR volume with image data is required.")
        if self._run is not None:
            raise TumorSegError("A detection is already running.")
        run = self._start(flairNode, t1Node, t1cNode, progressCallback)
        context = (flairNode, t1Node, t1cNode, outputSegmentationNode, progressCallback)
        if not waitForCompletion:
            self._timer = qt.QTimer()
            self._timer.setInterval(200)
            self._timer.connect("timeout()", lambda: self._onTimer(run, context, completedCallback))
            self._timer.start()
            return None
        try:
            self._waitFor(run, progressCallback)
            return self._finish(run, context)
        finally:
            self._cleanup(run)

    def _onTimer(self, run, context, completedCallback):
        progressCallback = context[-1]
        run.pump(progressCallback)
        if not run.finished() and not run.cancelled:
            return
        self._timer.stop()
        self._timer = None
        result, error = None, None
        try:
            result = self._finish(run, context)
        except Exception as exception:
            error = exception
            logging.error(f"TumorSeg: {exception}")
        finally:
            self._cleanup(run)
        if completedCallback:
            completedCallback(result, error)

    def cancel(self):
        """Stop a running detection: the process tree ends, the temporary files go, the scene is unchanged."""
        run = self._run
        if run is not None and not run.cancelled:
            logging.info("TumorSeg: cancelling")
            run.cancel()

    def isRunning(self):
        return self._run is not None

    @staticmethod
    def stopEngine():
        """End the warm engine process (the next detection starts a new one)."""
        stopSharedEngine()

    def _engine(self):
        """The session's warm engine; an engine for this run only when another logic's run is using it."""
        engine = sharedEngine(self.pythonExecutable(), self.engineDirectory())
        if engine.isBusy():
            engine = Engine(self.pythonExecutable(), self.engineDirectory(), keepAlive=False)
        return engine

    def _start(self, flairNode, t1Node, t1cNode, progressCallback):
        engine = self._engine()
        tempRoot = getattr(getattr(slicer, "app", None), "temporaryPath", None)
        tempDir = Path(tempfile.mkdtemp(prefix="TumorSeg-", dir=tempRoot))
        try:
            if progressCallback:
                progressCallback(0.0, "Writing the input volumes...")
            # The arguments of "tumorseg detect", by name (monai_core/engine.py)
            request = {}
            for node, name in ((flairNode, "flair"), (t1Node, "t1"), (t1cNode, "t1c")):
                if node is None:
                    continue
                path = tempDir / "input" / f"{name}{self.inputFileExtension}"
                writeVolume(node, path)
                request[name] = str(path)
            request.update(output=str(tempDir / "out"), case_id="case")
            logging.info("TumorSeg: detect " + json.dumps(request))
            run = engine.submit(request, tempDir, tempDir / "out" / "case")
        except BaseException:
            shutil.rmtree(tempDir, ignore_errors=True)
            raise
        self._run = run
        return run

    def _cleanup(self, run):
        run.release()  # the engine stays for the next run, unless the run stopped part-way
        if self.keepTemporaryFiles and not run.cancelled:
            self.lastTemporaryFolder = run.tempDir
            logging.info(f"TumorSeg: temporary files kept in {run.tempDir}")
        else:
            run.removeTempDir()
        if self._run is run:
            self._run = None

    @staticmethod
    def _waitFor(run, progressCallback):
        """Pump the run's progress until it ends or is cancelled, keeping Slicer's GUI alive.

        Each pump waits up to 50 ms for the engine's next line, so Slicer's events are handled at
        least that often and the answer is taken as soon as it comes (a fixed 50 ms sleep added 25 ms
        on average to a second Detect that the warm engine answers in about 0.1 s).
        """
        while not run.finished() and not run.cancelled:
            run.pump(progressCallback, wait=0.05)
            if hasattr(slicer, "app"):
                slicer.app.processEvents()
        run.pump(progressCallback)

    def _finish(self, run, context):
        flairNode, t1Node, t1cNode, outputSegmentationNode, progressCallback = context
        if run.cancelled:
            return None
        if not run.succeeded():
            raise run.failure()
        reportPath = run.caseDir / "report.json"
        segmentationPath = run.caseDir / "segmentation.nii.gz"
        if not reportPath.is_file() or not segmentationPath.is_file():
            raise TumorSegError(f"monai_core detect wrote no result in {run.caseDir}.", "\n".join(run.log))
        if progressCallback:
            progressCallback(0.97, "Reading the result...")
        report = json.loads(reportPath.read_text())
        segmentationNode = self.importResult(flairNode, segmentationPath, report, outputSegmentationNode)
        if progressCallback:
            progressCallback(1.0, "Done.")
        return segmentationNode

    # Compare with prior

    def compareWithPrior(self, prior, flairNode, segmentationNode, dates=None, progressCallback=None):
        """Compare this result with a prior one in the warm engine (``monai_core compare``); blocks until done.

        :param prior: a case folder written by ``tumorseg detect`` (report.json, segmentation.nii.gz), a
            TumorSeg segmentation node of the prior study in this scene (its FLAIR is its reference volume),
            or the prior study's FLAIR volume node, which is then detected first (FLAIR only).
        :param flairNode: the current FLAIR; ``segmentationNode`` its TumorSeg result.
        :param dates: (prior, current) ``YYYY-MM-DD`` strings, used when a study has no DICOM StudyDate.
        :return: ``(changeSegmentationNode, changeTableNode)``: segments New, Resolved and Stable under a
            transform from the prior's space to the current FLAIR's, and the change table (role
            ``TumorSegChangeTable``); ``(None, None)`` if cancelled.
        :raises TumorSegError: with the engine's one-line message when compare fails.
        """
        if self._run is not None:
            raise TumorSegError("A detection or comparison is already running.")
        if segmentationNode is None or segmentationNode.GetSegmentation().GetSegment(TUMOR_SEGMENT_ID) is None:
            raise TumorSegError("Detect the tumour on the current study first: there is no Tumor segment to compare.")
        problem = None if isinstance(prior, (str, Path)) else comparenodes.priorNodeProblem(prior, flairNode, segmentationNode)
        if problem:
            raise TumorSegError(problem)
        if not isinstance(prior, (str, Path)) and prior.IsA("vtkMRMLScalarVolumeNode"):
            prior = self.process(prior, progressCallback=progressCallback)  # the prior study has no result yet
            if prior is None:
                return None, None
        tempRoot = getattr(getattr(slicer, "app", None), "temporaryPath", None)
        tempDir = Path(tempfile.mkdtemp(prefix="TumorSeg-compare-", dir=tempRoot))
        try:
            if progressCallback:
                progressCallback(0.0, "Writing both studies...")
            if isinstance(prior, (str, Path)):
                problem = comparenodes.priorFolderProblem(prior)
                if problem:
                    raise TumorSegError(problem)
                priorFolder = Path(prior)
            else:
                priorFlair = prior.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
                if priorFlair is None or prior.GetSegmentation().GetSegment(TUMOR_SEGMENT_ID) is None:
                    raise TumorSegError(f"'{prior.GetName()}' is not a TumorSeg result (no Tumor segment on a FLAIR).")
                priorFolder = comparenodes.writeCaseFolder(tempDir / "prior", priorFlair, prior, self.reportFromSegmentation(prior),
                                                           TUMOR_SEGMENT_ID, self.inputFileExtension)
            currentFolder = comparenodes.writeCaseFolder(tempDir / "current", flairNode, segmentationNode, self.reportFromSegmentation(segmentationNode),
                                                         TUMOR_SEGMENT_ID, self.inputFileExtension)
            request = {"command": "compare", "baseline": str(priorFolder), "followup": str(currentFolder),
                       "output": str(tempDir / "out"), "case_id": "change", "dates": list(dates) if dates else None}
            logging.info("TumorSeg: compare " + json.dumps(request))
            run = self._engine().submit(request, tempDir, tempDir / "out" / "change")
        except BaseException:
            shutil.rmtree(tempDir, ignore_errors=True)
            raise
        self._run = run
        try:
            self._waitFor(run, progressCallback)
            if run.cancelled:
                return None, None
            if not run.succeeded():
                raise run.failure()
            nodes = comparenodes.importChange(flairNode.GetScene(), run.caseDir, flairNode, flairNode.GetName())
            self._placeInStudy(flairNode, list(nodes))
            if progressCallback:
                progressCallback(1.0, "Done.")
            return nodes
        finally:
            self._cleanup(run)

    # Result -> MRML

    def importResult(self, flairNode, segmentationPath, report, outputSegmentationNode=None):
        """Turn the engine's segmentation file and report into MRML nodes beside the FLAIR.

        :return: the segmentation node, whose "Tumor" segment holds the result and which references
            its slice table (role ``TumorSegSliceTable``).
        """
        scene = flairNode.GetScene()
        labelmap = self._readLabelmapOnGrid(segmentationPath, flairNode)

        segmentationNode = outputSegmentationNode
        if segmentationNode is None:
            segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{flairNode.GetName()} TumorSeg"))
        if segmentationNode.GetDisplayNode() is None:
            segmentationNode.CreateDefaultDisplayNodes()
        # the labelmap is on the FLAIR's own grid: import it with no transform on either side, then put the
        # result under the FLAIR's transform, so that it overlays the FLAIR as displayed
        segmentationNode.SetAndObserveTransformNodeID(None)
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(flairNode)

        segmentation = segmentationNode.GetSegmentation()
        wasModifying = segmentationNode.StartModify()
        try:
            if segmentation.GetSegment(TUMOR_SEGMENT_ID):
                segmentation.RemoveSegment(TUMOR_SEGMENT_ID)
            segmentIds = vtk.vtkStringArray()
            segmentIds.InsertNextValue(TUMOR_SEGMENT_ID)
            segment = slicer.vtkSegment()
            segment.SetName(TUMOR_SEGMENT_NAME)
            segment.SetColor(*TUMOR_COLOR)
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), TUMOR_TERMINOLOGY)
            segmentation.AddSegment(segment, TUMOR_SEGMENT_ID)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentationNode, segmentIds):
                raise TumorSegError("Could not import the tumour labelmap into the segmentation.")
        finally:
            segmentationNode.EndModify(wasModifying)
        if flairNode.GetParentTransformNode():
            segmentationNode.SetAndObserveTransformNodeID(flairNode.GetParentTransformNode().GetID())

        tableNode = self._sliceTable(scene, flairNode, report, segmentationNode.GetNodeReference(SEGMENTATION_TABLE_ROLE))
        segmentationNode.SetNodeReferenceID(SEGMENTATION_TABLE_ROLE, tableNode.GetID())
        segmentationNode.SetAttribute(REPORT_ATTRIBUTE, json.dumps(report))
        self._placeInStudy(flairNode, [segmentationNode, tableNode])
        return segmentationNode

    @staticmethod
    def _readLabelmapOnGrid(path, flairNode):
        """Read the engine's mask with Slicer's reader and check that it lies on the FLAIR's grid.

        The mask is written on the FLAIR's grid with the FLAIR's affine; NIfTI keeps that affine in
        float32, so a match within GEOMETRY_TOLERANCE is given the FLAIR's exact IJK-to-RAS to avoid
        any resampling. A mask on another grid is refused.
        """
        labelmap = slicer.vtkMRMLLabelMapVolumeNode()  # not added to the scene
        storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storageNode.SetFileName(str(path))
        if not storageNode.ReadData(labelmap) or labelmap.GetImageData() is None:
            raise TumorSegError(f"Could not read the tumour mask {path}.")
        flairDims = flairNode.GetImageData().GetDimensions()
        maskDims = labelmap.GetImageData().GetDimensions()
        flairMatrix = TumorSegLogic.ijkToRasMatrix(flairNode)
        maskMatrix = TumorSegLogic.ijkToRasMatrix(labelmap)
        difference = max(abs(a - b) for rowA, rowB in zip(flairMatrix, maskMatrix) for a, b in zip(rowA, rowB))
        if maskDims != flairDims or difference > GEOMETRY_TOLERANCE:
            raise TumorSegError(
                f"The tumour mask is not on the FLAIR's grid (size {maskDims} vs {flairDims}, "
                f"largest IJK-to-RAS difference {difference:.3g})."
            )
        matrix = vtk.vtkMatrix4x4()
        flairNode.GetIJKToRASMatrix(matrix)
        labelmap.SetIJKToRASMatrix(matrix)
        return labelmap

    @staticmethod
    def _sliceTable(scene, flairNode, report, tableNode=None):
        """A table node with one row per analysed slice: index, probability, positive, tumour pixels."""
        if tableNode is None:
            tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{flairNode.GetName()} TumorSeg slices"))
        table = tableNode.GetTable()
        wasModifying = tableNode.StartModify()
        table.Initialize()
        columns = (
            ("Slice", vtk.vtkIntArray, "index"),
            ("Tumor probability", vtk.vtkDoubleArray, "tumor_probability"),
            ("Positive", vtk.vtkIntArray, "positive"),
            ("Tumor pixels", vtk.vtkIntArray, "tumor_pixels"),
        )
        uncertain = set((report.get("quality") or {}).get("uncertain_slices") or [])
        slices = [{**entry, "uncertain": entry["index"] in uncertain} for entry in report.get("slices", [])]
        for name, arrayClass, key in (*columns, ("Uncertain", vtk.vtkIntArray, "uncertain")):
            array = arrayClass()
            array.SetName(name)
            array.SetNumberOfValues(len(slices))
            for row, entry in enumerate(slices):
                value = entry[key]
                array.SetValue(row, float(value) if arrayClass is vtk.vtkDoubleArray else int(value))
            table.AddColumn(array)
        tableNode.SetUseColumnTitleAsColumnHeader(True)
        tableNode.SetColumnDescription("Slice", "0-based axial slice index, counted from inferior to superior")
        tableNode.SetColumnDescription("Tumor probability", "slice classifier's tumour probability")
        tableNode.SetColumnDescription("Positive", "1 if the classifier passed the slice to the segmenter (not: tumour found)")
        tableNode.SetColumnDescription("Tumor pixels", "tumour pixels in the slice")
        tableNode.SetColumnDescription("Uncertain", "1 if this slice makes the result uncertain (the mask changes when the slice is mirrored, or the classifier and segmenter disagree)")
        tableNode.SetLocked(True)
        tableNode.EndModify(wasModifying)
        return tableNode

    @staticmethod
    def _placeInStudy(flairNode, nodes):
        """Put the nodes under the FLAIR's study (or its parent folder) in the subject hierarchy."""
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(flairNode.GetScene())
        flairItem = shNode.GetItemByDataNode(flairNode)
        parentItem = shNode.GetSceneItemID()
        if flairItem:
            studyItem = shNode.GetItemAncestorAtLevel(flairItem, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy())
            parentItem = studyItem or shNode.GetItemParent(flairItem) or parentItem
        for node in nodes:
            item = shNode.GetItemByDataNode(node)
            if item:
                shNode.SetItemParent(item, parentItem)
            else:
                shNode.CreateItem(parentItem, node)

    # DICOM-SEG

    def exportDicomSeg(self, segmentationNode, flairNode, sourceFiles, outputPath):
        """Write the "Tumor" segment as DICOM-SEG referencing the FLAIR's DICOM instances (``sourceFiles``).

        A result the quality check flagged (its report's ``quality.flagged``) is exported as low
        confidence, as ``tumorseg detect --dicom-seg`` would label it.
        """
        tempRoot = getattr(getattr(slicer, "app", None), "temporaryPath", None)
        tempDir = Path(tempfile.mkdtemp(prefix="TumorSeg-SEG-", dir=tempRoot))
        try:
            sourceDir = tempDir / "source"
            sourceDir.mkdir()
            for index, sourceFile in enumerate(sourceFiles):
                shutil.copy2(sourceFile, sourceDir / f"{index:05d}.dcm")
            maskPath = tempDir / f"mask{self.inputFileExtension}"
            self.exportTumorLabelmap(segmentationNode, flairNode, maskPath)
            command = [
                self.pythonExecutable(), "-m", ENGINE_PACKAGE, "export-dicom-seg",
                "--mask", str(maskPath), "--source", str(sourceDir), "-o", str(outputPath), "--overwrite",
            ]
            seriesUID = flairNode.GetAttribute("DICOM.seriesInstanceUID")
            if seriesUID:
                command += ["--series-uid", seriesUID]
            if self.isLowConfidence(self.reportFromSegmentation(segmentationNode)):
                command.append("--low-confidence")
            env = os.environ.copy()
            engineDir = self.engineDirectory()
            env["PYTHONPATH"] = os.pathsep.join([str(engineDir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            result = subprocess.run(command, cwd=str(engineDir), env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
            if result.returncode != 0:
                lines = [line for line in result.stderr.splitlines() if line.strip()]
                errors = [line[len("tumorseg: error: "):] for line in lines if line.startswith("tumorseg: error: ")]
                message = errors[-1] if errors else (lines[-1] if lines else f"exit code {result.returncode}")
                raise TumorSegError(message, result.stderr)
        finally:
            shutil.rmtree(tempDir, ignore_errors=True)

    @classmethod
    def exportTumorLabelmap(cls, segmentationNode, flairNode, path):
        """Write the "Tumor" segment as a 0/1 labelmap file on the FLAIR's grid."""
        writeSegmentLabelmap(segmentationNode, TUMOR_SEGMENT_ID, flairNode, path)


#
# TumorSegTest
#


class TumorSegTest(ScriptedLoadableModuleTest):
    """The module's workflow inside Slicer: detect on the LGG sample, check the result, cancel a run.

    Data: $TUMORSEG_TEST_DATA (a folder with flair.nii.gz, t1.nii.gz, t1c.nii.gz and flair_lesion.nii.gz),
    else tests/data/TCGA-FG-6692 of the source tree.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DetectOnLGGSample()
        self.setUp()
        self.test_Cancel()

    def _dataDirectory(self):
        candidates = [os.environ.get("TUMORSEG_TEST_DATA")]
        for parent in Path(__file__).resolve().parents:
            candidates.append(str(parent / "tests" / "data" / "TCGA-FG-6692"))
        for candidate in candidates:
            if candidate and (Path(candidate) / "flair.nii.gz").is_file():
                return Path(candidate)
        self.fail("Test data not found: set TUMORSEG_TEST_DATA to a folder with flair.nii.gz, t1.nii.gz and t1c.nii.gz")

    def _loadSample(self):
        dataDir = self._dataDirectory()
        flair = slicer.util.loadVolume(str(dataDir / "flair.nii.gz"))
        t1 = slicer.util.loadVolume(str(dataDir / "t1.nii.gz"))
        t1c = slicer.util.loadVolume(str(dataDir / "t1c.nii.gz"))
        return dataDir, flair, t1, t1c

    def test_DetectOnLGGSample(self):
        import numpy as np

        self.delayDisplay("Loading the LGG sample")
        dataDir, flair, t1, t1c = self._loadSample()
        logic = TumorSegLogic()
        missing = logic.missingRequirements()
        if missing:
            self.delayDisplay("Installing " + " ".join(missing))
            logic.installRequirements()
        self.delayDisplay("Detecting")
        progress = []
        segmentationNode = logic.process(flair, t1, t1c, progressCallback=lambda p, m: progress.append(p))
        self.assertIsNotNone(segmentationNode)
        self.assertEqual(progress[-1], 1.0)
        segmentation = segmentationNode.GetSegmentation()
        self.assertEqual(segmentation.GetNumberOfSegments(), 1)
        segment = segmentation.GetSegment(TUMOR_SEGMENT_ID)
        self.assertEqual(segment.GetName(), TUMOR_SEGMENT_NAME)
        terminology = vtk.reference("")
        segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology)
        self.assertIn("SCT^108369006^Neoplasm", str(terminology))
        self.assertIs(segmentationNode.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()), flair)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, TUMOR_SEGMENT_ID, flair)
        self.assertEqual(mask.shape, slicer.util.arrayFromVolume(flair).shape)
        lesionNode = slicer.util.loadLabelVolume(str(dataDir / "flair_lesion.nii.gz"))
        lesion = slicer.util.arrayFromVolume(lesionNode) > 0
        dice = 2.0 * np.logical_and(mask > 0, lesion).sum() / max(1, (mask > 0).sum() + lesion.sum())
        self.delayDisplay(f"Dice against the ground-truth lesion: {dice:.3f}")
        self.assertGreater(dice, 0.5)
        tableNode = segmentationNode.GetNodeReference(SEGMENTATION_TABLE_ROLE)
        self.assertEqual(tableNode.GetNumberOfRows(), flair.GetImageData().GetDimensions()[TumorSegLogic.axialAxis(flair)])

        self.delayDisplay("Saving as .seg.nrrd")
        import slicerio

        path = Path(slicer.app.temporaryPath) / "TumorSegTest.seg.nrrd"
        self.assertTrue(slicer.util.saveNode(segmentationNode, str(path)))
        saved = slicerio.read_segmentation(str(path))
        path.unlink()
        self.assertEqual([s["name"] for s in saved["segments"]], [TUMOR_SEGMENT_NAME])
        self.assertEqual(saved["segments"][0]["terminology"]["type"], ["SCT", "108369006", "Neoplasm"])
        self.delayDisplay("Detection test passed")

    def test_Cancel(self):
        _, flair, t1, t1c = self._loadSample()
        logic = TumorSegLogic()
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        seen = {}

        def onProgress(progress, message):
            if progress > 0.1 and "pid" not in seen:
                seen["pid"] = logic._run.process.pid
                seen["tempDir"] = logic._run.tempDir
                logic.cancel()

        self.assertIsNone(logic.process(flair, t1, t1c, progressCallback=onProgress))
        self.assertIn("pid", seen)
        self.assertFalse(Path(seen["tempDir"]).exists())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.delayDisplay("Cancel test passed")
