"""Cross-validation: fold training (training/train_folds.py, resumed with its hard-negative mining),
out-of-fold predictions keyed by source (training/out_of_fold.py), and the nested setting choice
(monai_core.selection) on cases whose best setting is known."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import KAGGLE, ROOT, SAMPLE_PATIENTS
from monai_core.postprocess import MaskSetting
from monai_core.selection import SETTINGS_GRID, Case, best_setting, nested, score_table

TRAINING = ROOT / "training"


def run_script(script: str, *args, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TUMORSEG_THREADS="1")
    return subprocess.run([sys.executable, str(TRAINING / script), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


TINY = ["--n_folds", "2", "--epochs", "2", "--epoch_length", "2", "--train#batch_size", "4", "--num_threads", "1"]


@pytest.fixture(scope="module")
def trained_fold(tmp_path_factory):
    """Both networks of fold 0 of the 4 sample patients (2 train, 2 held out), two tiny epochs each;
    the segmenter keeps its epoch checkpoints and mines hard negatives after epoch 1."""
    runs = tmp_path_factory.mktemp("cv")
    patients = runs / "patients.txt"
    patients.write_text("\n".join(SAMPLE_PATIENTS) + "\n")
    common = ["--data", KAGGLE, "--runs", runs, "--folds", "0"]
    segmenter = run_script("train_folds.py", *common, "--nets", "segmenter", "--", *TINY, "--patients_file", patients,
                           "--hard_negatives#start_epoch", "1", "--train#handlers#4#n_saved", "2")
    assert segmenter.returncode == 0, segmenter.stderr[-3000:] + (runs / "fold0" / "segmenter.log").read_text()[-3000:]
    classifier = run_script("train_folds.py", *common, "--nets", "classifier", "--", *TINY, "--patients_file", patients)
    assert classifier.returncode == 0, classifier.stderr[-3000:]
    return runs, patients


def test_fold_training_writes_both_networks_and_logs_its_times(trained_fold):
    runs, _ = trained_fold
    from monai_core.weights import load_state_dict

    for net, name in (("segmenter", "model.pt"), ("classifier", "model_classifier.pt")):
        assert len(load_state_dict(runs / "fold0" / net / "models" / name, None)) > 10
    times = (runs / "times.log").read_text()
    assert times.count("end ") == 2 and "min wall" in times and "min CPU" in times
    log = (runs / "fold0" / "segmenter.log").read_text()
    assert "hard negatives after epoch 1" in log


def test_a_finished_network_is_skipped_and_an_interrupted_one_resumes_mining_first(trained_fold, tmp_path):
    runs, patients = trained_fold
    import shutil

    resumed = tmp_path / "runs"
    shutil.copytree(runs, resumed)
    models = resumed / "fold0" / "segmenter" / "models"
    (models / "model.pt").unlink()  # as if killed during epoch 2: only the epoch-1 checkpoint is left
    (models / "checkpoint_epoch=2.pt").unlink()
    assert (models / "checkpoint_epoch=1.pt").is_file()
    log = resumed / "fold0" / "segmenter.log"
    before = len(log.read_text())
    again = run_script("train_folds.py", "--data", KAGGLE, "--runs", resumed, "--folds", "0", "--", *TINY,
                       "--patients_file", patients, "--hard_negatives#start_epoch", "1", "--train#handlers#4#n_saved", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fold 0 classifier: already trained" in again.stdout
    new = log.read_text()[before:]
    resume, mining, epoch_two = new.index("resuming after epoch 1"), new.index("hard negatives after epoch 1"), new.index("Epoch: 2/2")
    assert resume < mining < epoch_two  # mined before the first iteration of the resumed run
    assert "Epoch: 1/2" not in new
    assert (models / "model.pt").is_file()


def test_out_of_fold_predictions_are_keyed_by_source_and_never_mixed(trained_fold, tmp_path):
    runs, patients = trained_fold
    predicted = run_script("out_of_fold.py", "predict", "--data", KAGGLE, "--runs", runs, "--patients", patients,
                           "--n-folds", "2", "--folds", "0")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    cached = sorted((runs / "oof" / "folds").glob("*.npz"))
    from monai_core.data import patient_folds

    assert [p.stem for p in cached] == patient_folds(SAMPLE_PATIENTS, 2)[0]  # only the held-out patients
    with np.load(cached[0]) as f:
        assert str(f["source"]) == "folds" and f["tumour_probability"].shape[1:] == (256, 256)
        assert f["midline"].shape == (2,) and f["flipped"].shape == f["tumour_probability"].shape
    out = tmp_path / "oof.json"
    chosen = run_script("out_of_fold.py", "choose", "--runs", runs, "--out", out)
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["patients"] == 2 and report["outer_groups"].startswith("patients")
    everything = report["families"]["everything (gate, confirmation, clean-up)"]
    assert set(everything["out_of_fold"]["dice_per_patient"]) == {p.stem for p in cached}
    refused = run_script("out_of_fold.py", "choose", "--runs", runs, "--out", out, "--write-setting",
                         "--bundle", tmp_path / "no-bundle")
    assert refused.returncode != 0 and "all 88 development patients" in refused.stderr
    # a file of another source in the folds cache is refused, not read as out of fold
    with np.load(cached[0]) as f:
        mixed = {k: f[k] for k in f.files} | {"source": "bundle-0.3.0"}
    np.savez_compressed(cached[0], **mixed)
    refused = run_script("out_of_fold.py", "choose", "--runs", runs, "--out", out)
    assert refused.returncode != 0 and "mixes sources" in refused.stderr


def test_the_bundle_networks_predict_only_the_fold_they_did_not_train_on(tmp_path):
    common = ["predict", "--data", KAGGLE, "--runs", tmp_path, "--bundle-models"]
    refused = run_script("out_of_fold.py", *common, "--folds", "0")
    assert refused.returncode != 0 and "--held-out-fold" in refused.stderr
    refused = run_script("out_of_fold.py", *common, "--held-out-fold", "0", "--folds", "0", "1")
    assert refused.returncode != 0 and "in-sample" in refused.stderr
    assert not (tmp_path / "oof").exists()


def _case(name: str, group: int, false_region_slice_probability: float) -> Case:
    """A lesion on confident slices and a larger false region on doubted ones (the 0.3.0 failure)."""
    probability = np.zeros((10, 32, 32), np.float32)
    slice_probability = np.full(10, 0.02)
    probability[2:5, 4:10, 4:10] = 0.9
    slice_probability[2:5] = 0.99
    probability[6:10, 14:30, 14:30] = 0.8
    slice_probability[6:10] = false_region_slice_probability
    truth = np.zeros(probability.shape, bool)
    truth[2:5, 4:10, 4:10] = True
    return Case(name, slice_probability, probability, truth, group=group)


def test_nested_choice_finds_the_setting_that_removes_false_regions_out_of_fold():
    cases = [_case(f"p{i}", i % 3, 0.1 + 0.05 * i) for i in range(6)]  # false regions at 0.10-0.35
    dice_table, counts = score_table(cases, SETTINGS_GRID)
    old = SETTINGS_GRID.index(MaskSetting(0.05, 0.5, "size", 0.25, 0.0))
    assert dice_table[:, old].max() < 0.5  # the 0.3.0 setting keeps the false region and drops the lesion
    oof, slice_counts, chosen = nested(dice_table, counts, np.array([c.group for c in cases]), list(range(len(SETTINGS_GRID))), 0.95)
    assert np.allclose(oof, 1.0)
    assert slice_counts.tolist() == [18, 0, 42, 0]  # tp, fn, tn, fp over the six cases
    for j in chosen.values():
        s = SETTINGS_GRID[j]
        assert s.classifier_threshold > 0.35 or s.confirm > 0.35  # a gate or a confirmation above the false region


def test_nested_choice_does_not_see_the_held_out_group():
    """A held-out group whose best setting differs from the others' gets the others' choice."""
    cases = [_case("a", 0, 0.1), _case("b", 0, 0.1), _case("c", 1, 0.97)]  # c's false region is on confident slices
    cases[2].truth[6:10, 14:30, 14:30] = True  # ... and is a real lesion there
    dice_table, counts = score_table(cases, SETTINGS_GRID)
    columns = list(range(len(SETTINGS_GRID)))
    oof, _, chosen = nested(dice_table, counts, np.array([0, 0, 1]), columns, 0.0)
    on_c = best_setting(dice_table[2:], counts[2:], columns, 0.0)
    assert dice_table[2, on_c] == 1.0
    assert chosen[1] == best_setting(dice_table[:2], counts[:2], columns, 0.0)  # chosen on a and b only


def test_overlay_figure_outlines_the_reference_in_green_and_the_gated_mask_in_red(tmp_path):
    from monai_core.data.lgg import find_slices
    from PIL import Image

    patient = SAMPLE_PATIENTS[0]
    n = len(find_slices(KAGGLE / patient))
    truth = np.stack([np.asarray(Image.open(m)) > 0 for _, _, m in find_slices(KAGGLE / patient)])
    z = int(np.argmax(truth.reshape(n, -1).sum(1)))
    probability = np.zeros((n, 256, 256), np.float16)
    probability[:, 20:60, 20:60] = 0.9
    slice_probability = np.full(n, 0.9, np.float32)
    slice_probability[z + 1] = 0.01  # gated off: no red on that slice
    np.savez_compressed(tmp_path / f"{patient}.npz", tumour_probability=probability, truth=truth, slice_probability=slice_probability)
    out = tmp_path / "figure.png"
    made = run_script("overlay_cases.py", "--data", KAGGLE, "--cache", tmp_path, "--out", out, f"{patient}:{z},{z + 1}")
    assert made.returncode == 0, made.stderr[-3000:]
    figure = np.asarray(Image.open(out).convert("RGB"))
    assert figure.shape == (256, 512, 3)
    red = np.all(figure == (255, 0, 0), axis=-1)
    green = np.all(figure == (0, 255, 0), axis=-1)
    assert red[:, :256].sum() == 4 * 39 and not red[:, 256:].any()  # the square's outline, once
    assert green[:, :256].any()
