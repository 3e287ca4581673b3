"""Killing ``tumorseg detect`` at random moments never leaves a partial case folder.

A helper process (this file run with ``--serve``) imports TumorSeg and loads the networks once,
then for each request forks a child that runs the real command (``monai_core.cli.main(["detect",
...])``) and kills it with SIGKILL after the requested delay. Forking keeps each run to the
inference itself (a couple of seconds on the small Kaggle sample) instead of a fresh start.

After every kill the case folder must be exactly the previous complete state, or a complete new
state (every expected file present and readable, report.json written last), never anything else.
Runs alternate between two option sets (with and without ``--seg-nrrd --overlay``) so that the two
states can be told apart; some start from no case folder at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "kaggle_3m" / "TCGA_HT_7680_19970202"
N_SLICES = 6  # the sample's first slices: each run is short, so many kills fit in the test time
CASE_ID = "case"
N_KILLS = 20  # at least this many kills; runs that finish first do not count
MAX_RUNS = 200  # a bound, not an expectation: a run that finishes first lowers the next delays
BASIC = {"report.json", "segmentation.nii.gz"}
EXTRA = BASIC | {"segmentation.seg.nrrd", "overlay.png"}


# --------------------------------------------------------------------------- the helper process


def serve(case: str) -> None:
    """Read "delay out extra" lines; run detect on ``case`` in a forked child, kill it after ``delay`` s."""
    import torch

    import monai_core.pipeline
    from monai_core.cli import main

    pipeline = monai_core.pipeline.TumorSegPipeline(monai_core.pipeline.DEFAULT_BUNDLE)
    monai_core.pipeline.TumorSegPipeline = lambda *a, **k: pipeline
    print("ready", flush=True)
    for line in sys.stdin:
        delay, out, extra = line.split("\t")
        args = ["detect", case, "-o", out, "--case-id", CASE_ID, "--overwrite", "--progress", "none"]
        if extra.strip() == "1":
            args += ["--seg-nrrd", "--overlay"]
        started = time.monotonic()
        child = os.fork()
        if child == 0:  # the detect process
            torch.set_num_threads(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os._exit(main(args))
        delay = float(delay)
        while True:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                result = f"exit {os.waitstatus_to_exitcode(status)}"
                break
            if time.monotonic() - started >= delay:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                result = "killed"
                break
            time.sleep(0.002)
        print(f"{result}\t{time.monotonic() - started:.3f}", flush=True)


# --------------------------------------------------------------------------- checks


def state(folder: Path) -> dict[str, str] | None:
    """File name -> sha256 of the case folder, or None when there is none."""
    if not folder.exists():
        return None
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def assert_complete(folder: Path, files: set[str]) -> None:
    """A complete new case: the expected files, each whole, and report.json the last one written."""
    import nibabel as nib
    import slicerio
    from PIL import Image

    assert {p.name for p in folder.iterdir()} == files
    report = json.loads((folder / "report.json").read_text())
    assert report["case_id"] == CASE_ID and len(report["slices"]) == N_SLICES
    mask = nib.load(folder / "segmentation.nii.gz")
    assert mask.shape == (256, 256, N_SLICES) and mask.get_fdata().shape == (256, 256, N_SLICES)
    if "overlay.png" in files:
        Image.open(folder / "overlay.png").load()
    if "segmentation.seg.nrrd" in files:
        assert slicerio.read_segmentation(str(folder / "segmentation.seg.nrrd"))["segments"][0]["name"] == "Tumor"
    report_time = (folder / "report.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= report_time for p in folder.iterdir()), "report.json was not written last"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    case = tmp_path_factory.mktemp("input") / SAMPLE.name
    case.mkdir()
    for k in range(1, N_SLICES + 1):
        shutil.copyfile(SAMPLE / f"{SAMPLE.name}_{k}.tif", case / f"{SAMPLE.name}_{k}.tif")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(case)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    assert process.stdout.readline().strip() == "ready"

    def run(delay: float, out: Path, extra: bool) -> tuple[str, float]:
        process.stdin.write(f"{delay}\t{out}\t{int(extra)}\n")
        process.stdin.flush()
        result, seconds = process.stdout.readline().strip().split("\t")
        return result, float(seconds)

    yield run
    process.stdin.close()
    process.wait(timeout=60)


def test_killed_at_random_moments_leaves_old_or_new_state(server, tmp_path):
    out = tmp_path / "out"
    folder = out / CASE_ID
    # calibrate: a full run with each option set, which also gives the first previous state
    result, plain_s = server(600, out, False)
    assert result == "exit 0", result
    assert_complete(folder, BASIC)
    result, extra_s = server(600, out, True)
    assert result == "exit 0", result
    assert_complete(folder, EXTRA)
    full = max(plain_s, extra_s)

    rng = random.Random(8)
    outcomes = {"killed_old": 0, "killed_new": 0, "killed_none": 0, "finished": 0}
    extra = False
    i = 0
    while outcomes["killed_old"] + outcomes["killed_new"] + outcomes["killed_none"] < N_KILLS and i < MAX_RUNS:
        if i % 6 == 5:  # now and then start from no case folder at all
            shutil.rmtree(folder, ignore_errors=True)
        before = state(folder)
        # a third of the kills anywhere in the run, the rest around the end, where the files are written
        delay = rng.uniform(0, full) if i % 3 == 0 else rng.uniform(0.75 * full, 1.02 * full)
        result, seconds = server(delay, out, extra)
        after = state(folder)
        if result == "killed":
            if after == before:
                outcomes["killed_old" if before is not None else "killed_none"] += 1
            else:
                assert_complete(folder, EXTRA if extra else BASIC)
                outcomes["killed_new"] += 1
        else:
            assert result == "exit 0", result
            assert_complete(folder, EXTRA if extra else BASIC)
            outcomes["finished"] += 1
            full = min(full, seconds)  # the calibration runs include the first, slower inference
        # nothing but the case folder and hidden leftovers of killed runs in the output folder
        visible = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        assert visible in ([CASE_ID], []), visible
        assert all(p.name.endswith((".partial", ".old")) for p in out.iterdir() if p.name.startswith("."))
        extra = not extra
        i += 1
    kills = i - outcomes["finished"]
    print(f"\n{kills} kills survived: {outcomes}")
    assert kills >= 20, outcomes


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(sys.argv[2])
