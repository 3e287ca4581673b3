"""``tumorseg batch`` with follow-ups: the manifest column ``baseline`` runs compare after detect.

The studies are the real sample TCGA-FG-6692 (NIfTI) and the real DICOM series PGBM-001, each
with a follow-up that is the same head moved in the scanner (tests/test_compare.py,
tests/test_change_sr.py). Waits are bound by events: a follow-up whose baseline blocks on a named
pipe cannot start, however fast the machine, so a kill always finds it waiting.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from conftest import KAGGLE, RAW, run_cli
from monai_core.batch import find_cases
from monai_core.batch.summary import CHANGE_FIELDS
from monai_core.errors import InputError
from test_batch import (SMALL, assert_no_leftovers, children_of, complete_report, kill_batch_and_await_workers,
                        read_summary, start_batch)
from monai_core.io.dicom import read_series
from test_change_sr import SERIES, dicom_case, ellipsoid, followup_study
from test_compare import known_motion, moved, write_case

CHANGES = "changes"


def change_of(out: Path, case_id: str) -> dict:
    return json.loads((out / CHANGES / case_id / "change.json").read_text())


def assert_change_columns(row: dict, change: dict) -> None:
    """The row's change columns are change.json's figures and categories."""
    assert row["volume_change_ml"] == f"{change['volume_change_ml']:.3f}"
    assert row["volume_change_percent"] == f"{change['volume_change_percent']:.2f}"
    assert row["bidimensional_product_change_percent"] == f"{change['bidimensional_product_change_percent']:.2f}"
    assert (row["rano_category"], row["rano_volumetric_category"]) == (change["category"],
                                                                       change["volumetric"]["category"])


def blocking_series(source: Path, folder: Path) -> Path:
    """The DICOM series with one file a named pipe: reading the series blocks until :func:`release`."""
    folder.mkdir(parents=True)
    files = sorted(source.glob("*.dcm"))
    for path in files:
        if path == files[len(files) // 2]:
            os.mkfifo(folder / path.name)
        else:
            (folder / path.name).symlink_to(path)
    return folder


def release(folder: Path, source: Path) -> None:
    for path in folder.iterdir():
        if path.is_fifo():
            path.unlink()
            path.symlink_to(source / path.name)


def wait_for_file(path: Path, process, timeout: float = 900) -> None:
    """Until ``path`` exists; fails at once if the batch ends (a generous bound only guards a hang)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"batch ended early: {process.communicate()}"
        assert time.monotonic() < deadline, f"{path} not written in {timeout} s"
        time.sleep(0.05)


# ----------------------------------------------------------------------------------------- the manifest


