"""Progress reports on stderr: lines for people, or JSON lines for programs (the Slicer module)."""

from __future__ import annotations

import json
import sys
from typing import Callable

__all__ = ["Progress", "reporter"]

Progress = Callable[[str, float, str], None]


def reporter(mode: str = "text", stream=None) -> Progress:
    """A ``progress(stage, fraction, message)`` callable for ``mode`` "text", "json" or "none"."""
    stream = stream or sys.stderr

    def as_json(stage: str, fraction: float, message: str) -> None:
        stream.write(json.dumps({"stage": stage, "progress": round(float(fraction), 3), "message": message}) + "\n")
        stream.flush()

    def as_text(stage: str, fraction: float, message: str) -> None:
        stream.write(f"tumorseg: [{stage}] {message}\n")
        stream.flush()

    return {"json": as_json, "text": as_text}.get(mode, lambda *a: None)
