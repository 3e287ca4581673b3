"""Hand cases to workers, one at a time each, and enforce the per-case time limit.

The scheduler does not know whether a worker is a local process or a Ray actor: an engine starts
workers, sends each one a case (and the case it will get next, so that it can read it ahead),
reports what workers say (``ready``, ``row``, ``fatal``) or that one ``died``, and kills a worker.
A case over its time limit is recorded as failed and its worker is killed and replaced, because a
thread stuck in a C library cannot be stopped any other way.

A follow-up whose baseline is a case of the batch starts only once its baseline's row is in (the
comparison that ends it needs the baseline's result), and learns then whether its baseline failed.
Cases are otherwise taken in order; a follow-up that waits lets the cases after it go first.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from ..errors import InputError
from .cases import Case
from .summary import failed_row, with_change

__all__ = ["Engine", "Scheduler"]


class Engine(Protocol):
    def start(self) -> object: ...
    def send(self, worker, case: Case, upcoming: Case | None) -> None: ...
    def poll(self, workers: list, timeout: float) -> list[tuple[object, str, object]]: ...
    def kill(self, worker) -> None: ...
    def close(self, graceful: bool) -> None: ...


@dataclass
class _Slot:
    worker: object
    ready: bool = False
    case: Case | None = None  # the case in flight
    upcoming: Case | None = None  # reserved for this worker next; it is reading it ahead
    since: float = 0.0


class Scheduler:
    """Runs cases on ``workers`` workers of ``engine``; ``record`` receives every finished row."""

    def __init__(self, engine: Engine, workers: int, case_timeout: float, record: Callable[[dict], None],
                 finished: dict[str, dict] | None = None, started: Callable[[Case], None] | None = None) -> None:
        self.engine = engine
        self.started = started  # told of each case as it goes to a worker (the node records it as running)
        self.workers = workers
        self.case_timeout = case_timeout
        self.on_row = record
        self.rows: dict[str, dict] = dict(finished or {})  # finished cases (also before this run): baselines
        self.pending: deque[Case] = deque()
        self.slots: list[_Slot] = []
        self.stopping = False

    def run(self, cases: list[Case], should_stop: Callable[[], bool] = lambda: False) -> list[Case]:
        """Process ``cases``; returns the cases not started because ``should_stop`` turned true."""
        self.pending = deque(cases)
        return self._loop(lambda: (), should_stop, min(self.workers, len(cases)), forever=False)

    def serve(self, take: Callable[[], list[Case]], should_stop: Callable[[], bool]) -> list[Case]:
        """Process cases as they come, as a DICOM node does (``tumorseg listen``): ``take()`` returns the
        cases that arrived since it was last called. Runs until ``should_stop()`` turns true; then the
        cases in flight finish, and the cases not started are returned."""
        return self._loop(take, should_stop, self.workers, forever=True)

    def _loop(self, take: Callable[[], list[Case]], should_stop: Callable[[], bool], workers: int,
              forever: bool) -> list[Case]:
        self.slots = [_Slot(self.engine.start()) for _ in range(workers)]
        graceful = False
        try:
            while any(s.case for s in self.slots) or (not self.stopping and (forever or self.pending)):
                if should_stop() and not self.stopping:
                    self._stop()
                if not self.stopping:
                    self.pending.extend(take())
                for worker, kind, payload in self.engine.poll([s.worker for s in self.slots], self._wait_time()):
                    self._handle(self._slot_of(worker), kind, payload)
                self._enforce_time_limit()
                self._assign_idle()
            graceful = True
        finally:
            self.engine.close(graceful)
        return list(self.pending)

    def _stop(self) -> None:
        """Start no new case; the cases in flight finish, the reserved ones go back in the queue."""
        self.stopping = True
        for slot in self.slots:
            if slot.upcoming is not None:
                self.pending.appendleft(slot.upcoming)
                slot.upcoming = None

    def record(self, row: dict) -> None:
        self.rows[row["case_id"]] = row
        self.on_row(row)

    def _handle(self, slot: _Slot, kind: str, payload) -> None:
        if kind == "ready":
            slot.ready = True
        elif kind == "row":
            self.record(payload)
            slot.case = None
        elif kind == "fatal":
            message, code = payload
            raise InputError(None, message) if code == 2 else RuntimeError(message)
        elif kind == "died":
            if not slot.ready:
                raise RuntimeError(f"a worker could not start: {payload}")
            if slot.case is not None:
                self.record(_failed(slot.case, f"the worker process died while processing this case ({payload})"))
            self._replace(slot)

    def _assign_idle(self) -> None:
        """Give a case to every idle worker (a row just in may have released follow-ups)."""
        for slot in self.slots:
            if slot.case is None:
                self._assign(slot)
        waiting = self.pending and not self.stopping and all(s.ready and s.case is None for s in self.slots)
        if waiting:  # nothing runs and nothing can start: find_cases refuses circular baselines, so a bug
            raise RuntimeError(f"cases wait for baselines that never finish: {', '.join(c.case_id for c in self.pending)}")

    def _assign(self, slot: _Slot) -> None:
        if self.stopping or not slot.ready:
            return
        case = slot.upcoming or self._next_ready() or self._steal()
        slot.upcoming = self._next_ready()
        slot.case = case
        if case is not None:
            slot.since = time.monotonic()
            if self.started is not None:
                self.started(case)
            self.engine.send(slot.worker, case, slot.upcoming)

    def _next_ready(self) -> Case | None:
        """The first pending case that waits for no baseline, told whether its baseline failed."""
        for index, case in enumerate(self.pending):
            if case.baseline_case is not None and case.baseline_case not in self.rows:
                continue
            del self.pending[index]
            baseline = self.rows.get(case.baseline_case) if case.baseline_case else None
            if baseline is not None and baseline["status"] == "failed":
                return replace(case, baseline_error=baseline["error"] or "no reason recorded")
            return case
        return None

    def _steal(self) -> Case | None:
        """Near the end, an idle worker takes the case another worker reserved, rather than wait."""
        for other in self.slots:
            if other.upcoming is not None:
                case, other.upcoming = other.upcoming, None
                return case
        return None

    def _enforce_time_limit(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.case is not None and now - slot.since > self.case_timeout:
                self.engine.kill(slot.worker)
                limit = f"timed out after {self.case_timeout:g} s (--case-timeout); its worker was stopped"
                self.record(_failed(slot.case, limit, now - slot.since))
                self._replace(slot)

    def _replace(self, slot: _Slot) -> None:
        """A new worker in place of one killed or dead; its reserved case goes back in the queue."""
        if slot.upcoming is not None:
            self.pending.appendleft(slot.upcoming)
        index = self.slots.index(slot)
        self.slots[index] = _Slot(self.engine.start())

    def _slot_of(self, worker) -> _Slot:
        return next(s for s in self.slots if s.worker is worker)

    def _wait_time(self) -> float:
        """Until the nearest time limit, at most half a second, so that Ctrl-C is seen promptly."""
        busy = [s.since + self.case_timeout - time.monotonic() for s in self.slots if s.case is not None]
        return max(0.01, min([0.5, *busy]))


def _failed(case: Case, error: str, seconds: float | None = None) -> dict:
    """The row of a case its worker could not finish (a follow-up's row names its baseline)."""
    row = failed_row(case.case_id, error, seconds)
    return with_change(row, case.baseline) if case.is_followup else row
