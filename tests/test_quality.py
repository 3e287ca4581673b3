"""The per-case confidence (monai_core.quality) with the shipped bundle: deterministic, calibrated, in report.json."""

from __future__ import annotations

import json

import numpy as np

from conftest import BUNDLE, KAGGLE
from monai_core.detect import detect_case
from monai_core.quality import FEATURES, QualityModel, case_features, uncertain_slices


def test_the_shipped_model_is_calibrated_for_these_features():
    config = json.loads((BUNDLE / "configs" / "quality.json").read_text())
    model = QualityModel.load(BUNDLE / "configs" / "quality.json")
    assert tuple(config["features"]) == FEATURES and 0 < model.threshold < 1
    assert config["figures"]["leave_one_patient_out"] and config["figures"]["cases"] >= 100


def test_report_quality_is_deterministic_and_complete(pipeline, tmp_path):
    case = KAGGLE / "TCGA_FG_6692_20020606"
    first = detect_case(pipeline, tmp_path / "a", kaggle_dir=case)["quality"]
    second = detect_case(pipeline, tmp_path / "b", kaggle_dir=case)["quality"]
    assert first == second
    assert {"confidence", "expected_dice", "flagged", "warnings", "uncertain_slices"} == first.keys()
    assert 0.0 <= first["confidence"] <= 1.0 and first["flagged"] == (first["confidence"] < pipeline.quality.threshold)


def test_no_tumour_is_never_a_confident_answer(pipeline):
    empty = np.zeros((4, 8, 8), np.float32)
    features = case_features(np.zeros(4), empty, empty, 0.5, 0.004)
    assert features["empty"] == 1.0
    assessed = pipeline.quality.assess(features)
    assert assessed["flagged"] and assessed["confidence"] < pipeline.quality.threshold


def test_a_lesion_that_moves_when_mirrored_lowers_the_confidence(pipeline):
    probability = np.zeros((3, 32, 32), np.float32)
    probability[1, 10:20, 4:12] = 0.9
    steady = case_features(np.array([0.1, 0.9, 0.1]), probability, probability.copy(), 0.5, 0.004)
    moved = case_features(np.array([0.1, 0.9, 0.1]), probability, probability[:, :, ::-1].copy(), 0.5, 0.004)
    assert steady["flip_agreement"] == 1.0 and moved["flip_agreement"] == 0.0
    assert pipeline.quality.expected_dice(moved) < pipeline.quality.expected_dice(steady)
    assert uncertain_slices(np.array([0.1, 0.9, 0.1]), probability, probability[:, :, ::-1].copy(), 0.5) == [1]
    assert uncertain_slices(np.array([0.1, 0.9, 0.1]), probability, probability.copy(), 0.5) == []


def test_warnings_and_flag_reach_the_batch_summary():
    from monai_core.batch.summary import ok_row

    report = {"case_id": "c", "tumor_detected": True, "tumor_volume_ml": 3.0, "slices": [], "inputs": {"flair": "f"},
              "quality": {"confidence": 0.41, "flagged": True, "warnings": [{"code": "t1_missing", "message": "m"},
                                                                             {"code": "t1c_missing", "message": "m"}]}}
    row = ok_row("c", report, 1.0)
    assert (row["confidence"], row["flagged"], row["warnings"]) == ("0.410", "true", "t1_missing;t1c_missing")
