"""Killing ``tumorseg detect`` at any step of its writing never leaves a partial case folder.

A helper process (this file run with ``--serve``) imports TumorSeg and loads the networks once,
then for each request forks a child that runs the real command (``monai_core.cli.main(["detect",
...])``). The child counts the steps that change the output folder (Python's audit events: a file
opened there, a folder made or removed, a rename, a permission change, a call into C through ctypes
such as the atomic exchange), so the moments below follow the program's own events, not the
machine's speed:

- a recorded run reads the output folder as it is on disk just before every step. A SIGKILL runs
  no clean-up and loses only what the process had not yet handed to the kernel, so this is what a
  kill at that step would leave, and every one of those states must be the previous complete case
  or the new complete one;
- real kills (SIGKILL just before step k) at the first, a middle and the last step confirm it.

Runs alternate between two option sets (with and without ``--seg-nrrd --overlay``) so that the two
states can be told apart, from a previous case folder and from none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import LineReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "kaggle_3m" / "TCGA_HT_7680_19970202"
N_SLICES = 6  # the sample's first slices: each run is short
CASE_ID = "case"
BASIC = {"report.json", "segmentation.nii.gz"}
EXTRA = BASIC | {"segmentation.seg.nrrd", "overlay.png"}
WRITE_EVENTS = {"os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.replace", "os.chmod", "os.truncate",
                "shutil.rmtree", "shutil.move", "shutil.copyfile", "ctypes.call_function"}
# a generous bound on one forked detect of 6 slices (a few seconds on an idle 2-core machine), so that a
# hang fails the test instead of stopping it; not a speed check
RUN_LIMIT_S = 600


# --------------------------------------------------------------------------- the helper process


def snapshot(out: Path) -> dict:
    """What is on disk in the output folder: its entries and the case folder's state."""
    return {"entries": sorted(os.listdir(out)) if out.is_dir() else [], "case": state(out / CASE_ID)}


def _steps_hook(out: str, kill_at: int, snapshots: list | None, counter: list):
    """An audit hook that counts the steps changing ``out``: kills the process before step ``kill_at``,
    or records a snapshot of ``out`` before every step."""
    root = os.path.realpath(out)
    busy = [False]  # the snapshot's own reads are not steps

    def in_out(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(root)
        except (TypeError, ValueError):
            return False

    def hook(event, args):
        if busy[0] or (event != "open" and event not in WRITE_EVENTS):
            return
        if event != "ctypes.call_function" and not (args and isinstance(args[0], (str, bytes, os.PathLike)) and in_out(args[0])):
            return
        counter[0] += 1
        if counter[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if snapshots is not None:
            busy[0] = True
            try:
                snapshots.append(snapshot(Path(out)))
            finally:
                busy[0] = False

    return hook


def serve(case: str) -> None:
    """Read "kill_at out extra" lines; run detect on ``case`` in a forked child killed before step ``kill_at``
    (0: never, and then record a snapshot before every step). Answers one JSON line."""
    import torch

    import monai_core.pipeline
    from monai_core.cli import main

    pipeline = monai_core.pipeline.TumorSegPipeline(monai_core.pipeline.DEFAULT_BUNDLE)
    monai_core.pipeline.TumorSegPipeline = lambda *a, **k: pipeline
    print("ready", flush=True)
    for line in sys.stdin:
        kill_at, out, extra = line.rstrip("\n").split("\t")
        kill_at = int(kill_at)
        args = ["detect", case, "-o", out, "--case-id", CASE_ID, "--overwrite", "--progress", "none"]
        if extra == "1":
            args += ["--seg-nrrd", "--overlay"]
        record_read, record_write = os.pipe()
        child = os.fork()
        if child == 0:  # the detect process
            os.close(record_read)
            torch.set_num_threads(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            counter, snapshots = [0], ([] if kill_at == 0 else None)
            sys.addaudithook(_steps_hook(out, kill_at, snapshots, counter))
            code = main(args)
            with os.fdopen(record_write, "w") as record:
                json.dump({"steps": counter[0], "snapshots": snapshots}, record)
            os._exit(code)
        os.close(record_write)
        with os.fdopen(record_read) as record:  # read before waiting: the record may not fit in the pipe
            recorded = record.read()
        _, status = os.waitpid(child, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            print(json.dumps({"result": "killed"}), flush=True)
        else:
            print(json.dumps({"result": f"exit {os.waitstatus_to_exitcode(status)}", **json.loads(recorded or "{}")}), flush=True)


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
    lines = LineReader(process.stdout)
    assert lines.next(timeout=RUN_LIMIT_S, what="the helper loading the models") == "ready"

    def run(kill_at: int, out: Path, extra: bool) -> dict:
        process.stdin.write(f"{kill_at}\t{out}\t{int(extra)}\n")
        process.stdin.flush()
        return json.loads(lines.next(timeout=RUN_LIMIT_S, what=f"a detect run (kill before step {kill_at})"))

    yield run
    process.stdin.close()
    process.wait(timeout=120)


def _assert_old_or_new(seen: dict, before: dict | None, after: dict, label: str) -> None:
    assert seen["case"] in (before, after), f"{label}: a case folder that is neither the previous nor the new one"
    visible = [name for name in seen["entries"] if not name.startswith(".")]
    assert visible in ([CASE_ID], []), f"{label}: {visible}"
    hidden = [name for name in seen["entries"] if name.startswith(".")]
    assert all(name.endswith((".partial", ".old")) for name in hidden), f"{label}: {hidden}"


def test_killed_at_any_write_step_leaves_old_or_new_state(server, tmp_path):
    out = tmp_path / "out"
    folder = out / CASE_ID
    saved = tmp_path / "saved"
    steps = {}
    # recorded runs: (option set, whether a previous case folder exists), alternating option sets
    for extra, from_nothing in ((False, True), (True, False), (False, False), (True, True)):
        if from_nothing:
            shutil.rmtree(folder, ignore_errors=True)
        before = state(folder)
        if before is not None:  # keep the previous state, to start the real kills from it
            shutil.rmtree(saved / str(extra), ignore_errors=True)
            shutil.copytree(folder, saved / str(extra))
        answer = server(0, out, extra)
        assert answer["result"] == "exit 0", answer["result"]
        assert_complete(folder, EXTRA if extra else BASIC)
        after = state(folder)
        assert after != before
        steps[(extra, from_nothing)] = answer["steps"]
        assert answer["steps"] == len(answer["snapshots"]) >= 5, answer["steps"]  # the hook sees the writing
        changed = []
        for k, seen in enumerate(answer["snapshots"], start=1):
            _assert_old_or_new(seen, before, after, f"before step {k} of {answer['steps']}")
            changed.append(seen["case"] == after)
        # the old state holds until one step publishes the new one, which then holds to the end
        assert changed == sorted(changed) and not changed[0], changed
    # real kills confirm what the snapshots say a kill leaves
    for (extra, from_nothing), count in steps.items():
        for kill_at in sorted({1, (count + 1) // 2, count}):
            shutil.rmtree(folder, ignore_errors=True)
            if not from_nothing:
                shutil.copytree(saved / str(extra), folder)
            before = state(folder)
            answer = server(kill_at, out, extra)
            assert answer["result"] == "killed", f"step {kill_at} of {count} was never reached: {answer['result']}"
            seen = snapshot(out)
            if seen["case"] != before:
                assert_complete(folder, EXTRA if extra else BASIC)
            _assert_old_or_new(seen, before, seen["case"], f"killed before step {kill_at} of {count}")
            assert seen["case"] == before or kill_at > 1


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(sys.argv[2])
