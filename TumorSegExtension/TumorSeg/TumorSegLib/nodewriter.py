"""MRML nodes to the files the engine reads: a volume in its own geometry, a segment as a labelmap.

One writer for detect's inputs, the DICOM-SEG export and "Compare with prior", so that every file
the engine gets is written the same way: with Slicer's storage nodes, uncompressed (NRRD keeps the
geometry in double precision), without touching the scene, and with a warning when the node is
under a transform, which the file does not carry (the engine registers sequences and studies itself).
"""

import logging
from pathlib import Path

import slicer
import vtk

from .errors import TumorSegError


def writeVolume(volumeNode, path):
    """Write a volume (scalar or labelmap) in its own geometry to ``path``; parent transforms are not applied."""
    if volumeNode.GetImageData() is None:
        raise TumorSegError(f"Volume '{volumeNode.GetName()}' has no image data.")
    if volumeNode.GetParentTransformNode():
        logging.warning(f"TumorSeg: the transform of '{volumeNode.GetName()}' is ignored; "
                        "the engine registers the sequences and studies itself.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.SetUseCompression(False)
    if not storageNode.WriteData(volumeNode):
        raise TumorSegError(f"Could not write volume '{volumeNode.GetName()}' to {path}.")


def writeSegmentLabelmap(segmentationNode, segmentId, referenceNode, path):
    """One segment as a 0/1 labelmap on ``referenceNode``'s grid (Slicer's export), written to ``path``.

    The temporary labelmap node is removed again, so the scene is unchanged.
    """
    if segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
        raise TumorSegError(f"'{segmentationNode.GetName()}' has no '{segmentId}' segment.")
    scene = segmentationNode.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__TumorSegExport__")
    try:
        segmentIds = vtk.vtkStringArray()
        segmentIds.InsertNextValue(segmentId)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentationNode, segmentIds, labelmap, referenceNode):
            raise TumorSegError(f"Could not export the '{segmentId}' segment on the grid of '{referenceNode.GetName()}'.")
        # the export puts the labelmap under the segmentation's transform; its voxels are on the
        # reference's own grid, which is what the file holds (the reference's writer warns of the transform)
        labelmap.SetAndObserveTransformNodeID(None)
        writeVolume(labelmap, path)
    finally:
        displayNode = labelmap.GetDisplayNode()
        scene.RemoveNode(labelmap)
        if displayNode:
            scene.RemoveNode(displayNode)
