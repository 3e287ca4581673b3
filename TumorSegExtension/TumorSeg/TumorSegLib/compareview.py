"""The "Compare with prior" section of the TumorSeg panel: choose a prior result, compare, show the change.

The prior is a TumorSeg result in the scene (a segmentation node with a "Tumor" segment, picked in
the node selector), the prior study's FLAIR (detected first), or a case folder written by
``tumorseg detect`` ("Prior folder..."). The work is ``TumorSegLogic.compareWithPrior``; this
section only collects the choice, makes sure the engine's packages are installed (as Detect does),
shows progress with a Cancel (the Compare button while it runs), and shows the New, Resolved and
Stable segments over the current FLAIR with the change table. The selector offers no labelmaps (a
labelmap is a scalar volume, but not a FLAIR), and the current study is refused as its own prior.
"""

import ctk
import qt
import slicer

from . import comparenodes
from .errors import TumorSegError

COMPARE_TEXT = "Compare with prior..."
COMPARE_TOOLTIP = "Register the current FLAIR to the prior one and show New, Resolved and Stable tumour."


class CompareView:
    """Builds the section into ``widget.layout`` and drives ``widget.logic``; ``widget`` is the TumorSegWidget."""

    def __init__(self, widget, outputRole, flairRole, tumorSegmentId):
        self.widget = widget
        self.outputRole = outputRole
        self.flairRole = flairRole
        self.tumorSegmentId = tumorSegmentId
        self.priorFolder = None
        self.running = False

        section = ctk.ctkCollapsibleButton()
        section.text = "Compare with prior"
        section.collapsed = True
        form = qt.QFormLayout(section)
        widget.layout.addWidget(section)

        self.priorSelector = slicer.qMRMLNodeComboBox()
        self.priorSelector.nodeTypes = ["vtkMRMLSegmentationNode", "vtkMRMLScalarVolumeNode"]
        self.priorSelector.hideChildNodeTypes = ["vtkMRMLLabelMapVolumeNode"]  # scalar volumes, but not a FLAIR
        self.priorSelector.noneEnabled = True
        self.priorSelector.addEnabled = False
        self.priorSelector.removeEnabled = False
        self.priorSelector.setMRMLScene(slicer.mrmlScene)
        self.priorSelector.toolTip = ("The TumorSeg result of the prior study, or its FLAIR (then it is detected first), "
                                      "or choose a case folder below.")
        form.addRow("Prior result or FLAIR:", self.priorSelector)

        self.folderButton = qt.QPushButton("Prior folder...")
        self.folderButton.toolTip = "A case folder written by tumorseg detect (report.json and segmentation.nii.gz)."
        self.folderLabel = qt.QLabel("")
        row = qt.QHBoxLayout()
        row.addWidget(self.folderButton)
        row.addWidget(self.folderLabel, 1)
        form.addRow(row)

        self.datesEdit = qt.QLineEdit()
        self.datesEdit.placeholderText = "prior and current dates YYYY-MM-DD YYYY-MM-DD (if not from DICOM)"
        form.addRow("Dates:", self.datesEdit)

        self.compareButton = qt.QPushButton(COMPARE_TEXT)
        self.compareButton.toolTip = COMPARE_TOOLTIP
        form.addRow(self.compareButton)

        self.tableView = slicer.qMRMLTableView()
        self.tableView.setMinimumHeight(200)
        form.addRow(self.tableView)
        self.noteLabel = qt.QLabel("RANO categories are aids to reading, not a diagnosis.")
        form.addRow(self.noteLabel)

        self.folderButton.connect("clicked(bool)", self.onChooseFolder)
        self.priorSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onPriorNodeChanged)
        self.compareButton.connect("clicked(bool)", self.onCompare)

    def onChooseFolder(self):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), "Prior TumorSeg case folder")
        if folder:
            self.priorFolder = folder
            self.folderLabel.text = folder
            self.priorSelector.setCurrentNode(None)

    def onPriorNodeChanged(self, node):
        if node is not None:
            self.priorFolder = None
            self.folderLabel.text = ""

    def onCompare(self):
        """Compare, or, while a comparison runs (the button reads Cancel), cancel it."""
        if self.running:
            self.widget.ui.statusLabel.text = "Cancelling..."
            self.widget.logic.cancel()
            return
        if self.widget.logic.isRunning():  # a detection: its progress bar and Cancel stay as they are
            slicer.util.errorDisplay("A detection is running; compare when it has finished.", windowTitle="TumorSeg")
            return
        parameters = self.widget._parameterNode
        flairNode = parameters.GetNodeReference(self.flairRole) if parameters else None
        segmentationNode = parameters.GetNodeReference(self.outputRole) if parameters else None
        prior = self.priorFolder or self.priorSelector.currentNode()
        if prior is None:
            slicer.util.errorDisplay("Choose the prior result or its case folder.", windowTitle="TumorSeg")
            return
        problem = None if self.priorFolder else comparenodes.priorNodeProblem(prior, flairNode, segmentationNode)
        if problem:
            slicer.util.errorDisplay(problem, windowTitle="TumorSeg")
            return
        dates = self.datesEdit.text.split()
        if dates and len(dates) != 2:
            slicer.util.errorDisplay("Give two dates (prior, current) as YYYY-MM-DD, or none.", windowTitle="TumorSeg")
            return
        if not self.widget.ensureDependencies():
            return
        self._setRunning(True)
        try:
            changeNode, tableNode = self.widget.logic.compareWithPrior(
                prior, flairNode, segmentationNode, dates or None, progressCallback=self.widget.onProgress)
        except TumorSegError as error:
            self.widget.ui.statusLabel.text = "Compare failed."
            slicer.util.errorDisplay(f"Compare failed:\n{error}", windowTitle="TumorSeg", detailedText=error.details)
            return
        finally:
            self._setRunning(False)
        if changeNode is None:
            self.widget.ui.statusLabel.text = "Compare cancelled."
            return
        self.tableView.setMRMLTableNode(tableNode)
        slicer.util.setSliceViewerLayers(background=flairNode, fit=True)
        segmentationNode.GetDisplayNode().SetVisibility(False)  # the change segments replace the Tumor outline
        self.widget.ui.statusLabel.text = "Compared with the prior study."

    def _setRunning(self, running):
        """While comparing: the Compare button cancels, the choice is fixed, Detect waits; the GUI stays live."""
        self.running = running
        self.compareButton.text = "Cancel" if running else COMPARE_TEXT
        self.compareButton.toolTip = "Stop the comparison; nothing is added to the scene." if running else COMPARE_TOOLTIP
        for widget in (self.priorSelector, self.folderButton, self.datesEdit):
            widget.enabled = not running
        self.widget.ui.progressBar.value = 0
        self.widget.ui.progressBar.visible = running
        if running:
            self.widget.ui.applyButton.enabled = False
        else:
            self.widget.updateButtons()
