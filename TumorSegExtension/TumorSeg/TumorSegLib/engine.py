"""The TumorSeg engine process, kept warm between detections.

``python -m monai_core.engine`` (see monai_core/engine.py for its protocol) runs in its own
process, with the Python that runs ``monai_core`` today (PythonSlicer in Slicer), so that Slicer's
own Python never imports torch. It loads both networks once and then answers one JSON request
per line on its stdin; it reports progress and one answer per request as JSON lines on its
stdout. Its stderr (messages for people, tracebacks) is merged into the same pipe, in order,
and kept as the log of the run.

- :class:`Engine` starts the process, keeps it between requests, and starts a new one when a
  request finds it ended (after a cancel or a crash).
- :class:`EngineRun` is one request: the caller pumps its output (from a Qt timer or a loop),
  and cancelling it ends the engine's whole process tree at once (a background thread reaps it).
- :func:`sharedEngine` is the one warm engine of a Slicer session, used by every TumorSegLogic.

No Slicer or Qt here: the caller drives :meth:`EngineRun.pump`.
"""

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from .errors import TumorSegError

ENGINE_MODULE = "monai_core.engine"
# Parts of the progress bar for the stages that monai_core reports (its --progress json format).
STAGE_RANGES = {
    "start": (0.0, 0.03),  # writing the inputs, starting the process
    "load": (0.03, 0.15),
    "register": (0.15, 0.45),
    "preprocess": (0.45, 0.5),
    "classify": (0.5, 0.7),
    "segment": (0.7, 0.9),
    "write": (0.9, 0.95),
    "done": (0.95, 0.96),
    "compare": (0.15, 0.95),  # a compare request (Compare with prior)
}


def _readLines(stream, lines):
    """Reader thread: the engine's output lines into a queue (it holds no reference to the Engine)."""
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    stream.close()


def _reap(process, reader):
    """Reaper thread: end a killed engine's process tree (Windows: taskkill) and wait for it and its reader."""
    if os.name == "nt" and process.poll() is None:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
    process.wait()
    if reader is not None:
        reader.join()


