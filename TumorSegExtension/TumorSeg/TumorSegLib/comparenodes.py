"""Node conversions for "Compare with prior": MRML results to case folders, and change.json back to MRML.

``monai_core compare`` compares two case folders as ``tumorseg detect`` writes them (report.json
naming the FLAIR, segmentation.nii.gz on its grid). A result in the scene (a FLAIR node and its
TumorSeg segmentation node) is written as such a folder; a prior result on disk is used as it is.
The answer comes back as:

- a segmentation node with the segments New, Resolved and Stable (change.seg.nrrd, on the prior's
  grid) under a linear transform from the prior's scanner space to the current one (the rigid
  registration of change.json), so it overlays the current FLAIR;
- a table node with one row per measurement (prior, current, change) and the two RANO categories.

No image processing here: files are written and read with Slicer's storage nodes (the writers are
shared with detect, in nodewriter.py), and every change figure comes from change.json.
"""

import json
from pathlib import Path

import slicer
import vtk

from .errors import TumorSegError
from .nodewriter import writeSegmentLabelmap, writeVolume

CHANGE_SEGMENT_IDS = ("New", "Resolved", "Stable")
CHANGE_ATTRIBUTE = "TumorSeg.Change"
CHANGE_TABLE_ROLE = "TumorSegChangeTable"
# change table rows: (label, measurement key in report.json/change.json, number format, change.json's key of
# the change in percent or None); the percentages are change.json's, the one place they are computed
MEASUREMENT_ROWS = (
    ("Volume (mL)", "volume_ml", "{:.2f}", "volume_change_percent"),
    ("Longest diameter (mm)", "longest_diameter_mm", "{:.1f}", None),
    ("Perpendicular diameter (mm)", "perpendicular_diameter_mm", "{:.1f}", None),
    ("Bidimensional product (mm2)", "bidimensional_product_mm2", "{:.0f}", "bidimensional_product_change_percent"),
    ("Mean diameter (mm)", "mean_diameter_mm", "{:.1f}", None),
)


def writeCaseFolder(folder, flairNode, segmentationNode, report, tumorSegmentId, extension=".nrrd"):
    """Write a scene result as a detect case folder: the FLAIR, the tumour mask on its grid, and report.json.

    ``report`` is the result's report (the segmentation node's); its ``inputs.flair`` is pointed at
    the FLAIR written here, and the study's DICOM date and patient id (subject hierarchy) are added
    so that compare finds the interval.
    """
    folder = Path(folder)
    folder.mkdir(parents=True)
    flairPath = folder / f"flair{extension}"
    writeVolume(flairNode, flairPath)
    writeSegmentLabelmap(segmentationNode, tumorSegmentId, flairNode, folder / "segmentation.nii.gz")
    report = dict(report or {})
    inputs = dict(report.get("inputs") or {})
    inputs.update(flair=str(flairPath), t1=None, t1c=None)
    inputs.pop("series_uids", None)
    dicom = studyDicomAttributes(flairNode)
    if dicom:
        inputs["dicom"] = dicom
    else:
        inputs.pop("dicom", None)
    report["inputs"] = inputs
    report.setdefault("case_id", flairNode.GetName())
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def studyDicomAttributes(volumeNode):
    """StudyDate and PatientID of the volume's study and patient in the subject hierarchy (DICOM import sets them)."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volumeNode.GetScene())
    item = shNode.GetItemByDataNode(volumeNode)
    found = {}
    if not item:
        return found
    levels = (("StudyDate", slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy()),
              ("PatientID", slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelPatient()))
    for name, level in levels:
        ancestor = shNode.GetItemAncestorAtLevel(item, level)
        value = shNode.GetItemAttribute(ancestor, f"DICOM.{name}") if ancestor else ""
        if value:
            found[name] = value
    return found


def priorNodeProblem(prior, flairNode, segmentationNode):
    """Why a node cannot be the prior of the current result (None when it can): it must be another study's.

    A labelmap is not a FLAIR (a volume selector offers it, being a scalar volume), and the current
    FLAIR, the current result or any result on the current FLAIR would compare the study with itself.
    """
    name = prior.GetName()
    if prior.IsA("vtkMRMLLabelMapVolumeNode"):
        return f"'{name}' is a labelmap: choose the prior study's FLAIR or its TumorSeg result."
    if prior is flairNode:
        return f"'{name}' is the current FLAIR: choose the prior study's FLAIR or its TumorSeg result."
    if prior is segmentationNode:
        return f"'{name}' is the current result: choose the prior study's FLAIR or its TumorSeg result."
    if prior.IsA("vtkMRMLSegmentationNode"):
        reference = prior.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
        if reference is not None and reference is flairNode:
            return f"'{name}' is a result on the current FLAIR: choose the prior study's result."
    elif not prior.IsA("vtkMRMLScalarVolumeNode"):
        return f"'{name}' is neither a FLAIR volume nor a TumorSeg result."
    return None


def priorFolderProblem(folder):
    """Why a folder cannot be a prior result (None when it looks like one); compare checks the rest."""
    folder = Path(folder)
    if not (folder / "report.json").is_file():
        return f"{folder} holds no report.json: choose a case folder written by tumorseg detect."
    if not (folder / "segmentation.nii.gz").is_file():
        return f"{folder} holds no segmentation.nii.gz."
    return None


def lpsToRas(matrix):
    """A 4x4 point transform in DICOM LPS coordinates as the same transform in Slicer's RAS."""
    flip = (-1.0, -1.0, 1.0, 1.0)
    return [[flip[r] * matrix[r][c] * flip[c] for c in range(4)] for r in range(4)]


