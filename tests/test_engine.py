"""The warm engine (``python -m monai_core.engine``): one process, many detect requests, JSON lines.

A real engine process answers a bad request with one line and then a good one; the request
parsing and the internal-error path are checked in-process with a stand-in pipeline.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LineReader
from monai_core.engine import Engine
from monai_core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "tests" / "data" / "TCGA-FG-6692"
# a generous bound on waiting for one line (the models loading, or one detection), so that an engine
# that hangs fails the test instead of stopping it; not a speed check
READ_LIMIT_S = 600


class _Client:
    """Drives an engine process: stdout holds the protocol, stderr goes to a file."""

    def __init__(self, tmp_path: Path):
        self.stderr_path = tmp_path / "engine.stderr"
        self.stderr = open(self.stderr_path, "w")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monai_core.engine"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )
        self.lines = LineReader(self.process.stdout)
        self.seen = []

    def read(self) -> dict:
        try:
            line = self.lines.next(timeout=READ_LIMIT_S, what="the engine's next line")
        except AssertionError as error:
            raise AssertionError(f"{error}; stderr: {self.stderr_path.read_text()[-2000:]}") from None
        self.seen.append(line)
        return json.loads(line)  # every stdout line is a JSON object

    def until(self, *keys: str) -> tuple[dict, list[dict]]:
        """Read lines until one with any of ``keys``; returns it and the progress lines before it."""
        progress = []
        while True:
            event = self.read()
            if any(k in event for k in keys):
                return event, progress
            assert {"stage", "progress", "message"} <= event.keys(), event
            progress.append(event)

    def send(self, text: str) -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def close(self) -> int:
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=120)
        finally:
            self.stderr.close()


def test_engine_answers_a_bad_request_in_one_line_and_stays_alive(tmp_path):
    client = _Client(tmp_path)
    try:
        ready, progress = client.until("ready")
        assert progress and progress[0]["message"] == "loading the models"
        assert ready["pid"] == client.process.pid and ready["model_loads"] == 1

        client.send(json.dumps({"flair": str(tmp_path / "missing.nii.gz"), "output": str(tmp_path / "out"), "id": "bad"}))
        bad, _ = client.until("done", "error")
        assert bad["kind"] == "input" and bad["id"] == "bad"
        assert bad["error"] == f"{tmp_path / 'missing.nii.gz'}: no such file or folder"
        client.send("this is not JSON")
        garbled, _ = client.until("done", "error")
        assert garbled["kind"] == "input" and "not JSON" in garbled["error"] and "\n" not in garbled["error"]

        client.send(json.dumps({"flair": str(RAW / "flair.nii.gz"), "output": str(tmp_path / "out"), "case_id": "ok", "id": 2}))
        good, progress = client.until("done", "error")
        assert good.get("done") is True, good
        assert good["id"] == 2 and good["report"] == str(tmp_path / "out" / "ok" / "report.json")
        assert good["engine"] == {"pid": client.process.pid, "requests": 3, "model_loads": 1, "study_reads": 1,
                                  "study_reuses": 0, "prediction_runs": 1, "prediction_reuses": 0, "result_runs": 1,
                                  "result_reuses": 0}
        assert {p["stage"] for p in progress} >= {"load", "classify", "segment", "write", "done"}
        assert "loading the models" not in [p["message"] for p in progress]
        report = json.loads(Path(good["report"]).read_text())
        assert report["case_id"] == "ok" and report["tumor_detected"]
    finally:
        code = client.close()
    assert code == 0  # end of file on stdin ends it
    stderr = client.stderr_path.read_text()
    assert f"tumorseg: error: {tmp_path / 'missing.nii.gz'}: no such file or folder" in stderr
    assert "Traceback" not in stderr


class _Pipeline:
    """Stands in for TumorSegPipeline: detect_case is replaced in these tests."""


@pytest.fixture
def engine():
    out, log = io.StringIO(), io.StringIO()
    return Engine(out, pipeline=_Pipeline(), log=log)


def test_request_becomes_detect_arguments(engine, tmp_path):
    args = engine.parse({"flair": "-odd name.nrrd", "t1": None, "output": str(tmp_path), "case_id": "c",
                         "seg_nrrd": True, "overlay": False})
    assert (args.flair, args.t1, args.output, args.case_id) == ("-odd name.nrrd", None, str(tmp_path), "c")
    assert args.seg_nrrd and not args.overlay and not args.dicom_seg
    args = engine.parse({"case_dir": "-kaggle", "output": "out"})
    assert args.case_dir == "-kaggle" and args.flair is None
    for request, message in (
        ({"flair": "x"}, "the following arguments are required: -o/--output"),
        ({"flair": "x", "output": "o", "bundle": "b"}, "unknown request key 'bundle': the bundle is chosen when the engine starts"),
        ({"flair": "x", "output": "o", "progress": "text"}, "unknown request key 'progress'"),
        ({"flare": "x", "output": "o"}, "unknown request key 'flare': expected some of: case_dir, case_id"),
        ({"flair": "x", "output": "o", "overwrite": "yes"}, "request key 'overwrite' must be true or false"),
        ({"flair": ["x"], "output": "o"}, "request key 'flair' must be a string"),
    ):
        with pytest.raises(InputError, match=message):
            engine.parse(request)


def test_internal_error_is_one_line_and_the_next_request_is_answered(engine, tmp_path, monkeypatch):
    import monai_core.detect

    calls = []

    def detect_case(pipeline, out_root, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("boom\non two lines")
        assert pipeline.pipeline is engine.pipeline and kwargs["progress"] is engine.progress  # through the memory
        assert kwargs["studies"] is engine.studies and kwargs["results"] is engine.results
        return {"case_id": kwargs["case_id"]}

    monkeypatch.setattr(monai_core.detect, "detect_case", detect_case)
    flair = RAW / "flair.nii.gz"
    request = {"flair": str(flair), "output": str(tmp_path / "out"), "case_id": "c"}
    lines = ["", json.dumps({**request, "id": 1}), "  ", "[1, 2]", json.dumps({**request, "id": 2})]
    assert engine.serve(iter(lines)) == 0
    answers = [json.loads(line) for line in engine.out.getvalue().splitlines()]
    assert [a.get("id") for a in answers] == [1, None, 2]
    failed, not_object, done = answers
    assert failed["error"] == "internal error in monai_core: RuntimeError: boom on two lines" and failed["kind"] == "internal"
    assert not_object["kind"] == "input" and "JSON object" in not_object["error"]
    assert done["done"] is True and done["report"] == str(tmp_path / "out" / "c" / "report.json")
    assert done["engine"] == {"pid": os.getpid(), "requests": 3, "model_loads": 0, "study_reads": 0, "study_reuses": 0,
                              "prediction_runs": 0, "prediction_reuses": 0, "result_runs": 0, "result_reuses": 0}
    log = engine.log.getvalue()
    assert "Traceback" in log and "tumorseg: internal error: RuntimeError: boom on two lines" in log
