"""3D clean-up: components far smaller than the main lesion go, the lesion itself stays."""

import numpy as np
import pytest

from monai_core.evaluation import PatientPrediction, pipeline_metrics
from monai_core.postprocess import keep_main_components


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
    cleaned = pipeline_metrics([case], 0.5, 0.5, min_component_fraction=1.0)
    assert plain["dice"]["mean"] == pytest.approx(2 * 576 / (576 + 620))
    assert cleaned["dice"]["mean"] == pytest.approx(1.0) and cleaned["min_component_fraction"] == 1.0
