"""LGG data lists: one item per slice, binary masks, and splits by patient."""

import numpy as np
import pytest
from monai.bundle import ConfigParser

from conftest import BUNDLE, KAGGLE, SAMPLE_PATIENTS
from monai_core.data import lgg_datalist, patient_folds, read_patient_list, split_by_patient


def test_datalist_has_one_item_per_slice_with_patient_and_slice_number():
    items = lgg_datalist(KAGGLE, SAMPLE_PATIENTS)
    assert len(items) == 26 + 21 + 30 + 22
    fg = [i for i in items if i["patient"] == "TCGA_FG_6692_20020606"]
    assert [i["slice"] for i in fg] == list(range(1, 27))
    assert all(i["image"].endswith(f"_{i['slice']}.tif") and i["label"].endswith(f"_{i['slice']}_mask.tif") for i in fg)
    assert 0 < sum(i["tumor"] for i in items) < len(items)


def test_missing_patient_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        lgg_datalist(KAGGLE, SAMPLE_PATIENTS + ["TCGA_XX_0000_20000101"])


def test_default_patient_list_is_the_88_development_patients():
    patients = read_patient_list(BUNDLE / "configs" / "development_patients.txt")
    assert len(patients) == 88 == len(set(patients))
    assert set(SAMPLE_PATIENTS) <= set(patients)


def test_split_is_by_patient_and_stable():
    items = lgg_datalist(KAGGLE, SAMPLE_PATIENTS)
    for fold in range(4):
        train, val = split_by_patient(items, fold=fold, n_folds=4, seed=0)
        assert {i["patient"] for i in train}.isdisjoint({i["patient"] for i in val})
        assert len(train) + len(val) == len(items)
    assert split_by_patient(items, 1, 4, 0) == split_by_patient(items, 1, 4, 0)
    patients = [f"P{i}" for i in range(88)]
    folds = patient_folds(patients, 5, seed=0)
    assert sorted(sum(folds, [])) == sorted(patients)
    assert folds == patient_folds(list(reversed(patients)), 5, seed=0)
    assert folds != patient_folds(patients, 5, seed=1)


def test_bundle_transforms_give_binary_masks_and_unit_float_images():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train_segmenter.json"))
    from monai.transforms import Compose

    transform = Compose(parser.get_parsed_content("load_slice"))
    item = next(i for i in lgg_datalist(KAGGLE, SAMPLE_PATIENTS) if i["tumor"])
    out = transform(item)
    assert out["image"].shape == (3, 256, 256) and out["label"].shape == (1, 256, 256)
    assert set(np.unique(out["label"].numpy())) == {0.0, 1.0}
    assert 0.0 <= float(out["image"].min()) and float(out["image"].max()) <= 1.0
