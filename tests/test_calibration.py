"""The confidence's calibration (training/calibrate_quality.py): nested by group, so that a scored
group chose neither the model nor the flag threshold."""

from __future__ import annotations

import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "training"))
from calibrate_quality import choose_threshold, nested_scores  # noqa: E402


def _cases(n: int, seed: int = 0) -> list[dict]:
    """Cases whose Dice follows their flip agreement (plus noise); every fifth one a failure."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        agreement = 0.2 + 0.1 * rng.random() if i % 5 == 0 else 0.8 + 0.2 * rng.random()
        features = {"flip_agreement": agreement, "volume_stability": 0.5, "mean_probability": 0.8,
                    "classifier_support": 1.0, "log_volume_ml": 2.0, "empty": 0.0}
        cases.append({"patient": f"p{i}", "dice": float(np.clip(agreement + rng.normal(0, 0.03), 0, 1)), "features": features})
    return cases


def test_failures_are_flagged_and_good_cases_mostly_not_out_of_group():
    cases = _cases(40)
    groups = (np.arange(40) // 2) % 5  # failures (every fifth case) in every group
    confidence, threshold = nested_scores(cases, groups)
    dice = np.array([c["dice"] for c in cases])
    flagged = confidence < threshold
    assert flagged[dice < 0.5].all()
    assert flagged[dice >= 0.8].mean() <= 0.2
    assert np.corrcoef(confidence, dice)[0, 1] > 0.9


def test_a_group_does_not_choose_its_own_threshold():
    """Change only one group's Dice: its own threshold must not move, the others' may."""
    cases = _cases(30, seed=1)
    groups = np.arange(30) % 3
    _, before = nested_scores(cases, groups)
    for c, g in zip(cases, groups):
        if g == 0:
            c["dice"] = 1.0 - c["dice"]
    _, after = nested_scores(cases, groups)
    assert np.allclose(before[groups == 0], after[groups == 0])
    assert not np.allclose(before[groups != 0], after[groups != 0])


def test_the_threshold_flags_at_most_fifteen_percent_of_good_cases():
    confidence = np.linspace(0.5, 1.0, 21)
    dice = np.full(21, 0.9)
    threshold = choose_threshold(confidence, dice)
    assert (confidence < threshold).mean() <= 0.15 and (confidence < threshold).sum() == 3
