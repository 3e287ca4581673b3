"""The 2.5D segmenter's neighbours (monai_core.context): the same slices in training and inference."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import BUNDLE, KAGGLE
from monai_core.context import context_channels, context_step, segmenter_input, with_context


def test_neighbours_are_about_five_millimetres_away():
    assert context_step(None) == 1  # a Kaggle stack: its own neighbours
    assert context_step(5.5) == 1 and context_step(2.5) == 2 and context_step(1.0) == 5
    assert context_channels(3) is False and context_channels(5) is True
    with pytest.raises(ValueError):
        context_channels(4)


def test_the_input_holds_the_slice_and_the_flair_below_and_above():
    slices = np.arange(6 * 3 * 2 * 2, dtype=np.float32).reshape(6, 3, 2, 2)
    x = segmenter_input(slices, np.array([0, 3, 5]), step=2, context=True)
    assert x.shape == (3, 5, 2, 2)
    assert (x[:, :3] == slices[[0, 3, 5]]).all()
    assert (x[:, 3] == slices[[0, 1, 3], 1]).all()  # below, clamped at the first slice
    assert (x[:, 4] == slices[[2, 5, 5], 1]).all()  # above, clamped at the last slice
    as_tensor = segmenter_input(torch.from_numpy(slices), np.array([1]), 1, True)
    assert torch.equal(as_tensor, torch.from_numpy(segmenter_input(slices, np.array([1]), 1, True)))
    assert segmenter_input(slices, np.array([2]), 1, context=False).shape == (1, 3, 2, 2)


def test_training_items_name_the_same_neighbours(tmp_path):
    from monai_core.data import lgg_datalist
    from monai_core.data.neighbours import AddContextFlaird

    patient = "TCGA_HT_7680_19970202"
    items = with_context(lgg_datalist(KAGGLE, [patient]))
    first, second, last = items[0], items[1], items[-1]
    assert first["context"] == [first["image"], second["image"]] and last["context"][1] == last["image"]
    image = torch.zeros(3, 256, 256)
    out = AddContextFlaird("image")({"image": image, "context": second["context"], "brain_gain": np.array([1.0, 2.0, 3.0])})
    assert out["image"].shape == (5, 256, 256) and "context" not in out
    below = np.asarray(Image.open(first["image"]).convert("RGB"))[:, :, 1] / 255.0
    assert np.allclose(out["image"][3].numpy(), below)
    assert out["brain_gain"].tolist() == [1.0, 2.0, 3.0, 2.0, 2.0]  # the neighbours brighten like the FLAIR
    # inference builds the same input from the stack
    from monai_core.study import load_kaggle_case

    stack = load_kaggle_case(KAGGLE / patient).slices
    x = segmenter_input(stack, np.array([1]), context_step(None), True)
    assert np.allclose(x[0, 3], below, atol=1 / 255)


def test_a_pipeline_runs_a_2_5d_segmenter_of_the_users(tmp_path):
    from monai_core.networks import ResUNet
    from monai_core.pipeline import TumorSegPipeline

    torch.manual_seed(0)
    torch.save(ResUNet(in_channels=5).state_dict(), tmp_path / "model.pt")
    pipeline = TumorSegPipeline(BUNDLE, segmenter_weights=tmp_path / "model.pt")
    assert pipeline.context
    slices = np.random.default_rng(0).random((4, 3, 256, 256), dtype=np.float32)
    assert pipeline.segment(torch.from_numpy(slices), np.array([0, 3]), step=2).shape == (2, 256, 256)
    prediction = pipeline.predict(slices, slice_spacing_mm=1.0)
    assert prediction.tumour_probability.shape == (4, 256, 256)
