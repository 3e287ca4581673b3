"""Shared fixtures: the repository's own sample data (no ../shared needed) and a CLI runner."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# In CI (.ci/run), a skip that .ci/run does not list with its reason is a failure (tests/ci_skips.py).
from ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
KAGGLE = DATA / "kaggle_3m"
RAW = DATA / "TCGA-FG-6692"
VALIDATION = DATA / "validation"  # a fold-0 development patient (0.4.0 trained on it: tests/data/validation/README.md)
BET = DATA / "bet"  # real skull-stripped scans with reference masks
BUNDLE = ROOT / "bundle"
SAMPLE_PATIENTS = sorted(p.name for p in KAGGLE.iterdir() if p.is_dir())


@pytest.fixture(scope="session")
def pipeline():
    """The shipped bundle's two networks, loaded once (checksums verified)."""
    from monai_core.pipeline import TumorSegPipeline

    return TumorSegPipeline(BUNDLE)


def save_enhanced_mr(series_dir: Path, folder: Path) -> Path:
    """The series as one Legacy Converted Enhanced MR file (highdicom): frame geometry in functional groups."""
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=[pydicom.dcmread(p) for p in sorted(series_dir.glob("*.dcm"))],
        series_instance_uid=generate_uid(), series_number=100, sop_instance_uid=generate_uid(), instance_number=1,
    )
    folder.mkdir()
    enhanced.save_as(folder / "enhanced.dcm")
    return folder


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m monai_core ...`` in a fresh process, as a user would."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "monai_core", *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class LineReader:
    """Lines of a child's output stream, read in a thread, so that a wait for a line can time out.

    A child that hangs then fails the test after ``timeout`` seconds instead of blocking it forever;
    the timeouts are generous bounds on a wait for an event, not speed checks.
    """

    def __init__(self, stream) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\r\n"))
        self.lines.put(None)  # end of the stream

    def next(self, timeout: float, what: str = "a line") -> str:
        """The next line; fails when the stream ends or nothing comes within ``timeout`` seconds."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"waited {timeout:g} s for {what}; last lines: {self.seen[-5:]}") from None
        if line is None:
            self.lines.put(None)
            raise AssertionError(f"the stream ended while waiting for {what}; last lines: {self.seen[-5:]}")
        self.seen.append(line)
        return line

    def rest(self, timeout: float) -> list[str]:
        """Every line up to the end of the stream (the child has ended or is ending)."""
        lines = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the stream did not end within {timeout:g} s") from None
            if line is None:
                self.lines.put(None)
                self.seen += lines
                return lines
            lines.append(line)

    def until(self, predicate, timeout: float, what: str = "a line") -> str:
        """The first line for which ``predicate`` is true, within ``timeout`` seconds in all."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.0, deadline - time.monotonic()), what)
            if predicate(line):
                return line


@contextlib.contextmanager
def fail_after(seconds: int, what: str):
    """Fail, rather than hang, when ``what`` never ends: SIGALRM raises in the main thread after ``seconds``.

    A generous last guard on code that waits in Python (a loop, a sleep, a queue), not a speed check.
    Guards nest: an outer one is restored, with its remaining time, when an inner one ends.
    """
    def expired(signum, frame):
        raise AssertionError(f"{what} did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    outer_left = signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.alarm(outer_left)
