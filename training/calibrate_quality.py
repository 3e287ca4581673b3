"""Fit the per-case confidence (monai_core.quality) and its flag threshold, and measure them out of fold.

Cases come from one of two places:

- ``--out-of-fold RUNS`` (the 0.4.0 way): every development patient's cached out-of-fold
  predictions (``training/out_of_fold.py predict``), each made into its final mask at the setting
  that its outer group was given by ``out_of_fold.py choose`` (``--choice``), exactly as
  ``tumorseg detect`` would, with the confidence features detect computes;
- ``--cases robustness.json``: the robustness benchmark's cases (0.3.0's calibration).

Nested by group (the cross-validation folds, or single patients): for each group, the model *and*
its flag threshold are fitted on the other groups only, then the group is scored; so every figure
comes from patients that chose neither. The flag threshold is the highest confidence below which at
most 15% of the good cases (Dice >= 0.8) of the choosing patients fall. With ``--write`` the model
and threshold fitted on all cases go to ``bundle/configs/quality.json`` with the nested figures.

    python training/calibrate_quality.py --out-of-fold runs/cv --choice runs/cv/out_of_fold.json [--write]
    python training/calibrate_quality.py --cases bundle/docs/robustness.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from monai_core.detect import KAGGLE_VOXEL_ML
from monai_core.metrics import dice as dice_of
from monai_core.outputs import write_json_atomic
from monai_core.pipeline import DEFAULT_BUNDLE
from monai_core.postprocess import MaskSetting, cleaned_probability
from monai_core.quality import MODEL_INPUTS, QualityModel, case_features, fit_linear

MAX_GOOD_FLAGGED = 0.15  # of the cases with Dice >= 0.8


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), for Spearman's rho."""
    order = np.argsort(values, kind="stable")
    r = np.empty(len(values))
    r[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        r[tied] = r[tied].mean()
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for detecting ``positive`` (Mann-Whitney)."""
    r = ranks(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((r[positive].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)) if n_pos and n_neg else float("nan")


def fit(cases: list[dict], flag_below: float = 0.5) -> QualityModel:
    return QualityModel(fit_linear([c["features"] for c in cases], np.array([c["dice"] for c in cases])), flag_below)


def nested_scores(cases: list[dict], groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per case: the confidence from a model fitted without its group, and the flag threshold chosen
    without its group (on the other groups' own out-of-group confidences)."""
    confidence, threshold = np.zeros(len(cases)), np.zeros(len(cases))
    dice = np.array([c["dice"] for c in cases])
    for group in sorted(set(groups.tolist())):
        inside = groups == group
        others = [c for c, g in zip(cases, groups) if g != group]
        model = fit(others)
        confidence[inside] = [model.expected_dice(c["features"]) for c, g in zip(cases, groups) if g == group]
        inner_groups = groups[~inside]
        if len(set(inner_groups.tolist())) < 2:  # one other group (two folds so far): its patients one by one
            inner_groups = np.arange(len(others))
        inner = np.zeros(len(others))
        for g in sorted(set(inner_groups.tolist())):  # the choosing patients' own out-of-group confidences
            inner_model = fit([c for c, h in zip(others, inner_groups) if h != g])
            inner[inner_groups == g] = [inner_model.expected_dice(c["features"]) for c, h in zip(others, inner_groups) if h == g]
        threshold[inside] = choose_threshold(inner, dice[~inside])
    return confidence, threshold


def out_of_fold_cases(runs: Path, choice: Path) -> tuple[list[dict], np.ndarray, dict]:
    """Each cached patient at its outer group's chosen setting: Dice and confidence features, and the groups."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from out_of_fold import SHIPPED, load_cache

    report = json.loads(choice.read_text())
    per_group = report["families"][SHIPPED]["setting_per_group"]
    by_patient = report["outer_groups"] != "folds"
    cases, groups = [], []
    for i, case in enumerate(load_cache(runs, report["source"], flipped=True)):
        group = i if by_patient else case.group
        setting = MaskSetting(**per_group[str(group)])
        tumour = cleaned_probability(case.slice_probability, case.tumour_probability, setting, case.midline)
        final = tumour >= setting.mask_threshold
        on_slices = final.reshape(len(final), -1).any(1)[:, None, None]
        flipped = np.where(on_slices, case.flipped.astype(np.float32), 0.0)  # detect runs the flip on the mask's slices only
        features = case_features(case.slice_probability, tumour, flipped, setting.mask_threshold, KAGGLE_VOXEL_ML)
        cases.append({"patient": case.name, "dice": round(dice_of(final, case.truth), 4), "features": features})
        groups.append(group)
    return cases, np.array(groups), report


def scores(confidence: np.ndarray, thresholds: np.ndarray, dice: np.ndarray) -> dict:
    """How well out-of-group confidences rank and flag these cases (the issue's three targets and more)."""
    flagged = confidence < thresholds
    return {
        "spearman_confidence_dice": round(spearman(confidence, dice), 3),
        "auroc_dice_below_0.7": round(auroc(-confidence, dice < 0.7), 3),
        "mean_abs_error_expected_dice": round(float(np.abs(confidence - dice).mean()), 3),
        "flagged_of_dice_below_0.5": f"{int((flagged & (dice < 0.5)).sum())}/{int((dice < 0.5).sum())}",
        "flagged_of_dice_below_0.7": f"{int((flagged & (dice < 0.7)).sum())}/{int((dice < 0.7).sum())}",
        "flagged_of_dice_at_least_0.8": f"{int((flagged & (dice >= 0.8)).sum())}/{int((dice >= 0.8).sum())}",
    }


def choose_threshold(confidence: np.ndarray, dice: np.ndarray) -> float:
    """The highest threshold that flags at most MAX_GOOD_FLAGGED of the cases with Dice >= 0.8."""
    good = np.sort(confidence[dice >= 0.8])
    if good.size == 0:
        return 0.5
    k = int(np.floor(MAX_GOOD_FLAGGED * good.size))  # this many good cases may lie below
    return float(good[k]) if k < good.size else float(good[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out-of-fold", type=Path, metavar="RUNS", help="the cached out-of-fold predictions")
    source.add_argument("--cases", type=Path, help="a robustness.json with per-case features and Dice")
    parser.add_argument("--choice", type=Path, help="with --out-of-fold: out_of_fold.py choose's report")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    if args.out_of_fold:
        cases, groups, choice = out_of_fold_cases(args.out_of_fold, args.choice or args.out_of_fold / "out_of_fold.json")
        origin = f"{len(cases)} development patients, out of fold ({choice['source']}, {choice['outer_groups']})"
    else:
        benchmark = json.loads(args.cases.read_text())
        cases = benchmark["cases"]
        patients = sorted({c["patient"] for c in cases})
        groups = np.array([patients.index(c["patient"]) for c in cases])
        origin = f"{len(cases)} cases of the robustness benchmark ({benchmark['bundle']['version']})"
    dice = np.array([c["dice"] for c in cases])
    confidence, thresholds = nested_scores(cases, groups)
    figures = {
        "cases": len(cases),
        "patients": len({c["patient"] for c in cases}),
        "groups": len(set(groups.tolist())),
        **scores(confidence, thresholds, dice),
        "nested": "model and flag threshold fitted without the scored group",
    }
    if args.out_of_fold and choice["outer_groups"] == "folds":
        # each fold alone: a fold that chose nothing of the model's form (a later fold) is its independent test
        figures["per_fold"] = {str(g): scores(confidence[groups == g], thresholds[groups == g], dice[groups == g])
                               for g in sorted(set(groups.tolist()))}
    threshold = choose_threshold(confidence, dice)  # the shipped one: on every case's out-of-group confidence
    figures["flag_below"] = round(threshold, 4)
    print(origin)
    print(json.dumps(figures, indent=1))
    if args.write:
        model = fit(cases, threshold)
        write_json_atomic(args.bundle / "configs" / "quality.json", {
            "features": list(MODEL_INPUTS),
            "linear": [round(float(w), 6) for w in model.linear],
            "flag_below": round(threshold, 4),
            "fitted_on": origin,
            "figures": figures,
        })


if __name__ == "__main__":
    main()