def _parseEvent(line):
    """The JSON object on a line, or None for text."""
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class Engine:
    """One ``python -m monai_core.engine`` process with the models loaded, started again when it has ended.

    :param pythonExecutable: the Python that runs monai_core (PythonSlicer inside Slicer).
    :param workDir: the folder holding ``monai_core/`` and ``bundle/``: the process's working
        directory and first PYTHONPATH entry.
    :param keepAlive: False for an engine used for one request only (see :func:`sharedEngine`).
    """

    def __init__(self, pythonExecutable, workDir, keepAlive=True):
        self.pythonExecutable = str(pythonExecutable)
        self.workDir = Path(workDir)
        self.keepAlive = keepAlive
        self.process = None
        self.lines = None
        self.reader = None
        self.run = None  # the EngineRun being answered
        self.starts = 0  # processes started
        self.modelLoads = 0  # "ready" events: times the models were loaded
        self.lastAnswer = None
        self.reapers = []  # threads waiting for killed engine processes to end

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    def isAlive(self):
        return self.process is not None and self.process.poll() is None

    def isBusy(self):
        return self.run is not None

    def start(self):
        """Start the process unless it is running. It loads the models, then waits for requests."""
        if self.isAlive():
            return
        self._close()
        env = os.environ.copy()
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(self.workDir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        kwargs = {}
        if os.name == "nt":
            info = subprocess.STARTUPINFO()
            info.dwFlags |= subprocess.STARTF_USESHOWWINDOW  # no console window
            kwargs["startupinfo"] = info
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # own process group: cancel ends the whole tree
        command = [self.pythonExecutable, "-m", ENGINE_MODULE]
        logging.info("TumorSeg: starting the engine: " + subprocess.list2cmdline(command))
        self.process = subprocess.Popen(
            command,
            cwd=str(self.workDir),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            **kwargs,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=_readLines, args=(self.process.stdout, self.lines), daemon=True)
        self.reader.start()
        self.starts += 1

    def submit(self, request, tempDir, caseDir):
        """Send one detect request (a dict of ``tumorseg detect`` arguments) and return its EngineRun.

        Starts the engine if it is not running; a request sent while it loads the models waits in its stdin.
        """
        if self.run is not None:
            raise TumorSegError("A detection is already running in this engine.")
        line = json.dumps(request) + "\n"
        for attempt in range(2):
            self.start()
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
                break
            except OSError as error:  # it ended since it was last seen running: start another once
                self.kill()
                if attempt:
                    raise TumorSegError(f"Could not send the request to the TumorSeg engine: {error}") from None
        self.run = EngineRun(self, tempDir, caseDir)
        return self.run

    def kill(self, process=None):
        """End the process and all its children (cancel), without waiting for them.

        The process is detached at once, so the next request starts a new engine, and its whole
        process group is killed; a background thread then waits for it (and its output reader) to
        end, so that no zombie is left and the caller (Slicer's GUI thread) never blocks.

        :param process: kill only if this is still the engine's process (None: whatever it runs now).
        """
        if process is not None and process is not self.process:
            return
        process, reader = self.process, self.reader
        self.run = None
        self._close()
        self.process = self.lines = self.reader = None
        if process is None:
            return
        if os.name != "nt":
            # SIGKILL to the whole group (data loader workers included) while the leader is not yet
            # reaped, so the group id cannot have been reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        reaper = threading.Thread(target=_reap, args=(process, reader), name="TumorSeg engine reaper", daemon=True)
        reaper.start()
        self.reapers.append(reaper)

    def stop(self, timeout=5.0):
        """Let the engine end on its own (end of file on its stdin), else end it."""
        if self.process is None:
            return
        if self.process.poll() is None and self.run is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _close(self):
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


class EngineRun:
    """One request to the engine: its temporary folder, the engine's output lines, its state.

    ``process`` is the engine process that serves it (the same for every request until the engine
    ends). The run is finished when the engine has answered, or when the process has ended.
    """

    def __init__(self, engine, tempDir, caseDir):
        self.engine = engine
        self.process = engine.process
        self.lines = engine.lines
        self.reader = engine.reader
        self.tempDir = tempDir
        self.caseDir = caseDir
        self.log = []
        self.errorMessage = None
        self.answer = None
        self.cancelled = False
        self.progress = STAGE_RANGES["start"][1]

    def answered(self):
        return self.answer is not None

    def succeeded(self):
        return bool(self.answer and self.answer.get("done"))

    def finished(self):
        if self.answer is not None:
            return True
        return self.process.poll() is not None and not self.reader.is_alive() and self.lines.empty()

    def pump(self, progressCallback, wait=0.0):
        """Handle the output lines received so far; stops after the answer.

        :param wait: seconds to wait for a line when none has come yet (0: return at once), so that a
            caller's loop wakes as soon as the engine answers instead of after a fixed sleep.
        """
        while self.answer is None:
            try:
                line = self.lines.get(timeout=wait) if wait > 0 else self.lines.get_nowait()
            except queue.Empty:
                return
            wait = 0.0
            event = _parseEvent(line)
            if event is not None and "progress" in event:
                # The engine reports progress within each stage; stages map to consecutive parts of the bar.
                start, end = STAGE_RANGES.get(event.get("stage"), (self.progress, self.progress))
                fraction = min(1.0, max(0.0, float(event.get("progress") or 0.0)))
                self.progress = max(self.progress, start + (end - start) * fraction)
                message = str(event.get("message") or event.get("stage") or "")
                if progressCallback:
                    progressCallback(self.progress, message)
                continue
            if event is not None and event.get("ready"):
                self.engine.modelLoads += 1
                logging.info(f"TumorSeg: engine {event.get('pid')} loaded the models in {event.get('load_s')} s")
                continue
            if event is not None and ("done" in event or "error" in event):
                self.answer = event
                self.engine.lastAnswer = event
                if self.engine.run is self:
                    self.engine.run = None
                if "error" in event:
                    self.errorMessage = str(event["error"])
                continue
            self.log.append(line)
            if line.startswith("tumorseg: error: "):
                self.errorMessage = line[len("tumorseg: error: "):].strip()
            elif line.startswith("tumorseg: internal error: "):
                self.errorMessage = "internal error in monai_core: " + line[len("tumorseg: internal error: "):].strip()
            logging.info(f"monai_core: {line}")

    def kill(self):
        """End the engine (and with it this run); returns at once, the process is reaped in the background."""
        self.engine.kill(self.process)

    def cancel(self):
        self.cancelled = True
        self.kill()

    def removeTempDir(self):
        shutil.rmtree(self.tempDir, ignore_errors=True)

    def release(self):
        """The run is over: the engine takes requests again, or ends if it was for this request only."""
        if not self.answered() and self.process.poll() is None:
            self.engine.kill(self.process)  # stopped part-way (an exception in a callback): its state is unknown
        if self.engine.run is self:
            self.engine.run = None
        if not self.engine.keepAlive:
            self.engine.stop()

    def failure(self):
        """The TumorSegError for a run that ended without a result: the engine's one line, or how it ended."""
        details = "\n".join(self.log[-200:])
        if self.errorMessage:
            return TumorSegError(self.errorMessage, details)
        code = self.process.poll()
        lastLine = next((line for line in reversed(self.log) if line.strip()), "")
        return TumorSegError(f"The TumorSeg engine ended with exit code {code}" + (f": {lastLine}" if lastLine else ""), details)


_shared = None


def sharedEngine(pythonExecutable, workDir):
    """The warm engine of this Slicer session, shared by every TumorSegLogic.

    Ends when Slicer ends (its stdin closes) or with :func:`stopSharedEngine`.
    """
    global _shared
    if _shared is None or (_shared.pythonExecutable, _shared.workDir) != (str(pythonExecutable), Path(workDir)):
        stopSharedEngine()
        _shared = Engine(pythonExecutable, workDir)
    return _shared


def stopSharedEngine():
    global _shared
    engine, _shared = _shared, None
    if engine is not None:
        engine.stop()
