"""``tumorseg batch`` over whole DICOM studies: one folder per study, an unsorted PACS export, a manifest.

Each study gets the series choice of ``detect --study``; an ambiguous study fails alone with its
candidates in summary.csv; a killed batch resumes like any other (the kill lands while a study
whose first file is a named pipe blocks its worker, so it never depends on the machine's speed).
The studies are derived at test time (tests/dicom_studies.py).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

import pydicom

import dicom_studies as ds
from conftest import run_cli
from monai_core.batch import find_cases
from monai_core.io.dicom_headers import list_series
from test_batch import (assert_no_leftovers, children_of, complete_report, kill_batch_and_await_workers, read_summary,
                        start_batch)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = ["case_id", "flair", "t1", "t1c", "study", "flair_series", "t1_series", "t1c_series"]
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows([{c: row.get(c, "") for c in columns} for row in rows])
    return path


def flatten(study: Path, export: Path, prefix: str) -> None:
    """Move a study's files into one flat folder under meaningless names, as a PACS export writes them."""
    export.mkdir(exist_ok=True)
    for i, path in enumerate(sorted(study.rglob("*.dcm"))):
        path.rename(export / f"{prefix}{i:05d}")  # no suffix: found by the DICM marker
    shutil.rmtree(study)


def test_study_folders_exports_and_manifests_are_found(tmp_path):
    root = tmp_path / "root"
    ds.philips_study(root / "first", full=False)
    ds.philips_study(root / "no_flair", flair=False, full=False)
    (root / "empty").mkdir()
    cases = {c.case_id: c for c in find_cases(root)}
    assert cases["first"].study == str(root / "first") and cases["first"].flair is None
    assert cases["no_flair"].study == str(root / "no_flair")  # its ambiguity is found by its worker
    assert cases["empty"].problem and cases["empty"].study is None

    export = tmp_path / "export"
    uids = {}
    for name in ("a", "b"):
        ds.philips_study(tmp_path / name, full=False)
        uids[name] = list_series(tmp_path / name)[0].study_uid
        flatten(tmp_path / name, export, name)
    cases = find_cases(export)
    assert sorted(c.case_id for c in cases) == sorted(uids.values())
    for case in cases:
        assert case.study == str(export) and len(case.files) == len(list(export.glob(f"{'a' if case.case_id == uids['a'] else 'b'}*")))

    manifest = write_manifest(tmp_path / "list.csv", [
        {"case_id": "chosen", "study": "root/first"},
        {"case_id": "named", "study": "root/no_flair", "flair_series": "1.2.3", "t1_series": "4.5.6"},
    ])
    cases = {c.case_id: c for c in find_cases(manifest)}
    assert cases["chosen"].study == str(tmp_path / "root" / "first") and cases["chosen"].series_uids() == {}
    assert cases["named"].series_uids() == {"flair": "1.2.3", "t1": "4.5.6"}
    bad = write_manifest(tmp_path / "bad.csv", [{"case_id": "x", "study": "root/first", "flair": "f.nii.gz"}])
    result = run_cli("batch", bad, "-o", tmp_path / "out", "--progress", "none")
    assert result.returncode == 2 and "names a study; leave flair, t1 and t1c empty" in result.stderr


def blocking_study(root: Path) -> Path:
    """A good study whose first FLAIR file is a named pipe: reading its headers blocks until :func:`release`."""
    folder = root / "b_blocking"
    ds.philips_study(folder)
    victim = sorted((folder / "s0701").glob("*.dcm"))[0]
    victim.rename(folder / "held.dcm.real")
    os.mkfifo(victim)
    return folder


def release(folder: Path) -> None:
    victim = sorted((folder / "s0701").glob("*.dcm"))[0]
    victim.unlink()
    (folder / "held.dcm.real").rename(victim)


