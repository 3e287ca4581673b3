"""The warm engine's memory of the studies it read, so that a second Detect on the same study skips the reading.

Reading a scanner study (decoding, resampling onto the model grid, registering T1 and T1c to the
FLAIR, the input checks) costs more than the networks. In 3D Slicer a radiologist often clicks
Detect again on the same volumes (after changing the T1c, after a cancel, to compare), so the
engine (monai_core.engine) keeps the last studies it read, keyed by what they were made from:

- the **content** of every input file (sha256; for a folder, of every file in it with its relative
  name), not its name or time: the Slicer module writes the volumes to a new temporary folder on
  each click, and an input whose bytes change is read again whatever its time stamp says;
- the options that change what is read: the series UIDs, or the series chosen in a DICOM study.

Nothing else changes a study: case name, output options and overwrite only affect what is written.
A remembered study carries its key (``Study.source_digest``), by which the engine also remembers
what the networks and the post-processing made of it (monai_core/remembered_results.py).
A study read from other paths than the remembered one gets the new paths and case name, as a
fresh read would give them (checked by tests/test_engine_memory.py). Hashing the inputs costs a few
milliseconds per megabyte; a miss hashes them before and after the read and keeps the study
only if they did not change meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .last_used import LastUsed

if TYPE_CHECKING:  # light to import: the engine makes its cache before it loads anything heavy
    from .series_choice import StudyChoice
    from .study import Study

__all__ = ["StudyCache", "study_key"]


def _file_digest(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _fingerprint(path) -> tuple | None:
    """What a file or folder holds: its content digest, or each file's relative name and digest."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return ("folder", tuple((p.relative_to(path).as_posix(), _file_digest(p)) for p in files))
    return ("file", _file_digest(path))


def study_key(kaggle_dir=None, flair=None, t1=None, t1c=None, series_uids=None, choice: StudyChoice | None = None) -> str:
    """A digest of everything a study is read from (see the module docstring); missing inputs raise OSError."""
    if choice is not None:
        files = {role: [str(f) for f in choice[role].files] if choice[role] else None for role in ("flair", "t1", "t1c")}
        parts = {"choice": choice.report(),
                 "files": {role: [_fingerprint(f)[1] for f in names] if names else None for role, names in files.items()}}
    else:
        parts = {"kaggle": _fingerprint(kaggle_dir), "flair": _fingerprint(flair), "t1": _fingerprint(t1),
                 "t1c": _fingerprint(t1c), "series_uids": dict(sorted((series_uids or {}).items()))}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class StudyCache(LastUsed):
    """The last ``size`` studies read, by :func:`study_key`; :meth:`load` reads only what it has not seen.

    ``load`` is :func:`monai_core.detect.load_study` (or a stand-in with its signature). ``reads``
    counts the studies actually read, ``hits`` those answered from memory.
    """

    def __init__(self, load, size: int = 2) -> None:
        super().__init__(size)
        self._load = load
        self.reads = 0

    def load(self, kaggle_dir=None, flair=None, t1=None, t1c=None, case_id=None, progress=None, series_uids=None,
             choice: StudyChoice | None = None) -> Study:
        """The study of these inputs: remembered if their content is unchanged, else read (and remembered)."""
        progress = progress or (lambda *a: None)
        try:
            key = study_key(kaggle_dir, flair, t1, t1c, series_uids, choice)
        except OSError:  # a missing or unreadable input: the reader says so in its own words
            key = None
        remembered = self.recall(key)
        if remembered is not None:
            progress("load", 1.0, "the inputs are unchanged since an earlier detect: reusing the study as read then")
            return _as_requested(remembered, kaggle_dir, flair, t1, t1c, case_id, choice, timing={})
        study = self._load(kaggle_dir, flair, t1, t1c, case_id, progress, series_uids, choice)
        self.reads += 1
        if key is not None and _unchanged(key, kaggle_dir, flair, t1, t1c, series_uids, choice):
            study = replace(study, source_digest=key)
            self.keep(key, study)
        return _as_requested(study, kaggle_dir, flair, t1, t1c, case_id, choice, study.timing)


def _unchanged(key, *inputs) -> bool:
    try:
        return study_key(*inputs) == key
    except OSError:
        return False


def _as_requested(study: Study, kaggle_dir, flair, t1, t1c, case_id, choice, timing: dict) -> Study:
    """A copy of a remembered study with this request's paths, case name and timing (none for a reused study).

    Paths and name as load_study would set them; a copy, so that nothing a request does to its
    study (its timing, its warnings) reaches the cache.
    """
    from .study import _case_name

    inputs = dict(study.inputs)
    if kaggle_dir is not None:  # as monai_core.study.load_kaggle_case
        inputs["kaggle"] = str(kaggle_dir)
        name = case_id or Path(kaggle_dir).name
    else:  # as monai_core.study.load_volumes
        if choice is not None:
            flair, t1, t1c = (choice.root if choice[role] else None for role in ("flair", "t1", "t1c"))
            inputs["series_choice"] = choice.report()
        inputs.update({role: str(Path(path).absolute()) if path else None
                       for role, path in (("flair", flair), ("t1", t1), ("t1c", t1c))})
        name = case_id or _case_name(Path(flair))
    return replace(study, case_id=name, inputs=inputs, timing=dict(timing), warnings=list(study.warnings))
