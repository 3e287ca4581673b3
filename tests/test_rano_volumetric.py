"""RANO 2.0 volumetric block of change.json, from lesions of known volume (the real sample's lesion, grown or shrunk).

The expected categories are worked out here from voxel counts and the published thresholds
(Wen et al., J Clin Oncol 2023: progression at +40% volume, partial response at -65%), written
as numbers in this file, not taken from monai_core.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import RAW

from monai_core.compare import compare_cases, rano_volumetric
from monai_core.measurements import measure
from test_compare import expected_bidimensional_category, write_case

PROGRESSION_PERCENT, PARTIAL_RESPONSE_PERCENT = 40.0, -65.0  # RANO 2.0, volumetric


def expected_category(before_voxels: int, after_voxels: int) -> str:
    if before_voxels and not after_voxels:
        return "complete response"
    change = 100.0 * (after_voxels - before_voxels) / before_voxels
    if change >= PROGRESSION_PERCENT:
        return "progression"
    if change <= PARTIAL_RESPONSE_PERCENT:
        return "partial response"
    return "stable"


@pytest.fixture(scope="module")
def lesion():
    return sitk.Cast(sitk.ReadImage(str(RAW / "flair_lesion.nii.gz")), sitk.sitkUInt8)


def voxels(mask: sitk.Image) -> int:
    return int(sitk.GetArrayViewFromImage(mask).sum())


# in-plane radius: > 0 grows the lesion, < 0 shrinks it; None empties it. On the sample these give about
# +23%, +41% (just past +40%), -59% and -67% (just past -65%): both sides of each threshold.
CHANGES = {"grown 1": 1, "grown 2": 2, "shrunk 4": -4, "shrunk 5": -5, "gone": None}


def changed(lesion: sitk.Image, radius: int | None) -> sitk.Image:
    if radius is None:
        return lesion * 0
    operation = sitk.BinaryDilate if radius > 0 else sitk.BinaryErode
    return operation(lesion, [abs(radius), abs(radius), 0], sitk.sitkBall)


@pytest.mark.parametrize("name", CHANGES)
def test_volumetric_category_from_known_volumes(lesion, name):
    after = changed(lesion, CHANGES[name])
    block = rano_volumetric(measure(lesion), measure(after))
    known_percent = 100.0 * (voxels(after) - voxels(lesion)) / voxels(lesion)
    assert block["volume_change_percent"] == pytest.approx(known_percent, abs=0.05)
    assert block["category"] == expected_category(voxels(lesion), voxels(after))
    assert block["thresholds"]["progression_percent"] == PROGRESSION_PERCENT
    assert block["thresholds"]["partial_response_percent"] == PARTIAL_RESPONSE_PERCENT


def test_the_chosen_changes_straddle_each_threshold(lesion):
    """Guards the test above: it must see every category, and changes within 8 points of each threshold."""
    percents = {n: 100.0 * (voxels(changed(lesion, r)) - voxels(lesion)) / voxels(lesion) for n, r in CHANGES.items()}
    categories = {expected_category(voxels(lesion), voxels(changed(lesion, r))) for r in CHANGES.values()}
    assert categories == {"stable", "progression", "partial response", "complete response"}
    assert 40.0 <= percents["grown 2"] < 48.0 and percents["grown 1"] < 40.0
    assert -73.0 < percents["shrunk 5"] <= -65.0 and percents["shrunk 4"] > -65.0


# End to end through compare: on the sample, radius 2 is volumetric progression (+41%) but bidimensionally
# stable (+22%); radius 4 is progression and radius -6 partial response on both (+47%/+85%, -54%/-75%).
END_TO_END = {"grown 2": 2, "grown 4": 4, "shrunk 6": -6, "gone": None}


@pytest.mark.parametrize("name", END_TO_END)
def test_change_json_holds_both_categories(lesion, tmp_path, name):
    """End to end: the volumetric category from the voxel counts, the bidimensional one from the products,
    each by its own published thresholds; they need not agree."""
    after = changed(lesion, END_TO_END[name])
    baseline = write_case(tmp_path / "baseline", RAW / "flair.nii.gz", lesion)
    followup = write_case(tmp_path / "followup", RAW / "flair.nii.gz", after)
    compare_cases(baseline, followup, tmp_path / "out", case_id="pair")
    change = json.loads((tmp_path / "out" / "pair" / "change.json").read_text())
    volumetric = change["volumetric"]
    assert volumetric["category"] == expected_category(voxels(lesion), voxels(after))
    known_percent = 100.0 * (voxels(after) - voxels(lesion)) / voxels(lesion)
    assert volumetric["volume_change_percent"] == pytest.approx(known_percent, abs=0.05)
    assert volumetric["thresholds"]["source"].startswith("RANO 2.0")
    measurements = [change[s]["measurements"] for s in ("baseline", "followup")]
    assert change["category"] == expected_bidimensional_category(*measurements)
    assert "not a diagnosis" in change["category_note"]
    assert np.isclose(change["change_map"]["resolved_ml"], 0.0) == (END_TO_END[name] is not None and END_TO_END[name] > 0)


def test_the_end_to_end_changes_reach_every_category_and_a_disagreement(lesion):
    """Guards the test above: every bidimensional category, and one change the two categories call differently."""
    pairs = {name: (expected_category(voxels(lesion), voxels(changed(lesion, radius))),
                    expected_bidimensional_category(measure(lesion), measure(changed(lesion, radius))))
             for name, radius in END_TO_END.items()}
    assert {bidimensional for _, bidimensional in pairs.values()} == {"stable", "progression", "partial response", "complete response"}
    assert pairs["grown 2"] == ("progression", "stable")
