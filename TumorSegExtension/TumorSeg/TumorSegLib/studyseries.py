"""Propose the FLAIR, T1 and T1c among the volumes of a DICOM study loaded in Slicer, with the reasons.

The choice is the engine's (``tumorseg choose-series``, the rule of ``detect --study`` and
``batch``), run on the DICOM files behind the loaded volumes in a separate process: Slicer's
Python never imports the engine. This file only finds those files and maps the chosen series
back to volume nodes; the widget puts the nodes in its selectors, where the user can change them.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import slicer

from .errors import TumorSegError

ROLES = ("flair", "t1", "t1c")
ROLE_TITLES = {"flair": "FLAIR", "t1": "T1 (pre-contrast)", "t1c": "T1 (post-contrast)"}


class SeriesProposal:
    """The volume node proposed for each role (None: none found), why, and the series not used."""

    def __init__(self, nodes, reasons, notUsed):
        self.nodes = nodes
        self.reasons = reasons
        self.notUsed = notUsed

    def text(self):
        """What the panel shows under the selectors: one line per role, then the series not used."""
        lines = []
        for role in ROLES:
            node = self.nodes.get(role)
            lines.append(f"{ROLE_TITLES[role]}: {node.GetName() if node else 'none'} ({self.reasons[role]})")
        if self.notUsed:
            lines.append(f"Not used: {'; '.join(self.notUsed)}")
        return "\n".join(lines)


def dicomFiles(volumeNode, fileForInstance=None):
    """The DICOM files a volume was loaded from: by its instance UIDs in the DICOM database, else its storage node's files."""
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
    if uids and fileForInstance is None and getattr(slicer, "dicomDatabase", None) is not None:
        fileForInstance = slicer.dicomDatabase.fileForInstance
    if uids and fileForInstance is not None:
        files = [fileForInstance(uid) for uid in uids]
        if all(files):
            return files
    storage = volumeNode.GetStorageNode()
    if storage is None or not uids:  # not loaded from DICOM
        return []
    names = [storage.GetFileName()] + [storage.GetNthFileName(i) for i in range(storage.GetNumberOfFileNames())]
    return sorted({name for name in names if name})


def _dicomVolumes(scene):
    """The scene's DICOM-loaded scalar volumes, in the order they were added."""
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    nodes = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    return [node for node in nodes if node.GetAttribute("DICOM.instanceUIDs") and not node.IsA("vtkMRMLLabelMapVolumeNode")]


def latestVolume(scene):
    """The DICOM-loaded scalar volume added last (the study being loaded), or None."""
    volumes = _dicomVolumes(scene)
    return volumes[-1] if volumes else None


def studyVolumes(scene, referenceNode=None):
    """The DICOM-loaded scalar volumes of ``referenceNode``'s study (subject hierarchy), or of the whole scene."""
    volumes = _dicomVolumes(scene)
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = _studyItem(shNode, referenceNode) if referenceNode is not None else 0
    if study:
        volumes = [node for node in volumes if _studyItem(shNode, node) == study]
    return volumes


def _studyItem(shNode, node):
    item = shNode.GetItemByDataNode(node)
    while item and shNode.GetItemLevel(item) != "Study":
        item = shNode.GetItemParent(item)
    return item


def proposeSeries(volumeNodes, runChooser, fileForInstance=None):
    """A :class:`SeriesProposal` among ``volumeNodes``; ``runChooser(files)`` returns the engine's JSON answer."""
    filesOfNode = {node: [os.path.realpath(f) for f in dicomFiles(node, fileForInstance)] for node in volumeNodes}
    files = sorted({f for nodeFiles in filesOfNode.values() for f in nodeFiles})
    if not files:
        raise TumorSegError("None of the volumes was loaded from DICOM files, so there is no study to choose from.")
    answer = runChooser(files)
    nodes, reasons = {}, {}
    for role in ROLES:
        chosen = {os.path.realpath(f) for f in answer[role].get("files", [])}
        nodes[role] = next((node for node, nodeFiles in filesOfNode.items() if chosen & set(nodeFiles)), None)
        reasons[role] = answer[role]["reason"]
    notUsed = [f"{entry['series_number']} {entry['description']!r} ({entry['reason']})" for entry in answer.get("not_used", [])]
    return SeriesProposal(nodes, reasons, notUsed)


def engineChooser(pythonExecutable, engineDirectory):
    """``runChooser`` for :func:`proposeSeries`: ``tumorseg choose-series --json`` in a process of its own."""

    def run(files):
        with tempfile.TemporaryDirectory(prefix="TumorSeg-series-") as folder:
            listing = Path(folder) / "files.txt"
            listing.write_text("\n".join(files) + "\n", encoding="utf-8")
            command = [str(pythonExecutable), "-m", "monai_core", "choose-series", "--files-from", str(listing), "--json"]
            env = os.environ.copy()
            env["PYTHONPATH"] = os.pathsep.join([str(engineDirectory)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            result = subprocess.run(command, cwd=str(engineDirectory), env=env, capture_output=True, text=True,
                                    encoding="utf-8", errors="replace")
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            errors = [line[len("tumorseg: error: "):] for line in lines if line.startswith("tumorseg: error: ")]
            raise TumorSegError(errors[-1] if errors else (lines[-1] if lines else f"exit code {result.returncode}"),
                                result.stderr)
        return json.loads(result.stdout)

    return run
