"""``tumorseg batch --engine ray`` on a private local Ray instance: the same results as the local engine.

Both engines run the same per-case function (``monai_core.batch.worker.CaseProcessor``) with the
same number of torch threads, so everything but the timings must be identical.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import KAGGLE, run_cli
from test_batch import SMALL, read_summary, without_timing

pytest.importorskip("ray")


def test_ray_engine_equals_local_engine(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for patient in SMALL:
        (root / patient).symlink_to(KAGGLE / patient, target_is_directory=True)
    (root / "broken").mkdir()  # a failed case must be reported the same way too
    (root / "broken" / "broken_1.tif").write_bytes(b"not a TIFF")
    common = ["--workers", "1", "--threads-per-worker", "1", "--progress", "none"]

    local = run_cli("batch", root, "-o", tmp_path / "local", "--engine", "local", *common)
    ray = run_cli("batch", root, "-o", tmp_path / "ray", "--engine", "ray", *common, timeout=900)

    assert local.returncode == 3, local.stderr
    assert ray.returncode == 3, ray.stderr
    local_rows, ray_rows = read_summary(tmp_path / "local"), read_summary(tmp_path / "ray")
    assert [r["case_id"] for r in ray_rows] == sorted([*SMALL, "broken"])

    def comparable(row):
        return {k: v for k, v in row.items() if k != "seconds"}

    assert [comparable(r) for r in ray_rows] == [comparable(r) for r in local_rows]
    for patient in SMALL:
        reports = [json.loads((tmp_path / e / patient / "report.json").read_text()) for e in ("local", "ray")]
        assert without_timing(reports[0]) == without_timing(reports[1])
        masks = [nib.load(tmp_path / e / patient / "segmentation.nii.gz") for e in ("local", "ray")]
        assert np.array_equal(masks[0].get_fdata(), masks[1].get_fdata())
        assert np.array_equal(masks[0].affine, masks[1].affine)
    files = {e: sorted(p.relative_to(tmp_path / e) for p in (tmp_path / e).rglob("*")) for e in ("local", "ray")}
    assert files["ray"] == files["local"]
