"""The receiving side of the node: instances on disk before they are acknowledged, studies taken when quiet.

Every instance of a study goes to ``received/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, written
under a temporary name and renamed (and fsynced) before the C-STORE is answered with success: an
acknowledged instance is never lost. DICOM has no "end of study" message, so a study is taken
for processing once no instance of it has arrived for the quiet time.

A transfer (one association) that ends without a normal release (the sender aborted, the network
broke, or this node was killed while receiving) may have left a study half-sent. Each open
transfer therefore keeps a marker file in the study's folder naming the series it delivered;
when the transfer ends abnormally, or when the node restarts and finds the marker, the marker
becomes ``.interrupted-*``, and the study is not taken until every series it names has been sent
again by a transfer that ended normally. So a study is never run incomplete because of a kill.

A study taken before may be taken again: when instances new to the node arrive for it, or any of
its instances arrive after its last request failed; then the new request holds all its
instances. A study sent again unchanged after a successful request is not processed again, so a
sender that repeats a transfer gets no second result.

Only MR images are kept (the SOP classes the series choice can use). Any other instance (a SEG,
an SR, a presentation state...) is acknowledged and not kept: it could not change the result, and
a PACS that routes every stable study to the node, the node's own SEG and SR included, must not
make it run the study again, send a new SEG, and so on for ever.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..outputs import write_atomic
from ..series_choice import MR_IMAGE_STORAGE

__all__ = ["Reception", "StudyWaiting", "STORED", "OUT_OF_RESOURCES", "CANNOT_UNDERSTAND"]

STORED, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000  # C-STORE response statuses
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_OPEN, _INTERRUPTED = ".transfer-", ".interrupted-"  # marker files in a study's folder


def _valid_uid(value) -> str | None:
    value = str(value or "").strip()
    return value if len(value) <= 64 and _UID.fullmatch(value) else None


@dataclass
class _Study:
    """What the node knows of one study's instances (its folder is the truth; this is kept in step)."""

    uid: str
    folder: Path
    covered: set[str] = field(default_factory=set)  # instance files in a request already
    pending: set[str] = field(default_factory=set)  # instance files waiting for the next request
    last_arrival: float = 0.0  # time.monotonic() of the last instance
    last_instance: float = 0.0  # time.time() of the last instance: recorded with the request
    writing: int = 0  # instances being written now
    interrupted: dict[str, set[str]] = field(default_factory=dict)  # marker name -> series to be sent again


@dataclass
class _Transfer:
    """One association that delivers instances: the series it brought, per study."""

    id: str
    calling_ae: str
    series: dict[str, set[str]] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)  # per study
    not_kept: dict[str, int] = field(default_factory=dict)  # per study: instances that are not MR images


@dataclass(frozen=True)
class StudyWaiting:
    """A study with instances not yet taken: still arriving, or held because a transfer was interrupted."""

    study_uid: str
    instances: int
    interrupted: bool
    missing_series: int


