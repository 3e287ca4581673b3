"""Load network weights safely: ``weights_only=True`` and a sha256 that must match the bundle's record.

Inference loads state dicts only (both networks are built from ``torch.nn``, :mod:`monai_core.networks`):
no file that carries code, such as the bundle's TorchScript exports, is ever loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .errors import InputError

__all__ = ["sha256", "load_state_dict"]


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: str | Path, expected_sha256: str | None) -> dict:
    """The state dict at ``path``; refuses a file whose sha256 differs from ``expected_sha256``.

    Pass ``expected_sha256=None`` only for weights the user explicitly chose to trust.
    """
    path = Path(path)
    if expected_sha256 is not None:
        _verify(path, expected_sha256)
    elif not path.is_file():
        raise InputError(path, "weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a tampered or truncated file is refused, never unpickled
        raise InputError(path, f"cannot load weights safely ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise InputError(path, "weights file does not hold a state dict")
    return state


def _verify(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise InputError(path, "weights file not found")
    actual = sha256(path)
    if actual != expected_sha256:
        raise InputError(
            path, f"weights checksum mismatch (sha256 {actual[:12]}..., expected {expected_sha256[:12]}...); refusing to run"
        )
