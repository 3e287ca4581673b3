"""Benchmark the Slicer module's warm engine: the first "Detect tumor" click and the later ones.

``TumorSegLogic.process`` runs on the FG-6692 sample (FLAIR, T1 and T1c loaded with Slicer's
reader into a slicer-core scene, as tests/test_slicer_module.py does). The first click starts the
engine (Python, torch, both networks) and detects; the next ``--runs`` clicks run on the warm
engine. Prints the first click, the median of the others, the engine's own time per request,
and, for comparison, one cold ``python -m monai_core detect`` process on the same files (what
every click cost before the warm engine, less the module's own file writing and import).

    python tests/benchmarks/slicer_warm_engine.py [--runs 5]
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
    parser.add_argument("--runs", type=int, default=5, help="warm clicks after the first (default 5)")
    options = parser.parse_args()

    TumorSeg = sf.import_module()
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    t1 = sf.load_volume(scene, sf.SAMPLE_DIR / "t1.nii.gz", "T1")
    t1c = sf.load_volume(scene, sf.SAMPLE_DIR / "t1c.nii.gz", "T1c")
    slices = flair.GetImageData().GetDimensions()[TumorSeg.TumorSegLogic.axialAxis(flair)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    logic = TumorSeg.TumorSegLogic()
    TumorSeg.TumorSegLogic.stopEngine()
    first, first_engine = click(logic, flair, t1, t1c)
    warm = [click(logic, flair, t1, t1c) for _ in range(options.runs)]
    engine = TumorSeg.sharedEngine(logic.pythonExecutable(), logic.engineDirectory())
    assert engine.starts == 1 and engine.modelLoads == 1, "the warm clicks should reuse the first engine"
    TumorSeg.TumorSegLogic.stopEngine()
    cli = cold_cli()

    print(f"FG-6692, FLAIR + T1 + T1c, {slices} slices; {os.cpu_count()} CPUs, load average {load:.1f} at start")
    print(f"first click (engine start + detect):   {first:6.2f} s  (engine request {first_engine:.2f} s)")
    print(f"later clicks, median of {options.runs}:         {statistics.median(w for w, _ in warm):6.2f} s"
          f"  (engine request {statistics.median(e for _, e in warm):.2f} s; all: "
          + ", ".join(f"{w:.2f}" for w, _ in warm) + ")")
    print(f"cold 'python -m monai_core detect':    {cli:6.2f} s  (the per-click cost before the warm engine)")


if __name__ == "__main__":
    main()
