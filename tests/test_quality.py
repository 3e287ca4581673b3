"""The per-case confidence (monai_core.quality) with the shipped bundle: deterministic, calibrated, in report.json."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import BUNDLE, KAGGLE, RAW, VALIDATION
from monai_core.detect import detect_case
from monai_core.evaluation import truth_masks
from monai_core.quality import FEATURES, MODEL_INPUTS, QualityModel, case_features, uncertain_slices


def test_the_shipped_model_reads_the_features_in_the_order_the_code_computes_them():
    config = json.loads((BUNDLE / "configs" / "quality.json").read_text())
    model = QualityModel.load(BUNDLE / "configs" / "quality.json")
    assert tuple(config["features"]) == MODEL_INPUTS == model.inputs and 0 < model.threshold < 1
    assert set(MODEL_INPUTS) <= set(FEATURES)


def _dice(a, b) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


@pytest.fixture(scope="module")
def assessed(pipeline, tmp_path_factory):
    """(measured Dice, quality) of real studies that succeed and of real inputs that make the model fail.

    The Dice is measured here against each study's reference mask, independently of the confidence.
    """
    tmp = tmp_path_factory.mktemp("calibration")
    flair = sitk.ReadImage(str(RAW / "flair.nii.gz"), sitk.sitkFloat32)
    voxels = sitk.GetArrayFromImage(flair)
    noise = np.random.default_rng(0).normal(0, voxels.std(), voxels.shape).astype(np.float32)
    noisy = sitk.GetImageFromArray(voxels + noise)
    noisy.CopyInformation(flair)
    sitk.WriteImage(noisy, str(tmp / "noisy_flair.nii.gz"))
    lesion = sitk.ReadImage(str(RAW / "flair_lesion.nii.gz"))
    studies = {
        "sample study": dict(flair=RAW / "flair.nii.gz", t1=RAW / "t1.nii.gz", t1c=RAW / "t1c.nii.gz"),
        "sample FLAIR alone": dict(flair=RAW / "flair.nii.gz"),
        "T2 given as FLAIR": dict(flair=RAW / "t2.nii.gz", t1=RAW / "t1.nii.gz", t1c=RAW / "t1c.nii.gz"),
        "T1 given as FLAIR": dict(flair=RAW / "t1.nii.gz", t1=RAW / "t1.nii.gz", t1c=RAW / "t1c.nii.gz"),
        "FLAIR under noise": dict(flair=tmp / "noisy_flair.nii.gz"),
    }
    out = {}
    for name, inputs in studies.items():
        report = detect_case(pipeline, tmp / name.replace(" ", "_"), case_id="c", **{k: str(v) for k, v in inputs.items()})
        mask = sitk.ReadImage(str(tmp / name.replace(" ", "_") / "c" / "segmentation.nii.gz"))
        on_lesion_grid = sitk.Resample(mask, lesion, sitk.Transform(), sitk.sitkNearestNeighbor)
        out[name] = (_dice(sitk.GetArrayFromImage(on_lesion_grid), sitk.GetArrayFromImage(lesion)), report["quality"])
    validation = VALIDATION / "TCGA_DU_7294_19890104"  # a second development patient
    report = detect_case(pipeline, tmp / "validation", case_id="c", kaggle_dir=validation)
    mask = np.moveaxis(np.asarray(nib.load(str(tmp / "validation" / "c" / "segmentation.nii.gz")).dataobj), -1, 0)
    out["validation patient"] = (_dice(mask, np.asarray(truth_masks(validation))), report["quality"])
    return out


MISUSED = ("T2 given as FLAIR", "T1 given as FLAIR")  # the wrong sequence in the FLAIR's place


def test_the_expected_dice_follows_the_measured_dice(assessed):
    """The calibration's claims (bundle/configs/quality.json: mean error 0.099, AUROC 0.89 for Dice < 0.7),
    checked on studies measured here with a margin: the expected Dice is near the true one on the studies
    given as intended, every failure is flagged, and every success is expected to do better than every failure.

    The calibration was fitted on studies whose sequences were in their places, so its error is claimed for
    those only; another sequence given as the FLAIR must be flagged, and nothing more is claimed of its number
    (its Dice against the FLAIR's lesion, 0.07-0.27, moves with anything that moves the T1 and T1c)."""
    table = "\n".join(f"{name}: Dice {dice:.3f}, expected {q['expected_dice']:.3f}, flagged {q['flagged']}"
                      for name, (dice, q) in assessed.items())
    good = [q["expected_dice"] for dice, q in assessed.values() if dice >= 0.7]
    failed = [(dice, q) for dice, q in assessed.values() if dice < 0.5]
    assert len(good) >= 3 and len(failed) >= 2, table  # the studies cover both kinds
    errors = [abs(q["expected_dice"] - dice) for name, (dice, q) in assessed.items() if name not in MISUSED]
    assert len(errors) >= 4 and np.mean(errors) <= 0.2, table
    assert all(q["flagged"] for _, q in failed), table
    assert min(good) > max(q["expected_dice"] for _, q in failed), table


def test_the_readme_quotes_the_stored_flag_threshold():
    model = QualityModel.load(BUNDLE / "configs" / "quality.json")
    readme = (BUNDLE.parent / "README.md").read_text()
    quoted = re.search(r"Below ([0-9.]+) \(`flag_below`", readme)
    assert quoted, "README.md should say: Below <threshold> (`flag_below` ...) the case is flagged"
    assert float(quoted.group(1)) == model.threshold


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


def test_a_model_reads_the_inputs_its_config_names_and_refuses_a_mismatch(tmp_path):
    """A three-input model (the 0.4.0 form) and the shipped six-input one load from their configs;
    coefficients that do not match the named inputs, or an input this code does not compute, are refused."""
    features = {"flip_agreement": 0.9, "volume_stability": 0.8, "mean_probability": 0.95, "classifier_support": 1.0,
                "log_volume_ml": 2.0, "empty": 0.0}
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"features": ["flip_agreement", "volume_stability", "mean_probability"],
                                "linear": [-0.5, 0.5, 0.4, 0.3], "flag_below": 0.7}))
    model = QualityModel.load(path)
    assert model.expected_dice(features) == pytest.approx(-0.5 + 0.45 + 0.32 + 0.285)
    for bad in ({"features": ["flip_agreement"], "linear": [0.1, 0.2, 0.3]},
                {"features": ["flip_agreement", "lesion_colour"], "linear": [0.1, 0.2, 0.3]}):
        path.write_text(json.dumps({**bad, "flag_below": 0.7}))
        with pytest.raises(ValueError, match="fitted on features"):
            QualityModel.load(path)


def test_an_empty_mask_is_never_a_confident_answer():
    """Whatever the intercept: a model whose inputs are all zero for an empty mask would otherwise trust it."""
    empty = case_features(np.zeros(4), np.zeros((4, 8, 8), np.float32), None, 0.5, 0.001)
    model = QualityModel(np.array([0.9, 0.0, 0.0, 0.0]), 0.7)
    assert empty["empty"] == 1.0 and model.expected_dice(empty) == 0.0 and model.assess(empty)["flagged"]