class Reception:
    """The Storage SCP's event handlers and the studies they fill.

    ``rerun_wanted(study_uid)`` tells whether the study's latest request failed (then any arrival
    asks for a new request); ``log(study_uid, message)`` writes a progress line.
    """

    def __init__(self, folder: Path, quiet_time: float, covered: dict[str, set[str]],
                 rerun_wanted: Callable[[str], bool], log: Callable[[str, str], None]) -> None:
        self.folder = Path(folder)
        self.quiet_time = quiet_time
        self.rerun_wanted = rerun_wanted
        self.log = log
        self.lock = threading.Lock()
        self.changed = threading.Event()  # a study started arriving or was interrupted: the summary is stale
        self.studies: dict[str, _Study] = {}
        self.transfers: dict[int, _Transfer] = {}
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._restore(covered)

    # --- start-up -------------------------------------------------------------------------------
    def _restore(self, covered: dict[str, set[str]]) -> None:
        """The studies on disk; a transfer that was open when the node stopped becomes interrupted."""
        now = time.monotonic()  # the sender may still be retrying: a full quiet time from now
        for folder in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            study = _Study(folder.name, folder, last_arrival=now)
            for path in list(folder.iterdir()):
                if path.name.startswith(_OPEN):
                    interrupted = folder / (_INTERRUPTED + path.name[len(_OPEN):])
                    os.replace(path, interrupted)
                    path = interrupted
                if path.name.startswith(_INTERRUPTED):
                    study.interrupted[path.name] = set(_read_series(path))
                elif path.name.endswith(".tmp"):  # an instance cut off before it was acknowledged
                    path.unlink(missing_ok=True)
                elif path.suffix == ".dcm":
                    (study.covered if path.name in covered.get(folder.name, ()) else study.pending).add(path.name)
            self.studies[study.uid] = study
            if study.pending and study.interrupted:
                self.log(study.uid, f"{len(study.pending)} instances not yet processed, but a transfer of the study "
                                    "was cut off (by the node's stop or the sender): it waits until its series are sent again")

    # --- C-STORE and association events (called in the associations' threads) ------------------
    def store(self, event) -> int:
        """Handle one C-STORE: the instance on disk, then success; a failure status if it cannot be kept."""
        try:
            dataset = event.dataset
            study_uid, series_uid, sop_uid = (_valid_uid(dataset.get(k)) for k in
                                              ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        except Exception:  # noqa: BLE001 - an undecodable dataset is refused, never a crash of the node
            study_uid = series_uid = sop_uid = None
        if not (study_uid and series_uid and sop_uid):
            self.log("", "refused an instance without valid Study, Series and SOP Instance UIDs")
            return CANNOT_UNDERSTAND
        if not _mr_image(event):
            with self.lock:
                transfer = self._transfer(event.assoc)
                transfer.not_kept[study_uid] = transfer.not_kept.get(study_uid, 0) + 1
            return STORED
        name = f"{sop_uid}.dcm"
        try:
            with self.lock:
                study = self._study(study_uid)
                self._note_series(event.assoc, study, series_uid)
                study.writing += 1
            try:
                path = study.folder / name
                if not path.exists():  # an instance sent again is on disk already
                    data = event.encoded_dataset()
                    write_atomic(path, lambda stream: stream.write(data), mode=0o600)
            finally:
                with self.lock:
                    study.writing -= 1
                    study.last_arrival, study.last_instance = time.monotonic(), time.time()
                    self._arrived(study, name)
        except OSError as error:  # full disk, permissions: the sender keeps the instance and may retry
            self.log(study_uid, f"cannot store an instance ({error.strerror or error}): answered 'out of resources'")
            return OUT_OF_RESOURCES
        return STORED

    def ended(self, event) -> None:
        """The association's connection closed: released normally, or interrupted."""
        with self.lock:
            transfer = self.transfers.pop(id(event.assoc), None)
            if transfer is None:
                return
            released = bool(event.assoc.is_released)
            for study_uid, count in transfer.not_kept.items():
                self.log(study_uid, f"{count} instances from {transfer.calling_ae} that are not MR images (SEG, SR...): "
                                    "acknowledged, not kept")
            for study_uid, series in transfer.series.items():
                study = self.studies[study_uid]
                marker = study.folder / (_OPEN + transfer.id)
                if released:
                    marker.unlink(missing_ok=True)
                    self.log(study_uid, f"{transfer.instances[study_uid]} instances from {transfer.calling_ae}")
                    self._sent_again(study, series)
                else:
                    interrupted = study.folder / (_INTERRUPTED + transfer.id)
                    try:
                        os.replace(marker, interrupted)
                    except FileNotFoundError:  # the marker could not be written: write the interruption itself
                        _write_series(interrupted, series)
                    study.interrupted[interrupted.name] = set(series)
                    self.changed.set()
                    self.log(study_uid, f"the transfer from {transfer.calling_ae} was interrupted after "
                                        f"{transfer.instances[study_uid]} instances; the study waits until its "
                                        f"{len(series)} series are sent again")

    # --- taking quiet studies (called by the node's loop) ----------------------------------------
    def take_quiet(self, make_request: Callable[[str, list[str], float], None], now: float | None = None) -> int:
        """``make_request(study_uid, files, last_instance)`` for each study quiet for the quiet time; returns how many.

        Runs under the lock, so that no instance slips in between the choice of the files and
        their being counted as taken.
        """
        now = time.monotonic() if now is None else now
        taken = 0
        with self.lock:
            for study in self.studies.values():
                if not study.pending or study.writing or study.interrupted:
                    continue
                if now - study.last_arrival < self.quiet_time:
                    continue
                files = sorted(study.covered | study.pending)
                make_request(study.uid, files, study.last_instance)
                study.covered.update(study.pending)
                study.pending.clear()
                taken += 1
        return taken

    def waiting(self) -> list[StudyWaiting]:
        """The studies with instances not yet taken, for the summary."""
        with self.lock:
            return [StudyWaiting(s.uid, len(s.covered | s.pending), bool(s.interrupted),
                                 len(set().union(*s.interrupted.values())) if s.interrupted else 0)
                    for s in self.studies.values() if s.pending]

    # --- helpers (under the lock) -----------------------------------------------------------------
    def _study(self, uid: str) -> _Study:
        study = self.studies.get(uid)
        if study is None:
            folder = self.folder / uid
            folder.mkdir(mode=0o700, exist_ok=True)
            study = self.studies[uid] = _Study(uid, folder, last_arrival=time.monotonic())
        return study

    def _transfer(self, assoc) -> _Transfer:
        transfer = self.transfers.get(id(assoc))
        if transfer is None:
            calling = getattr(assoc.requestor, "ae_title", "") or "?"
            transfer = self.transfers[id(assoc)] = _Transfer(uuid.uuid4().hex[:12], str(calling).strip())
        return transfer

    def _note_series(self, assoc, study: _Study, series_uid: str) -> None:
        """Record in the open transfer's marker that it delivers this series (before the instance is acknowledged)."""
        transfer = self._transfer(assoc)
        transfer.instances[study.uid] = transfer.instances.get(study.uid, 0) + 1
        series = transfer.series.setdefault(study.uid, set())
        if series_uid not in series:
            series.add(series_uid)
            _write_series(study.folder / (_OPEN + transfer.id), series)

    def _arrived(self, study: _Study, name: str) -> None:
        """A new instance, or any instance of a study whose last request failed, asks for a request."""
        if name in study.pending:
            return
        if name not in study.covered or self.rerun_wanted(study.uid):
            if not study.pending:
                self.changed.set()
                self.log(study.uid, "receiving")
            study.pending.add(name)

    def _sent_again(self, study: _Study, series: set[str]) -> None:
        """A transfer ended normally: the series it delivered are no longer missing from interrupted ones."""
        for marker in list(study.interrupted):
            missing = study.interrupted[marker] - series
            path = study.folder / marker
            if missing:
                study.interrupted[marker] = missing
                _write_series(path, missing)
            else:
                del study.interrupted[marker]
                path.unlink(missing_ok=True)
                if not study.interrupted:
                    self.changed.set()
                    self.log(study.uid, "the interrupted series were sent again")


def _mr_image(event) -> bool:
    """Whether the C-STORE brings an MR image (its SOP class as the request names it, else as the dataset does)."""
    sop_class = str(getattr(event.request, "AffectedSOPClassUID", "") or event.dataset.get("SOPClassUID", "") or "")
    return sop_class in MR_IMAGE_STORAGE


def _write_series(path: Path, series: set[str]) -> None:
    write_atomic(path, lambda stream: stream.write(json.dumps(sorted(series)).encode()), mode=0o600)


def _read_series(path: Path) -> list[str]:
    """The series an interruption marker names; none when unreadable (held until the study is sent again)."""
    try:
        series = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [s for s in series if isinstance(s, str)] if isinstance(series, list) else []