def test_baseline_column_names_a_case_or_a_folder(tmp_path):
    manifest = tmp_path / "cases.csv"
    manifest.write_text(
        "case_id,flair,t1,t1c,baseline\n"
        "later,b.nii.gz,,,first\n"
        "first,a.nii.gz,,,\n"
        "outside,c.nii.gz,,,done/prior_case\n"
    )
    later, first, outside = find_cases(manifest)
    assert (later.baseline, later.baseline_case, later.baseline_dir) == ("first", "first", None)
    assert not first.is_followup and first.baseline is None
    assert (outside.baseline_case, outside.baseline_dir) == (None, str(tmp_path / "done" / "prior_case"))

    for rows, message in (
        ("a,a.nii.gz,,,a\n", "line 2: case a is its own baseline"),
        ("a,a.nii.gz,,,b\nb,b.nii.gz,,,c\nc,c.nii.gz,,,a\n", "baselines go round in a circle: a -> b -> c -> a"),
        ("changes,a.nii.gz,,,\nb,b.nii.gz,,,changes\n", "case id 'changes' is taken"),
    ):
        manifest.write_text("case_id,flair,t1,t1c,baseline\n" + rows)
        with pytest.raises(InputError, match=message):
            find_cases(manifest)
    manifest.write_text("case_id,flair,t1,t1c,baseline\na,a.nii.gz,,,\nb,b.nii.gz,,,a\nb,b.nii.gz,,,a\n")
    result = run_cli("batch", manifest, "-o", tmp_path / "out")  # stopped before any work, one line
    assert result.returncode == 2 and "Traceback" not in result.stderr and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def followup_batch(tmp_path_factory):
    """A batch with a follow-up listed before its baseline, a failed baseline, and a finished prior outside."""
    root = tmp_path_factory.mktemp("followup")
    flair = sitk.ReadImage(str(RAW / "flair.nii.gz"))
    sitk.WriteImage(moved(flair, known_motion()), str(root / "moved_flair.nii.gz"))
    lesion = sitk.ReadImage(str(RAW / "flair_lesion.nii.gz"))
    prior = write_case(root / "prior" / "prior", RAW / "flair.nii.gz", lesion)  # as detect leaves it
    manifest = root / "cases.csv"
    manifest.write_text(
        "case_id,flair,t1,t1c,baseline\n"
        "followup,moved_flair.nii.gz,,,t0\n"
        f"t0,{RAW / 'flair.nii.gz'},,,\n"
        "broken,missing/flair.nii.gz,,,\n"
        f"after_broken,{RAW / 'flair.nii.gz'},,,broken\n"
        f"outside,moved_flair.nii.gz,,,{prior}\n"
        f"kaggle,{KAGGLE / SMALL[0]},,,t0\n"
    )
    out = root / "out"
    result = run_cli("batch", manifest, "-o", out, "--workers", "2", "--progress", "none")
    return dict(root=root, manifest=manifest, out=out, result=result, prior=prior,
                rows={row["case_id"]: row for row in read_summary(out)})


def test_followups_are_compared_after_their_baselines(followup_batch):
    out, rows = followup_batch["out"], followup_batch["rows"]
    assert followup_batch["result"].returncode == 3, followup_batch["result"].stderr  # broken failed
    assert list(rows) == ["followup", "t0", "broken", "after_broken", "outside", "kaggle"]
    # listed before its baseline, it waited for t0's detect, then compared with it
    change = change_of(out, "followup")
    assert rows["followup"]["status"] == "ok" and rows["followup"]["baseline"] == "t0"
    assert change["baseline"]["case"] == str(out / "t0") and change["followup"]["case"] == str(out / "followup")
    assert_change_columns(rows["followup"], change)
    assert change["volume_change_percent"] == pytest.approx(
        100 * (change["followup"]["measurements"]["volume_ml"] / change["baseline"]["measurements"]["volume_ml"] - 1),
        abs=0.01)
    assert rows["followup"]["tumor_volume_ml"] == f"{complete_report(out / 'followup')['tumor_volume_ml']:.3f}"
    # a case that is nobody's follow-up has empty change columns
    assert rows["t0"]["status"] == "ok" and all(rows["t0"][c] == "" for c in ("baseline", *CHANGE_FIELDS))
    # a finished case folder outside the batch as the baseline
    assert rows["outside"]["status"] == "ok" and rows["outside"]["baseline"] == str(followup_batch["prior"])
    assert_change_columns(rows["outside"], change_of(out, "outside"))


def test_a_failed_baseline_fails_the_comparison_alone(followup_batch):
    out, rows = followup_batch["out"], followup_batch["rows"]
    assert rows["broken"]["status"] == "failed" and "no such file" in rows["broken"]["error"]
    row = rows["after_broken"]
    assert row["status"] == "failed" and row["baseline"] == "broken"
    assert row["error"] == f"compare: its baseline broken failed ({rows['broken']['error']})"
    assert row["tumor_volume_ml"] != "" and all(row[c] == "" for c in CHANGE_FIELDS)  # its detect is complete
    complete_report(out / "after_broken")
    assert not (out / CHANGES / "after_broken").exists()
    # a Kaggle slice stack has no geometry to register: the comparison's own error, on one line
    assert rows["kaggle"]["status"] == "failed" and rows["kaggle"]["error"].startswith("compare: ")
    assert "names no FLAIR volume" in rows["kaggle"]["error"] and "\n" not in rows["kaggle"]["error"]
    assert_no_leftovers(out)
    assert sorted(p.name for p in (out / CHANGES).iterdir()) == ["followup", "outside"]


