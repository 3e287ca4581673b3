"""``tumorseg listen`` as a function: a Storage SCP in front of batch's workers, and an outbox behind them.

The node's folder holds everything it knows, so that it can be killed at any moment and started
again on the same folder:

- ``received/<StudyInstanceUID>/``: the instances, each on disk before it was acknowledged
  (:mod:`.reception`);
- ``state/<case_id>.json``: one file per request to process a study (:mod:`.requests`);
- ``results/<case_id>/``: the case folders, exactly as ``tumorseg detect`` writes them;
- ``summary.csv``: batch's table with the node's columns, and ``node.log``: one line per step.

The networks run in batch's worker processes (:class:`~monai_core.batch.local.LocalEngine`,
:class:`~monai_core.batch.worker.CaseProcessor`, :meth:`~monai_core.batch.scheduler.Scheduler.serve`),
one study at a time each, so the associations' threads in this process never wait for inference;
the outbox sends from a thread of its own. Everything the node writes is readable by its owner only.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..batch.cases import Case
from ..batch.run import prepare_output
from ..batch.summary import Summary, completed_report, ok_row
from ..errors import InputError
from ..graceful_stop import stop_on_signals
from .address import DicomAddress, check_ae_title
from .outbox import Outbox
from .reception import Reception
from .requests import NODE_FIELDS, RequestStore, request_row, waiting_row
from .store import result_files

__all__ = ["NodeOptions", "run_node", "LOCK_NAME", "LOG_NAME"]

LOCK_NAME = ".tumorseg-listen.lock"
LOG_NAME = "node.log"


@dataclass(frozen=True)
class NodeOptions:
    """What ``tumorseg listen`` is told: who it is, whom it accepts, where results go, how it runs."""

    allow: tuple[str, ...]  # calling AE titles accepted; any other is refused at association
    ae_title: str = "TUMORSEG"
    port: int = 11112
    bind: str = "0.0.0.0"
    send_to: DicomAddress | None = None
    quiet_time: float = 30.0  # seconds without an instance after which a study is taken
    workers: int = 1
    threads: int | None = None  # torch threads per worker; default: this machine's cores / workers
    case_timeout: float = 600.0
    retry_after: float = 30.0  # first wait after a failed send, doubled at each failure...
    retry_max: float = 3600.0  # ...up to this
    send_timeout: float = 30.0
    dicom_sr: bool = False
    seg_nrrd: bool = False
    overlay: bool = False
    bundle: str | None = None

    def check(self) -> None:
        check_ae_title(self.ae_title)
        if not self.allow:
            raise InputError(None, "give the calling AE titles to accept with --allow")
        for title in self.allow:
            check_ae_title(title, "calling AE title in --allow")
        if not 0 <= self.port < 65536:
            raise InputError(None, f"invalid --port {self.port}")
        for name, value in (("--quiet-time", self.quiet_time), ("--case-timeout", self.case_timeout),
                            ("--retry-after", self.retry_after), ("--retry-max", self.retry_max)):
            if not value > 0:
                raise InputError(None, f"{name} must be positive")
        if self.workers < 1:
            raise InputError(None, "--workers must be at least 1")


def run_node(folder: str | Path, options: NodeOptions, stop: threading.Event | None = None) -> int:
    """Run the node on ``folder`` until ``stop`` is set or it gets SIGTERM or Ctrl-C; returns the exit code (0)."""
    options.check()
    os.umask(0o077)  # everything the node and its workers create is its owner's alone
    folder = Path(folder)
    lock = _prepare(folder)
    try:
        return _Node(folder, options).run(stop or threading.Event())
    finally:
        lock.close()


def _prepare(folder: Path):
    """Create the node's folder (private), and lock it: two nodes on one folder would send results twice."""
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "the node's folder exists and is not a folder")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError as error:
        raise InputError(folder, f"cannot create the node's folder ({error.strerror})") from None
    stream = open(folder / LOCK_NAME, "a")
    try:
        import fcntl

        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # Windows: no advisory locks; one node per folder is then up to the user
        pass
    except OSError:
        stream.close()
        raise InputError(folder, "another tumorseg listen is running on this folder") from None
    for leftover in folder.glob(".summary.*.tmp"):
        leftover.unlink(missing_ok=True)
    return stream


