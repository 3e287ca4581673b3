"""Load network weights safely: ``weights_only=True`` and a sha256 that must match the bundle's record.

The one exception to ``weights_only`` is the bundle's own TorchScript classifier export
(:func:`load_bundle_torchscript`): a TorchScript archive carries code, so it is loaded only when its
sha256 matches ``configs/metadata.json``, that is, only the exact file this project shipped. It
saves inference the 4.5 s of importing MONAI for DenseNet121.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from .errors import InputError

__all__ = ["sha256", "load_state_dict", "load_bundle_torchscript"]


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


def load_bundle_torchscript(path: str | Path, expected_sha256: str | None) -> torch.jit.ScriptModule:
    """The TorchScript module at ``path``, loaded only if its sha256 equals the bundle's record."""
    path = Path(path)
    if not expected_sha256:
        raise InputError(path, "no sha256 recorded for this TorchScript file in configs/metadata.json; refusing to load it")
    _verify(path, expected_sha256)
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, whose loader costs 4 s
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated")
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise InputError(path, f"cannot load TorchScript ({type(error).__name__})") from None


def _verify(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise InputError(path, "weights file not found")
    actual = sha256(path)
    if actual != expected_sha256:
        raise InputError(
            path, f"weights checksum mismatch (sha256 {actual[:12]}..., expected {expected_sha256[:12]}...); refusing to run"
        )