def wait_for_ok(out: Path, process, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout  # only a bound on waiting; the event is a complete row
    while time.monotonic() < deadline:
        if (out / "summary.csv").exists() and any(r["status"] == "ok" for r in read_summary(out)):
            return
        assert process.poll() is None, f"batch ended early: {process.communicate()}"
        time.sleep(0.1)
    raise AssertionError(f"no case finished in {timeout} s")


def test_a_batch_of_studies_fails_the_ambiguous_one_and_resumes_after_a_kill(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    missing = ds.philips_study(root / "a_no_flair", flair=False, full=False)
    blocking = blocking_study(root)
    good = ds.philips_study(root / "c_good")

    batch = start_batch(root, "-o", out, "--workers", "2")
    wait_for_ok(out, batch)
    workers = children_of(batch.pid)
    assert batch.poll() is None, "the batch ended although one study cannot be read"
    kill_batch_and_await_workers(batch, workers)
    # case folders only: a worker killed between writing report.json and renaming its folder leaves a .partial
    before = {p.name: (p / "report.json").stat().st_mtime_ns for p in out.iterdir()
              if not p.name.startswith(".") and (p / "report.json").exists()}
    assert set(before) == {"c_good"}

    release(blocking)
    result = run_cli("batch", root, "-o", out, "--workers", "2", "--resume", "--progress", "none")
    assert result.returncode == 3, result.stderr  # the study without FLAIR failed
    rows = {r["case_id"]: r for r in read_summary(out)}
    assert [r for r in rows] == ["a_no_flair", "b_blocking", "c_good"]
    assert (rows["a_no_flair"]["status"], rows["b_blocking"]["status"], rows["c_good"]["status"]) == ("failed", "ok", "skipped")
    assert "no FLAIR series found" in rows["a_no_flair"]["error"]
    for number in (901, 1101, 1201, 1401):  # every candidate with its UID, uncut
        assert missing[number] in rows["a_no_flair"]["series"]
    assert rows["a_no_flair"]["series"].startswith("flair candidates: ")
    assert rows["c_good"]["series"] == (f"flair=701 'T2W_FLAIR_TRA' {good[701]}; t1=901 'T1W_SE-TRA_FS' {good[901]}; "
                                        f"t1c=1201 'T1W_SE-TRA_FS' {good[1201]}")
    assert rows["c_good"]["sequences"] == "flair;t1;t1c" and rows["c_good"]["tumor_detected"] == "true"
    assert rows["b_blocking"]["series"].startswith("flair=701 'T2W_FLAIR_TRA' ")
    assert (out / "c_good" / "report.json").stat().st_mtime_ns == before["c_good"], "a finished study ran again"
    report = complete_report(out / "b_blocking")
    assert report["inputs"]["series_choice"]["t1c"]["series_number"] == 1201
    assert not (out / "a_no_flair").exists()
    assert_no_leftovers(out)


def test_an_unsorted_export_is_one_case_per_study(tmp_path):
    export, out = tmp_path / "export", tmp_path / "out"
    good = ds.philips_study(tmp_path / "good")
    ds.philips_study(tmp_path / "bad", flair=False, full=False)
    study_uids = {}
    for name in ("good", "bad"):
        study_uids[name] = str(pydicom.dcmread(next((tmp_path / name).rglob("*.dcm"))).StudyInstanceUID)
        flatten(tmp_path / name, export, name)
    (export / "DICOMDIR").write_bytes(b"")  # an export's index: not an image, skipped

    result = run_cli("batch", export, "-o", out, "--progress", "none")

    assert result.returncode == 3, result.stderr
    rows = {r["case_id"]: r for r in read_summary(out)}
    assert rows[study_uids["bad"]]["status"] == "failed" and "no FLAIR" in rows[study_uids["bad"]]["error"]
    assert rows[study_uids["good"]]["status"] == "ok"
    inputs = complete_report(out / study_uids["good"])["inputs"]
    assert inputs["series_uids"] == {"flair": good[701], "t1": good[901], "t1c": good[1201]}
    assert inputs["flair"] == str(export)


def test_a_manifest_names_the_series_of_an_ambiguous_study(tmp_path):
    """No series is named FLAIR: the manifest says which one is, and the T1s are still chosen by the rule."""
    uids = ds.philips_study(tmp_path / "study", flair=False)
    manifest = write_manifest(tmp_path / "list.csv", [{"case_id": "named", "study": "study", "flair_series": uids[301]}])
    result = run_cli("batch", manifest, "-o", tmp_path / "out", "--progress", "none")
    assert result.returncode == 0, result.stderr
    [row] = read_summary(tmp_path / "out")
    assert row["series"] == (f"flair=301 'T2W_TSE_TRA' {uids[301]}; t1=901 'T1W_SE-TRA_FS' {uids[901]}; "
                             f"t1c=1201 'T1W_SE-TRA_FS' {uids[1201]}")
    choice = complete_report(tmp_path / "out" / "named")["inputs"]["series_choice"]
    assert choice["flair"]["reason"].endswith("given with --flair-series")
    assert "the later of two same-named series, taken as post-contrast" in choice["t1c"]["reason"]
