"""The per-case function of ``tumorseg batch``, shared by the local and the Ray engine.

A :class:`CaseProcessor` lives in one worker (a process or a Ray actor). It loads the networks
once, then processes the cases sent to it one at a time, and reads the next case in a thread
while the networks run on the current one, so that reading and preprocessing overlap inference.
Every case ends as a summary row: a broken case is a "failed" row, never an exception.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..series_choice import AmbiguousSeries
from .cases import CHANGES_FOLDER, Case
from .summary import completed_report, failed_row, ok_row, with_change

__all__ = ["WorkerSettings", "CaseProcessor", "limit_threads", "startup_message"]


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker needs; picklable, so that it can be sent to a process or a Ray actor."""

    out_root: str
    bundle: str | None = None
    threads: int = 1
    seg_nrrd: bool = False
    overlay: bool = False
    dicom_seg: bool = False  # applied to the cases whose FLAIR is a DICOM series folder
    dicom_sr: bool = False  # measurements.dcm beside the SEG (with dicom_seg)
    overwrite: bool = False  # set when resuming: an existing folder of a case sent to a worker is incomplete


def limit_threads(threads: int) -> None:
    """Give this worker its share of the CPU, so that N workers do not each start one thread per core."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)


def startup_message(build) -> tuple[str, object]:
    """``("ready", None)``, or ``("fatal", (message, exit_code))`` when the worker cannot start.

    A worker that cannot load the bundle would fail every case, so the batch stops instead:
    exit 2 for bad input (e.g. a weights checksum mismatch), 1 for anything else.
    """
    try:
        build()
    except InputError as error:
        return "fatal", (str(error), 2)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the batch
        return "fatal", (f"a worker could not start: {type(error).__name__}: {error}", 1)
    return "ready", None


class CaseProcessor:
    """Both networks, loaded once, and the per-case function :meth:`process`."""

    def __init__(self, settings: WorkerSettings) -> None:
        limit_threads(settings.threads)
        from ..pipeline import DEFAULT_BUNDLE, TumorSegPipeline

        self.settings = settings
        self.pipeline = TumorSegPipeline(settings.bundle or DEFAULT_BUNDLE)
        self._ahead: dict[str, Future] = {}
        self._warm_up()

    def _warm_up(self) -> None:
        """Run each network once on a full batch of blank slices.

        The first call builds the CPU kernels, which takes seconds (6.7 s against 1.2 s for a
        21-slice case on this project's 2-core machine): paid here, at start-up, it neither slows
        the first case nor counts against its time limit.
        """
        import torch

        from ..preprocess import MODEL_SIZE

        blank = torch.zeros(max(self.pipeline.classifier_batch, self.pipeline.segmenter_batch), 3, MODEL_SIZE, MODEL_SIZE)
        self.pipeline.classify(blank[: self.pipeline.classifier_batch])
        self.pipeline.segment(blank[: self.pipeline.segmenter_batch])

    def process(self, case: Case, upcoming: Case | None = None) -> dict:
        """Process ``case`` and return its summary row; start reading ``upcoming``, the case sent next.

        A follow-up (a case with a baseline) is then compared with its baseline; its row gets the
        change, or fails with the comparison's error (its detect outputs stay: they are complete).
        """
        started = time.perf_counter()
        if case.problem:
            return self._row(case, failed_row(case.case_id, case.problem, 0.0))
        reading = None if case.detect_done else self._ahead.pop(case.case_id, None) or _in_thread(self._read, case)
        self._ahead.clear()  # a case read ahead but given to another worker: its result is dropped
        if upcoming is not None and not upcoming.problem and not upcoming.detect_done:
            self._ahead[upcoming.case_id] = _in_thread(self._read, upcoming)
        try:
            report, seconds = self._detect(case, reading)
        except AmbiguousSeries as error:  # the candidates go into the summary, for the operator to choose
            elapsed = time.perf_counter() - started
            return self._row(case, failed_row(case.case_id, error, elapsed, series=error.candidates_text()))
        except InputError as error:
            return self._row(case, failed_row(case.case_id, error, time.perf_counter() - started))
        except Exception as error:  # noqa: BLE001 - one broken case must not stop the batch
            return self._row(case, failed_row(case.case_id, f"{type(error).__name__}: {error}", time.perf_counter() - started))
        if not case.is_followup:
            return ok_row(case.case_id, report, seconds)
        return self._compare(case, report, seconds)

    def _detect(self, case: Case, reading: Future | None) -> tuple[dict, float]:
        """The case's report and the seconds detect took; a follow-up resumed after its detect: the report it left."""
        if reading is None:
            report = completed_report(Path(self.settings.out_root) / case.case_id)
            if report is None:
                raise InputError(Path(self.settings.out_root) / case.case_id, "its report.json is gone")
            return report, 0.0
        study, timing, read_s = reading.result()
        start = time.perf_counter()
        report = self._finish(case, study, timing)
        return report, read_s + time.perf_counter() - start

    def _compare(self, case: Case, report: dict, seconds: float) -> dict:
        """``tumorseg compare`` of the baseline with this case into OUT/changes/<case_id>/; the row with the change."""
        from ..compare import compare_cases

        out = Path(self.settings.out_root)
        start = time.perf_counter()
        try:
            if case.baseline_error is not None:
                raise InputError(None, f"its baseline {case.baseline_case} failed ({case.baseline_error})")
            baseline = case.baseline_dir or out / case.baseline_case
            change = compare_cases(baseline, out / case.case_id, out / CHANGES_FOLDER, case.case_id,
                                   overwrite=self.settings.overwrite)
        except Exception as error:  # noqa: BLE001 - a failed comparison fails this case alone
            reason = str(error) if isinstance(error, InputError) else f"{type(error).__name__}: {error}"
            elapsed = seconds + time.perf_counter() - start
            return self._row(case, failed_row(case.case_id, f"compare: {reason}", elapsed, report))
        return self._row(case, ok_row(case.case_id, report, seconds + time.perf_counter() - start), change)

    @staticmethod
    def _row(case: Case, row: dict, change: dict | None = None) -> dict:
        return with_change(row, case.baseline, change) if case.is_followup else row

    def _read(self, case: Case):
        """Reading and preprocessing: :func:`monai_core.detect.read_case`, timed on its own.

        A whole DICOM study first gets its series chosen, as ``detect --study`` does.
        """
        from ..detect import read_case
        from ..series_choice import choose_series

        start = time.perf_counter()
        uids = case.series_uids()
        choice = None
        if case.study:
            choice = choose_series(list(case.files) or case.study, **uids)
        study, timing = read_case(
            self.settings.out_root,
            kaggle_dir=case.kaggle_dir,
            flair=case.flair,
            t1=case.t1,
            t1c=case.t1c,
            case_id=case.case_id,
            dicom_seg=self._dicom_seg(case),
            overwrite=self.settings.overwrite,
            series_uids=None if case.study else uids or None,
            choice=choice,
        )
        return study, timing, time.perf_counter() - start

    def _finish(self, case: Case, study, timing: dict) -> dict:
        """Inference and writing: :func:`monai_core.detect.finish_case`, the same outputs as ``tumorseg detect``."""
        from ..detect import finish_case

        s = self.settings
        dicom_seg = self._dicom_seg(case)
        return finish_case(
            self.pipeline, study, timing, s.out_root, s.seg_nrrd, s.overlay, dicom_seg, s.overwrite,
            dicom_sr=dicom_seg and s.dicom_sr,
        )

    def _dicom_seg(self, case: Case) -> bool:
        return self.settings.dicom_seg and (case.study is not None or (case.flair is not None and Path(case.flair).is_dir()))


def _in_thread(function, *args) -> Future:
    """Run ``function`` in a daemon thread of its own: a read that hangs never blocks the reads after it."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(error)

    threading.Thread(target=target, name="tumorseg-read", daemon=True).start()
    return future
