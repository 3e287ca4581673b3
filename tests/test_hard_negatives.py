"""Hard-negative mining (monai_core.data.hard_negatives): the sampler weights it writes, the
false-positive count it mines with, and when it mines in a fresh and in a resumed run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from monai_core.data.hard_negatives import HardNegativeMiner, false_positive_pixels, mined_weights


class BrightFlairIsTumour(torch.nn.Module):
    """A fixed 'segmenter': logit +10 where the FLAIR channel is above 0.5, -10 elsewhere."""

    def forward(self, x):
        return 20.0 * (x[:, 1:2] - 0.5)


def run_network(x, network):
    return network(x)


def write_slices(folder, bright_pixels: list[int], size: int = 16) -> list[dict]:
    """One RGB slice per entry with that many FLAIR pixels at 255; the first slice holds tumour."""
    items = []
    for i, n in enumerate(bright_pixels):
        image = np.zeros((size, size, 3), np.uint8)
        image.reshape(-1, 3)[:n, 1] = 255
        path = folder / f"slice_{i}.tif"
        Image.fromarray(image).save(path)
        items.append({"image": str(path), "tumor": int(i == 0)})
    return items


def test_weights_give_tumour_slices_their_share_and_follow_false_positives():
    is_tumour = np.array([1, 1, 0, 0, 0, 0], bool)
    fp = np.array([0, 0, 0, 10, 30, 0])
    w = mined_weights(is_tumour, fp, tumour_fraction=0.4, mined_share=0.5)
    assert w.sum() == pytest.approx(1.0)
    assert w[is_tumour].sum() == pytest.approx(0.4)
    uniform = 0.6 * 0.5 / 4
    assert w[2] == pytest.approx(uniform) and w[5] == pytest.approx(uniform)  # easy negatives keep a floor
    assert w[4] - uniform == pytest.approx(3 * (w[3] - uniform))  # mined share proportional to the false positives
    no_fp = mined_weights(is_tumour, np.zeros(6), 0.4)
    assert np.allclose(no_fp[~is_tumour], 0.6 / 4)


def test_false_positive_pixels_counts_what_the_network_marks():
    images = np.zeros((3, 3, 8, 8), np.uint8)
    images[1, 1].reshape(-1)[:5] = 255
    images[2, 1].reshape(-1)[:64] = 200
    assert false_positive_pixels(BrightFlairIsTumour(), images, run_network, batch_size=2).tolist() == [0, 5, 64]


def _engine(miner, sampler, max_epochs: int, seen: list):
    from ignite.engine import Engine, Events

    def step(engine, batch):
        seen.append((engine.state.epoch, sampler.weights.clone()))

    engine = Engine(step)
    miner.attach(engine)
    return engine, Events


def _miner(tmp_path):
    items = write_slices(tmp_path, [40, 0, 12, 3])
    sampler = torch.utils.data.WeightedRandomSampler([0.25] * 4, num_samples=4)
    miner = HardNegativeMiner(items, sampler, BrightFlairIsTumour(), run_network, tumour_fraction=0.5, interval=4, start_epoch=4)
    return miner, sampler


def test_a_fresh_run_mines_after_the_start_epoch_and_then_every_interval(tmp_path):
    miner, sampler = _miner(tmp_path)
    seen = []
    engine, _ = _engine(miner, sampler, 10, seen)
    engine.run(range(2), max_epochs=10)
    assert miner.mined_after == [4, 8]
    first_epoch_weights = dict(seen)[1]
    assert torch.allclose(first_epoch_weights, torch.full((4,), 0.25, dtype=first_epoch_weights.dtype))
    mined = dict(seen)[5]
    assert mined[2] > mined[1] and mined[2] > mined[3]  # the slice with 12 false-positive pixels is drawn most


def test_a_resumed_run_mines_before_its_first_epoch(tmp_path):
    """The resume sets the epoch in a STARTED handler attached after the miner (as the bundle does):
    the first epoch of the resumed run must already draw with mined weights."""
    from monai_core.checkpoints import resume_from_latest

    miner, sampler = _miner(tmp_path)
    torch.save({"network": miner.network.state_dict()}, tmp_path / "checkpoint_epoch=5.pt")
    seen = []
    engine, _ = _engine(miner, sampler, 10, seen)
    assert resume_from_latest(engine, tmp_path, {"network": miner.network}) is not None
    engine.run(range(2), max_epochs=10)
    assert miner.mined_after == [5, 8]
    first_epoch, weights = seen[0]
    assert first_epoch == 6
    assert weights[2] > weights[1]  # mined before the first iteration, not one epoch late


def test_a_run_resumed_before_the_start_epoch_does_not_mine_early(tmp_path):
    from monai_core.checkpoints import resume_from_latest

    miner, sampler = _miner(tmp_path)
    torch.save({"network": miner.network.state_dict()}, tmp_path / "checkpoint_epoch=2.pt")
    engine, _ = _engine(miner, sampler, 6, [])
    resume_from_latest(engine, tmp_path, {"network": miner.network})
    engine.run(range(2), max_epochs=6)
    assert miner.mined_after == [4]
