"""The thread count torch runs with in ``tumorseg detect`` and the warm engine, in fresh processes.

Each case starts a new Python (torch reads ``OMP_NUM_THREADS`` and the CPU affinity when it
starts), runs the real command path on the bundled sample study, and reports
``torch.get_num_threads()`` after it: a user's ``OMP_NUM_THREADS`` is kept, and without it the
count follows the cores the process may run on (``taskset``, a container's CPU set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_core.runtime import available_cores

ROOT = Path(__file__).resolve().parents[1]
FLAIR = ROOT / "tests" / "data" / "TCGA-FG-6692" / "flair.nii.gz"

_AFTER_DETECT = """
import json, sys, torch
from monai_core.cli import main
code = main(["detect", "--flair", sys.argv[1], "-o", sys.argv[2], "--case-id", "case", "--progress", "none"])
print(json.dumps({"code": code, "threads": torch.get_num_threads()}))
"""

_AFTER_ENGINE_LOAD = """
import io, json, torch
from monai_core.engine import Engine
Engine(io.StringIO()).load()
print(json.dumps({"code": 0, "threads": torch.get_num_threads()}))
"""


def _threads(script, tmp_path, omp=None, cpus=None):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    if omp is not None:
        env["OMP_NUM_THREADS"] = str(omp)
    result = subprocess.run(
        [sys.executable, "-c", script, str(FLAIR), str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=900, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["code"] == 0
    return answer["threads"]


needs_two_cores = pytest.mark.skipif(available_cores() < 2, reason="needs two cores to tell 1 thread from the default")


@needs_two_cores
@pytest.mark.parametrize("script", [_AFTER_DETECT, _AFTER_ENGINE_LOAD], ids=["detect", "engine"])
def test_a_users_omp_num_threads_is_kept(script, tmp_path):
    assert _threads(script, tmp_path, omp=1) == 1


@needs_two_cores
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_the_thread_count_follows_the_cores_the_process_may_use(tmp_path):
    one = {min(os.sched_getaffinity(0))}  # as under taskset -c N or a container's CPU set
    assert _threads(_AFTER_DETECT, tmp_path, cpus=one) == 1


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this system")
def test_available_cores_follow_the_affinity_not_the_machine():
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})  # as under taskset or a container's CPU limit
        assert available_cores() == 1
    finally:
        os.sched_setaffinity(0, allowed)


_FREED_THEN_RELEASED = """
import json
from monai_core.runtime import keep_freed_memory, release_freed_memory
def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
keep_freed_memory()
blocks = [b"x" * (1 << 20) for _ in range(96)]  # 1 MiB each, below the raised mmap threshold: in the heap
blocks.reverse()  # free the topmost block last, so the top of the heap is freed too
del blocks
kept = resident_mb()
released = release_freed_memory()
print(json.dumps({"kept": kept, "after": resident_mb(), "released": released}))
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read resident memory")
def test_release_freed_memory_hands_kept_blocks_back_to_the_os():
    """keep_freed_memory keeps 96 MiB of freed blocks resident; release_freed_memory returns them (glibc)."""
    out = subprocess.run([sys.executable, "-c", _FREED_THEN_RELEASED], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    measured = json.loads(out.stdout)
    assert measured["released"]
    assert measured["kept"] - measured["after"] > 64, measured
