"""``tumorseg batch`` as a function: find the cases, check OUT, resume, run, summarise.

Guarantees (see DESIGN.md and the ``batch`` section of README.md):
- a case folder appears only complete (``monai_core.outputs.CaseWriter``); a case whose
  ``report.json`` is complete is never processed again with ``--resume``;
- ``summary.csv`` is rewritten atomically after every case, so it is always a complete table;
- without ``--resume``, an OUT that holds results is refused before any work;
- a follow-up (a manifest row with a ``baseline``) is compared with its baseline after its detect,
  into ``OUT/changes/<case_id>/`` (written as atomically as a case folder, change.json last); it
  starts once its baseline's row is in, so the comparison always finds the baseline finished or
  failed; resuming, a follow-up whose detect finished runs only the comparison.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InputError
from ..graceful_stop import stop_on_signals
from .cases import CHANGES_FOLDER, Case, find_cases
from .scheduler import Scheduler
from .summary import Summary, completed_change, completed_report, failed_row, skipped_row, with_change
from .worker import WorkerSettings

__all__ = ["BatchOptions", "run_batch", "EXIT_OK", "EXIT_CASES_FAILED", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_CASES_FAILED, EXIT_INTERRUPTED = 0, 3, 130
LOCK_NAME = ".tumorseg-batch.lock"


@dataclass
class BatchOptions:
    workers: int = 1
    engine: str = "local"  # "local" or "ray"
    resume: bool = False
    case_timeout: float = 600.0
    threads: int | None = None  # torch threads per worker; default: this machine's cores / workers
    address: str | None = None  # Ray cluster to join; default: a private local instance
    bundle: str | None = None
    seg_nrrd: bool = False
    overlay: bool = False
    dicom_seg: bool = False
    progress: str = "bar"  # "bar", "json" or "none"


def run_batch(source: str | Path, out: str | Path, options: BatchOptions) -> int:
    """Process every case of ``source`` into ``out``; returns the exit code (0, 3, or 130 when stopped)."""
    out = Path(out)
    if options.workers < 1:
        raise InputError(None, "--workers must be at least 1")
    if options.case_timeout <= 0:
        raise InputError(None, "--case-timeout must be positive")
    cases = find_cases(source, exclude=out)
    lock = prepare_output(out, cases, options.resume)
    try:
        summary = Summary(out / "summary.csv", [c.case_id for c in cases])
        to_run = _record_known(cases, out, summary, options.resume)
        summary.write()
        progress = _Progress(options.progress, len(to_run))
        progress.note(f"{len(cases)} cases: {len(to_run)} to run, {summary.count('skipped')} done before (skipped)")
        try:
            not_started = _run_cases(to_run, out, options, summary, progress) if to_run else []
        finally:
            progress.close()
        return _conclude(summary, not_started, out, options.progress)
    finally:
        lock.close()


def prepare_output(out: Path, cases: list[Case], resume: bool):
    """Create and lock OUT; refuse one that holds results unless resuming; remove what killed runs left half-written.

    Returns the open lock file: keep it open while the batch runs.
    """
    if out.exists() and not out.is_dir():
        raise InputError(out, "the output exists and is not a folder")
    if out.is_dir() and not resume and _holds_results(out, cases):
        raise InputError(out, "holds results of an earlier batch; pass --resume to finish it, or choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(out, f"cannot create the output folder ({error.strerror})") from None
    lock = _lock(out)
    # temporary case and change folders and summaries of a run that was killed
    for leftover in [*out.glob(".*"), *(out / CHANGES_FOLDER).glob(".*")]:
        if leftover.name.endswith((".partial", ".old")) and leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.name.startswith(".summary.") and leftover.name.endswith(".tmp"):
            leftover.unlink(missing_ok=True)
    return lock


def _lock(out: Path):
    """An exclusive lock on OUT, so that two batches never work on the same cases (e.g. overlapping cron jobs).

    The kernel releases it when the process ends, even by SIGKILL, so a killed batch never blocks ``--resume``.
    """
    stream = open(out / LOCK_NAME, "a")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; running one batch per OUT is then up to the user
        return stream
    try:
        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.close()
        raise InputError(out, "another tumorseg batch is writing into this folder") from None
    return stream


def _holds_results(out: Path, cases: list[Case]) -> bool:
    if any(case.is_followup for case in cases) and (out / CHANGES_FOLDER).exists():
        return True
    return (out / "summary.csv").exists() or any((out / c.case_id).exists() for c in cases)


def _record_known(cases: list[Case], out: Path, summary: Summary, resume: bool) -> list[Case]:
    """Rows for cases that need no worker (done before, or unusable); returns the cases to run.

    Resuming, a follow-up whose detect finished but whose comparison did not is run for the comparison only.
    """
    to_run = []
    for case in cases:
        report = completed_report(out / case.case_id) if resume else None
        if report is not None and case.is_followup:
            change = completed_change(out / CHANGES_FOLDER / case.case_id)
            if change is None:
                to_run.append(replace(case, detect_done=True))
            else:
                summary.rows[case.case_id] = with_change(skipped_row(case.case_id, report), case.baseline, change)
        elif report is not None:
            summary.rows[case.case_id] = skipped_row(case.case_id, report)
        elif case.problem:
            row = failed_row(case.case_id, case.problem, 0.0)
            summary.rows[case.case_id] = with_change(row, case.baseline) if case.is_followup else row
        else:
            to_run.append(case)
    return to_run


def _run_cases(cases: list[Case], out: Path, options: BatchOptions, summary: Summary, progress) -> list[Case]:
    workers = min(options.workers, len(cases))
    settings = WorkerSettings(
        out_root=str(out),
        bundle=options.bundle,
        threads=options.threads or max(1, _cpu_count() // workers),
        seg_nrrd=options.seg_nrrd,
        overlay=options.overlay,
        dicom_seg=options.dicom_seg,
        overwrite=options.resume,
    )
    engine = _engine(options, settings, workers)
    progress.note(f"starting {workers} {options.engine} worker(s), {settings.threads} thread(s) each; models load once per worker")

    def record(row: dict) -> None:
        summary.record(row)
        progress.case_done(row)

    stop = threading.Event()
    progress.start()
    with stop_on_signals(stop, lambda: progress.note("stopping after the cases in flight (Ctrl-C again to abort them)")):
        return Scheduler(engine, workers, options.case_timeout, record, dict(summary.rows)).run(cases, stop.is_set)


def _engine(options: BatchOptions, settings: WorkerSettings, workers: int):
    if options.engine == "ray":
        try:
            from .ray_engine import RayEngine
        except ImportError:
            raise InputError(None, "--engine ray needs Ray: pip install 'ray==2.60.0'") from None
        return RayEngine(settings, workers, options.address)
    if options.address:
        raise InputError(None, "--address is for --engine ray")
    from .local import LocalEngine

    return LocalEngine(settings)


def _cpu_count() -> int:
    from ..runtime import available_cores

    return available_cores()



def _conclude(summary: Summary, not_started: list[Case], out: Path, mode: str) -> int:
    counts = {s: summary.count(s) for s in ("ok", "failed", "skipped")}
    line = f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped; summary: {out / 'summary.csv'}"
    if mode != "json":
        print(line)
    if not_started:
        print(f"tumorseg: stopped; {len(not_started)} cases not started: run again with --resume to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_CASES_FAILED if counts["failed"] else EXIT_OK


class _Progress:
    """A tqdm bar on stderr (cases done, failed, rate, ETA), JSON lines for programs, or nothing."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.bar = None
        if mode == "json":
            from ..progress import reporter

            self.json = reporter("json")

    def start(self) -> None:
        """Show the bar (after the notes on what is about to run)."""
        if self.mode == "bar" and self.total:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="batch", unit="case", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
            self.bar.set_postfix(failed=0, refresh=False)

    def note(self, message: str) -> None:
        if self.mode == "json":
            self.json("batch", self.done / max(1, self.total), message)
        elif self.mode == "bar":
            text = f"tumorseg: {message}"
            self.bar.write(text, file=sys.stderr) if self.bar else print(text, file=sys.stderr)

    def case_done(self, row: dict) -> None:
        self.done += 1
        self.failed += row["status"] == "failed"
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)
        elif self.mode == "json":
            message = f"{row['case_id']}: {row['status']}" + (f" ({row['error']})" if row["error"] else "")
            self.json("case", self.done / max(1, self.total), message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
