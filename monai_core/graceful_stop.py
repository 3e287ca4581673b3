"""Stop a long-running command in two steps: the first signal lets the work in flight finish, the second
stops at once. Shared by ``tumorseg batch`` (Ctrl-C) and ``tumorseg listen`` (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def stop_on_signals(stop: threading.Event, announce, signals=(signal.SIGINT,)):
    """While inside: the first of ``signals`` sets ``stop`` and calls ``announce()``; the next raises
    KeyboardInterrupt. Outside the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        announce()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
