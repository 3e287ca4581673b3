"""Choose the FLAIR, pre-contrast T1 and post-contrast T1 of a whole DICOM study, and say why.

A clinical study holds twenty series: localizers, diffusion, SWI, perfusion, reformats, 2D and 3D
T1s before and after contrast. The rule below is a set of tables a reader can check, in the
spirit of MONAI Deploy's ``DICOMSeriesSelectorOperator``: each series is left out by the first
rule of :data:`LEAVE_OUT` that applies to it, roles are recognised by name (:data:`NAME_PATTERNS`),
and competing candidates are narrowed by :data:`LIKE_THE_FLAIR` (or :data:`FLAIR_PREFERENCE`).
Every chosen series, and every series not used, carries its reason. README.md ("How --study
picks the series") states the same rule for radiologists: change both together.

:func:`choose_series` (a study folder or a list of files) is what ``detect --study``, ``batch``,
the Slicer module and a DICOM node use. It raises :class:`AmbiguousSeries`, listing the
candidates, only when no rule decides: no FLAIR at all, or two differently named series that
are alike in every respect the rules look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .io.dicom_headers import SeriesInfo, list_series, listing

__all__ = ["ROLES", "LEAVE_OUT", "NAME_PATTERNS", "LIKE_THE_FLAIR", "FLAIR_PREFERENCE", "AmbiguousSeries",
           "Choice", "StudyChoice", "choose_series", "choose_among", "series_role"]

ROLES = ("flair", "t1", "t1c")
ROLE_OPTIONS = {"flair": "--flair-series", "t1": "--t1-series", "t1c": "--t1c-series"}
LABELS = {"flair": "FLAIR", "t1": "a pre-contrast T1", "t1c": "a post-contrast T1"}
# MR Image, Enhanced MR Image and Legacy Converted Enhanced MR Image Storage: pictures, not spectra
MR_IMAGE_STORAGE = {"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4"}
SAME_TIME_S = 1.0  # same-named series starting this close are two reconstructions of one acquisition


def _named(pattern: str) -> Callable[[SeriesInfo], bool]:
    """True when SeriesDescription or ProtocolName matches ``pattern`` (case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return lambda s: bool(regex.search(s.description or "") or regex.search(s.protocol or ""))


def _word(text: str) -> str:
    """``text`` as a whole word: not inside a longer run of letters ("ADC", not "ADCOCK")."""
    return rf"(?<![a-z]){text}(?![a-z])"


@dataclass(frozen=True)
class LeaveOut:
    """A rule that leaves a series out of the choice, and the reason recorded for it."""

    reason: str
    applies: Callable[[SeriesInfo], bool]


# Tried in order; the first that applies is the series' reason.
LEAVE_OUT: tuple[LeaveOut, ...] = (
    LeaveOut("not an MR image", lambda s: s.modality not in ("MR", "") or bool(s.sop_class and s.sop_class not in MR_IMAGE_STORAGE)),
    LeaveOut("a localizer (ImageType LOCALIZER)", lambda s: "LOCALIZER" in s.image_type),
    LeaveOut("a localizer (slices in several orientations)", lambda s: s.orientations > 1),
    LeaveOut("a localizer (by its name)", _named(r"locali[sz]er|scout|survey|3[\s_-]*plane|tri[\s_-]*pilot|aahead|"
                                                 r"autoalign|smartbrain|" + _word("loc"))),
    LeaveOut("derived or secondary (ImageType DERIVED or SECONDARY: a reformat, map or subtraction)",
             lambda s: s.image_type[:1] == ("DERIVED",) or s.image_type[1:2] == ("SECONDARY",)),
    LeaveOut("a reformat (by its name)", _named(r"reformat|" + _word("mpr") + "|" + _word("mip") + r"|^v(?=s?t[12]w|flair)")),
    LeaveOut("diffusion", lambda s: s.diffusion or bool({"DIFFUSION", "ADC", "TRACEW", "FA"} & set(s.image_type))
             or _named(r"dwi|diff|dti|tensor|trace|" + _word("adc") + r"|(?<![a-z])b[\s_=-]?\d{3,4}(?![0-9])")(s)),
    LeaveOut("susceptibility-weighted (SWI)", _named(r"swi|swan|suscept|minip|venobold|" + _word("pha(se)?"))),
    LeaveOut("functional (BOLD fMRI)", _named(r"bold|fmri|resting")),
    LeaveOut("perfusion", lambda s: s.temporal_positions > 1 or "PERFUSION" in s.image_type
             or _named(r"perf|dsc|dce|pcasl|rcbv|bolus|dynamic|" + "|".join(map(_word, ("p?asl", "cbf", "cbv", "mtt", "ttp", "dyn"))))(s)),
)

_T1_WORD = r"(?<![a-z0-9])t1(?![0-9])"  # "T1", "AX_T1_POST", "T1W", not "T10"
NAME_PATTERNS: dict[str, str] = {
    # T2 FLAIR; a "T1 FLAIR" is T1-weighted and falls through to the T1 pattern.
    "flair": rf"^(?!.*{_T1_WORD}).*(flair|dark[\s_-]*fluid|(?<![a-z])tirm(?![a-z]))",
    # T1-weighted, before or after contrast (Philips "sT1W", Siemens MPRAGE, GE SPGR/BRAVO)
    "t1": rf"{_T1_WORD}|t1w|mprage|mp-rage|spgr|bravo",
    "post": r"post|\+|(?<![a-z])gd(?![a-z])|gad|contrast|(?<![a-z])ce(?![a-z])",  # "+C", "C+", "Gd", "CE"
    "pre": r"(?<![a-z])pre(?![a-z])|precontrast|non[\s_-]?contrast|without",
}


def _plane(normal) -> str:
    """"axial", "coronal" or "sagittal": the patient axis closest to the slice normal."""
    if normal is None:
        return "orientation unknown"
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def geometry(s: SeriesInfo) -> str:
    """"2D axial", "3D coronal": the acquisition as a reader describes it."""
    return f"{s.acquisition} {_plane(s.normal)}".strip()


@dataclass(frozen=True)
class Prefer:
    """A preference between candidates for a role: keep those for which ``holds`` is true, if any."""

    what: str
    holds: Callable[[SeriesInfo, SeriesInfo | None], bool]


FLAIR_PREFERENCE: tuple[Prefer, ...] = (
    Prefer("the axial orientation of the training slices", lambda s, _: _plane(s.normal) == "axial"),
)
# Tried in order, each only among the candidates the one before kept. "Orientation" is the plane
# (axial, coronal, sagittal) closest to the slices: the FLAIR and T1 of one session may be angled
# differently (13 degrees in TCGA-FG-6692) and still be one plane to a reader.
LIKE_THE_FLAIR: tuple[Prefer, ...] = (
    Prefer("the FLAIR's frame of reference", lambda s, f: bool(s.frame_of_reference) and s.frame_of_reference == f.frame_of_reference),
    Prefer("the FLAIR's orientation", lambda s, f: s.normal is not None and _plane(s.normal) == _plane(f.normal)),
    Prefer("the FLAIR's acquisition type (2D or 3D)", lambda s, f: bool(s.acquisition) and s.acquisition == f.acquisition),
)


class AmbiguousSeries(InputError):
    """No rule decides between ``candidates`` for ``role``: the user must name the series."""

    def __init__(self, where, role: str, candidates: list[SeriesInfo], problem: str) -> None:
        super().__init__(where, problem)
        self.role = role
        self.candidates = candidates

    def candidates_text(self) -> str:
        """"flair candidates: series 3 'AX FLAIR' <uid>; ...": for a summary table."""
        return f"{self.role} candidates: " + "; ".join(f"{s.label()} {s.series_uid}" for s in self.candidates)


@dataclass
class Choice:
    """The series chosen for one role (None: the FLAIR stands in) and why."""

    series: SeriesInfo | None
    reason: str


@dataclass
class StudyChoice:
    """The three roles of a study, and every series not used with the reason."""

    root: Path  # the study folder, or the folder that holds all the given files
    roles: dict[str, Choice]
    not_used: list[tuple[SeriesInfo, str]] = field(default_factory=list)

    def __getitem__(self, role: str) -> SeriesInfo | None:
        return self.roles[role].series

    def uids(self) -> dict[str, str]:
        """{role: SeriesInstanceUID} of the roles that have a series."""
        return {role: c.series.series_uid for role, c in self.roles.items() if c.series is not None}

    def report(self) -> dict:
        """report.json's ``inputs.series_choice``: each role and each unused series, with its reason."""
        def entry(s: SeriesInfo | None, reason: str) -> dict:
            return {"series_uid": s.series_uid if s else None, "series_number": s.series_number if s else None,
                    "description": s.name if s else None, "reason": reason}

        out = {role: entry(c.series, c.reason) for role, c in self.roles.items()}
        out["not_used"] = [entry(s, reason) for s, reason in self.not_used]
        return out

    def lines(self) -> list[str]:
        """One line per role and one for the series not used, for stderr."""
        lines = [f"{role}: {c.series.summary() + ': ' if c.series else 'not found: '}{c.reason}"
                 for role, c in self.roles.items()]
        if self.not_used:
            lines.append("not used: " + "; ".join(f"{s.label()} ({reason})" for s, reason in self.not_used))
        return lines


def series_role(description: str, protocol: str = "", patterns=None) -> str | None:
    """"flair", "t1c", "t1" or None for a series with this SeriesDescription and ProtocolName, by name alone."""
    info = SeriesInfo("", description or "", protocol or "", "MR", [])
    role = _role_by_name(info, {**NAME_PATTERNS, **(patterns or {})})
    if role == "t1" and _named(NAME_PATTERNS["post"])(info) and not _named(NAME_PATTERNS["pre"])(info):
        return "t1c"
    return role


def _role_by_name(s: SeriesInfo, patterns: dict) -> str | None:
    for role in ("flair", "t1"):
        if _named(patterns[role])(s):
            return role
    return None


def choose_series(source: str | os.PathLike | Sequence, flair=None, t1=None, t1c=None, patterns=None) -> StudyChoice:
    """The series of a study folder (recursive) or a list of DICOM files: see :func:`choose_among`."""
    series = list_series(source)
    root = Path(source) if isinstance(source, (str, os.PathLike)) else Path(
        os.path.commonpath([str(Path(f).parent) for f in source]) if len(source) else ".")
    return choose_among(series, root, {"flair": flair, "t1": t1, "t1c": t1c}, patterns)


def choose_among(series: list[SeriesInfo], root: Path, overrides: dict | None = None, patterns=None) -> StudyChoice:
    """FLAIR, T1 and T1c among ``series`` (of one study); ``overrides`` maps roles to SeriesInstanceUIDs.

    ``patterns`` replaces entries of :data:`NAME_PATTERNS`. T1 and T1c may be missing; a missing
    FLAIR, or a tie no rule breaks, raises :class:`AmbiguousSeries` with the candidates.
    """
    patterns = {**NAME_PATTERNS, **(patterns or {})}
    if not [s for s in series if s.modality in ("MR", "")]:
        raise InputError(root, "no DICOM MR series found")
    studies = sorted({s.study_uid for s in series})
    if len(studies) > 1:  # a FLAIR of one visit and a T1 of another would be registered as one study
        raise InputError(root, f"holds series of {len(studies)} studies ({', '.join(studies[:5])}); give one study, "
                         f"or give the folder to tumorseg batch, which takes each study as a case")
    left_out = {s.series_uid: next((r.reason for r in LEAVE_OUT if r.applies(s)), None) for s in series}
    roles = _overrides(root, series, overrides or {})
    dropped: dict[SeriesInfo, str] = {}  # candidates a preference set aside, and why
    taken = {c.series.series_uid for c in roles.values()}
    usable = [s for s in series if left_out[s.series_uid] is None and s.series_uid not in taken]
    by_name = {s.series_uid: _role_by_name(s, patterns) for s in usable}
    if "flair" not in roles:
        candidates = [s for s in usable if by_name[s.series_uid] == "flair"]
        if not candidates:
            named = [s for s in series if left_out[s.series_uid] and _role_by_name(s, patterns) == "flair"]
            note = "; left out: " + "; ".join(f"{s.summary()} ({left_out[s.series_uid]})" for s in named) if named else ""
            raise AmbiguousSeries(root, "flair", usable + named, f"no FLAIR series found among: {listing(usable or series)}"
                                  f"{note}; choose one with --flair-series UID")
        roles["flair"] = _one(root, "flair", candidates, FLAIR_PREFERENCE, None, dropped)
    flair = roles["flair"].series
    t1s = [s for s in usable if by_name[s.series_uid] == "t1" and s is not flair]
    post, pre = _split_by_contrast(t1s, patterns)
    if "t1c" not in roles and post:
        roles["t1c"] = _one(root, "t1c", [s for s, _ in post], LIKE_THE_FLAIR, flair, dropped, dict(post))
    pre = [s for s in pre if s not in {c.series for c in roles.values()}]
    if "t1" not in roles and "t1c" not in roles:
        roles.update(_pair(pre, flair, dropped) or {})
    if "t1" not in roles:
        roles["t1"] = _one(root, "t1", pre, LIKE_THE_FLAIR, flair, dropped)
    for role in ROLES:
        if roles.get(role) is None:
            roles[role] = Choice(None, f"no series looks like {LABELS[role]}; replaced by FLAIR")
    chosen = {c.series.series_uid for c in roles.values() if c.series}
    not_used = [(s, left_out[s.series_uid] or _why_not(s, by_name.get(s.series_uid), roles, dropped))
                for s in series if s.series_uid not in chosen]
    return StudyChoice(root, {role: roles[role] for role in ROLES}, not_used)


def _overrides(root: Path, series: list[SeriesInfo], uids: dict) -> dict[str, Choice]:
    """The series the caller named by SeriesInstanceUID, checked to be MR series of the study."""
    by_uid = {s.series_uid: s for s in series if s.modality in ("MR", "")}
    roles = {}
    for role in ROLES:
        uid = uids.get(role)
        if uid is None:
            continue
        if uid not in by_uid:
            raise InputError(root, f"{ROLE_OPTIONS[role]} {uid} is not an MR series here; series found: {listing(series)}")
        roles[role] = Choice(by_uid[uid], _because(by_uid[uid], f"given with {ROLE_OPTIONS[role]}"))
    return roles


def _split_by_contrast(t1s: list[SeriesInfo], patterns: dict) -> tuple[list[tuple[SeriesInfo, str]], list[SeriesInfo]]:
    """([(post-contrast T1, why)], [other T1s]): by name, else by ContrastBolusAgent.

    The agent tag counts only when some T1 lacks it: a site that fills it for the whole exam
    tells nothing about which T1 came after the injection.
    """
    agents = {bool(s.contrast_agent) and s.contrast_agent.strip().lower() not in ("none", "no", "n/a", "-") for s in t1s}
    tags_tell = agents == {True, False}
    post, pre = [], []
    for s in t1s:
        if _named(patterns["pre"])(s):
            pre.append(s)
        elif _named(patterns["post"])(s):
            post.append((s, "post-contrast by its name"))
        elif tags_tell and s.contrast_agent and s.contrast_agent.strip().lower() not in ("none", "no", "n/a", "-"):
            post.append((s, f"post-contrast: ContrastBolusAgent {s.contrast_agent!r}"))
        else:
            pre.append(s)
    return post, pre


def _pair(pre: list[SeriesInfo], flair: SeriesInfo, dropped: dict) -> dict[str, Choice] | None:
    """A same-named pair of T1s, with no T1 marked post-contrast: the earlier pre-, the later post-contrast.

    Philips names both alike and may write no contrast tags. Only among the T1s most like the
    FLAIR, and only two acquisitions at different times (not two reconstructions of one).
    """
    kept, notes = _narrow(pre, LIKE_THE_FLAIR, flair, dropped)
    groups: dict[str, list[SeriesInfo]] = {}
    for s in kept:
        groups.setdefault(_name_key(s), []).append(s)
    pairs = [g for g in groups.values() if len(g) == 2]
    if len(pairs) != 1 or (ordered := _acquisition_order(pairs[0])) is None:
        return None
    first, second = ordered
    if first.start_s is not None and second.start_s is not None and abs(second.start_s - first.start_s) < SAME_TIME_S:
        return None
    return {"t1": Choice(first, _because(first, "the earlier of two same-named series, taken as pre-contrast" + notes)),
            "t1c": Choice(second, _because(second, "the later of two same-named series, taken as post-contrast" + notes))}


def _one(root: Path, role: str, candidates: list[SeriesInfo], preferences, reference, dropped: dict,
         why: dict | None = None) -> Choice | None:
    """The one series for ``role`` among ``candidates``, or None when there are none.

    Narrowed by ``preferences``; what is left must be one series, or repeats of one name (the
    earliest is taken); otherwise :class:`AmbiguousSeries`.
    """
    if not candidates:
        return None
    kept, notes = _narrow(candidates, preferences, reference, dropped)
    evidence = f" ({why[kept[0]]})" if why and len(kept) == 1 else ""
    if len(kept) == 1:
        what = "the only series" if len(candidates) == 1 else f"of {len(candidates)} series, the one"
        return Choice(kept[0], _because(kept[0], f"{what} that looks like {LABELS[role]}{evidence}" + notes))
    ordered = _acquisition_order(kept) if len({_name_key(s) for s in kept}) == 1 else None
    if ordered is None:
        raise AmbiguousSeries(root, role, kept, f"several series look like {role.upper()}: {listing(kept)}; "
                              f"choose one with {ROLE_OPTIONS[role]} UID")
    return Choice(ordered[0], _because(ordered[0], f"the earliest of {len(ordered)} same-named series" + notes))


def _narrow(candidates: list[SeriesInfo], preferences, reference, dropped: dict | None = None) -> tuple[list[SeriesInfo], str]:
    """The candidates left after each preference that some but not all of them meet, and what it decided.

    ``dropped`` (if given) receives, for each candidate set aside, the preference it lacked.
    """
    kept, notes = list(candidates), ""
    for preference in preferences:
        meet = [s for s in kept if preference.holds(s, reference)]
        if meet and len(meet) < len(kept):
            lacking = [s for s in kept if s not in meet]
            what = preference.what + (f" ({geometry(reference)})" if reference is not None else "")
            shown = ", ".join(f"{s.label()} ({geometry(s)})" for s in lacking)
            notes += f"; preferred over {shown}, which {'lacks' if len(lacking) == 1 else 'lack'} {what}"
            for s in lacking:
                (dropped if dropped is not None else {})[s] = f"lacks {what}"
            kept = meet
    return kept, notes


def _name_key(s: SeriesInfo) -> str:
    return " ".join(s.name.split()).casefold()


def _acquisition_order(candidates: list[SeriesInfo]) -> list[SeriesInfo] | None:
    """Candidates in acquisition order (SeriesNumber, then start time), or None when those cannot order them."""
    keys = [(s.series_number is None, s.series_number or 0, s.start_s is None, s.start_s or 0.0) for s in candidates]
    if len(set(keys)) != len(keys):
        return None
    return [s for _, s in sorted(zip(keys, candidates), key=lambda pair: pair[0])]


def _why_not(s: SeriesInfo, role: str | None, roles: dict[str, Choice], dropped: dict) -> str:
    """Why a FLAIR- or T1-named series was not chosen: the preference it lacked, or a repeat."""
    if role is None:
        return "neither a FLAIR nor a T1 by its name"
    taken = [f"{r}: {c.series.label()}" for r, c in roles.items() if c.series and (r == "flair") == (role == "flair")]
    why = dropped.get(s, f"another {'FLAIR' if role == 'flair' else 'T1'}")
    return f"{why}; chosen {', '.join(taken)}" if taken else why


def _because(info: SeriesInfo, why: str) -> str:
    """The reason of a choice: the series' description and number, then ``why``."""
    name = f"description {info.description!r}" if info.description else f"protocol {info.protocol!r}"
    number = f"series {info.series_number}" if info.series_number is not None else f"series {info.series_uid}"
    return f"{name}, {number}: {why}"
