"""The cases of a batch: from a folder of case folders, a folder of DICOM files, or a CSV manifest.

Everything here runs before any work starts, so that a malformed manifest or duplicate case ids
stop the batch with exit code 2 instead of surfacing half-way through. A case whose files are
merely missing or unreadable is not an error here: it fails on its own and the batch goes on.
A whole DICOM study becomes a case whose series are chosen in its worker, by the same rule as
``detect --study`` (``monai_core.series_choice``), so that an ambiguous study fails alone.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InputError
from ..io.dicom_headers import dicom_files, is_dicom_file, list_series

__all__ = ["Case", "CHANGES_FOLDER", "find_cases", "read_manifest", "scan_folder", "group_studies"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
SEQUENCES = ("flair", "t1", "t1c")
LABELS = {"flair": "FLAIR", "t1": "T1", "t1c": "T1c"}
# file names (after an optional "<case>_" or "<case>-") -> role; t2 and seg are known so that they are
# never mistaken for a missing sequence, but the model does not use them
NAMES = {
    "flair": "flair", "t1": "t1", "t1c": "t1c",  # TumorSeg
    "t1ce": "t1c", "t2": "t2",  # BraTS 2018-2021 (also flair, t1)
    "t2f": "flair", "t1n": "t1", "t2w": "t2",  # BraTS 2023+ (also t1c)
    "seg": "seg",  # the BraTS label map
}
# MSD Task01_BrainTumour / nnU-Net "<case>_0000" files: 0000 FLAIR, 0001 T1w, 0002 T1gd (post-contrast), 0003 T2w
MSD_CHANNELS = ("flair", "t1", "t1c", "t2")
CHANNEL = re.compile(r"\d{4}")
MANIFEST_COLUMNS = ("case_id", "flair", "t1", "t1c")
# optional: a DICOM study folder (series chosen as by detect --study) and SeriesInstanceUIDs per sequence
MANIFEST_DICOM_COLUMNS = ("study", "flair_series", "t1_series", "t1c_series")
BASELINE_COLUMN = "baseline"  # optional: the earlier study a case is compared with (tumorseg compare)
CHANGES_FOLDER = "changes"  # OUT/changes/<case_id>/: the comparison of each follow-up case with its baseline


@dataclass(frozen=True)
class Case:
    """One study to process. Exactly one of ``kaggle_dir``, ``flair`` and ``study`` is set, unless ``problem`` says why not."""

    case_id: str
    kaggle_dir: str | None = None
    flair: str | None = None
    t1: str | None = None
    t1c: str | None = None
    problem: str | None = None  # found but unusable: recorded as failed without running
    study: str | None = None  # a whole DICOM study: its folder, or the folder its ``files`` are under
    files: tuple[str, ...] = ()  # the study's files, when grouped from a folder of many studies
    flair_series: str | None = None  # SeriesInstanceUIDs named by a manifest
    t1_series: str | None = None
    t1c_series: str | None = None

    def series_uids(self) -> dict[str, str]:
        """{sequence: SeriesInstanceUID} that the manifest named."""
        uids = {"flair": self.flair_series, "t1": self.t1_series, "t1c": self.t1c_series}
        return {role: uid for role, uid in uids.items() if uid}
    # a follow-up (manifest column "baseline"): compared, after detect, with a case of the batch or a case folder
    baseline: str | None = None  # the manifest's value, shown in summary.csv
    baseline_case: str | None = None  # a case id of this batch: this case waits for its detect
    baseline_dir: str | None = None  # a finished case folder outside the batch
    detect_done: bool = False  # resuming: report.json is complete, only the comparison is left to do
    baseline_error: str | None = None  # why the baseline case has no result, when it failed

    @property
    def is_followup(self) -> bool:
        return self.baseline is not None


def find_cases(source: str | Path, exclude: Path | None = None) -> list[Case]:
    """Cases from a CSV manifest or a folder of case folders; duplicate ids are an :class:`InputError`."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        cases = read_manifest(source)
    elif source.is_dir() and _is_dicom_export(source):
        cases = group_studies(source, exclude)
    elif source.is_dir():
        cases = scan_folder(source, exclude)
    elif source.exists():
        raise InputError(source, "expected a folder of cases or a .csv manifest")
    else:
        raise InputError(source, "no such file or folder")
    if not cases:
        raise InputError(source, "no cases found")
    _check_ids(cases, source)
    _check_baselines(cases, source)
    return cases