def test_resume_runs_only_what_is_left(followup_batch):
    out = followup_batch["out"]
    reports = {p.name: (p / "report.json").stat().st_mtime_ns for p in out.iterdir() if (p / "report.json").exists()}
    changes = {p.name: (p / "change.json").stat().st_mtime_ns for p in (out / CHANGES).iterdir()}
    result = run_cli("batch", followup_batch["manifest"], "-o", out, "--resume", "--progress", "none")
    assert result.returncode == 3, result.stderr
    rows = {row["case_id"]: row for row in read_summary(out)}
    assert {c: r["status"] for c, r in rows.items()} == {
        "followup": "skipped", "t0": "skipped", "broken": "failed", "after_broken": "failed", "outside": "skipped",
        "kaggle": "failed"}
    assert_change_columns(rows["followup"], change_of(out, "followup"))  # a skipped follow-up keeps its change
    assert rows["after_broken"]["error"].startswith("compare: its baseline broken failed")
    # detect ran for no case that had finished it, and no comparison that had finished ran again
    assert {p.name: (p / "report.json").stat().st_mtime_ns for p in out.iterdir()
            if (p / "report.json").exists()} == reports
    assert {p.name: (p / "change.json").stat().st_mtime_ns for p in (out / CHANGES).iterdir()} == changes


def test_kill_while_followups_wait_then_resume(tmp_path):
    """A follow-up waits for a baseline that blocks; another blocks in its comparison. SIGKILL, release, resume."""
    base_series = blocking_series(SERIES, tmp_path / "base_series")
    followup_series = followup_study(SERIES, tmp_path / "followup_series")
    # a finished case outside the batch whose FLAIR is the blocking series: comparing with it blocks
    prior = dicom_case(tmp_path / "prior" / "prior", SERIES, ellipsoid(read_series(SERIES).image, 30, 22))
    report = json.loads((prior / "report.json").read_text())
    report["inputs"]["flair"] = str(base_series)
    (prior / "report.json").write_text(json.dumps(report))
    manifest = tmp_path / "cases.csv"
    manifest.write_text(
        "case_id,flair,t1,t1c,baseline\n"
        f"followup,{followup_series},,,base\n"
        f"base,{base_series},,,\n"
        f"compare_blocks,{followup_series},,,{prior}\n"
    )
    out = tmp_path / "out"

    batch = start_batch(manifest, "-o", out, "--workers", "2")
    wait_for_file(out / "compare_blocks" / "report.json", batch)  # its detect is done; its comparison blocks
    workers = children_of(batch.pid)
    assert batch.poll() is None, f"the batch ended although two cases cannot finish: {batch.communicate()}"
    assert not (out / "followup").exists(), "the follow-up started before its baseline finished"
    assert read_summary(out) == []
    kill_batch_and_await_workers(batch, workers)
    detected = (out / "compare_blocks" / "report.json").stat().st_mtime_ns

    release(base_series, SERIES)
    result = run_cli("batch", manifest, "-o", out, "--workers", "2", "--resume", "--progress", "none")
    assert result.returncode == 0, result.stderr
    rows = {row["case_id"]: row for row in read_summary(out)}
    assert {c: r["status"] for c, r in rows.items()} == {"followup": "ok", "base": "ok", "compare_blocks": "ok"}
    assert (out / "compare_blocks" / "report.json").stat().st_mtime_ns == detected  # only its comparison ran
    for case_id in ("followup", "compare_blocks"):
        assert_change_columns(rows[case_id], change_of(out, case_id))
    assert change_of(out, "followup")["baseline"]["case"] == str(out / "base")
    assert_no_leftovers(out)
    assert [p.name for p in (out / CHANGES).iterdir() if p.name.startswith(".")] == []
