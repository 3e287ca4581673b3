"""The ``tumorseg`` console entry (``monai_core.cli.console_main``) ends the process without the
interpreter's teardown, but only after what an exit must do: atexit handlers, flushed output, the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a run whose last words are still buffered, with an atexit handler that writes a file
_SCRIPT = """
import atexit, sys
from pathlib import Path
from monai_core import cli
atexit.register(lambda: Path(sys.argv[1]).write_text("atexit ran"))
def fake_main():
    sys.stdout.write("buffered line without a newline")
    sys.stderr.write("a warning\\n")
    return 3
cli.main = fake_main
cli.console_main()
print("never printed: console_main does not return")
"""


def _run(args, tmp_path, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def test_console_main_runs_atexit_flushes_and_keeps_the_exit_code(tmp_path):
    marker = tmp_path / "marker.txt"
    result = _run(["-c", _SCRIPT, str(marker)], tmp_path)
    assert result.returncode == 3
    assert result.stdout == "buffered line without a newline"  # flushed, and nothing after console_main
    assert result.stderr == "a warning\n"
    assert marker.read_text() == "atexit ran"


def test_python_m_monai_core_reports_bad_input_in_one_line(tmp_path):
    result = _run(["-m", "monai_core", "detect", "--flair", str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "out")],
                  tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "missing.nii.gz" in result.stderr, result.stderr


def test_a_usage_error_still_exits_with_2(tmp_path):
    result = _run(["-m", "monai_core", "no-such-command"], tmp_path)
    assert result.returncode == 2 and "invalid choice" in result.stderr
