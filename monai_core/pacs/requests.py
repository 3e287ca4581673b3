"""The node's requests: one state file per request to process a study, and the summary rows made from them.

``state/<case_id>.json`` is written atomically at every step, so a node killed at any moment
finds each request where it was: ``received`` (taken from reception, waiting for a worker),
``running``, ``done`` (its case folder is complete; ``to_send`` lists the result files not yet
stored at the destination), ``sent`` (all of them stored), or ``failed`` (nothing is sent).
The case id is the StudyInstanceUID, with ``_2``, ``_3``... for later requests of the same study.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path

from ..batch.summary import FIELDS, completed_report, ok_row
from ..outputs import write_json_atomic

__all__ = ["NODE_FIELDS", "Request", "RequestStore", "request_row", "waiting_row"]

STATES = ("received", "running", "done", "sent", "failed")
# batch's columns, then the node's own: instances of the request, when it was taken, what was sent
NODE_FIELDS = (*FIELDS, "instances", "received_at", "sent")


@dataclass
class Request:
    """One request to process a study: its instances and how far it got."""

    case_id: str
    study_uid: str
    state: str
    files: list[str]  # instance file names under received/<study_uid>/
    received_at: str  # when the study was taken (ISO 8601, local time)
    last_instance: float  # time.time() of the study's last instance, when it was taken
    number: int = 1  # 1 for the study's first request, 2 for the next...
    row: dict | None = None  # batch's summary row, once the request ran
    to_send: list[str] = field(default_factory=list)  # result files not yet stored at the destination
    sent: list[str] = field(default_factory=list)
    sent_to: str = ""
    attempts: int = 0  # failed sends so far
    next_try: float = 0.0  # time.time() of the next send
    last_error: str = ""


class RequestStore:
    """Every request, in memory and in ``folder``; each change is written before it is acted on."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.requests: dict[str, Request] = {}
        for path in sorted(self.folder.glob("*.json")):
            request = _read(path)
            if request is not None:
                self.requests[request.case_id] = request
        for leftover in self.folder.glob(".*.tmp"):  # a state file cut off while being written
            leftover.unlink(missing_ok=True)

    def all(self) -> list[Request]:
        with self.lock:
            return sorted(self.requests.values(), key=lambda r: (r.received_at, r.study_uid, r.number))

    def get(self, case_id: str) -> Request | None:
        with self.lock:
            return self.requests.get(case_id)

    def next_case_id(self, study_uid: str) -> tuple[str, int]:
        """The case id and number of the study's next request: its UID, then ``<UID>_2``, ``<UID>_3``..."""
        with self.lock:
            number = 1 + max((r.number for r in self.requests.values() if r.study_uid == study_uid), default=0)
            return (study_uid if number == 1 else f"{study_uid}_{number}"), number

    def add(self, study_uid: str, files: list[str], last_instance: float) -> Request:
        """A new request for the study, in state ``received``."""
        with self.lock:
            case_id, number = self.next_case_id(study_uid)
            received_at = datetime.now().astimezone().isoformat(timespec="seconds")
            request = Request(case_id, study_uid, "received", files, received_at, last_instance, number)
            self._write(request)
            return request

    def update(self, case_id: str, **changes) -> Request:
        with self.lock:
            request = replace(self.requests[case_id], **changes)
            self._write(request)
            return request

    def covered(self) -> dict[str, set[str]]:
        """{study uid: instance files already in a request}, for the reception's restart."""
        with self.lock:
            covered: dict[str, set[str]] = {}
            for request in self.requests.values():
                covered.setdefault(request.study_uid, set()).update(request.files)
            return covered

    def latest_failed(self, study_uid: str) -> bool:
        """True when the study's latest request failed: a new arrival of it asks for another."""
        with self.lock:
            mine = [r for r in self.requests.values() if r.study_uid == study_uid]
            return bool(mine) and max(mine, key=lambda r: r.number).state == "failed"

    def _write(self, request: Request) -> None:
        if request.state not in STATES:
            raise ValueError(f"unknown state {request.state!r}")
        write_json_atomic(self.folder / f"{request.case_id}.json", asdict(request), mode=0o600)
        self.requests[request.case_id] = request


def _read(path: Path) -> Request | None:
    try:
        content = json.loads(path.read_text())
        known = {f.name for f in fields(Request)}
        return Request(**{k: v for k, v in content.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def request_row(request: Request, results: Path) -> dict:
    """The request's summary row: batch's row once it ran (ok or failed), then the node's columns."""
    if request.row is not None:
        row = dict.fromkeys(NODE_FIELDS, "") | request.row
    else:
        row = dict.fromkeys(NODE_FIELDS, "") | {"case_id": request.case_id, "status": request.state}
        report = completed_report(results / request.case_id) if request.state == "done" else None
        if report is not None:  # done, but its row was lost with a killed node: from its report
            row |= ok_row(request.case_id, report, (report.get("timing_s") or {}).get("total_s") or 0.0)
    row.update(instances=str(len(request.files)), received_at=request.received_at, sent=_sent_text(request))
    return row


def _sent_text(request: Request) -> str:
    if request.state == "sent":
        return f"sent to {request.sent_to}: {', '.join(request.sent)}"
    if request.state != "done":
        return ""
    if not request.to_send:
        return "nothing to send (no tumour found)"
    text = f"waiting: {', '.join(request.to_send)}"
    if request.attempts:
        when = datetime.fromtimestamp(request.next_try).astimezone().isoformat(timespec="seconds")
        text += f"; {request.attempts} failed tries, the last: {request.last_error}; next try {when}"
    return text


def waiting_row(case_id: str, instances: int, interrupted: bool, missing_series: int) -> dict:
    """The row of a study still arriving, or held because a transfer of it was interrupted."""
    row = dict.fromkeys(NODE_FIELDS, "") | {"case_id": case_id, "instances": str(instances)}
    if interrupted:
        return row | {"status": "interrupted",
                      "error": f"a transfer was interrupted; waiting for {missing_series} series to be sent again"}
    return row | {"status": "receiving"}

