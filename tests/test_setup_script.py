"""setup.sh asks for PyTorch's CPU build unless told otherwise, and a second run installs nothing.

PyPI's Linux wheel of torch is the CUDA build (several GB); setup.sh therefore installs torch first,
pinned as in pyproject.toml, with PyTorch's CPU index as an extra index, and
``TUMORSEG_TORCH_INDEX_URL`` replaces that index (empty: only the sources pip is configured with).
The script runs for real here, on a copy of it beside pyproject.toml, with a ``.venv`` whose pip
records its arguments instead of installing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
RECORDING_PIP = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$(dirname "$0")/pip_calls.txt"
"""


def torch_pin() -> str:
    """``torch==X`` as pyproject.toml pins it (read as text: tomllib needs Python 3.11, the project allows 3.10)."""
    [pin] = re.findall(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    return pin


@pytest.fixture
def checkout(tmp_path):
    """setup.sh and pyproject.toml in a folder whose .venv exists, with a pip that only records its calls."""
    for name in ("setup.sh", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pip"):
        (bin_dir / name).write_text(RECORDING_PIP)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run_setup(checkout: Path, **env: str) -> list[str]:
    """The pip calls of one run of setup.sh, one line of arguments each."""
    calls = checkout / ".venv" / "bin" / "pip_calls.txt"
    calls.unlink(missing_ok=True)
    environment = {k: v for k, v in os.environ.items() if k != "TUMORSEG_TORCH_INDEX_URL"} | env
    result = subprocess.run(["bash", str(checkout / "setup.sh")], env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TumorSeg is set up" in result.stdout
    return calls.read_text().splitlines() if calls.exists() else []


def test_torch_comes_first_from_the_cpu_index(checkout):
    first, second = run_setup(checkout)
    assert first.split() == ["install", "--quiet", "--disable-pip-version-check", "--extra-index-url", CPU_INDEX,
                             torch_pin()]
    assert second.split() == ["install", "--quiet", "--disable-pip-version-check", "-e", ".[test]"]


def test_the_index_variable_replaces_the_cpu_index(checkout):
    mirror = "https://download.pytorch.org/whl/cu126"
    first, _ = run_setup(checkout, TUMORSEG_TORCH_INDEX_URL=mirror)
    assert first.split()[-3:] == ["--extra-index-url", mirror, torch_pin()]


def test_an_empty_index_variable_uses_only_pips_own_sources(checkout):
    first, _ = run_setup(checkout, TUMORSEG_TORCH_INDEX_URL="")
    assert "--extra-index-url" not in first and first.split()[-1] == torch_pin()


def test_a_second_run_installs_nothing(checkout):
    assert len(run_setup(checkout)) == 2
    assert run_setup(checkout) == []