def read_manifest(path: Path) -> list[Case]:
    """Rows ``case_id,flair,t1,t1c[,baseline]``; relative paths are relative to the manifest's folder.

    ``flair`` may also name a Kaggle-layout patient folder (then t1 and t1c must be empty).
    ``baseline`` (optional) makes the case a follow-up: the case id of the earlier study in this
    manifest, or a case folder that ``tumorseg detect`` finished before; after detect the case is
    compared with it (``tumorseg compare``).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            columns = reader.fieldnames or []
            missing = [c for c in MANIFEST_COLUMNS[:2] if c not in columns and not (c == "flair" and "study" in columns)]
            if missing:
                raise InputError(path, f"manifest lacks the column(s) {', '.join(missing)}; expected {','.join(MANIFEST_COLUMNS)}"
                                 f" (or study instead of flair)")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"cannot read the manifest ({error})") from None
    numbered = [(line, row) for line, row in enumerate(rows, start=2) if any(_cells(row))]
    cases = [_manifest_case(row, line, path.parent) for line, row in numbered]
    ids = {case.case_id for case in cases}
    return [_with_baseline(case, (row.get(BASELINE_COLUMN) or "").strip(), line, ids, path.parent)
            for case, (line, row) in zip(cases, numbered)]


def _with_baseline(case: Case, value: str, line: int, ids: set[str], base: Path) -> Case:
    """The case with its baseline: a case id of this manifest if it is one, else a case folder's path."""
    if not value:
        return case
    if value == case.case_id:
        raise InputError(None, f"manifest line {line}: case {case.case_id} is its own baseline")
    if value in ids:
        return replace(case, baseline=value, baseline_case=value)
    return replace(case, baseline=value, baseline_dir=_resolve(value, base))


def _cells(row: dict) -> list[str]:
    return [(value or "").strip() for key, value in row.items() if key is not None]


def _manifest_case(row: dict, line: int, base: Path) -> Case:
    case_id = (row.get("case_id") or "").strip()
    where = f"manifest line {line}"
    if not case_id:
        raise InputError(None, f"{where}: empty case_id")
    _check_id(case_id, where)
    paths = {name: _resolve((row.get(name) or "").strip(), base) for name in SEQUENCES}
    uids = {column: (row.get(column) or "").strip() or None for column in MANIFEST_DICOM_COLUMNS[1:]}
    study = _resolve((row.get(MANIFEST_DICOM_COLUMNS[0]) or "").strip(), base)
    if study is not None:
        if any(paths.values()):
            raise InputError(None, f"{where}: case {case_id} names a study; leave flair, t1 and t1c empty "
                             f"(name series with flair_series, t1_series, t1c_series)")
        return Case(case_id, study=study, **uids)
    if paths["flair"] is None:
        raise InputError(None, f"{where}: case {case_id} has no flair path (or study)")
    flair = Path(paths["flair"])
    if flair.is_dir() and any(flair.glob("*_1.tif")):
        if paths["t1"] or paths["t1c"]:
            raise InputError(None, f"{where}: {flair} is a Kaggle case folder; leave t1 and t1c empty")
        return Case(case_id, kaggle_dir=str(flair))
    return Case(case_id, **paths, **uids)


