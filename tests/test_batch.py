"""``tumorseg batch``: inputs, the summary, broken and hanging cases, and resuming after kills.

The end-to-end tests run the command in a subprocess, as an operator would, on the sample
patients (linked under new names where a test needs more cases). They check the contracts, not
Dice values, so they hold for the placeholder and the trained weights alike.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import KAGGLE, RAW, ROOT, LineReader, run_cli
from monai_core.batch import find_cases
from monai_core.batch.summary import FIELDS
from monai_core.detect import detect_case
from monai_core.errors import InputError

SMALL = ["TCGA_HT_7680_19970202", "TCGA_CS_6669_20020102"]  # the two patients with the fewest slices


# ----------------------------------------------------------------------------------------- helpers


def link_cases(root: Path, patients: list[str], copies: int = 1) -> list[str]:
    """A batch root of Kaggle case folders: each patient linked ``copies`` times under new ids."""
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for copy in range(copies):
        for patient in patients:
            case_id = patient if copies == 1 else f"{patient}_c{copy}"
            (root / case_id).symlink_to(KAGGLE / patient, target_is_directory=True)
            ids.append(case_id)
    return sorted(ids)


def read_summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames) == FIELDS
        return list(reader)


def complete_report(folder: Path) -> dict:
    """The case's report, asserting that the folder is a complete case (report and segmentation)."""
    report = json.loads((folder / "report.json").read_text())
    assert report["case_id"] == folder.name
    assert (folder / "segmentation.nii.gz").is_file()
    nib.load(folder / "segmentation.nii.gz").get_fdata()  # the file is whole
    return report


def without_timing(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "timing_s"}


def start_batch(*args, progress: str = "none") -> subprocess.Popen:
    """``tumorseg batch`` in the background, in a session of its own (its own process group, like a shell job)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "monai_core", "batch", *map(str, args), "--progress", progress]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for_rows(out: Path, process: subprocess.Popen, rows: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "summary.csv").exists() and len(read_summary(out)) >= rows:
            return
        assert process.poll() is None, f"batch ended early: {process.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {rows} cases finished in {timeout} s")


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def kill_batch_and_await_workers(batch: subprocess.Popen, workers: list[int]) -> None:
    """SIGKILL the batch, then wait until its workers have ended too (they notice that it is gone).

    The 120 s are only a bound on waiting for that event, not a speed check.
    """
    os.kill(batch.pid, signal.SIGKILL)
    batch.wait()
    deadline = time.monotonic() + 120
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "worker processes outlived the killed batch"


def assert_no_leftovers(out: Path) -> None:
    """No temporary case folder or summary left behind (the batch's lock file stays)."""
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".tumorseg-batch.lock"] == []


# ----------------------------------------------------------------------------------------- finding cases


def test_folder_layouts_are_recognised(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "kaggle").symlink_to(KAGGLE / SMALL[0], target_is_directory=True)
    volumes = root / "volumes"
    volumes.mkdir()
    for name in ("FLAIR.nii.gz", "t1.nii", "t1c.nrrd", "notes.txt"):
        (volumes / name).write_bytes(b"")
    dicom = root / "dicom"
    (dicom / "flair").mkdir(parents=True)
    (dicom / "t1c").mkdir()
    (root / "nothing_usable").mkdir()
    (root / ".hidden").mkdir()
    (root / "readme.md").write_text("not a case")

    cases = {c.case_id: c for c in find_cases(root)}

    assert sorted(cases) == ["dicom", "kaggle", "nothing_usable", "volumes"]
    assert cases["kaggle"].kaggle_dir == str(root / "kaggle") and cases["kaggle"].flair is None
    assert (cases["volumes"].flair, cases["volumes"].t1, cases["volumes"].t1c) == tuple(
        str(volumes / n) for n in ("FLAIR.nii.gz", "t1.nii", "t1c.nrrd")
    )
    assert (cases["dicom"].flair, cases["dicom"].t1, cases["dicom"].t1c) == (str(dicom / "flair"), None, str(dicom / "t1c"))
    assert cases["nothing_usable"].problem and "no FLAIR" in cases["nothing_usable"].problem


