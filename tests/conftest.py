"""Shared fixtures: the repository's own sample data (no ../shared needed) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# In CI (.ci/run), a skip that .ci/run does not list with its reason is a failure (tests/ci_skips.py).
from ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
KAGGLE = DATA / "kaggle_3m"
RAW = DATA / "TCGA-FG-6692"
VALIDATION = DATA / "validation"  # a fold-0 validation patient: not trained on
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
