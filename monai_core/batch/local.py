"""The local engine: worker processes on this machine, each with its own copy of the networks.

Workers are started with "spawn", so that none inherits the parent's threads or state, and they
ignore Ctrl-C: the parent decides when to stop, and the cases in flight finish first. A worker
dies with the parent, even when the parent is killed with SIGKILL, so that a batch run again with
``--resume`` never races an orphan for the same case.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from .worker import CaseProcessor, WorkerSettings, startup_message

__all__ = ["LocalEngine"]

_PR_SET_PDEATHSIG = 1


@dataclass(eq=False)  # compared and hashed by identity
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    dead: bool = False


class LocalEngine:
    """Worker processes talking to the parent over one pipe each (see :class:`~.scheduler.Engine`)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.started: list[_Worker] = []

    def start(self) -> _Worker:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(
            target=worker_main, args=(child_end, self.settings, os.getpid()), name="tumorseg-worker", daemon=True
        )
        with _sigint_ignored():  # the child inherits "ignore", so Ctrl-C never reaches it, even while it imports
            process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        self.started.append(worker)
        return worker

    def send(self, worker: _Worker, case, upcoming) -> None:
        try:
            worker.conn.send(("case", (case, upcoming)))
        except OSError:  # it died; poll() reports it through its sentinel
            pass

    def poll(self, workers: list[_Worker], timeout: float) -> list[tuple[_Worker, str, object]]:
        live = [w for w in workers if not w.dead]
        waitables = {}
        for w in live:
            waitables[w.conn] = w
            waitables[w.process.sentinel] = w
        if not waitables:
            time.sleep(timeout)
            return []
        ready = wait(list(waitables), timeout)
        events = []
        for w in dict.fromkeys(waitables[r] for r in ready):
            events.extend(self._drain(w))
        return events

    def _drain(self, worker: _Worker) -> list[tuple[_Worker, str, object]]:
        """Every message the worker sent, then "died" if it is gone (a row sent just before dying counts)."""
        events = []
        try:
            while worker.conn.poll():
                kind, payload = worker.conn.recv()
                events.append((worker, kind, payload))
        except (EOFError, OSError):
            pass
        worker.process.join(timeout=0.05 if not events else 0)
        if not worker.process.is_alive() and worker.process.exitcode is not None:
            worker.dead = True
            events.append((worker, "died", _describe_exit(worker.process.exitcode)))
        return events

    def kill(self, worker: _Worker) -> None:
        worker.dead = True
        worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()

    def close(self, graceful: bool) -> None:
        """Ask idle workers to stop (graceful), or kill them all; no worker outlives the batch."""
        for w in self.started:
            if not w.dead and graceful:
                with contextlib.suppress(OSError):
                    w.conn.send(("stop", None))
        deadline = time.monotonic() + (10 if graceful else 0)
        for w in self.started:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=10)
            w.conn.close()
        self.started.clear()


def worker_main(conn: Connection, settings: WorkerSettings, parent_pid: int) -> None:
    """A worker process: load the networks once, then process the cases the parent sends, one at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    holder = {}
    kind, payload = startup_message(lambda: holder.setdefault("processor", CaseProcessor(settings)))
    conn.send((kind, payload))
    if kind != "ready":
        return
    processor = holder["processor"]
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if kind == "stop":
            return
        case, upcoming = payload
        conn.send(("row", processor.process(case, upcoming)))


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this worker when the parent dies (Linux), and watch the parent elsewhere as a fallback."""
    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="tumorseg-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
