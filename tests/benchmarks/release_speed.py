"""Benchmark this checkout against an earlier release in the same run: detect time and the confidence's cost.

Both versions run from their own git worktree (``--baseline REV``, default the 0.2.0 release commit)
in alternating child processes, so that both see the same machine state. Prints medians of:
- in-process ``detect_case`` time on the four sample patients, scaled to 36 slices;
- the same with the confidence's test-time flip switched off (this checkout only), i.e. its cost;
- the cold command line (``python -m monai_core detect`` on one sample).

    python tests/benchmarks/release_speed.py [--baseline 2e8a2fa] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAGGLE = ROOT / "tests" / "data" / "kaggle_3m"

IN_PROCESS = r"""
import json, sys, tempfile, time, statistics
from pathlib import Path
import torch
torch.set_num_threads(2)
from monai_core.pipeline import TumorSegPipeline
from monai_core.detect import detect_case
pipeline = TumorSegPipeline()
if sys.argv[2] == "no-flip" and hasattr(pipeline, "flipped_segmentation"):
    pipeline.flipped_segmentation = lambda *args, **kwargs: None  # any signature: the flip pass skipped
cases = sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir())
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for i, case in enumerate(cases):
        detect_case(pipeline, Path(tmp) / f"warm{i}", kaggle_dir=case)  # first run builds the kernels
        times = []
        for k in range(3):
            start = time.perf_counter()
            report = detect_case(pipeline, Path(tmp) / f"{i}_{k}", kaggle_dir=case)
            times.append(time.perf_counter() - start)
        out[case.name] = statistics.median(times) / len(report["slices"]) * 36
print(json.dumps(out))
"""


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev], check=True, capture_output=True)
    return where


def in_process(checkout: Path, mode: str) -> float:
    """Median over the sample patients of in-process detect seconds per 36 slices."""
    env = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, str(KAGGLE), mode], cwd=checkout, env=env,
                            check=True, capture_output=True, text=True)
    return statistics.median(json.loads(result.stdout.strip().splitlines()[-1]).values())


def cold_cli(checkout: Path, out: Path) -> float:
    env = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}
    case = sorted(p for p in KAGGLE.iterdir() if p.is_dir())[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "monai_core", "detect", str(case), "-o", str(out), "--overwrite", "--progress", "none"],
                   cwd=checkout, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="2e8a2fa", help="git revision of the earlier release (0.2.0)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = worktree(args.baseline, Path(tmp) / "baseline")
        try:
            runs = {"baseline": [], "current": [], "current without flip": [], "cold baseline": [], "cold current": []}
            for _ in range(args.rounds):
                runs["baseline"].append(in_process(old, "full"))
                runs["current"].append(in_process(ROOT, "full"))
                runs["current without flip"].append(in_process(ROOT, "no-flip"))
                runs["cold baseline"].append(cold_cli(old, Path(tmp) / "cold_old"))
                runs["cold current"].append(cold_cli(ROOT, Path(tmp) / "cold_new"))
                print({k: round(v[-1], 3) for k, v in runs.items()}, flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    m = {k: statistics.median(v) for k, v in runs.items()}
    print(f"in-process detect per 36 slices, median of {args.rounds} rounds: baseline {args.baseline} {m['baseline']:.3f} s, "
          f"current {m['current']:.3f} s ({m['current'] / m['baseline'] - 1:+.1%})")
    print(f"confidence's test-time flip: {m['current without flip']:.3f} s without, {m['current']:.3f} s with "
          f"({m['current'] / m['current without flip'] - 1:+.1%})")
    print(f"cold CLI: baseline {m['cold baseline']:.2f} s, current {m['cold current']:.2f} s "
          f"({m['cold current'] / m['cold baseline'] - 1:+.1%})")


if __name__ == "__main__":
    main()