def importChange(scene, changeFolder, currentFlairNode, name, changeNode=None):
    """change.seg.nrrd, change.json -> (segmentation node under the prior-to-current transform, table node)."""
    changeFolder = Path(changeFolder)
    change = json.loads((changeFolder / "change.json").read_text())
    if changeNode is None:
        changeNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{name} change"))
    storageNode = slicer.vtkMRMLSegmentationStorageNode()
    storageNode.SetFileName(str(changeFolder / "change.seg.nrrd"))
    if not storageNode.ReadData(changeNode):
        raise TumorSegError(f"Could not read the change segmentation {changeFolder / 'change.seg.nrrd'}.")
    if changeNode.GetDisplayNode() is None:
        changeNode.CreateDefaultDisplayNodes()
    missing = [s for s in CHANGE_SEGMENT_IDS if changeNode.GetSegmentation().GetSegment(s) is None]
    if missing:
        raise TumorSegError(f"The change segmentation lacks the segments {', '.join(missing)}.")

    transformNode = changeNode.GetParentTransformNode()
    if transformNode is None:
        transformNode = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", scene.GenerateUniqueName(f"{name} prior to current"))
    matrix = vtk.vtkMatrix4x4()
    for r, row in enumerate(lpsToRas(change["registration"]["baseline_to_followup_lps"])):
        for c, value in enumerate(row):
            matrix.SetElement(r, c, value)
    transformNode.SetMatrixTransformToParent(matrix)
    if currentFlairNode.GetParentTransformNode():
        transformNode.SetAndObserveTransformNodeID(currentFlairNode.GetParentTransformNode().GetID())
    changeNode.SetAndObserveTransformNodeID(transformNode.GetID())

    tableNode = changeTable(scene, change, name, changeNode.GetNodeReference(CHANGE_TABLE_ROLE))
    changeNode.SetNodeReferenceID(CHANGE_TABLE_ROLE, tableNode.GetID())
    changeNode.SetAttribute(CHANGE_ATTRIBUTE, json.dumps(change))
    return changeNode, tableNode


def changeRows(change):
    """The change table as rows of strings: (measure, prior, current, change)."""
    before, after = change["baseline"]["measurements"], change["followup"]["measurements"]

    def shown(value, form):
        return "-" if value is None else form.format(value)

    rows = []
    for label, key, form, percentKey in MEASUREMENT_ROWS:
        b, a = before.get(key), after.get(key)
        parts = [form.replace("{:", "{:+").format(a - b)] if b is not None and a is not None else []
        percent = change.get(percentKey) if percentKey else None
        if percent is not None:  # e.g. -100% for a lesion that resolved, whose diameters are none
            parts.append(f"({percent:+.0f}%)" if parts else f"{percent:+.0f}%")
        rows.append((label, shown(b, form), shown(a, form), " ".join(parts) or "-"))
    changeMap = change.get("change_map") or {}
    for label, key in (("New (mL)", "new_ml"), ("Resolved (mL)", "resolved_ml"), ("Stable (mL)", "stable_ml")):
        rows.append((label, "", "", shown(changeMap.get(key), "{:.2f}")))
    dates = [change[s].get("study_date") or "-" for s in ("baseline", "followup")]
    interval = change.get("interval_days")
    rows.append(("Study date", dates[0], dates[1], "-" if interval is None else f"{interval} days"))
    volumetric = change.get("volumetric") or {}
    rows.append(("RANO, bidimensional (+25% / -50%)", "", "", str(change.get("category"))))
    rows.append(("RANO 2.0, volumetric (+40% / -65%)", "", "", str(volumetric.get("category", "-"))))
    return rows


def changeTable(scene, change, name, tableNode=None):
    """A locked table node of :func:`changeRows`, with the note that the categories are aids, not a diagnosis."""
    if tableNode is None:
        tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{name} change table"))
    wasModifying = tableNode.StartModify()
    table = tableNode.GetTable()
    table.Initialize()
    rows = changeRows(change)
    for column, title in enumerate(("Measure", "Prior", "Current", "Change")):
        array = vtk.vtkStringArray()
        array.SetName(title)
        array.SetNumberOfValues(len(rows))
        for r, row in enumerate(rows):
            array.SetValue(r, row[column])
        table.AddColumn(array)
    tableNode.SetUseColumnTitleAsColumnHeader(True)
    tableNode.SetColumnDescription("Change", "current minus prior; RANO categories are aids to reading, not a diagnosis")
    tableNode.SetLocked(True)
    tableNode.EndModify(wasModifying)
    return tableNode
