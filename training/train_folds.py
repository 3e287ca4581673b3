"""Train the 0.4.0 recipe once per cross-validation fold, one fold at a time, resumable.

Each fold trains both networks from scratch on the development patients outside the fold
(``bundle/configs/single_stage_*.json`` merged over ``train_*.json`` and ``robust_*.json``), so
that every development patient gets predictions from networks that never saw it. Runs are
resumable: started again with the same RUNS folder, a finished network is skipped and an
interrupted one continues after its last epoch checkpoint. ``--fold -1`` trains on all 88 patients
(the networks that ship). Wall times go to RUNS/times.log, the bundle's own output to
RUNS/fold<k>/<net>.log.

    python training/train_folds.py --data DATA/kaggle_3m --runs runs/cv --folds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bundle" / "configs"
WEIGHTS = {"segmenter": "model.pt", "classifier": "model_classifier.pt"}


def fold_dir(runs: Path, fold: int) -> Path:
    return runs / ("all" if fold < 0 else f"fold{fold}")


def weights_path(runs: Path, fold: int, net: str) -> Path:
    """The finished network of a fold (written only after its last epoch)."""
    return fold_dir(runs, fold) / net / "models" / WEIGHTS[net]


def _children_cpu_seconds() -> float:
    """User + system CPU time of finished child processes: on a shared machine the wall time
    grows with the other load, the CPU time much less, so both are logged."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_network(data: Path, runs: Path, fold: int, net: str, overrides: list[str], context: bool = False) -> None:
    out = fold_dir(runs, fold) / net
    stems = ("train", "robust", "single_stage") + (("context",) if context and net == "segmenter" else ())
    configs = [str(CONFIGS / f"{stem}_{net}.json") for stem in stems]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(configs),
               "--dataset_dir", str(data), "--output_dir", str(out), "--fold", str(fold), *overrides]
    if fold < 0:  # all 88 patients train: there is no validation group
        command += ["--val_interval", "100000"]
    out.parent.mkdir(parents=True, exist_ok=True)
    print(" ".join(command), flush=True)  # the bundle run, to repeat or vary by hand
    with open(runs / "times.log", "a") as times, open(out.parent / f"{net}.log", "a") as log:
        times.write(f"fold {fold} {net}: start {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        times.flush()
        started, cpu_before = time.monotonic(), _children_cpu_seconds()
        result = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        minutes = (time.monotonic() - started) / 60
        cpu_minutes = (_children_cpu_seconds() - cpu_before) / 60
        status = "end" if result.returncode == 0 else f"exit {result.returncode}"
        times.write(f"fold {fold} {net}: {status} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                    f"({minutes:.1f} min wall, {cpu_minutes:.1f} min CPU)\n")
    if result.returncode != 0:
        raise SystemExit(f"fold {fold} {net} failed (exit {result.returncode}); see {out.parent / (net + '.log')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the kaggle_3m folder of the development patients")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--nets", nargs="+", default=["segmenter", "classifier"], choices=sorted(WEIGHTS))
    parser.add_argument("--context", action="store_true", help="a 2.5D segmenter: the neighbours' FLAIR as two more channels (context_segmenter.json)")
    parser.add_argument("overrides", nargs="*", help="extra bundle overrides, e.g. --epochs 8 (after --)")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    for fold in args.folds:
        for net in args.nets:
            if weights_path(args.runs, fold, net).is_file():
                print(f"fold {fold} {net}: already trained", flush=True)
                continue
            print(f"fold {fold} {net}: training", flush=True)
            train_network(args.data.resolve(), args.runs.resolve(), fold, net, args.overrides, args.context)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