class _Node:
    def __init__(self, folder: Path, options: NodeOptions) -> None:
        self.folder = folder
        self.options = options
        self.received = folder / "received"
        self.results = folder / "results"
        self.results_lock = prepare_output(self.results, [], resume=True)  # also removes half-written case folders
        self.results.chmod(0o700)
        self.logger = _logger(folder / LOG_NAME)
        self.requests = RequestStore(folder / "state")
        self.summary = Summary(folder / "summary.csv", [], NODE_FIELDS, mode=0o600)
        self.summary_lock = threading.Lock()
        self.handed: set[str] = set()  # requests given to the scheduler in this run
        self.reception = Reception(self.received, options.quiet_time, self.requests.covered(),
                                   self.requests.latest_failed, lambda uid, text: self.note(f"study {uid}" if uid else "", text))
        self.outbox = None
        if options.send_to is not None:
            self.outbox = Outbox(self.requests, self.results, options.send_to, options.ae_title, options.retry_after,
                                 options.retry_max, lambda case, text: self.note(f"case {case}", text),
                                 self.write_summary, options.send_timeout)
        self.server = None
        self._recover()

    def note(self, who: str, text: str) -> None:
        """One log line: ``case <id>: ...`` or ``study <uid>: ...``, never a patient's name or ID."""
        self.logger.info(f"{who}: {text}" if who else text)

    # --- start-up ------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Requests a killed node left received or running: done if their case folder is complete, else queued again."""
        for request in self.requests.all():
            if request.state not in ("received", "running"):
                continue
            report = completed_report(self.results / request.case_id)
            if report is not None:
                self._finished(ok_row(request.case_id, report, (report.get("timing_s") or {}).get("total_s") or 0.0))
            elif request.state == "running":
                self.requests.update(request.case_id, state="received")
                self.note(f"case {request.case_id}", "was running when the node stopped: it runs again")
        waiting = [r for r in self.requests.all() if r.state == "done" and r.to_send]
        if waiting:
            self.note("", f"{len(waiting)} finished cases still to send: "
                          + ", ".join(r.case_id for r in waiting))

    def _listen(self):
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        options = self.options
        ae = AE(ae_title=options.ae_title)
        syntaxes = _decodable_transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        ae.add_supported_context(Verification)  # C-ECHO, with which a PACS administrator tests the node
        ae.require_calling_aet = list(options.allow)
        handlers = [(evt.EVT_C_STORE, self.reception.store), (evt.EVT_CONN_CLOSE, self.reception.ended),
                    (evt.EVT_REJECTED, self._rejected)]
        try:
            return ae.start_server((options.bind, options.port), block=False, evt_handlers=handlers)
        except OSError as error:
            raise InputError(None, f"cannot listen on {options.bind}:{options.port} ({error.strerror or error})") from None

    def _rejected(self, event) -> None:
        calling = str(getattr(event.assoc.requestor, "ae_title", "") or "").strip()
        address = getattr(event.assoc.requestor, "address", "?")
        why = "not in --allow" if calling not in self.options.allow else "too many associations at once"
        self.note("", f"refused an association from {calling!r} at {address}: {why}")

    # --- the run ---------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        from ..batch.local import LocalEngine
        from ..batch.scheduler import Scheduler
        from ..batch.worker import WorkerSettings
        from ..runtime import available_cores

        options = self.options
        self.server = self._listen()
        allowed = ", ".join(options.allow)
        self.note("", f"listening as {options.ae_title} on {options.bind}:{self.server.server_address[1]}, "
                      f"accepting {allowed}; a study is taken after {options.quiet_time:g} s without an instance; "
                      + (f"results are sent to {options.send_to}" if options.send_to else "results are not sent (no --send-to)"))
        self.write_summary()
        if self.outbox is not None:
            self.outbox.start()
        settings = WorkerSettings(out_root=str(self.results), bundle=options.bundle,
                                  threads=options.threads or max(1, available_cores() // options.workers),
                                  seg_nrrd=options.seg_nrrd, overlay=options.overlay, dicom_seg=True,
                                  dicom_sr=options.dicom_sr)
        scheduler = Scheduler(LocalEngine(settings), options.workers, options.case_timeout, self._finished,
                              started=self._started)
        try:
            with stop_on_signals(stop, lambda: self.note("", "stopping: no new association; the cases in flight finish "
                                                           "(Ctrl-C again to stop at once)"),
                                 (signal.SIGINT, signal.SIGTERM)):
                left = scheduler.serve(self._take, lambda: self._stopping(stop))
        finally:
            self._close_server()
            if self.outbox is not None:
                self.outbox.stop()
            self.results_lock.close()
        waiting = len(left) + sum(r.state == "received" and r.case_id not in self.handed for r in self.requests.all())
        self.note("", f"stopped; {waiting} studies wait for the next start" if waiting else "stopped")
        return 0

    def _stopping(self, stop: threading.Event) -> bool:
        if stop.is_set():
            self._close_server()  # no new association; those in flight are cut, and held as interrupted
        return stop.is_set()

    def _close_server(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _take(self) -> list[Case]:
        """Requests for the studies that went quiet, and every received request not yet given to a worker."""
        taken = self.reception.take_quiet(self._new_request)
        if taken or self.reception.changed.is_set():
            self.reception.changed.clear()
            self.write_summary()
        cases = []
        for request in self.requests.all():
            if request.state == "received" and request.case_id not in self.handed:
                self.handed.add(request.case_id)
                folder = self.received / request.study_uid
                cases.append(Case(request.case_id, study=str(folder), files=tuple(str(folder / f) for f in request.files)))
        return cases

    def _new_request(self, study_uid: str, files: list[str], last_instance: float) -> None:
        """Called under the reception's lock: the state file and a log line, nothing that needs the reception."""
        request = self.requests.add(study_uid, files, last_instance)
        self.note(f"case {request.case_id}", f"{len(files)} instances, none for {self.options.quiet_time:g} s: queued")

    def _started(self, case: Case) -> None:
        self.requests.update(case.case_id, state="running")
        self.note(f"case {case.case_id}", "running")
        self.write_summary()

    def _finished(self, row: dict) -> None:
        """A worker's row (batch's): the case is done, with its results to send, or failed (nothing is sent)."""
        case_id = row["case_id"]
        _make_private(self.results / case_id)
        who = f"case {case_id}"
        if row["status"] == "ok":
            to_send = [path.name for path in result_files(self.results / case_id)]
            self.requests.update(case_id, state="done", row=row, to_send=to_send)
            found = f"tumour {row['tumor_volume_ml']} mL" if row["tumor_detected"] == "true" else "no tumour"
            self.note(who, f"done in {row['seconds']} s: {found}, confidence {row['confidence'] or '-'}"
                           f"{' (flagged)' if row['flagged'] == 'true' else ''}; series {row['series'] or '-'}; "
                           + (f"to send: {', '.join(to_send)}" if to_send else "nothing to send"))
            if self.outbox is not None:
                self.outbox.wake.set()
        else:
            self.requests.update(case_id, state="failed", row=row)
            self.note(who, f"failed, nothing is sent: {row['error']}" + (f" ({row['series']})" if row["series"] else ""))
        self.write_summary()

    def write_summary(self) -> None:
        """summary.csv from the state files (and the studies still arriving), rewritten atomically."""
        with self.summary_lock:
            rows = {r.case_id: request_row(r, self.results) for r in self.requests.all()}
            for study in self.reception.waiting():
                case_id = self.requests.next_case_id(study.study_uid)[0]
                rows[case_id] = waiting_row(case_id, study.instances, study.interrupted, study.missing_series)
            self.summary.rows = rows
            self.summary.write()


def _decodable_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes whose pixel data this installation can decode (uncompressed, JPEG, JPEG-LS, JPEG 2000, RLE...).

    Offered for every storage SOP class: a sender with data in another syntax converts it (Orthanc
    does) or is refused the context, rather than the node accepting a study it cannot read.
    """
    from pydicom.pixels.decoders.base import get_decoder
    from pynetdicom import ALL_TRANSFER_SYNTAXES

    usable = []
    for uid in ALL_TRANSFER_SYNTAXES:
        try:
            if get_decoder(uid).is_available:
                usable.append(uid)
        except NotImplementedError:
            continue
    return usable


def _make_private(case_folder: Path) -> None:
    """The case folder and its files for the owner only (detect writes them readable by all)."""
    if not case_folder.is_dir():
        return
    case_folder.chmod(0o700)
    for path in case_folder.iterdir():
        path.chmod(0o700 if path.is_dir() else 0o600)


def _logger(path: Path) -> logging.Logger:
    """Log lines to ``node.log`` (owner-only) and stderr; pynetdicom's own logging stays out of both."""
    logger = logging.getLogger(f"tumorseg.node.{path}")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    for handler in (logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger

