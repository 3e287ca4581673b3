"""Fit the per-case confidence (monai_core.quality) on the robustness benchmark's cases, and measure it.

The cases are the fold-0 validation patients under every benchmark condition, scored by
``training/robustness.py`` (``robustness.json``: per case the pipeline's Dice and the confidence
features). The figures are leave-one-patient-out: each patient's cases are scored by a model fitted
without that patient, so a patient never grades itself. The flag threshold is the highest
confidence below which at most 15% of the good cases (Dice >= 0.8) fall, on those same
out-of-patient scores. Writes ``bundle/configs/quality.json`` (with ``--write``) and prints the figures.

    python training/calibrate_quality.py [--cases bundle/docs/robustness.json] [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from monai_core.outputs import write_json_atomic
from monai_core.pipeline import DEFAULT_BUNDLE
from monai_core.quality import FEATURES, QualityModel, fit_linear

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


def leave_one_patient_out(cases: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-patient confidence and expected Dice of every case."""
    expected = np.zeros(len(cases))
    for patient in sorted({c["patient"] for c in cases}):
        model = fit([c for c in cases if c["patient"] != patient])
        for i, c in enumerate(cases):
            if c["patient"] == patient:
                expected[i] = model.expected_dice(c["features"])
    return expected, expected


def choose_threshold(confidence: np.ndarray, dice: np.ndarray) -> float:
    """The highest threshold that flags at most MAX_GOOD_FLAGGED of the cases with Dice >= 0.8."""
    good = np.sort(confidence[dice >= 0.8])
    if good.size == 0:
        return 0.5
    k = int(np.floor(MAX_GOOD_FLAGGED * good.size))  # this many good cases may lie below
    return float(good[k]) if k < good.size else float(good[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_BUNDLE / "docs" / "robustness.json")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    benchmark = json.loads(args.cases.read_text())
    cases = benchmark["cases"]
    dice = np.array([c["dice"] for c in cases])
    confidence, expected = leave_one_patient_out(cases)
    threshold = choose_threshold(confidence, dice)
    flagged = confidence < threshold
    figures = {
        "cases": len(cases),
        "patients": len({c["patient"] for c in cases}),
        "setting": benchmark["cases_setting"],
        "spearman_confidence_dice": round(spearman(confidence, dice), 3),
        "auroc_dice_below_0.7": round(auroc(-confidence, dice < 0.7), 3),
        "mean_abs_error_expected_dice": round(float(np.abs(expected - dice).mean()), 3),
        "flag_below": round(threshold, 4),
        "flagged_of_dice_below_0.5": f"{int((flagged & (dice < 0.5)).sum())}/{int((dice < 0.5).sum())}",
        "flagged_of_dice_at_least_0.8": f"{int((flagged & (dice >= 0.8)).sum())}/{int((dice >= 0.8).sum())}",
        "leave_one_patient_out": True,
    }
    print(json.dumps(figures, indent=1))
    if args.write:
        model = fit(cases, threshold)
        write_json_atomic(args.bundle / "configs" / "quality.json", {
            "features": list(FEATURES),
            "linear": [round(float(w), 6) for w in model.linear],
            "flag_below": round(threshold, 4),
            "fitted_on": f"{figures['cases']} cases: fold-0 validation patients x robustness conditions "
                         f"({benchmark['bundle']['version']}, setting {benchmark['cases_setting']})",
            "figures": figures,
        })


if __name__ == "__main__":
    main()