def _resolve(value: str, base: Path) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def scan_folder(root: Path, exclude: Path | None = None) -> list[Case]:
    """One case per sub-folder, named after it: a Kaggle patient folder, or sequence files or series.

    Sequences are found by TumorSeg, BraTS or MSD names (see ``NAMES``), never by guessing: a folder
    whose files cannot be told apart becomes a case with a ``problem``, not a FLAIR-only run.
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if exclude is not None:
        folders = [p for p in folders if p.resolve() != exclude.resolve()]
    return [_folder_case(folder) for folder in folders]


def _folder_case(folder: Path) -> Case:
    """The case of one folder, or a case whose ``problem`` says why its files cannot be told apart."""
    if any(folder.glob("*_1.tif")):
        return Case(folder.name, kaggle_dir=str(folder))
    try:
        entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        return Case(folder.name, problem=f"{folder}: cannot list the folder ({error.strerror or error})")
    roles, channels, others = _classify(folder.name, entries)
    if not roles and not channels and all(e.is_dir() for e in others) and _holds_dicom(folder):
        return Case(folder.name, study=str(folder))  # a whole DICOM study: its series are chosen by the worker
    problem = _channel_problem(channels)
    if not problem:
        for number, role in enumerate(MSD_CHANNELS):
            roles.setdefault(role, []).extend(channels.get(number, []))
    problem = problem or _duplicate_problem(roles) or _unknown_problem(roles, others)
    if problem:
        return Case(folder.name, problem=f"{folder}: {problem}")
    if not roles.get("flair"):
        problem = "no Kaggle slices (<case>_1.tif) and no FLAIR (flair.nii.gz, flair.nrrd, ... or a flair/ DICOM folder)"
        return Case(folder.name, problem=f"{folder}: {problem}")
    return Case(folder.name, **{name: str(roles[name][0]) if roles.get(name) else None for name in SEQUENCES})


def _classify(case_id: str, entries: list[Path]) -> tuple[dict[str, list[Path]], dict[int, list[Path]], list[Path]]:
    """A folder's entries by role, MSD channel files by number, and the other volume files and sub-folders."""
    roles: dict[str, list[Path]] = {}
    channels: dict[int, list[Path]] = {}
    others = []
    for entry in entries:
        is_dir = entry.is_dir()
        stem = entry.name if is_dir else _volume_stem(entry.name)
        if stem is None:
            continue  # notes, checksums, raw data of a header: never an image on its own
        key = _without_case_prefix(stem, case_id)
        if key in NAMES:
            roles.setdefault(NAMES[key], []).append(entry)
        elif CHANNEL.fullmatch(key) and not is_dir:
            channels.setdefault(int(key), []).append(entry)
        else:
            others.append(entry)
    return roles, channels, others


def _volume_stem(name: str) -> str | None:
    lower = name.lower()
    return next((name[: -len(s)] for s in VOLUME_SUFFIXES if lower.endswith(s)), None)


def _without_case_prefix(stem: str, case_id: str) -> str:
    """``BraTS2021_00000_t1ce`` -> ``t1ce``: BraTS and nnU-Net repeat the case id in every file name."""
    stem, case = stem.casefold(), case_id.casefold()
    for separator in "_-":
        if stem.startswith(case + separator):
            return stem[len(case) + 1 :]
    return stem


def _channel_problem(channels: dict[int, list[Path]]) -> str | None:
    """Channel numbers name a sequence only in the MSD brain-tumour layout (exactly _0000.._0003)."""
    if not channels or sorted(channels) == list(range(len(MSD_CHANNELS))):
        return None
    files = [e for number in sorted(channels) for e in channels[number]]
    return (
        f"channel files {_listing(files)} are not the MSD brain-tumour set _0000.._0003, so which one is the FLAIR, "
        "T1 or T1c is unknown; list this case in a manifest (case_id,flair,t1,t1c)"
    )


