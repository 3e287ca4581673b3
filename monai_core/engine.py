"""The warm engine: one process that loads the models once and then runs ``detect`` and ``compare`` requests.

    python -m monai_core.engine [--bundle DIR]

The 3D Slicer module keeps one engine alive between "Detect tumor" clicks, so that importing
torch and loading both networks (several seconds) happens once, not on every click. Any other
program can drive it the same way. Every message is one JSON object on one line (UTF-8).

**stdin**: one request per line, an object whose keys are the arguments of ``tumorseg detect``
by their names (``tumorseg detect --help``); the request is checked by the same parser and the
same code as the command line (``monai_core.commands.detect``)::

    {"flair": "/in/flair.nrrd", "t1": "/in/t1.nrrd", "t1c": null, "output": "/out", "case_id": "case", "id": 1}

A request with ``"command": "compare"`` takes the arguments of ``tumorseg compare`` instead (the
Slicer module's "Compare with prior"; ``dates`` is a list of two ``YYYY-MM-DD`` strings)::

    {"command": "compare", "baseline": "/out/prior", "followup": "/out/case", "output": "/out/changes",
     "case_id": "change", "id": 2}

and is answered with ``{"done": true, "change": "/out/changes/change/change.json", "case_id": ...}``.
A request without ``command`` is a detect request.

Options that take a value take a string (or a number), flags (``seg_nrrd``, ``dicom_seg``,
``overlay``, ``overwrite``) take true or false, null is the same as leaving a key out, and
``case_dir`` is the positional Kaggle case folder. ``id`` (any JSON value) is returned in the
answer. The bundle is chosen when the engine starts (``--bundle``) and progress is always JSON,
so ``bundle`` and ``progress`` are not request keys. End of file on stdin ends the engine (exit 0).

**stdout** carries only these lines (everything else the process prints goes to stderr):

- progress, in the format of ``tumorseg detect --progress json``:
  ``{"stage": "classify", "progress": 0.0, "message": "classifying 26 slices"}``. The first is
  ``{"stage": "load", ..., "message": "loading the models"}``, once, at start;
- ``{"ready": true, "pid": ..., "model_loads": 1, "load_s": ...}``, once, when the models are loaded;
- one answer per request, after its progress lines, either
  ``{"done": true, "report": "/out/case/report.json", "case_id": "case", ...}`` or
  ``{"error": "<one line>", "kind": "input" | "internal", ...}``; both also carry ``id`` (when the
  request had one), ``elapsed_s`` and ``engine: {"pid", "requests", "model_loads", "study_reads",
  "study_reuses", "prediction_runs", "prediction_reuses", "result_runs", "result_reuses"}``.

**A second Detect on the same study** costs only what changed. The engine keeps the last two
studies it read, keyed by the content of the input files and the series options
(monai_core/study_cache.py): the same bytes under new paths (the Slicer module writes each click's
volumes to a new folder) are not read, registered or checked again, while inputs whose bytes
changed are. It keeps what it made of the last two studies (final mask, confidence, measurements),
keyed by the study's content and the pipeline's setting (monai_core/remembered_results.py), so an
unchanged study only has its outputs written again; and the networks' results on the last two
slice stacks, keyed by the slices' bytes (monai_core/remembered_predictions.py), so unchanged
slices skip the networks. The ``study_*``, ``result_*`` and ``prediction_*`` counts say which ran.

A request that fails (bad JSON, an unknown key, a bad input file, or an internal error) is
answered with ``error`` and the engine goes on with the next request. If the models cannot be
loaded, the engine answers ``{"error": ..., "kind": "startup"}`` at once and exits (code 2 for a
bad bundle, 1 otherwise).

**stderr** carries text for people: the ``tumorseg: error: ...`` line of a failed request as the
command line prints it, the traceback of an internal error, library warnings.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterable, TextIO

from .errors import InputError
from .progress import reporter
from .remembered_predictions import RememberedPredictions
from .remembered_results import RememberedResults

__all__ = ["Engine", "main"]

# detect arguments that are not request keys: the engine fixes them for its whole life
_FIXED = {"help": None, "progress": "progress is always JSON on the engine's stdout",
          "bundle": "the bundle is chosen when the engine starts (python -m monai_core.engine --bundle DIR)"}


def _load_study(*args):
    from .detect import load_study  # imported at the first request, as the rest of detect

    return load_study(*args)


def _study_cache():
    """The studies this engine read, so that a second Detect on the same inputs skips reading (monai_core.study_cache)."""
    from .study_cache import StudyCache

    return StudyCache(_load_study)


def _one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _command_parser(name: str) -> argparse.ArgumentParser:
    """The ``tumorseg <name>`` parser itself, with the command line's one-line usage errors."""
    from .cli import _Parser
    from .commands import compare, detect

    subparsers = _Parser(prog="tumorseg").add_subparsers(dest="command", parser_class=_Parser)
    return {"detect": detect, "compare": compare}[name].add_parser(subparsers)


