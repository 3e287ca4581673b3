"""The study choice in the TumorSeg panel: propose FLAIR, T1 and T1c when a whole DICOM study is loaded.

When DICOM volumes arrive in the scene (or on "Choose series from study"), the module asks
``TumorSegLogic.proposeSeries`` which volumes to use, puts them in the input selectors and shows
why under them. The user can change any selector; from then on the module proposes only when
asked with the button, so it never undoes a choice the user made.
"""

import qt
import slicer

from . import studyseries
from .errors import TumorSegError


class StudySeriesView:
    """Builds a button and a reasons label into the inputs form of ``widget`` (the TumorSegWidget)."""

    def __init__(self, widget, roles):
        self.widget = widget
        self.roles = roles  # {"flair": parameter-node reference role, "t1": ..., "t1c": ...}
        self.automatic = True  # the selectors hold the module's proposal, not a choice of the user
        self.applying = False

        self.button = qt.QPushButton("Choose series from study")
        self.button.toolTip = ("Pick FLAIR, pre- and post-contrast T1 among the loaded DICOM series of the FLAIR's "
                               "study, by the rule of tumorseg detect --study (README), and show why.")
        self.label = qt.QLabel("")
        self.label.wordWrap = True
        self.label.visible = False
        form = widget.ui.inputsFormLayout
        form.addRow(self.button)
        form.addRow(self.label)
        self.button.connect("clicked(bool)", lambda checked=False: self.propose(quiet=False, latest=False))

        self.timer = qt.QTimer()  # a study arrives as many nodes: propose once, after the last
        self.timer.setSingleShot(True)
        self.timer.interval = 1000
        self.timer.connect("timeout()", self.onVolumesAdded)
        widget.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)  # removed in cleanup()

    def onNodeAdded(self, caller=None, event=None):
        self.timer.start()

    def onVolumesAdded(self):
        if self.automatic and not self.widget._running:
            self.propose(quiet=True, latest=True)

    def userChanged(self):
        """A selector was changed by the user: keep their choice."""
        if not self.applying:
            self.automatic = False

    def propose(self, quiet=True, latest=True):
        """Ask the logic for a proposal and put it in the selectors; False when there is none.

        The study is that of the latest loaded DICOM volume (``latest``), or of the FLAIR selected now.
        """
        parameters = self.widget._parameterNode
        if parameters is None:
            return False
        reference = None if latest else parameters.GetNodeReference(self.roles["flair"])
        reference = reference or studyseries.latestVolume(slicer.mrmlScene)
        try:
            with slicer.util.WaitCursor():
                proposal = self.widget.logic.proposeSeries(reference)
        except TumorSegError as error:
            if not quiet:
                slicer.util.errorDisplay(f"Choosing the series failed:\n{error}", windowTitle="TumorSeg",
                                         detailedText=error.details)
            return False
        self.applying = True
        try:
            wasModified = parameters.StartModify()
            for role, referenceRole in self.roles.items():
                node = proposal.nodes.get(role)
                parameters.SetNodeReferenceID(referenceRole, node.GetID() if node else None)
            parameters.EndModify(wasModified)
        finally:
            self.applying = False
        self.automatic = True
        self.label.text = proposal.text()
        self.label.visible = True
        return True
