"""The fuzz harness (tests/fuzz/fuzz_loaders.py) in its short, deterministic mode.

Hypothesis mutates real NIfTI, DICOM and NRRD headers; reading and preprocessing each input may
only raise InputError. The long run is ``python tests/fuzz/fuzz_loaders.py --minutes 10``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
import fuzz_loaders  # noqa: E402

EXAMPLES = 25  # per format: about 20-40 s in all on two cores


@pytest.mark.parametrize("index, name", [(0, "nifti"), (1, "dicom"), (2, "nrrd")])
def test_fuzz_short(index, name):
    before = dict(fuzz_loaders.STATS)
    fuzz_loaders.build_tests(examples=EXAMPLES, derandomize=True)[index]()
    tried = fuzz_loaders.STATS["inputs"] - before["inputs"]
    refused = fuzz_loaders.STATS["input_errors"] - before["input_errors"]
    assert tried >= EXAMPLES // 2, f"{name}: only {tried} inputs generated"
    assert refused > 0, f"{name}: no mutation was refused, so the mutations break nothing"


def test_the_target_reports_a_crash():
    """The harness fails on anything but InputError (here: a preprocessing bug)."""
    original = fuzz_loaders.model_grid
    try:
        fuzz_loaders.model_grid = lambda image: (_ for _ in ()).throw(ZeroDivisionError("bug"))
        with pytest.raises(ZeroDivisionError):
            fuzz_loaders.target("flair.nii", fuzz_loaders.NIFTI_SEED)
    finally:
        fuzz_loaders.model_grid = original
