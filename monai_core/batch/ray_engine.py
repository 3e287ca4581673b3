"""The Ray engine: the same per-case function as the local engine, in Ray actors.

Each actor is one worker: it loads the networks once (a :class:`~.worker.CaseProcessor`) and
processes the cases the driver sends it, one at a time. Without an address the driver starts a
private local Ray instance limited to the CPUs the batch may use, without the dashboard; with an
address it joins that cluster, where every node must have TumorSeg installed and see the input
files and OUT at the same paths (a shared filesystem). Outputs are written by the actors straight
into OUT, atomically as for the local engine; the summary is written by the driver.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray

from .summary import one_line
from .worker import CaseProcessor, WorkerSettings, startup_message

__all__ = ["RayEngine"]

_LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # results are summary rows: a small store is plenty


class CaseActor:
    """A Ray actor around one :class:`CaseProcessor`; a start-up failure is reported, not raised."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.processor = None
        self.startup = startup_message(self._build(settings))

    def _build(self, settings):
        def build():
            self.processor = CaseProcessor(settings)

        return build

    def ready(self) -> tuple[str, object]:
        return self.startup

    def process(self, case, upcoming) -> tuple[str, object]:
        return "row", self.processor.process(case, upcoming)


@dataclass(eq=False)  # compared and hashed by identity
class _Worker:
    actor: object
    ref: object = None  # the one call in flight: ready() or process()
    dead: bool = False


class RayEngine:
    """Ray actors as workers (see :class:`~.scheduler.Engine`)."""

    def __init__(self, settings: WorkerSettings, workers: int, address: str | None = None) -> None:
        self.settings = settings
        self.started: list[_Worker] = []
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers * settings.threads,
                include_dashboard=False,
                object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        # one actor per worker, holding the CPU share its torch threads use
        self.actor_class = ray.remote(num_cpus=settings.threads, max_restarts=0)(CaseActor)

    def start(self) -> _Worker:
        actor = self.actor_class.remote(self.settings)
        worker = _Worker(actor, actor.ready.remote())
        self.started.append(worker)
        return worker

    def send(self, worker: _Worker, case, upcoming) -> None:
        worker.ref = worker.actor.process.remote(case, upcoming)

    def poll(self, workers: list[_Worker], timeout: float) -> list[tuple[_Worker, str, object]]:
        calls = {w.ref: w for w in workers if w.ref is not None and not w.dead}
        if not calls:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(calls), num_returns=1, timeout=timeout)
        if ready:  # collect every call that has finished, not only the first
            ready, _ = ray.wait(list(calls), num_returns=len(calls), timeout=0)
        return [self._result(calls[ref], ref) for ref in ready]

    def _result(self, worker: _Worker, ref) -> tuple[_Worker, str, object]:
        worker.ref = None
        try:
            kind, payload = ray.get(ref)
        except ray.exceptions.RayError as error:
            worker.dead = True
            return worker, "died", one_line(error, 300)
        return worker, kind, payload

    def kill(self, worker: _Worker) -> None:
        worker.dead = True
        ray.kill(worker.actor, no_restart=True)

    def close(self, graceful: bool) -> None:
        for worker in self.started:
            if not worker.dead:
                ray.kill(worker.actor, no_restart=True)
        self.started.clear()
        ray.shutdown()
