"""Helpers of the TumorSeg Slicer module (TumorSeg.py), kept out of the module file.

- ``engine``: the warm ``monai_core`` engine process that runs the detections;
- ``errors``: ``TumorSegError``, the one-line failure shown to the user;
- ``install``: the engine's Python packages (requirements, the CPU or CUDA build of PyTorch, pip in the background);
- ``nodewriter``: volumes and segments to the files the engine reads (detect, export, compare);
- ``comparenodes``: "Compare with prior"'s node conversions (results to case folders, change.json to nodes);
- ``compareview``: the "Compare with prior" section of the panel;
- ``studyseries``: the FLAIR, T1 and T1c proposed among the volumes of a loaded DICOM study (by the engine);
- ``studyview``: the study choice under the input selectors (button, reasons, proposal when a study is loaded).

Nothing here imports torch or monai_core: the engine runs in its own process. In the installed
extension this folder also holds the shipped engine itself (``monai_core/``, ``bundle/``; see
CMakeLists.txt).
"""
