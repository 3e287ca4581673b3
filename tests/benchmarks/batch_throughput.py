"""Benchmark ``tumorseg batch``: cases per minute with 1 and 2 workers, and the speed-up.

The 4 LGG sample patients (tests/data/kaggle_3m) are linked ``--copies`` times under new case
ids (3 copies: 12 cases). Each configuration runs the real command ``--runs`` times into a fresh
output folder; the time is the whole command's wall time, start-up and model loading included,
because that is what an operator waits for. Prints medians and the speed-up of 2 workers over 1.

    python tests/benchmarks/batch_throughput.py [--copies 3] [--runs 3] [--workers 1 2] [--engine local|ray]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAGGLE = ROOT / "tests" / "data" / "kaggle_3m"


def make_root(folder: Path, copies: int) -> int:
    """A batch root of Kaggle case folders: every sample patient linked ``copies`` times."""
    patients = sorted(p for p in KAGGLE.iterdir() if p.is_dir())
    folder.mkdir()
    for copy in range(copies):
        for patient in patients:
            (folder / f"{patient.name}_copy{copy}").symlink_to(patient, target_is_directory=True)
    return copies * len(patients)


def timed_batch(source: Path, out: Path, workers: int, engine: str, bundle: str | None) -> float:
    command = [sys.executable, "-m", "monai_core", "batch", str(source), "-o", str(out),
               "--workers", str(workers), "--engine", engine, "--progress", "none"]
    command += ["--bundle", bundle] if bundle else []
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"batch failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="copies of the 4 sample patients (3: 12 cases)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the median is reported")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--bundle", help="bundle folder (default: the shipped bundle)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cases"
        cases = make_root(source, args.copies)
        print(f"{cases} cases (the 4 sample patients x {args.copies}), {args.runs} runs each, engine {args.engine}")
        rates = {}
        for workers in args.workers:
            times = [
                timed_batch(source, Path(tmp) / f"out_{workers}_{run}", workers, args.engine, args.bundle)
                for run in range(args.runs)
            ]
            median = statistics.median(times)
            rates[workers] = cases / median * 60
            print(f"{workers} worker(s): median {median:.1f} s -> {rates[workers]:.1f} cases/min "
                  f"(runs: {', '.join(f'{t:.1f}' for t in times)} s)")
        if 1 in rates:
            for workers in rates:
                if workers != 1:
                    print(f"speed-up of {workers} workers over 1: {rates[workers] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