def _duplicate_problem(roles: dict[str, list[Path]]) -> str | None:
    """Two files for one sequence: picking either could feed the wrong series, so neither is picked."""
    for name in SEQUENCES:
        if len(roles.get(name, [])) > 1:
            return f"more than one {LABELS[name]}: {_listing(roles[name])}; keep one or list the case in a manifest"
    return None


def _unknown_problem(roles: dict[str, list[Path]], others: list[Path]) -> str | None:
    """Images under unknown names while a sequence is missing: one of them may be it, so the FLAIR must not stand in."""
    missing = [LABELS[name] for name in SEQUENCES if not roles.get(name)]
    if not missing:
        return None
    unknown = [e for e in others if not e.is_dir() or _looks_like_dicom(e)]
    if not unknown:
        return None
    missing = ", ".join(missing[:-1]) + " or " * (len(missing) > 1) + missing[-1]
    return (
        f"no {missing} among {_listing(unknown)}; rename them (flair, t1, t1c, BraTS t1ce/t2f/t1n "
        "or MSD <case>_0000.._0003) or list the case in a manifest"
    )


def _looks_like_dicom(folder: Path) -> bool:
    """A ``.dcm`` file or the DICM marker in one of the folder's first few files."""
    try:
        return any(is_dicom_file(e) for e in [e for e in sorted(folder.iterdir())[:20] if e.is_file()][:3])
    except OSError:
        return False


def _holds_dicom(folder: Path, depth: int = 3) -> bool:
    """DICOM files in ``folder`` or its sub-folders (a few levels down, the first few files of each)."""
    if _looks_like_dicom(folder):
        return True
    try:
        subfolders = sorted(e for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return False
    return depth > 0 and any(_holds_dicom(sub, depth - 1) for sub in subfolders)


def _is_dicom_export(root: Path) -> bool:
    """A folder of DICOM files from a PACS export, not a folder of case folders: DICOM files or a
    DICOMDIR directly in it."""
    return (root / "DICOMDIR").is_file() or _looks_like_dicom(root)


def group_studies(root: Path, exclude: Path | None = None) -> list[Case]:
    """One case per StudyInstanceUID among all the DICOM files under ``root`` (an unsorted PACS export).

    The case id is the StudyInstanceUID: unique, a valid folder name, and no patient identifier.
    """
    skip = exclude.resolve() if exclude is not None else None
    files = [f for f in dicom_files(root) if skip is None or skip not in f.resolve().parents]
    studies: dict[str, list[str]] = {}
    for series in list_series(files):
        studies.setdefault(series.study_uid or "unknown-study", []).extend(str(f) for f in series.files)
    return [Case(uid, study=str(root), files=tuple(sorted(paths))) for uid, paths in sorted(studies.items())]


def _listing(entries: list[Path], limit: int = 4) -> str:
    """File names for a one-line message; a long list is cut."""
    names = [e.name + ("/" if e.is_dir() else "") for e in entries]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names)} in all)"


def _check_id(case_id: str, where: str) -> None:
    if case_id in {".", ".."} or "/" in case_id or "\\" in case_id or case_id.startswith("."):
        raise InputError(None, f"{where}: case id {case_id!r} cannot be a folder name")


def _check_baselines(cases: list[Case], source: Path) -> None:
    """Baselines must not go round in a circle (each would wait for the other), nor share OUT/changes/."""
    followups = [case for case in cases if case.is_followup]
    if not followups:
        return
    if any(case.case_id.casefold() == CHANGES_FOLDER for case in cases):
        raise InputError(source, f"case id {CHANGES_FOLDER!r} is taken by the comparisons' folder OUT/{CHANGES_FOLDER}/; "
                         "rename that case")
    baseline_of = {case.case_id: case.baseline_case for case in cases}
    for case in followups:
        seen, current = [case.case_id], case.baseline_case
        while current is not None:
            if current in seen:
                raise InputError(source, f"baselines go round in a circle: {' -> '.join([*seen, current])}")
            seen.append(current)
            current = baseline_of.get(current)


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
