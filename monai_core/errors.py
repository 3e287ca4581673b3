"""The one exception type that means "the user's input is wrong" (exit code 2 on the command line)."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input or usage. The message is one line that names the file and the problem."""

    def __init__(self, path, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
