"""Benchmark the Slicer module's warm engine: the first "Detect tumor" click and the later ones.

``TumorSegLogic.process`` runs on the FG-6692 sample (FLAIR, T1 and T1c loaded with Slicer's
reader into a slicer-core scene, as tests/test_slicer_module.py does). Per round, a new engine:
the first click starts it (Python, torch, both networks) and detects; the second click on the same
volumes runs on the warm engine, which reuses the study it read (monai_core/study_cache.py) and
what it made of it (monai_core/remembered_results.py: mask, confidence, measurements), and so only
writes the outputs. Prints the medians of the first and second clicks (the target
of issue 27: a second Detect within 1.5 s), the engine's own time per request, whether the second
click reused the study, and, for comparison, one cold ``python -m monai_core detect`` process on
the same files (what every click cost before the warm engine, less the module's own file writing).

    python tests/benchmarks/slicer_warm_engine.py [--rounds 5]

Run it on an idle machine; on a busy one the figures mean nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import slicer_fixture as sf  # noqa: E402


def click(logic, flair, t1, t1c) -> tuple[float, float]:
    """(wall seconds of process(), the engine's own seconds for the request)."""
    started = time.perf_counter()
    segmentation = logic.process(flair, t1, t1c)
    wall = time.perf_counter() - started
    assert segmentation is not None
    answer = sf.import_module().sharedEngine(logic.pythonExecutable(), logic.engineDirectory()).lastAnswer
    return wall, answer["elapsed_s"]


def cold_cli() -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "monai_core", "detect", "--flair", str(sf.SAMPLE_DIR / "flair.nii.gz"),
                   "--t1", str(sf.SAMPLE_DIR / "t1.nii.gz"), "--t1c", str(sf.SAMPLE_DIR / "t1c.nii.gz"),
                   "-o", out, "--case-id", "case", "--progress", "none"]
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", "--runs", type=int, default=5,
                        help="rounds of (engine start, first click, second click); medians (default 5)")
    options = parser.parse_args()

    TumorSeg = sf.import_module()
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    t1 = sf.load_volume(scene, sf.SAMPLE_DIR / "t1.nii.gz", "T1")
    t1c = sf.load_volume(scene, sf.SAMPLE_DIR / "t1c.nii.gz", "T1c")
    slices = flair.GetImageData().GetDimensions()[TumorSeg.TumorSegLogic.axialAxis(flair)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    logic = TumorSeg.TumorSegLogic()
    firsts, seconds = [], []
    for _ in range(options.rounds):
        TumorSeg.TumorSegLogic.stopEngine()  # each round starts its own engine, with nothing read yet
        firsts.append(click(logic, flair, t1, t1c))
        seconds.append(click(logic, flair, t1, t1c))
        engine = TumorSeg.sharedEngine(logic.pythonExecutable(), logic.engineDirectory())
        assert engine.starts == 1 and engine.modelLoads == 1, "the second click should reuse the first engine"
        counts = engine.lastAnswer["engine"]
        assert (counts["study_reuses"], counts["result_reuses"], counts["prediction_runs"]) == (1, 1, 1), \
            f"the second click redid work: {counts}"
    TumorSeg.TumorSegLogic.stopEngine()
    cli = cold_cli()

    def median(runs, k):
        return statistics.median(r[k] for r in runs)

    print(f"FG-6692, FLAIR + T1 + T1c, {slices} slices; {os.cpu_count()} CPUs, load average {load:.1f} at start; "
          f"medians of {options.rounds}")
    print(f"first click (engine start + detect):        {median(firsts, 0):6.2f} s  (engine request {median(firsts, 1):.2f} s)")
    print(f"second click, same study (reused, target <= 1.5 s): {median(seconds, 0):6.2f} s  (engine request "
          f"{median(seconds, 1):.2f} s; all: " + ", ".join(f"{w:.2f}" for w, _ in seconds) + ")")
    print(f"cold 'python -m monai_core detect':         {cli:6.2f} s  (the per-click cost before the warm engine)")


if __name__ == "__main__":
    main()