def test_manifest_paths_and_errors(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p1").symlink_to(KAGGLE / SMALL[0], target_is_directory=True)
    manifest = tmp_path / "cases.csv"
    manifest.write_text(
        "case_id,flair,t1,t1c\n"
        f"a,data/p1,,\n"
        f"b,{RAW / 'flair.nii.gz'},,{RAW / 't1c.nii.gz'}\n"
        "\n"
        "c,missing/flair.nii.gz,missing/t1.nii.gz,\n"
    )
    a, b, c = find_cases(manifest)
    assert (a.case_id, a.kaggle_dir, a.flair) == ("a", str(tmp_path / "data" / "p1"), None)
    assert (b.flair, b.t1, b.t1c) == (str(RAW / "flair.nii.gz"), None, str(RAW / "t1c.nii.gz"))
    assert (c.flair, c.t1) == (str(tmp_path / "missing" / "flair.nii.gz"), str(tmp_path / "missing" / "t1.nii.gz"))

    manifest.write_text("case_id,flair,t1,t1c\nA,x.nii.gz,,\nb,y.nii.gz,,\na,z.nii.gz,,\n")
    with pytest.raises(InputError, match="duplicate case ids: A/a"):
        find_cases(manifest)
    manifest.write_text("id,flair\nA,x.nii.gz\n")
    with pytest.raises(InputError, match="lacks the column"):
        find_cases(manifest)
    manifest.write_text("case_id,flair,t1,t1c\n../up,x.nii.gz,,\n")
    with pytest.raises(InputError, match="line 2"):
        find_cases(manifest)


def test_duplicate_ids_stop_before_any_work(tmp_path):
    manifest = tmp_path / "cases.csv"
    patient = KAGGLE / SMALL[0]
    manifest.write_text(f"case_id,flair,t1,t1c\nsame,{patient},,\nother,{patient},,\nsame,{patient},,\n")
    result = run_cli("batch", manifest, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "duplicate case ids: same" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_results_are_not_overwritten_without_resume(tmp_path):
    out = tmp_path / "out"
    (out / SMALL[0]).mkdir(parents=True)
    (out / SMALL[0] / "report.json").write_text("{}")
    result = run_cli("batch", KAGGLE, "-o", out)
    assert result.returncode == 2
    assert "--resume" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [SMALL[0]]


# ----------------------------------------------------------------------------------------- running


def test_folder_and_manifest_give_the_outputs_of_detect(tmp_path, pipeline):
    """A Kaggle folder and a FLAIR-only NIfTI, as a folder of cases and as a manifest: the files of detect."""
    root = tmp_path / "root"  # as a folder: one Kaggle case and the NIfTI case
    link_cases(root, SMALL[:1])
    (root / "raw").mkdir()
    (root / "raw" / "flair.nii.gz").symlink_to(RAW / "flair.nii.gz")
    link_cases(tmp_path / "data", SMALL[1:])
    manifest = tmp_path / "cases.csv"  # as a manifest: the other Kaggle case (a relative path) and the NIfTI case
    manifest.write_text(f"case_id,flair,t1,t1c\n{SMALL[1]},data/{SMALL[1]},,\nraw,{root / 'raw' / 'flair.nii.gz'},,\n")
    threads = str(torch.get_num_threads())  # the same as in-process detect: identical arithmetic

    expected = tmp_path / "detect"
    detect_case(pipeline, expected, kaggle_dir=root / SMALL[0], case_id=SMALL[0])
    detect_case(pipeline, expected, kaggle_dir=tmp_path / "data" / SMALL[1], case_id=SMALL[1])
    detect_case(pipeline, expected, flair=root / "raw" / "flair.nii.gz", case_id="raw")

    for source, cases in ((root, [SMALL[0], "raw"]), (manifest, [SMALL[1], "raw"])):
        out = tmp_path / f"out_{source.name}"
        result = run_cli("batch", source, "-o", out, "--workers", "2", "--threads-per-worker", threads)
        assert result.returncode == 0, result.stderr
        summary = {row["case_id"]: row for row in read_summary(out)}
        assert sorted(summary) == sorted(cases)
        for case_id, row in summary.items():
            report, reference = complete_report(out / case_id), complete_report(expected / case_id)
            assert without_timing(report) == without_timing(reference)
            seg = nib.load(out / case_id / "segmentation.nii.gz")
            ref = nib.load(expected / case_id / "segmentation.nii.gz")
            assert np.array_equal(seg.get_fdata(), ref.get_fdata()) and np.allclose(seg.affine, ref.affine)
            assert row["status"] == "ok" and row["error"] == "" and float(row["seconds"]) > 0
            assert row["tumor_detected"] == ("true" if report["tumor_detected"] else "false")
            assert int(row["positive_slices"]) == sum(s["positive"] for s in report["slices"])
            volume = report["tumor_volume_ml"]
            assert row["tumor_volume_ml"] == ("" if volume is None else f"{volume:.3f}")
        assert summary["raw"]["tumor_volume_ml"] != ""  # a volume with spacing has a volume in mL
        assert_no_leftovers(out)


def test_broken_cases_fail_alone(tmp_path):
    """A corrupt slice and a folder without inputs: failed rows with one-line errors, exit 3, the rest ok."""
    root = tmp_path / "root"
    link_cases(root, SMALL)
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "corrupt_1.tif").write_bytes(b"this is not a TIFF file")
    (root / "empty").mkdir()

    result = run_cli("batch", root, "-o", tmp_path / "out", "--workers", "2")

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    rows = {row["case_id"]: row for row in read_summary(tmp_path / "out")}
    assert sorted(rows) == sorted([*SMALL, "corrupt", "empty"])
    for patient in SMALL:
        assert rows[patient]["status"] == "ok", rows[patient]
        complete_report(tmp_path / "out" / patient)
    assert rows["corrupt"]["status"] == "failed" and "corrupt_1.tif" in rows["corrupt"]["error"]
    assert rows["empty"]["status"] == "failed" and "no FLAIR" in rows["empty"]["error"]
    for name in ("corrupt", "empty"):
        assert "\n" not in rows[name]["error"] and not (tmp_path / "out" / name).exists()
    assert_no_leftovers(tmp_path / "out")


# No real case runs under this limit: it bounds a read that never returns and the failures that follow
# it (a corrupt slice, a folder without inputs), which take a fraction of a second.
HANG_LIMIT_S = 30


def test_a_hanging_case_is_stopped_by_its_time_limit_and_the_batch_goes_on(tmp_path):
    """A slice that is a named pipe with no writer: reading it blocks forever, like a stalled disk.

    One worker: the hanging case comes first, so the cases after it can only run on the worker that
    replaces the stopped one.
    """
    root = tmp_path / "root"
    hanging = root / "a_hanging"
    hanging.mkdir(parents=True)
    os.mkfifo(hanging / "a_hanging_1.tif")
    corrupt = root / "b_corrupt"
    corrupt.mkdir()
    (corrupt / "b_corrupt_1.tif").write_bytes(b"this is not a TIFF file")
    (root / "c_empty").mkdir()

    result = run_cli("batch", root, "-o", tmp_path / "out", "--workers", "1", "--case-timeout", str(HANG_LIMIT_S))

    assert result.returncode == 3, result.stderr
    rows = {row["case_id"]: row for row in read_summary(tmp_path / "out")}
    assert rows["a_hanging"]["status"] == "failed"
    assert f"timed out after {HANG_LIMIT_S} s" in rows["a_hanging"]["error"]
    assert float(rows["a_hanging"]["seconds"]) >= HANG_LIMIT_S  # stopped by its own time limit
    assert "b_corrupt_1.tif" in rows["b_corrupt"]["error"] and "no FLAIR" in rows["c_empty"]["error"]
    assert not (tmp_path / "out" / "a_hanging").exists()
    assert_no_leftovers(tmp_path / "out")


def blocking_case(root: Path, patient: str, name: str = "blocking") -> Path:
    """A copy of ``patient`` whose first slice is a named pipe: reading it blocks until it is released.

    While it blocks, the batch cannot finish, so a kill always lands on a running batch, however
    fast the machine is. :func:`release` puts the real slice in the pipe's place.
    """
    folder = root / name
    folder.mkdir()
    for source in sorted((KAGGLE / patient).glob("*.tif")):
        target = folder / source.name.replace(patient, name, 1)
        if target.name == f"{name}_1.tif":
            os.mkfifo(target)
        else:
            target.symlink_to(source)
    return folder


def release(folder: Path, patient: str) -> None:
    pipe = folder / f"{folder.name}_1.tif"
    pipe.unlink()
    pipe.symlink_to(KAGGLE / patient / f"{patient}_1.tif")


@pytest.mark.parametrize("rows_before_kill", [1, 3])
def test_resume_after_sigkill_finishes_every_case_once(tmp_path, rows_before_kill):
    """SIGKILL once ``rows_before_kill`` cases are in the summary, while the other worker is in a case."""
    root = tmp_path / "root"
    out = tmp_path / "out"
    ids = sorted([*link_cases(root, SMALL, copies=3), blocking_case(root, SMALL[0]).name])

    batch = start_batch(root, "-o", out, "--workers", "2")
    wait_for_rows(out, batch, rows_before_kill)
    workers = children_of(batch.pid)
    assert batch.poll() is None, f"the batch ended although one case cannot finish: {batch.communicate()}"
    kill_batch_and_await_workers(batch, workers)

    # case folders only: a worker killed between writing report.json and renaming its folder leaves a .partial
    before = {p.name: (p / "report.json").stat().st_mtime_ns for p in out.iterdir()
              if not p.name.startswith(".") and (p / "report.json").exists()}
    assert rows_before_kill <= len(before) < len(ids) and "blocking" not in before
    rows_before = read_summary(out)  # complete, readable table at any moment
    assert {r["case_id"] for r in rows_before} <= set(before)

    release(root / "blocking", SMALL[0])
    result = run_cli("batch", root, "-o", out, "--workers", "2", "--resume", "--progress", "none")
    assert result.returncode == 0, result.stderr
    rows = read_summary(out)
    assert [r["case_id"] for r in rows] == ids  # one row per case, in order
    for row in rows:
        expected = "skipped" if row["case_id"] in before else "ok"
        assert row["status"] == expected, row
        complete_report(out / row["case_id"])
    after = {name: (out / name / "report.json").stat().st_mtime_ns for name in before}
    assert after == before, "a case finished before the kill was processed again"
    assert_no_leftovers(out)


def _wait_for_reader(fifo: Path, process: subprocess.Popen, timeout: float = 600) -> int:
    """Open ``fifo`` for writing once a reader has it open (the batch is reading that case); returns the fd.

    The timeout is a generous bound on starting a worker and loading the models, not a speed check.
    """
    import errno
    import fcntl

    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        else:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            return fd
        assert process.poll() is None, f"batch ended early: {process.communicate()}"
        assert time.monotonic() < deadline, f"no worker opened {fifo.name} in {timeout} s"
        time.sleep(0.05)


def test_ctrl_c_stops_after_cases_in_flight_then_resume(tmp_path):
    """Ctrl-C while a case is being read: that case finishes, no other starts, and --resume does the rest.

    The case in flight is known: the first case (one worker) has a named pipe as its first slice, so it
    is in flight from the moment the worker opens the pipe until the test writes the slice into it.
    """
    root = tmp_path / "root"
    out = tmp_path / "out"
    ids = link_cases(root, SMALL, copies=2)
    first = blocking_case(root, SMALL[0], name="0_first")  # "0" sorts before the "TCGA_" cases
    ids = sorted([first.name, *ids])

    batch = start_batch(root, "-o", out, "--workers", "1", progress="json")
    messages = LineReader(batch.stderr)
    fd = _wait_for_reader(first / "0_first_1.tif", batch)
    os.killpg(batch.pid, signal.SIGINT)  # as a terminal does: to the batch and its workers
    messages.until(lambda line: "stopping after the cases in flight" in line, timeout=120, what="the batch seeing Ctrl-C")
    with os.fdopen(fd, "wb") as pipe:  # now the case in flight can finish
        pipe.write((KAGGLE / SMALL[0] / f"{SMALL[0]}_1.tif").read_bytes())
    assert batch.wait(timeout=600) == 130, messages.seen[-5:]
    messages.rest(timeout=120)
    stderr = "\n".join(messages.seen)
    assert "--resume" in stderr and "Traceback" not in stderr

    rows = read_summary(out)
    assert [(r["case_id"], r["status"]) for r in rows] == [("0_first", "ok")]  # only the case in flight
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0_first"]
    complete_report(out / "0_first")
    assert_no_leftovers(out)

    release(first, SMALL[0])
    result = run_cli("batch", root, "-o", out, "--resume", "--progress", "none")
    assert result.returncode == 0, result.stderr
    statuses = {r["case_id"]: r["status"] for r in read_summary(out)}
    assert sorted(statuses) == ids
    assert statuses == {name: "skipped" if name == "0_first" else "ok" for name in ids}


def test_two_batches_never_share_an_output_folder(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".tumorseg-batch.lock", "a") as held:  # as a running batch holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("batch", KAGGLE, "-o", out)
    assert result.returncode == 2
    assert "another tumorseg batch is writing into this folder" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".tumorseg-batch.lock"]


# ----------------------------------------------------------------------------------------- public data set names


def link_volumes(folder: Path, names: dict[str, str]) -> Path:
    """A case folder of links to the sample study's volumes: ``{new file name: sample sequence}``."""
    folder.mkdir(parents=True)
    for name, sequence in names.items():
        (folder / name).symlink_to(RAW / f"{sequence}.nii.gz")
    return folder


def test_public_names_are_recognised(tmp_path):
    """BraTS, MSD and TumorSeg names, any letter case, with or without the case id; T2 and labels are not used."""
    link_volumes(tmp_path / "Brats18_1", {"Brats18_1_FLAIR.nii.gz": "flair", "brats18_1_t1.nii.gz": "t1",
                                          "Brats18_1_t1ce.nii.gz": "t1c", "Brats18_1_t2.nii.gz": "t2",
                                          "Brats18_1_seg.nii.gz": "flair_lesion"})
    link_volumes(tmp_path / "BraTS-GLI-00001-000", {"BraTS-GLI-00001-000-t2f.nii.gz": "flair",
                                                    "BraTS-GLI-00001-000-T1N.nii.gz": "t1",
                                                    "BraTS-GLI-00001-000-t1c.nii.gz": "t1c",
                                                    "BraTS-GLI-00001-000-t2w.nii.gz": "t2"})
    link_volumes(tmp_path / "unprefixed", {"t2f.nii.gz": "flair", "t1ce.nii.gz": "t1c", "t2.nii.gz": "t2"})
    link_volumes(tmp_path / "BRATS_001", {f"BRATS_001_000{i}.nii.gz": s for i, s in enumerate(["flair", "t1", "t1c", "t2"])})

    cases = {c.case_id: c for c in find_cases(tmp_path)}

    def files(case_id):
        case = cases[case_id]
        assert case.problem is None, case.problem
        return tuple(Path(p).name if p else None for p in (case.flair, case.t1, case.t1c))

    assert files("Brats18_1") == ("Brats18_1_FLAIR.nii.gz", "brats18_1_t1.nii.gz", "Brats18_1_t1ce.nii.gz")
    assert files("BraTS-GLI-00001-000") == tuple(f"BraTS-GLI-00001-000-{n}.nii.gz" for n in ("t2f", "T1N", "t1c"))
    assert files("unprefixed") == ("t2f.nii.gz", None, "t1ce.nii.gz")  # a real absence: the FLAIR stands in for T1
    assert files("BRATS_001") == ("BRATS_001_0000.nii.gz", "BRATS_001_0001.nii.gz", "BRATS_001_0002.nii.gz")


