"""Evaluation of the shipped pipeline: ``tumorseg evaluate`` and the bundle's evaluate.json."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BUNDLE, KAGGLE, ROOT, run_cli
from monai_core.evaluation import PatientPrediction, pipeline_metrics
from monai_core.metrics import dice
from monai_core.postprocess import MaskSetting


def test_metrics_on_a_hand_made_case():
    truth = np.zeros((4, 8, 8), bool)
    truth[1, 2:4, 2:4] = True
    tumour = np.zeros((4, 8, 8), np.float32)
    tumour[1, 2:4, 2:5] = 0.9  # 4 true pixels, 6 predicted, 4 in common
    tumour[3, 0, 0] = 0.9  # a false positive on a slice the classifier rejects
    case = PatientPrediction("p", np.zeros((4, 3, 8, 8)), truth, np.array([0.1, 0.8, 0.7, 0.2]), tumour)
    m = pipeline_metrics([case], MaskSetting(0.5, 0.5, "size", 0.0))
    assert m["dice"]["mean"] == pytest.approx(2 * 4 / (4 + 6))
    assert m["confusion_matrix"] == {"tp": 1, "fn": 0, "fp": 1, "tn": 2}  # the gate's slices
    assert m["final_mask_sensitivity"] == 1.0 and m["final_mask_specificity"] == 1.0  # slice 2 passed the gate, but holds no mask
    assert m["slice_auc"] == pytest.approx(1.0)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    gated_low = pipeline_metrics([case], MaskSetting(0.1, 0.5, "size", 0.0))  # the false positive's slice passes
    assert gated_low["dice"]["mean"] == pytest.approx(2 * 4 / (4 + 7))
    assert gated_low["final_mask_specificity"] == pytest.approx(2 / 3)


def test_evaluate_cli_writes_metrics_and_plots(tmp_path):
    patients = tmp_path / "patients.txt"
    patients.write_text("TCGA_HT_7680_19970202\n")
    out = tmp_path / "eval"
    result = run_cli("evaluate", "--data", KAGGLE, "--patients", patients, "-o", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dice_per_patient"]) == {"TCGA_HT_7680_19970202"}
    assert {"mean", "median", "q1", "q3"} <= metrics["dice"].keys()
    assert {"slice_auc", "sensitivity", "specificity", "confusion_matrix"} <= metrics.keys()
    for plot in ("dice_per_patient.png", "slice_roc.png", "confusion_matrix.png", "overlay_best.png"):
        assert (out / plot).stat().st_size > 1000
    again = run_cli("evaluate", "--data", KAGGLE, "--patients", patients, "-o", out)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_bundle_evaluate_config_over_the_training_config(tmp_path):
    patients = tmp_path / "patients.txt"
    patients.write_text("TCGA_HT_7680_19970202\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    configs = f"['{BUNDLE}/configs/train_classifier.json','{BUNDLE}/configs/evaluate.json']"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root", str(BUNDLE),
         "--dataset_dir", str(KAGGLE), "--patients_file", str(patients), "--evaluation_patients_file", str(patients),
         "--output_dir", str(tmp_path / "run")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "evaluation" / "metrics.json").read_text())
    assert metrics["patients"] == 1
    assert any(name.startswith("training_curves_") for name in metrics["plots"])
