"""The bounded memory shared by the warm engine's caches: the last values used, by key.

The engine remembers the studies it read (monai_core/study_cache.py), what the networks gave
(monai_core/remembered_predictions.py) and the finished results (monai_core/remembered_results.py),
each for the last few keys only, so that a Slicer session's memory does not grow with every study
opened. The three differ in their keys and in what they copy; the keeping, the order of use and
the counting are this one class.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["LastUsed"]


class LastUsed:
    """The values of the last ``size`` keys used; the least recently used goes first.

    ``hits`` counts the values recalled. A ``None`` key is never kept: it stands for "this input
    cannot be told apart from another" (e.g. a study whose files changed while it was read).
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.hits = 0

    def recall(self, key):
        """The value kept under ``key``, which becomes the most recently used; None if there is none."""
        if key is None or key not in self.entries:
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return self.entries[key]

    def keep(self, key, value) -> None:
        """Keep ``value`` under ``key`` (not for a None key), dropping the least recently used beyond ``size``."""
        if key is None:
            return
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
