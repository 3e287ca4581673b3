"""3D clean-up: components far smaller than the main lesion go, the lesion itself stays."""

import numpy as np
import pytest

from monai_core.evaluation import PatientPrediction, pipeline_metrics
from monai_core.postprocess import clean_up, cleanup_setting, components, keep_main_components


def _lesion_and_specks():
    mask = np.zeros((6, 32, 32), bool)
    mask[1:5, 8:20, 8:20] = True  # the lesion across four slices: 576 voxels
    mask[2, 28:30, 28:30] = True  # a 4-voxel speck on one slice
    mask[4, 0:10, 28:32] = True  # a 40-voxel fragment
    return mask


@pytest.mark.parametrize("fraction, kept", [(0.0, 620), (0.005, 620), (0.05, 616), (1.0, 576)])
def test_components_below_the_fraction_of_the_largest_are_removed(fraction, kept):
    mask = _lesion_and_specks()
    cleaned = keep_main_components(mask, fraction)
    assert cleaned.sum() == kept
    assert cleaned[1:5, 8:20, 8:20].all()  # the lesion is never touched
    assert not (cleaned & ~mask).any()  # clean-up never adds voxels


def test_empty_masks_and_touching_slices():
    assert not keep_main_components(np.zeros((3, 4, 4), bool), 1.0).any()
    mask = np.zeros((3, 4, 4), bool)
    mask[0, 1, 1] = mask[1, 1, 1] = True  # one component across two slices: 3D connectivity
    assert keep_main_components(mask, 1.0).sum() == 2


def test_the_clean_up_raises_dice_on_a_case_with_a_false_positive_speck():
    truth = np.zeros((6, 32, 32), bool)
    truth[1:5, 8:20, 8:20] = True
    tumour = _lesion_and_specks().astype(np.float32)
    case = PatientPrediction("p", np.zeros((6, 3, 32, 32)), truth, np.ones(6), tumour)
    plain = pipeline_metrics([case], 0.5, 0.5)
    cleaned = pipeline_metrics([case], 0.5, 0.5, cleanup=("size", 1.0))
    assert plain["dice"]["mean"] == pytest.approx(2 * 576 / (576 + 620))
    assert cleaned["dice"]["mean"] == pytest.approx(1.0) and cleaned["cleanup"] == ["size", 1.0]



def _lesion_beside_a_larger_bilateral_false_region():
    """The 0.3.0 failure on unseen patients: a unilateral lesion on slices the classifier is sure of,
    and a region nine times larger, mirrored on both sides of the brain like bright cortex, on slices
    the classifier doubts."""
    probability = np.zeros((8, 64, 64), np.float32)
    slice_probability = np.array([0.1, 0.1, 0.1, 0.95, 0.95, 0.95, 0.1, 0.1])
    probability[3:6, 20:30, 40:50] = 0.9  # the lesion: 300 voxels, right of the midline only
    probability[0:3, 10:30, 2:12] = 0.8  # "cortex": left and right blocks, mirror images of each other,
    probability[0:3, 10:30, 52:62] = 0.8
    probability[0:3, 2:10, 2:62] = 0.8  # joined by a band across the top: one component of 2640 voxels
    truth = np.zeros(probability.shape, bool)
    truth[3:6, 20:30, 40:50] = True
    return probability, slice_probability, truth


def test_the_size_rule_drops_the_lesion_for_a_larger_false_region():
    probability, slice_probability, truth = _lesion_beside_a_larger_bilateral_false_region()
    by_size = clean_up(probability, slice_probability, 0.5, "size", 0.25)
    assert not (by_size & truth).any() and by_size.sum() == 2640


def test_the_evidence_and_symmetry_rule_keeps_the_lesion_and_drops_the_mirrored_region():
    probability, slice_probability, truth = _lesion_beside_a_larger_bilateral_false_region()
    for parameter in (0.05, 0.1, 0.25, 0.5):
        kept = clean_up(probability, slice_probability, 0.5, "evidence_symmetry", parameter)
        assert (kept == truth).all(), parameter
    # without the symmetry cue the weighted evidence alone (2640 x 0.8 x 0.1 against 300 x 0.9 x 0.95)
    # still keeps the false region at a low parameter, and the lesion at every one
    plain = clean_up(probability, slice_probability, 0.5, "evidence", 0.25)
    assert (plain & truth).sum() == 300 and plain.sum() == 2940


def test_components_report_size_evidence_and_mirror_share():
    probability, slice_probability, truth = _lesion_beside_a_larger_bilateral_false_region()
    labels, table = components(probability >= 0.5, probability, slice_probability)
    lesion, region = labels[4, 25, 45], labels[0, 20, 5]
    assert table["size"][lesion] == 300 and table["size"][region] == 2640
    assert table["evidence"][lesion] == pytest.approx(300 * 0.9 * 0.95, rel=1e-5)
    assert table["mirrored"][lesion] == 0.0 and table["mirrored"][region] > 0.95


def test_the_clean_up_setting_comes_from_the_inference_config():
    assert cleanup_setting({"cleanup": {"rule": "evidence_symmetry", "parameter": 0.25}}) == ("evidence_symmetry", 0.25)
    assert cleanup_setting({"min_component_fraction": 0.25}) == ("size", 0.25)  # a 0.3.0 bundle
    with pytest.raises(ValueError, match="unknown clean-up rule"):
        cleanup_setting({"cleanup": {"rule": "largest", "parameter": 1}})
