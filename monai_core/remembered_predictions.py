"""The warm engine's memory of what the networks gave, so that a second Detect on unchanged slices skips them.

With the study itself remembered (monai_core/study_cache.py), a second Detect on the same volumes
would still run both networks on the very same slices, which is most of what is left (about one
second of the sample study's). The networks of one loaded pipeline are a function of the slices,
their spacing and the pipeline's setting (thresholds and clean-up), so the engine remembers the
result for the last slices it saw, keyed by a digest of their bytes (about 20 ms for 26 slices)
and by :func:`pipeline_key`: any change of the slices, from any changed input, or of the setting
runs the networks again. A request gets its own copy, so that nothing it does to the arrays
reaches the memory.
"""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np

from .last_used import LastUsed

__all__ = ["RememberedPredictions", "pipeline_key"]


def pipeline_key(pipeline) -> tuple:
    """What decides a loaded pipeline's results besides its input: bundle, weights, setting, confidence model.

    By content, so that changing a threshold, the clean-up or the confidence model on a loaded
    pipeline is never answered from memory.
    """
    quality = pipeline.quality
    return (str(pipeline.bundle_dir), json.dumps(pipeline.identity, sort_keys=True), pipeline.setting,
            None if quality is None else (quality.linear.tobytes(), float(quality.threshold), tuple(quality.inputs)))


class RememberedPredictions(LastUsed):
    """The predictions of one pipeline on the last ``size`` slice stacks; :meth:`around` gives a pipeline that uses them.

    ``runs`` counts the predictions computed, ``hits`` those answered from memory.
    """

    def __init__(self, size: int = 2) -> None:
        super().__init__(size)
        self.runs = 0

    def around(self, pipeline) -> "_Remembering":
        """``pipeline`` as detect uses it, with ``predict`` answered from memory for slices seen before."""
        return _Remembering(pipeline, self)

    def predict(self, pipeline, slices: np.ndarray, progress=None, slice_spacing_mm: float | None = None):
        slices = np.ascontiguousarray(slices, dtype=np.float32)
        key = (id(pipeline), pipeline_key(pipeline), slices.shape, slice_spacing_mm,
               hashlib.sha256(memoryview(slices).cast("B")).hexdigest())
        remembered = self.recall(key)
        if remembered is not None:
            if progress is not None:
                progress("classify", 1.0, "the slices are unchanged since an earlier detect: reusing the networks' results")
            return copy.deepcopy(remembered)
        prediction = pipeline.predict(slices, progress, slice_spacing_mm)
        self.runs += 1
        self.keep(key, copy.deepcopy(prediction))
        return prediction


class _Remembering:
    """A pipeline whose ``predict`` goes through a :class:`RememberedPredictions`; everything else is the pipeline's."""

    def __init__(self, pipeline, memory: RememberedPredictions) -> None:
        self.pipeline = pipeline
        self.memory = memory

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def predict(self, slices, progress=None, slice_spacing_mm=None):
        return self.memory.predict(self.pipeline, slices, progress, slice_spacing_mm)
