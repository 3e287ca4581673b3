"""Out-of-fold predictions of the development patients, and settings chosen out of fold.

``predict`` runs a fold's networks (trained without that fold, ``training/train_folds.py``) on
every slice of the fold's patients, as is and mirrored left-right, and caches the probabilities in
RUNS/oof/<patient>.npz. ``choose`` then picks the classifier gate, the mask threshold and the 3D
clean-up rule by nested cross-validation: for each fold, the setting that scores best on the
*other* folds is applied to it, so every quoted figure comes from patients that chose nothing.
With a single fold cached, the outer groups are single patients (leave one patient out).

    python training/out_of_fold.py predict --data DATA/kaggle_3m --runs runs/cv --folds 0 1
    python training/out_of_fold.py predict --data DATA/kaggle_3m --runs runs/cv --folds 0 --bundle-models  # 0.3.0, fold 0
    python training/out_of_fold.py choose --runs runs/cv --out bundle/docs/out_of_fold.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

from monai_core.postprocess import CLEANUP_RULES, components  # noqa: E402
from monai_core.data import DEFAULT_PATIENT_LIST, patient_folds, read_patient_list  # noqa: E402
from monai_core.evaluation import truth_masks  # noqa: E402
from monai_core.metrics import dice, summarise  # noqa: E402
from monai_core.outputs import write_json_atomic  # noqa: E402
from monai_core.pipeline import DEFAULT_BUNDLE, TumorSegPipeline  # noqa: E402
from monai_core.study import load_kaggle_case  # noqa: E402
from train_folds import weights_path  # noqa: E402

CLASSIFIER_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)  # 0.05 and up: a lower gate sends nearly every slice to the segmenter (speed)
MASK_GRID = (0.4, 0.5, 0.6)


def cache_path(runs: Path, patient: str) -> Path:
    return runs / "oof" / f"{patient}.npz"


def predict(args) -> None:
    folds = patient_folds(read_patient_list(DEFAULT_PATIENT_LIST))
    for fold in args.folds:
        if args.bundle_models:
            pipeline, source = TumorSegPipeline(args.bundle), f"bundle {args.bundle}"
        else:
            seg, cls = weights_path(args.runs, fold, "segmenter"), weights_path(args.runs, fold, "classifier")
            if not (seg.is_file() and cls.is_file()):
                print(f"fold {fold}: not trained yet, skipped", flush=True)
                continue
            pipeline, source = TumorSegPipeline(args.bundle, segmenter_weights=seg, classifier_weights=cls), f"fold {fold}"
        for patient in folds[fold]:
            path = cache_path(args.runs, patient)
            if path.is_file() and not args.overwrite:
                continue
            x = torch.from_numpy(load_kaggle_case(args.data / patient).slices)
            probability = pipeline.segment(x)
            flipped = pipeline.segment(torch.flip(x, dims=[-1]))[:, :, ::-1]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, fold=fold, source=source, slice_probability=pipeline.classify(x),
                                tumour_probability=probability.astype(np.float16), flipped=flipped.astype(np.float16),
                                truth=truth_masks(args.data / patient))
            tmp.replace(path)
            print(f"fold {fold}: {patient}", flush=True)


def load_cache(runs: Path) -> dict[str, dict]:
    cases = {}
    for path in sorted((runs / "oof").glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path) as f:
            cases[path.stem] = {k: f[k] for k in ("slice_probability", "tumour_probability", "truth")} | {"fold": int(f["fold"])}
    return cases


def settings() -> list[tuple]:
    """Every (classifier threshold, mask threshold, clean-up rule, its parameter) searched."""
    rules = [(name, p) for name, (_, grid) in CLEANUP_RULES.items() for p in grid]
    return [(c, m, r, p) for c, m, (r, p) in itertools.product(CLASSIFIER_GRID, MASK_GRID, rules)]


def score_table(cases: dict, grid: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Per case (rows) and setting (columns): the Dice, and the slice counts (tp, fn, tn, fp) of the
    final mask against "the slice holds tumour". The components are labelled once per gate and mask
    threshold; every rule then only picks labels."""
    dice_table = np.zeros((len(cases), len(grid)))
    counts = np.zeros((len(cases), len(grid), 4), np.int64)
    pairs = sorted({s[:2] for s in grid})
    for i, case in enumerate(cases.values()):
        truth = case["truth"].astype(bool)
        tumour_slice = truth.reshape(len(truth), -1).any(1)
        for classifier, threshold in pairs:
            gate = (case["slice_probability"] >= classifier)[:, None, None]
            probability = np.where(gate, case["tumour_probability"].astype(np.float32), 0.0)
            labels, parts = components(probability >= threshold, probability, case["slice_probability"])
            overlap = np.bincount(labels[truth], minlength=labels.max() + 1)
            on_slice = np.zeros((len(labels), labels.max() + 1), bool)  # which labels each slice holds
            for z in range(len(labels)):
                on_slice[z, np.unique(labels[z])] = True
            for j, (c, m, rule, parameter) in enumerate(grid):
                if (c, m) != (classifier, threshold):
                    continue
                kept = CLEANUP_RULES[rule][0](parts, parameter)
                total = parts["size"][kept].sum() + truth.sum()
                dice_table[i, j] = 1.0 if total == 0 else 2.0 * overlap[kept].sum() / total
                found = on_slice[:, kept].any(1)
                counts[i, j] = [(found & tumour_slice).sum(), (~found & tumour_slice).sum(),
                                (~found & ~tumour_slice).sum(), (found & ~tumour_slice).sum()]
    return dice_table, counts


