"""``OUT/summary.csv``: one row per finished case, rewritten atomically after every case.

The whole table is written to a temporary file in OUT and renamed over the old one, so a reader,
or a batch killed at any moment, always sees a complete table of the cases finished so far.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

__all__ = ["FIELDS", "CHANGE_FIELDS", "Summary", "completed_report", "completed_change", "ok_row", "failed_row",
           "skipped_row", "with_change", "one_line", "sequences_used", "series_chosen"]

# a follow-up's comparison with its baseline (change.json): column -> how it is read from change.json
CHANGE_FIELDS = {
    "volume_change_ml": lambda change: _number(change["volume_change_ml"], 3),
    "volume_change_percent": lambda change: _number(change["volume_change_percent"], 2),
    "bidimensional_product_change_percent": lambda change: _number(change["bidimensional_product_change_percent"], 2),
    "rano_category": lambda change: change["category"],
    "rano_volumetric_category": lambda change: change["volumetric"]["category"],
}
# new columns go at the end, so that readers that index columns by position keep working
FIELDS = (
    "case_id", "status", "tumor_detected", "tumor_volume_ml", "positive_slices", "seconds", "error", "sequences",
    "confidence", "flagged", "warnings", "baseline", *CHANGE_FIELDS, "series",
)
REPORT_KEYS = ("case_id", "tumor_detected", "tumor_volume_ml", "slices")
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: the table gets the permissions of any file the user creates, not mkstemp's 0600


def one_line(error: BaseException | str, limit: int = 500) -> str:
    """An error message on one line, for a CSV cell."""
    text = error if isinstance(error, str) else str(error) or type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row(case_id: str, status: str, report: dict | None = None, seconds: float | None = None, error: str = "") -> dict:
    row = dict.fromkeys(FIELDS, "")
    row.update(case_id=case_id, status=status, error=error)
    if seconds is not None:
        row["seconds"] = f"{seconds:.2f}"
    if report is not None:
        row["tumor_detected"] = "true" if report["tumor_detected"] else "false"
        volume = report.get("tumor_volume_ml")
        row["tumor_volume_ml"] = "" if volume is None else f"{volume:.3f}"
        row["positive_slices"] = str(sum(bool(s.get("positive")) for s in report["slices"]))
        row["sequences"] = sequences_used(report)
        quality = report.get("quality") or {}  # reports of older releases have none
        if quality.get("confidence") is not None:
            row["confidence"] = f"{quality['confidence']:.3f}"
        if "flagged" in quality:
            row["flagged"] = "true" if quality["flagged"] else "false"
        row["warnings"] = ";".join(w["code"] for w in quality.get("warnings", []))
        row["series"] = series_chosen(report)
    return row


def series_chosen(report: dict) -> str:
    """``flair=701 'T2W_FLAIR_TRA' 1.2.3...; t1=...; t1c=none`` for a DICOM study whose series were chosen, else ''.

    From report.json's ``inputs.series_choice``, so that a skipped case shows the same as when it ran.
    """
    choice = (report.get("inputs") or {}).get("series_choice") or {}
    parts = []
    for role in ("flair", "t1", "t1c"):
        entry = choice.get(role)
        if entry is not None:
            parts.append(f"{role}={entry['series_number']} {entry['description']!r} {entry['series_uid']}"
                         if entry.get("series_uid") else f"{role}=none")
    return "; ".join(parts)


def _number(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def with_change(row: dict, baseline: str | None, change: dict | None = None) -> dict:
    """The row of a follow-up: its baseline and, once compared, the change figures and RANO categories."""
    row = dict(row, baseline=baseline or "")
    if change is not None:
        row.update({column: read(change) for column, read in CHANGE_FIELDS.items()})
    return row


def sequences_used(report: dict) -> str:
    """``flair;t1;t1c``, or fewer where the FLAIR stood in for a missing T1 or T1c: a result's inputs at a glance.

    ``kaggle`` for a Kaggle slice folder, whose three channels come with the slices.
    """
    inputs = report.get("inputs") or {}
    if inputs.get("kaggle"):
        return "kaggle"
    return ";".join(name for name in ("flair", "t1", "t1c") if inputs.get(name))


def ok_row(case_id: str, report: dict, seconds: float) -> dict:
    return _row(case_id, "ok", report, seconds)


def failed_row(case_id: str, error: BaseException | str, seconds: float | None = None, report: dict | None = None,
               series: str = "") -> dict:
    """A failed case; ``report`` when detect succeeded and what failed came after it (a follow-up's comparison);
    ``series`` lists the candidates when a DICOM study's series could not be chosen."""
    row = _row(case_id, "failed", report, seconds=seconds, error=one_line(error))
    return dict(row, series=one_line(series, limit=4000)) if series else row


def skipped_row(case_id: str, report: dict) -> dict:
    """A case finished by an earlier run: its numbers come from its report.json."""
    seconds = (report.get("timing_s") or {}).get("total_s")
    return _row(case_id, "skipped", report, seconds)


def completed_change(change_folder: Path) -> dict | None:
    """The comparison's change.json when it is complete (compare writes it last), else None."""
    try:
        change = json.loads((change_folder / "change.json").read_text())
    except (OSError, ValueError):
        return None
    return change if isinstance(change, dict) and "volumetric" in change else None


def completed_report(case_folder: Path) -> dict | None:
    """The case's report when ``report.json`` is complete (valid JSON with the contract's keys), else None."""
    try:
        report = json.loads((case_folder / "report.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or any(key not in report for key in REPORT_KEYS):
        return None
    return report


class Summary:
    """The rows recorded so far, written to ``path`` in the order of the batch's cases."""

    def __init__(self, path: Path, order: list[str], fields: tuple[str, ...] = FIELDS, mode: int | None = None) -> None:
        """``fields``: the columns (a DICOM node adds its own); ``mode``: the file's permissions (default: the user's umask)."""
        self.path = Path(path)
        self.order = {case_id: i for i, case_id in enumerate(order)}
        self.fields = fields
        self.mode = mode
        self.rows: dict[str, dict] = {}

    def record(self, row: dict) -> None:
        self.rows[row["case_id"]] = row
        self.write()

    def count(self, status: str) -> int:
        return sum(row["status"] == status for row in self.rows.values())

    def write(self) -> None:
        rows = sorted(self.rows.values(), key=lambda r: self.order.get(r["case_id"], len(self.order)))
        fd, tmp = tempfile.mkstemp(prefix=".summary.", suffix=".csv.tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as stream:
                writer = csv.DictWriter(stream, self.fields)
                writer.writeheader()
                writer.writerows(rows)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(tmp, self.mode if self.mode is not None else 0o666 & ~_UMASK)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
