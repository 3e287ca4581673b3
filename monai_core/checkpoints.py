"""Resume an interrupted training run from its last epoch checkpoint.

The bundle's ``CheckpointSaver`` keeps the newest ``checkpoint_epoch=N.pt`` (network, optimizer and
learning-rate schedule; the trainer cannot be saved by a handler it owns, so its epoch is read from the
file name). A run started again with the same ``output_dir`` picks it up, so a killed background
training loses at most one epoch.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["latest_checkpoint", "resume_from_latest"]

_EPOCH = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The epoch checkpoint with the highest epoch number in ``ckpt_dir``, or None."""
    found = [(int(m[1]), p) for p in Path(ckpt_dir).glob("checkpoint_epoch=*.pt") if (m := _EPOCH.search(p.name))]
    return max(found)[1] if found else None


def resume_from_latest(trainer, ckpt_dir: str | Path, load_dict: dict) -> Path | None:
    """Attach a MONAI ``CheckpointLoader`` for the latest checkpoint, if there is one; returns its path."""
    from monai.handlers import CheckpointLoader

    path = latest_checkpoint(ckpt_dir)
    if path is None:
        return None
    from ignite.engine import Events

    epoch = int(_EPOCH.search(path.name)[1])
    CheckpointLoader(load_path=str(path), load_dict=load_dict, map_location="cpu").attach(trainer)

    @trainer.on(Events.STARTED)
    def _continue_after_checkpoint(engine) -> None:
        engine.state.epoch = epoch
        engine.state.iteration = epoch * engine.state.epoch_length

    print(f"resuming after epoch {epoch} from {path}", flush=True)
    return path