def test_unknown_or_ambiguous_names_are_failed_cases(tmp_path):
    """Never a FLAIR-only run when a sequence may be there under another name: a problem naming the files."""
    link_volumes(tmp_path / "scans", {"scan1.nii.gz": "flair", "scan2.nii.gz": "t1c"})
    link_volumes(tmp_path / "extra", {"flair.nii.gz": "flair", "t1_post_gd.nii.gz": "t1c", "notes.txt": "t1"})
    link_volumes(tmp_path / "both", {"flair.nii.gz": "flair", "t1c.nii.gz": "t1c", "T1CE.nii.gz": "t1c"})
    link_volumes(tmp_path / "two", {"two_0000.nii.gz": "flair", "two_0001.nii.gz": "t1"})
    link_volumes(tmp_path / "many", {f"image{i:02d}.nii.gz": "flair" for i in range(30)})
    series = tmp_path / "dicom" / "series_7"  # a DICOM series under an unknown name, beside a flair/ series
    series.mkdir(parents=True)
    (tmp_path / "dicom" / "flair").mkdir()
    (series / "IM0001").write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "dicom" / "scratch").mkdir()  # a folder of something else is not an image

    problems = {c.case_id: c.problem for c in find_cases(tmp_path)}

    assert "no FLAIR, T1 or T1c among scan1.nii.gz, scan2.nii.gz" in problems["scans"]
    assert "no T1 or T1c among t1_post_gd.nii.gz;" in problems["extra"] and "notes.txt" not in problems["extra"]
    assert "more than one T1c: T1CE.nii.gz, t1c.nii.gz" in problems["both"]
    assert "two_0000.nii.gz, two_0001.nii.gz" in problems["two"] and "manifest" in problems["two"]
    assert "image00.nii.gz, image01.nii.gz, image02.nii.gz, image03.nii.gz, ... (30 in all)" in problems["many"]
    assert "no T1 or T1c among series_7/;" in problems["dicom"]
    assert all(len(p) < 300 and "\n" not in p for p in problems.values())


