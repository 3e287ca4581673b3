"""Helpers of the TumorSeg Slicer module (TumorSeg.py), kept out of the module file.

- ``engine``: the warm ``monai_core`` engine process that runs the detections;
- ``errors``: ``TumorSegError``, the one-line failure shown to the user;
- ``install``: the engine's Python packages (requirements, the CPU or CUDA build of PyTorch, pip in the background);
- ``nodewriter``: volumes and segments to the files the engine reads (detect, export, compare);
- ``comparenodes``: "Compare with prior"'s node conversions (results to case folders, change.json to nodes);
- ``compareview``: the "Compare with prior" section of the panel.

Nothing here imports torch or monai_core: the engine runs in its own process. In the installed
extension this folder also holds the shipped engine itself (``monai_core/``, ``bundle/``; see
CMakeLists.txt).
"""
