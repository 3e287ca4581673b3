"""The cases of a batch: from a folder of case folders or from a CSV manifest.

Everything here runs before any work starts, so that a malformed manifest or duplicate case ids
stop the batch with exit code 2 instead of surfacing half-way through. A case whose files are
merely missing or unreadable is not an error here: it fails on its own and the batch goes on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["Case", "find_cases", "read_manifest", "scan_folder"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
SEQUENCES = ("flair", "t1", "t1c")
MANIFEST_COLUMNS = ("case_id", "flair", "t1", "t1c")


@dataclass(frozen=True)
class Case:
    """One study to process. Exactly one of ``kaggle_dir`` and ``flair`` is set, unless ``problem`` says why not."""

    case_id: str
    kaggle_dir: str | None = None
    flair: str | None = None
    t1: str | None = None
    t1c: str | None = None
    problem: str | None = None  # found but unusable: recorded as failed without running


def find_cases(source: str | Path, exclude: Path | None = None) -> list[Case]:
    """Cases from a CSV manifest or a folder of case folders; duplicate ids are an :class:`InputError`."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        cases = read_manifest(source)
    elif source.is_dir():
        cases = scan_folder(source, exclude)
    elif source.exists():
        raise InputError(source, "expected a folder of cases or a .csv manifest")
    else:
        raise InputError(source, "no such file or folder")
    if not cases:
        raise InputError(source, "no cases found")
    _check_ids(cases, source)
    return cases


def read_manifest(path: Path) -> list[Case]:
    """Rows ``case_id,flair,t1,t1c``; relative paths are relative to the manifest's folder.

    ``flair`` may also name a Kaggle-layout patient folder (then t1 and t1c must be empty).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            missing = [c for c in MANIFEST_COLUMNS[:2] if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"manifest lacks the column(s) {', '.join(missing)}; expected {','.join(MANIFEST_COLUMNS)}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"cannot read the manifest ({error})") from None
    return [_manifest_case(row, line, path.parent) for line, row in enumerate(rows, start=2) if any(_cells(row))]


def _cells(row: dict) -> list[str]:
    return [(value or "").strip() for key, value in row.items() if key is not None]


def _manifest_case(row: dict, line: int, base: Path) -> Case:
    case_id = (row.get("case_id") or "").strip()
    where = f"manifest line {line}"
    if not case_id:
        raise InputError(None, f"{where}: empty case_id")
    _check_id(case_id, where)
    paths = {name: _resolve((row.get(name) or "").strip(), base) for name in SEQUENCES}
    if paths["flair"] is None:
        raise InputError(None, f"{where}: case {case_id} has no flair path")
    flair = Path(paths["flair"])
    if flair.is_dir() and any(flair.glob("*_1.tif")):
        if paths["t1"] or paths["t1c"]:
            raise InputError(None, f"{where}: {flair} is a Kaggle case folder; leave t1 and t1c empty")
        return Case(case_id, kaggle_dir=str(flair))
    return Case(case_id, **paths)


def _resolve(value: str, base: Path) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def scan_folder(root: Path, exclude: Path | None = None) -> list[Case]:
    """One case per sub-folder, named after it: a Kaggle patient folder, or flair/t1/t1c files or series."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if exclude is not None:
        folders = [p for p in folders if p.resolve() != exclude.resolve()]
    return [_folder_case(folder) for folder in folders]


def _folder_case(folder: Path) -> Case:
    if any(folder.glob("*_1.tif")):
        return Case(folder.name, kaggle_dir=str(folder))
    found = {name: _sequence_in(folder, name) for name in SEQUENCES}
    if found["flair"] is None:
        problem = "no Kaggle slices (<case>_1.tif) and no FLAIR (flair.nii.gz, flair.nrrd, ... or a flair/ DICOM folder)"
        return Case(folder.name, problem=f"{folder}: {problem}")
    return Case(folder.name, **found)


def _sequence_in(folder: Path, name: str) -> str | None:
    """``<name>.<volume suffix>`` or a ``<name>/`` DICOM series folder, matched case-insensitively."""
    for entry in sorted(folder.iterdir()):
        lower = entry.name.lower()
        if entry.is_dir() and lower == name:
            return str(entry)
        if not entry.is_dir() and any(lower == name + suffix for suffix in VOLUME_SUFFIXES):
            return str(entry)
    return None


def _check_id(case_id: str, where: str) -> None:
    if case_id in {".", ".."} or "/" in case_id or "\\" in case_id or case_id.startswith("."):
        raise InputError(None, f"{where}: case id {case_id!r} cannot be a folder name")


def _check_ids(cases: list[Case], source: Path) -> None:
    """Duplicate ids would write two cases into one folder; ids equal but for case collide on macOS and Windows."""
    seen: dict[str, str] = {}
    duplicates = []
    for case in cases:
        key = case.case_id.casefold()
        if key in seen:
            duplicates.append(case.case_id if seen[key] == case.case_id else f"{seen[key]}/{case.case_id}")
        seen.setdefault(key, case.case_id)
    if duplicates:
        shown = ", ".join(sorted(set(duplicates))[:5])
        raise InputError(source, f"duplicate case ids: {shown}; every case needs its own id")