def test_public_names_in_a_batch_report_their_sequences(tmp_path):
    """The issue's case: BraTS 2020 names with the case prefix, and a T1c that was silently replaced by the FLAIR."""
    root = tmp_path / "root"
    brats = link_volumes(root / "BraTS20_Training_001", {f"BraTS20_Training_001_{n}.nii.gz": s for n, s in
                                                         (("flair", "flair"), ("t1", "t1"), ("t1ce", "t1c"), ("t2", "t2"))})
    link_volumes(root / "flair_only", {"FLAIR.nii.gz": "flair", "T2W.nii.gz": "t2"})
    link_volumes(root / "scans", {"scan1.nii.gz": "flair", "scan2.nii.gz": "t1c"})
    link_volumes(root / "two", {"two_0000.nii.gz": "flair", "two_0001.nii.gz": "t1"})
    link_cases(root, SMALL[:1])
    out = tmp_path / "out"

    result = run_cli("batch", root, "-o", out, "--progress", "none")

    assert result.returncode == 3, result.stderr
    rows = {row["case_id"]: row for row in read_summary(out)}
    inputs = complete_report(out / brats.name)["inputs"]
    assert (inputs["flair"], inputs["t1"], inputs["t1c"]) == tuple(
        str(brats / f"{brats.name}_{n}.nii.gz") for n in ("flair", "t1", "t1ce")
    )
    assert complete_report(out / "flair_only")["inputs"]["t1c"] is None
    assert {case_id: row["sequences"] for case_id, row in rows.items()} == {
        brats.name: "flair;t1;t1c", "flair_only": "flair", SMALL[0]: "kaggle", "scans": "", "two": ""
    }
    assert rows["scans"]["status"] == "failed" and "scan1.nii.gz, scan2.nii.gz" in rows["scans"]["error"]
    assert rows["two"]["status"] == "failed" and "manifest" in rows["two"]["error"]
    assert all(rows[c]["status"] == "ok" for c in (brats.name, "flair_only", SMALL[0]))
