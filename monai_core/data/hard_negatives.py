"""Hard-negative mining for the segmenter: draw the tumour-free slices it gets wrong more often.

On unseen patients the 0.3.0 segmenter marked bright normal cortex, insula and temporal lobes as
lesion, and the lenient classifier gate sends most normal slices to it. Sampling tumour-free slices
uniformly shows it such slices rarely. Every few epochs this handler runs the network on all
tumour-free training slices and re-weights the sampler so that half of the tumour-free draws
follow the number of false-positive pixels of each slice (the other half stay uniform, so that
easy negatives are not forgotten).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["false_positive_pixels", "mined_weights", "HardNegativeMiner"]


def false_positive_pixels(network, images: np.ndarray, inferer, batch_size: int = 32, threshold: float = 0.5) -> np.ndarray:
    """Pixels predicted as tumour on each of ``images`` (N, 3, H, W) uint8, which hold none."""
    counts = np.zeros(len(images), np.int64)
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).float().div_(255.0)
            logits = inferer(x, network)
            counts[start : start + batch_size] = (torch.sigmoid(logits.float()) >= threshold).flatten(1).sum(1).numpy()
    network.train(was_training)
    return counts


def mined_weights(is_tumour: np.ndarray, fp_pixels: np.ndarray, tumour_fraction: float, mined_share: float = 0.5) -> np.ndarray:
    """Sampler weights: tumour slices share ``tumour_fraction``; of the rest, ``mined_share`` follows
    the false-positive pixels of each tumour-free slice and the remainder is uniform."""
    is_tumour = np.asarray(is_tumour, bool)
    weights = np.zeros(len(is_tumour))
    negatives = ~is_tumour
    weights[is_tumour] = tumour_fraction / max(is_tumour.sum(), 1)
    uniform = (1 - tumour_fraction) * (1 - mined_share) / max(negatives.sum(), 1)
    fp = np.asarray(fp_pixels, float)[negatives]
    if fp.sum() > 0:
        mined = (1 - tumour_fraction) * mined_share * fp / fp.sum()
    else:
        mined = np.full(negatives.sum(), (1 - tumour_fraction) * mined_share / max(negatives.sum(), 1))
    weights[negatives] = uniform + mined
    return weights


class HardNegativeMiner:
    """Ignite handler: every ``interval`` epochs (and before the first epoch of a resumed run) re-weight ``sampler``.

    Args:
        items: the training data list (``image`` path and ``tumor`` flag per slice), in sampler order.
        sampler: the ``WeightedRandomSampler`` of the training loader; its weights are replaced in place.
        network, inferer: the segmenter being trained and how to run it.
        tumour_fraction: the share of draws that go to tumour slices.
        interval, start_epoch: mine after epoch ``start_epoch`` and then every ``interval`` epochs.

    The mined weights are not saved in the checkpoint, so a run resumed after epoch ``start_epoch``
    or later mines before its first epoch. That check runs at the first ``EPOCH_STARTED``, not at
    ``STARTED``: the resume (``monai_core.checkpoints``) sets the epoch in a ``STARTED`` handler that
    is attached after this one, so at ``STARTED`` the epoch still reads 0.
    """

    def __init__(self, items, sampler, network, inferer, tumour_fraction: float = 0.5, interval: int = 2,
                 start_epoch: int = 2, mined_share: float = 0.5) -> None:
        self.items, self.sampler, self.network, self.inferer = items, sampler, network, inferer
        self.tumour_fraction, self.interval, self.start_epoch, self.mined_share = tumour_fraction, interval, start_epoch, mined_share
        self.is_tumour = np.array([bool(item["tumor"]) for item in items])
        self._negatives = None  # uint8 (M, 3, 256, 256), read on first use
        self._first_epoch = True
        self.mined_after: list[int] = []  # the completed epochs after which the weights were mined

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._on_epoch_start)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._on_epoch)

    def _on_epoch_start(self, engine) -> None:
        first, self._first_epoch = self._first_epoch, False
        if first and engine.state.epoch - 1 >= self.start_epoch:  # a resumed run: the mined weights were not saved
            self.mine(engine, after_epoch=engine.state.epoch - 1)

    def _on_epoch(self, engine) -> None:
        epoch = engine.state.epoch
        if epoch >= self.start_epoch and (epoch - self.start_epoch) % self.interval == 0 and epoch < engine.state.max_epochs:
            self.mine(engine, after_epoch=epoch)

    def mine(self, engine=None, after_epoch: int | None = None) -> np.ndarray:
        if self._negatives is None:
            paths = [item["image"] for item in self.items if not item["tumor"]]
            self._negatives = np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in paths])
        fp = np.zeros(len(self.items), np.int64)
        fp[~self.is_tumour] = false_positive_pixels(self.network, self._negatives, self.inferer)
        weights = mined_weights(self.is_tumour, fp, self.tumour_fraction, self.mined_share)
        self.sampler.weights = torch.as_tensor(weights, dtype=torch.double)
        hard = int((fp[~self.is_tumour] > 0).sum())
        if after_epoch is not None:
            self.mined_after.append(after_epoch)
        print(f"hard negatives after epoch {after_epoch if after_epoch is not None else '-'}: {hard} of {len(self._negatives)} tumour-free slices with false "
              f"positives, {int(fp.sum())} pixels", flush=True)
        return fp
