"""Recording stand-ins for the Qt widgets of the TumorSeg panel, to drive its sections on slicer-core.

slicer-core has no Qt (see slicer_fixture.py), so a panel section such as ``CompareView`` is built
here from these stand-ins instead: they keep the properties the section sets (text, enabled,
toolTip, ...), record signal connections, and emit them on :meth:`Widget.click`. The MRML side is
real: the node selector lists the real scene's nodes the way ``qMRMLNodeComboBox`` does (the node
types by ``IsA``, minus ``hideChildNodeTypes``), and the logic and engine behind the section are
the real ones. :func:`install` puts them in place with pytest's ``monkeypatch``, so they are gone
after the test and every other test keeps the attribute-less stand-ins.
"""

from __future__ import annotations

import inspect
import types

import qt  # the stand-in module of slicer_fixture.install()
import ctk
import slicer


class Widget:
    """A Qt widget or layout: properties are plain attributes, signals call the slots connected to them."""

    def __init__(self, text="", *args, **kwargs):
        self.text = text if isinstance(text, str) else ""
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.value = 0
        self.slots = {}
        self.children = []

    def connect(self, signal, slot):
        self.slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        """Call the slots as PythonQt does: with as many of the signal's arguments as each slot takes."""
        for slot in self.slots.get(signal, []):
            parameters = inspect.signature(slot).parameters.values()
            if any(p.kind is p.VAR_POSITIONAL for p in parameters):
                slot(*args)
            else:
                slot(*args[: sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)])

    def click(self):
        """A user's click: nothing happens on a disabled button."""
        if self.enabled:
            self.emit("clicked(bool)", False)

    # layouts and views: what the section adds is kept, nothing is drawn
    def addRow(self, *items):
        self.children.extend(items)

    def addWidget(self, *items):
        self.children.extend(items[:1])

    def setMinimumHeight(self, height):
        self.minimumHeight = height

    def setMRMLTableNode(self, node):
        self.tableNode = node

    def show(self):
        self.visible = True

    def hide(self):
        self.visible = False


class NodeComboBox(Widget):
    """``qMRMLNodeComboBox`` over a real scene: offers the nodes of ``nodeTypes`` minus ``hideChildNodeTypes``."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.nodeTypes = []
        self.hideChildNodeTypes = []
        self.noneEnabled = False
        self.addEnabled = True
        self.removeEnabled = True
        self.scene = None
        self._current = None

    def setMRMLScene(self, scene):
        self.scene = scene

    def nodes(self):
        """The nodes a user can pick, in scene order."""
        found = []
        for index in range(self.scene.GetNumberOfNodes()):
            node = self.scene.GetNthNode(index)
            if any(node.IsA(t) for t in self.nodeTypes) and not any(node.IsA(t) for t in self.hideChildNodeTypes):
                found.append(node)
        return found

    def currentNode(self):
        return self._current

    def setCurrentNode(self, node):
        """Pick a node as a user would: only one the list offers."""
        if node is not None and node not in self.nodes():
            raise ValueError(f"{node.GetName()} ({node.GetClassName()}) is not offered by this selector")
        self._current = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class Dialogs:
    """slicer.util's message boxes, answered by the test and recorded."""

    def __init__(self, confirm=True):
        self.errors = []
        self.confirmations = []
        self.confirm = confirm

    def errorDisplay(self, text, windowTitle=None, detailedText=None, **kwargs):
        self.errors.append(text)

    def confirmOkCancelDisplay(self, text, windowTitle=None, **kwargs):
        self.confirmations.append(text)
        return self.confirm


def install(monkeypatch, scene, confirm=True) -> Dialogs:
    """The widget classes, the selector over ``scene`` and recorded dialogs, for one test."""
    for name in ("QPushButton", "QLabel", "QLineEdit", "QFormLayout", "QHBoxLayout", "QProgressBar"):
        monkeypatch.setattr(qt, name, Widget, raising=False)
    monkeypatch.setattr(qt, "QFileDialog", types.SimpleNamespace(getExistingDirectory=lambda *a: ""), raising=False)
    monkeypatch.setattr(ctk, "ctkCollapsibleButton", Widget, raising=False)
    monkeypatch.setattr(slicer, "qMRMLNodeComboBox", NodeComboBox, raising=False)
    monkeypatch.setattr(slicer, "qMRMLTableView", Widget, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    dialogs = Dialogs(confirm)
    monkeypatch.setattr(slicer.util, "errorDisplay", dialogs.errorDisplay)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", dialogs.confirmOkCancelDisplay)
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kwargs: None)
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: None)
    return dialogs
