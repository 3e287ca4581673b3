"""The node's outbox: the results of done requests, sent to the destination and retried until they are stored.

It runs in a thread of its own, so that a destination that is down or slow never holds up the
reception or the workers. A failed send is tried again after ``retry_after`` seconds, doubling at
each failure up to ``retry_max``, and the request stays ``done`` (listed in the summary with its
last error) until every file is stored. Each file's success is written to the request's state
file as soon as the destination answers, so a restart sends only what was not stored yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..batch.summary import one_line
from ..errors import InputError
from .address import DicomAddress
from .requests import Request, RequestStore
from .store import SendError, send_files

__all__ = ["Outbox", "retry_delay"]


def retry_delay(attempts: int, first: float, longest: float) -> float:
    """Seconds to wait after the ``attempts``-th failed send in a row: first, 2 x first, 4 x first... at most ``longest``."""
    return min(longest, first * 2 ** min(attempts - 1, 32))


class Outbox:
    """Sends ``to_send`` of every ``done`` request to ``destination``; ``changed()`` after each change of state."""

    def __init__(self, requests: RequestStore, results: Path, destination: DicomAddress, calling_ae: str,
                 retry_after: float, retry_max: float, log: Callable[[str, str], None],
                 changed: Callable[[], None], timeout: float = 30.0) -> None:
        self.requests = requests
        self.results = Path(results)
        self.destination = destination
        self.calling_ae = calling_ae
        self.retry_after = retry_after
        self.retry_max = retry_max
        self.log = log
        self.changed = changed
        self.timeout = timeout
        self.wake = threading.Event()  # set when a request becomes done, so that it goes at once
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tumorseg-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the send in progress (a send cut off here is simply made again after a restart)."""
        self._stopping.set()
        self.wake.set()
        self._thread.join(timeout=self.timeout + 5)

    def _waiting(self) -> list[Request]:
        return [r for r in self.requests.all() if r.state == "done" and r.to_send]

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.wake.clear()
            for request in self._waiting():
                if self._stopping.is_set():
                    return
                if request.next_try <= time.time():
                    self._send(request.case_id)
            next_tries = [r.next_try for r in self._waiting()]
            pause = 5.0 if not next_tries else min(5.0, max(0.0, min(next_tries) - time.time()))
            self.wake.wait(pause)

    def _send(self, case_id: str) -> None:
        request = self.requests.get(case_id)
        files = [self.results / case_id / name for name in request.to_send]

        def stored(path: Path) -> None:
            current = self.requests.get(case_id)
            self.requests.update(case_id, to_send=[n for n in current.to_send if n != path.name],
                                 sent=[*current.sent, path.name], sent_to=str(self.destination))

        try:
            send_files(files, self.destination, self.calling_ae, self.timeout, on_sent=stored)
        except (SendError, InputError) as error:
            self._failed(case_id, str(error))
            return
        except Exception as error:  # noqa: BLE001 - an unexpected error must not stop the outbox for every case
            self._failed(case_id, f"{type(error).__name__}: {error}")
            return
        request = self.requests.update(case_id, state="sent", last_error="")
        self.log(case_id, f"sent {', '.join(request.sent)} to {self.destination}")
        self.changed()

    def _failed(self, case_id: str, error: str) -> None:
        attempts = self.requests.get(case_id).attempts + 1
        delay = retry_delay(attempts, self.retry_after, self.retry_max)
        self.requests.update(case_id, attempts=attempts, next_try=time.time() + delay, last_error=one_line(error))
        self.log(case_id, f"send {attempts} failed: {one_line(error)}; next try in {delay:.0f} s")
        self.changed()
