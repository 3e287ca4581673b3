"""The warm engine's memory of finished results, so that a second Detect on an unchanged study only writes the outputs.

With the study and the networks' results remembered (monai_core/study_cache.py,
monai_core/remembered_predictions.py), a second Detect on the same volumes still mapped the mask
back onto the FLAIR grid, computed the confidence, the tumour pixels per slice and the RANO
measurements (monai_core.detect.analyse_case). That is little CPU (about 0.07 s on the sample
study) but a few dozen small multi-threaded SimpleITK filters, which on a busy machine wait for
their threads much longer than they compute (0.6 s of wall time, with both cores loaded by
training). The result is a function of the study and of the pipeline alone, so the engine
remembers it for the last studies, keyed by:

- the study's content digest (``Study.source_digest``, set by monai_core.study_cache): any changed
  input is read and analysed again; a study without a digest (read outside the cache, or whose
  inputs changed while they were read) is never remembered;
- :func:`monai_core.remembered_predictions.pipeline_key`: the bundle, weights, setting
  (thresholds and clean-up) and confidence model; changing any of them analyses again.

A request gets its own copy of the dictionaries and of the mask image (SimpleITK copies on
write); the prediction's arrays are shared read-only, so that nothing a request does reaches
the memory.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

from .last_used import LastUsed
from .remembered_predictions import pipeline_key

if TYPE_CHECKING:  # light to import: the engine makes its memory before it loads anything heavy
    from .detect import CaseResult
    from .study import Study

__all__ = ["RememberedResults"]


class RememberedResults(LastUsed):
    """The analysis of the last ``size`` studies; :meth:`analyse` computes only what it has not seen.

    ``runs`` counts the analyses computed, ``hits`` those answered from memory.
    """

    def __init__(self, size: int = 2) -> None:
        super().__init__(size)
        self.runs = 0

    def analyse(self, pipeline, study: Study, progress=None) -> CaseResult:
        """:func:`monai_core.detect.analyse_case`, answered from memory for a study and pipeline seen before."""
        from .detect import analyse_case

        key = None if study.source_digest is None else (study.source_digest, pipeline_key(pipeline))
        remembered = self.recall(key)
        if remembered is not None:
            if progress is not None:
                progress("classify", 1.0, "the study is unchanged since an earlier detect: reusing its result")
            return _copy(remembered, timing={})
        result = analyse_case(pipeline, study, progress)
        self.runs += 1
        if key is not None:
            self.keep(key, _frozen(result))
        return result


def _frozen(result: CaseResult) -> CaseResult:
    """A copy to keep: the prediction's arrays copied and made read-only, the rest copied."""
    prediction = copy.deepcopy(result.prediction)
    for array in vars(prediction).values():
        if hasattr(array, "setflags"):
            array.setflags(write=False)
    return _copy(replace(result, prediction=prediction), timing=dict(result.timing))


def _copy(result: CaseResult, timing: dict) -> CaseResult:
    """The result for one request: its own dictionaries and mask (a NumPy mask copied, an image copied on write)."""
    import SimpleITK as sitk

    mask = sitk.Image(result.mask) if isinstance(result.mask, sitk.Image) else result.mask.copy()
    return replace(result, mask=mask, quality=copy.deepcopy(result.quality),
                   measurements=copy.deepcopy(result.measurements), pixels=list(result.pixels), timing=timing)