COMMANDS = ("detect", "compare")


class Engine:
    """Answers ``detect`` and ``compare`` requests with one loaded pipeline; see the module docstring for the protocol.

    Args:
        out: the stream for protocol lines (the process's original stdout).
        bundle: the bundle folder; None for the bundle shipped with TumorSeg.
        pipeline: an already loaded ``TumorSegPipeline`` (then :meth:`load` is not needed).
        log: the stream for text for people (stderr).
    """

    def __init__(self, out: TextIO, bundle: str | Path | None = None, pipeline=None, log: TextIO | None = None) -> None:
        self.out = out
        self.log = log or sys.stderr
        self.bundle = bundle
        self.pipeline = pipeline
        self.progress = reporter("json", stream=out)
        self.parsers = {name: _command_parser(name) for name in COMMANDS}
        self.command_actions = {name: {a.dest: a for a in parser._actions if a.dest not in _FIXED}
                                for name, parser in self.parsers.items()}
        self.requests = 0
        self.model_loads = 0
        self.studies = _study_cache()
        self.predictions = RememberedPredictions()
        self.results = RememberedResults()

    def send(self, message: dict) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def load(self) -> None:
        """Load the bundle's two networks and announce ``ready``."""
        from .pipeline import DEFAULT_BUNDLE, TumorSegPipeline

        self.progress("load", 0.0, "loading the models")
        started = time.perf_counter()
        self.pipeline = TumorSegPipeline(self.bundle or DEFAULT_BUNDLE)
        self.model_loads += 1
        self.send({"ready": True, "pid": os.getpid(), "model_loads": self.model_loads,
                   "load_s": round(time.perf_counter() - started, 3), "bundle": self.pipeline.identity})

    def serve(self, lines: Iterable[str]) -> int:
        """Answer each non-empty line until the end of ``lines``."""
        for line in lines:
            if line.strip():
                self.send(self.handle(line))
        return 0

    def handle(self, line: str) -> dict:
        """The answer to one request line (never raises, except KeyboardInterrupt and SystemExit)."""
        from .commands.detect import detect_from_args

        started = time.perf_counter()
        request_id = None
        try:
            request = self.decode(line)
            request_id = request.pop("id", None)
            command = request.pop("command", None) or "detect"
            if command not in COMMANDS:
                raise InputError(None, f"unknown command {command!r}: expected one of {', '.join(COMMANDS)}")
            args = self.parse(request, command)
            if command == "compare":
                answer = self.compare(args)
            else:
                report = detect_from_args(args, self.progress, pipeline=self.predictions.around(self.pipeline),
                                          studies=self.studies, results=self.results)
                path = Path(args.output) / report["case_id"] / "report.json"
                answer = {"done": True, "report": str(path), "case_id": report["case_id"]}
        except InputError as error:
            message = _one_line(error)
            print(f"tumorseg: error: {message}", file=self.log, flush=True)
            answer = {"error": message, "kind": "input"}
        except Exception as error:  # an internal error: the traceback for the bug report, the engine goes on
            traceback.print_exc(file=self.log)
            message = _one_line(f"{type(error).__name__}: {error}")
            print(f"tumorseg: internal error: {message}", file=self.log, flush=True)
            answer = {"error": f"internal error in monai_core: {message}", "kind": "internal"}
        self.requests += 1
        if request_id is not None:
            answer["id"] = request_id
        answer["elapsed_s"] = round(time.perf_counter() - started, 3)
        answer["engine"] = {"pid": os.getpid(), "requests": self.requests, "model_loads": self.model_loads,
                            "study_reads": self.studies.reads, "study_reuses": self.studies.hits,
                            "prediction_runs": self.predictions.runs, "prediction_reuses": self.predictions.hits,
                            "result_runs": self.results.runs, "result_reuses": self.results.hits}
        return answer

    def compare(self, args: argparse.Namespace) -> dict:
        """A compare request: the same function as ``tumorseg compare`` (the models are not needed)."""
        from .compare import compare_cases

        self.progress("compare", 0.0, "registering the follow-up to the baseline")
        change = compare_cases(args.baseline, args.followup, args.output, args.case_id, args.dates, args.overwrite,
                               args.dicom_sr)
        self.progress("compare", 1.0, "change written")
        path = Path(args.output) / change["case_id"] / "change.json"
        return {"done": True, "change": str(path), "case_id": change["case_id"]}

    @staticmethod
    def decode(line: str) -> dict:
        try:
            request = json.loads(line)
        except ValueError as error:
            raise InputError(None, f"the request is not JSON ({error})") from None
        if not isinstance(request, dict):
            raise InputError(None, "the request must be a JSON object of detect arguments")
        return request

    def parse(self, request: dict, command: str = "detect") -> argparse.Namespace:
        """Turn a request object into the command's argument list and parse it with the command's own parser."""
        argv, positional = [], {}
        actions = self.command_actions[command]
        for key, value in request.items():
            action = actions.get(key)
            if action is None:
                reason = _FIXED.get(key) or f"expected some of: {', '.join(sorted(actions))}"
                raise InputError(None, f"unknown request key {key!r}: {reason}")
            if value is None:
                continue
            if not action.option_strings:
                positional[key] = str(value)
            elif isinstance(action.nargs, int) and action.nargs > 1:  # compare's --dates D1 D2
                if not isinstance(value, list) or len(value) != action.nargs or not all(isinstance(v, str) for v in value):
                    raise InputError(None, f"request key {key!r} must be a list of {action.nargs} strings")
                argv += [max(action.option_strings, key=len), *value]
            elif action.nargs == 0:  # a flag
                if not isinstance(value, bool):
                    raise InputError(None, f"request key {key!r} must be true or false")
                if value:
                    argv.append(max(action.option_strings, key=len))
            else:
                if isinstance(value, (bool, list, dict)):
                    raise InputError(None, f"request key {key!r} must be a string")
                argv.append(f"{max(action.option_strings, key=len)}={value}")  # "=": a value may start with "-"
        if positional:  # in the parser's order (compare's baseline before followup), whatever the request's
            argv += ["--", *(positional[dest] for dest in actions if dest in positional)]
        messages = io.StringIO()
        try:
            with contextlib.redirect_stderr(messages):
                return self.parsers[command].parse_args(argv)
        except SystemExit:
            lines = [line for line in messages.getvalue().splitlines() if line.strip()]
            message = lines[-1] if lines else "invalid request"
            raise InputError(None, message.split(": error: ", 1)[-1]) from None


def _protocol_stream() -> TextIO:
    """A stream on the original stdout for protocol lines; fd 1 and sys.stdout now go to stderr.

    So that nothing else (a print, a C library's message) can interleave with the protocol.
    """
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_core.engine",
        description="Load the models once, then answer detect requests: one JSON object per line on stdin.",
        epilog="The protocol is described in monai_core/engine.py.",
    )
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: the bundle shipped with TumorSeg)")
    options = parser.parse_args(argv)
    engine = Engine(_protocol_stream(), bundle=options.bundle)
    try:
        engine.load()
    except InputError as error:
        message = _one_line(error)
        print(f"tumorseg: error: {message}", file=sys.stderr, flush=True)
        engine.send({"error": message, "kind": "startup"})
        return 2
    except Exception as error:
        traceback.print_exc()
        message = _one_line(f"{type(error).__name__}: {error}")
        print(f"tumorseg: internal error: {message}", file=sys.stderr, flush=True)
        engine.send({"error": f"internal error in monai_core: {message}", "kind": "startup"})
        return 1
    try:
        return engine.serve(iter(sys.stdin.readline, ""))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