def slice_rates(counts: np.ndarray) -> tuple[float, float]:
    """(sensitivity, specificity) from summed (tp, fn, tn, fp)."""
    tp, fn, tn, fp = counts
    return tp / max(tp + fn, 1), tn / max(tn + fp, 1)


def best_setting(dice_table: np.ndarray, counts: np.ndarray, columns: list[int], min_sensitivity: float) -> int:
    """The column with the best mean Dice among those whose slice sensitivity reaches the floor."""
    sensitive = [j for j in columns if slice_rates(counts[:, j].sum(0))[0] >= min_sensitivity] or columns
    return max(sensitive, key=lambda j: dice_table[:, j].mean())


def nested(dice_table, counts, groups, columns, min_sensitivity) -> tuple[np.ndarray, np.ndarray, dict]:
    """Out-of-fold Dice per case and summed slice counts: each group scored at the setting chosen on the others."""
    chosen_dice, chosen_counts, chosen = np.zeros(len(groups)), np.zeros(4, np.int64), {}
    for group in sorted(set(groups)):
        inside = groups == group
        j = best_setting(dice_table[~inside], counts[~inside], columns, min_sensitivity)
        chosen_dice[inside] = dice_table[inside, j]
        chosen_counts += counts[inside, j].sum(0)
        chosen[int(group)] = j
    return chosen_dice, chosen_counts, chosen


def figures(names, dice_values, slice_counts) -> dict:
    sensitivity, specificity = slice_rates(slice_counts)
    return {"dice": {k: round(v, 4) for k, v in summarise(dice_values).items()},
            "below_0.4": int((np.asarray(dice_values) < 0.4).sum()),
            "slice_sensitivity": round(sensitivity, 4), "slice_specificity": round(specificity, 4),
            "slice_counts": dict(zip(("tp", "fn", "tn", "fp"), map(int, slice_counts))),
            "dice_per_patient": {n: round(float(d), 4) for n, d in zip(names, dice_values)}}


def choose(args) -> None:
    cases = load_cache(args.runs)
    if not cases:
        raise SystemExit(f"{args.runs / 'oof'}: no cached predictions; run predict first")
    grid = settings()
    names = list(cases)
    dice_table, counts = score_table(cases, grid)
    folds = np.array([cases[n]["fold"] for n in names])
    groups = folds if len(set(folds)) > 1 else np.arange(len(names))
    report = {"patients": len(names), "folds": sorted(int(f) for f in set(folds)),
              "outer_groups": "folds" if len(set(folds)) > 1 else "patients (leave one patient out)",
              "min_slice_sensitivity": args.min_sensitivity, "rules": {}}
    baseline = grid.index((0.05, 0.5, "size", 0.25))
    report["0.3.0_setting"] = {"setting": grid[baseline], **figures(names, dice_table[:, baseline], counts[:, baseline].sum(0))}
    for rule in CLEANUP_RULES:  # each rule family chosen out of fold on its own, so the rules compare fairly
        columns = [j for j, s in enumerate(grid) if s[2] == rule]
        oof_dice, oof_counts, chosen = nested(dice_table, counts, groups, columns, args.min_sensitivity)
        everyone = best_setting(dice_table, counts, columns, args.min_sensitivity)
        report["rules"][rule] = {"out_of_fold": figures(names, oof_dice, oof_counts),
                                 "setting_per_group": {str(g): grid[j] for g, j in chosen.items()},
                                 "setting_on_all": grid[everyone]}
    write_json_atomic(args.out, report)
    print(f"{len(names)} patients, folds {report['folds']}, outer groups: {report['outer_groups']}")
    rows = [("0.3.0 setting " + str(grid[baseline]), report["0.3.0_setting"])]
    rows += [(f"rule {r} (chosen out of fold; on all: {v['setting_on_all']})", v["out_of_fold"]) for r, v in report["rules"].items()]
    for label, f in rows:
        print(f"{label}: Dice mean {f['dice']['mean']:.3f} median {f['dice']['median']:.3f} min {f['dice']['min']:.3f} "
              f"(<0.4: {f['below_0.4']}); slices sensitivity {f['slice_sensitivity']:.3f} specificity {f['slice_specificity']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="cache out-of-fold probabilities")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    p.add_argument("--bundle-models", action="store_true", help="use the bundle's own networks (valid out of fold for fold 0 of 0.3.0)")
    p.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("choose", help="choose the setting by nested cross-validation and report out-of-fold figures")
    c.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv")
    c.add_argument("--out", type=Path, default=ROOT / "runs" / "cv" / "out_of_fold.json")
    c.add_argument("--min-sensitivity", type=float, default=0.95, help="slice sensitivity a chosen setting must reach on the patients that choose it")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    predict(args) if args.command == "predict" else choose(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
