"""Robustness augmentation (monai_core.data.augment) and benchmark conditions (monai_core.robustness) on real slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import KAGGLE
from monai_core.checkpoints import latest_checkpoint
from monai_core.data.augment import RandFatSuppressd, RandReplaceWithFlaird, RandSkullStripd
from monai_core.data.brain_gain import brain_gain
from monai_core.evaluation import truth_masks
from monai_core.robustness import CONDITIONS, perturb, renormalise
from monai_core.study import load_kaggle_case

PATIENT = "TCGA_FG_6692_20020606"


@pytest.fixture(scope="module")
def case():
    slices = load_kaggle_case(KAGGLE / PATIENT).slices  # (N, 3, 256, 256) in [0, 1]
    brain = np.zeros(slices.shape[:1] + slices.shape[2:], bool)
    brain[:, 60:200, 70:190] = True  # a stand-in brain mask: the transforms only use its shape
    return slices, brain, truth_masks(KAGGLE / PATIENT)


def item(slices, brain, k=13):
    return {"image": torch.from_numpy(slices[k].copy()), "brain": brain[k][None].astype(np.uint8),
            "brain_gain": np.array([1.5, 1.2, 1.3], np.float32)}


def test_replace_with_flair_copies_the_flair_into_t1_or_t1c(case):
    slices, brain, _ = case
    transform = RandReplaceWithFlaird("image", prob=1.0)
    seen = set()
    for seed in range(12):
        transform.set_random_state(seed)
        out = transform(item(slices, brain))["image"]
        replaced = tuple(c for c in (0, 2) if torch.equal(out[c], out[1]))
        assert replaced and torch.equal(out[1], torch.from_numpy(slices[13, 1]))
        seen.add(replaced)
    assert seen == {(0,), (2,), (0, 2)}


def test_skull_strip_zeroes_outside_and_brightens_inside_by_the_gain(case):
    slices, brain, _ = case
    out = RandSkullStripd("image", prob=1.0)(item(slices, brain))["image"].numpy()
    assert not out[:, ~brain[13]].any()
    inside = brain[13]
    expected = np.clip(slices[13] * np.array([1.5, 1.2, 1.3])[:, None, None], 0, 1)
    assert np.allclose(out[:, inside], expected[:, inside], atol=1e-6)


def test_fat_suppression_darkens_only_t1_channels_outside_the_brain(case):
    slices, brain, _ = case
    transform = RandFatSuppressd("image", prob=1.0, factor_range=(0.1, 0.1))
    out = transform(item(slices, brain))["image"].numpy()
    outside = ~brain[13]
    assert np.array_equal(out[1], slices[13, 1])  # FLAIR untouched
    assert np.allclose(out[0][outside], np.clip(slices[13, 0][outside] * 0.1 * 1.5, 0, 1), atol=1e-6)


def test_brain_gain_is_the_ratio_of_99th_percentiles():
    """Per channel: a scalp twice as bright as the brain gives 2, four times gives the cap 3, none gives 1."""
    volume = np.zeros((2, 10, 10, 3), np.uint8)
    volume[:, 2:8, 2:8] = 50  # the brain
    volume[:, 0, :, 0] = 100  # a scalp row, 2x the brain, on channel 0
    volume[:, 0, :, 1] = 200  # 4x on channel 1: above the cap
    brain = np.zeros((2, 10, 10), bool)
    brain[:, 2:8, 2:8] = True
    assert brain_gain(volume, brain).tolist() == [2.0, 3.0, 1.0]


def test_brain_gain_reads_the_99th_percentile_not_the_maximum():
    """One bright outlier among 200 non-zero voxels moves the 99th percentile by a known amount only."""
    volume = np.zeros((1, 20, 20, 1), np.uint8)
    volume[0, :10, :, 0] = 40  # the brain: 200 voxels of 40
    volume[0, 10:, :, 0] = 60  # outside: 200 voxels of 60
    volume[0, 19, 19, 0] = 250  # a single bright voxel outside
    brain = np.zeros((1, 20, 20), bool)
    brain[0, :10] = True
    # p99 of the 400 non-zero voxels (sorted: 200 x 40, 199 x 60, 250) lies between two 60s: 60; brain p99 = 40
    assert brain_gain(volume, brain).tolist() == [1.5]


def test_benchmark_conditions_keep_shapes_and_truth(case):
    slices, brain, truth = case
    assert np.array_equal(renormalise(slices, slices), np.clip(slices, 0, 1))
    for condition in CONDITIONS:
        out = perturb(condition, slices, truth, brain)
        assert out.slices.dtype == np.float32 and out.slices.shape[1:] == (3, 256, 256)
        assert out.slices.min() >= 0 and out.slices.max() <= 1
        if condition == "1 mm thin slices":  # 5 mm slices become 1 mm slices; the lesion keeps its volume
            assert len(out.slices) == (len(slices) - 1) * 5 + 1
            assert out.truth.sum() / 5 == pytest.approx(truth.sum(), rel=0.1)
        else:
            assert out.slices.shape == slices.shape and np.array_equal(out.truth, truth)
    flair_only = perturb("FLAIR only", slices, truth, brain).slices
    assert np.array_equal(flair_only[:, 0], slices[:, 1]) and np.array_equal(flair_only[:, 2], slices[:, 1])
    stripped = perturb("skull-stripped", slices, truth, brain).slices
    assert not stripped[:, :, ~brain[0]].any()


def test_training_resumes_from_the_latest_epoch_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for epoch in (2, 10, 9):
        (tmp_path / f"checkpoint_epoch={epoch}.pt").write_bytes(b"")
    (tmp_path / "checkpoint_final.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "checkpoint_epoch=10.pt"
