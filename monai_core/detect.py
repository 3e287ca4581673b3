"""Detect tumour in one study: load, run both networks, map back, write the outputs.

This is the Python API behind ``tumorseg detect``; ``tumorseg batch`` calls it once per case
with a pipeline loaded once per worker.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from .checks import lesion_warnings
from .errors import InputError
from .measurements import measure
from .outputs import CaseWriter, case_folder_ready, write_json_atomic, write_mask_nifti, write_overlay_png, write_seg_nrrd
from .quality import case_features, uncertain_slices
from .progress import Progress
from .study import Study, is_kaggle_case, load_kaggle_case, load_volumes

if TYPE_CHECKING:  # torch and pydicom are imported where they are used: a cold detect can read while torch loads
    from .pipeline import SlicePrediction, TumorSegPipeline
    from .series_choice import StudyChoice

KAGGLE_VOXEL_ML = 0.94 * 0.94 * 5.0 / 1000  # a Kaggle slice stack has no spacing: about 0.94 mm pixels, 5 mm slices

__all__ = ["detect_case", "detect_folder", "read_case", "finish_case", "analyse_case", "CaseResult", "load_study",
           "build_report", "slices_summary", "quality_summary"]


def load_study(
    kaggle_dir=None, flair=None, t1=None, t1c=None, case_id=None, progress: Progress | None = None, series_uids=None,
    choice: StudyChoice | None = None,
) -> Study:
    """A Study from a Kaggle folder, from scanner volumes, or from the series chosen in a DICOM study (one of the three)."""
    if (kaggle_dir is not None) + (flair is not None) + (choice is not None) != 1:
        raise InputError(None, "give either a Kaggle case folder, --flair or --study")
    with warnings.catch_warnings():
        # readers warn about what they repair (pydicom, PIL, numpy); a problem that matters is an InputError
        warnings.simplefilter("ignore")
        if kaggle_dir is not None:
            if not is_kaggle_case(kaggle_dir):
                raise InputError(kaggle_dir, "not a Kaggle-layout case folder (no <case>_1.tif); use --flair for volumes")
            return load_kaggle_case(kaggle_dir, case_id)
        return load_volumes(flair, t1, t1c, case_id, progress, series_uids, choice)


def slices_summary(report: dict) -> str:
    """"tumour on 6 of 26 slices; 12 checked by the segmenter": the words every front end uses.

    ``positive`` slices are those the classifier passed to the segmenter (probability >= its
    threshold, kept low so that no lesion slice is lost); tumour slices hold tumour in the final mask.
    """
    checked = sum(1 for s in report["slices"] if s["positive"])
    return f"tumour on {report['tumor_slices']} of {len(report['slices'])} slices; {checked} checked by the segmenter"


def assess_quality(study: Study, prediction, mask, pipeline: TumorSegPipeline) -> dict:
    """report.json's ``quality``: the calibrated confidence (monai_core.quality) and the input warnings."""
    grid = study.grid
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000 if grid is not None else KAGGLE_VOXEL_ML
    features = case_features(prediction.slice_probability, prediction.tumour_probability,
                             prediction.flipped_probability, pipeline.mask_threshold, voxel_ml)
    on_grid = mask if isinstance(mask, np.ndarray) else sitk.GetArrayViewFromImage(mask)
    warnings = [*study.warnings, *lesion_warnings(on_grid)]
    uncertain = uncertain_slices(prediction.slice_probability, prediction.tumour_probability,
                                 prediction.flipped_probability, pipeline.mask_threshold)
    if pipeline.quality is None:  # a bundle without a calibrated confidence model
        assessed = {"confidence": None, "expected_dice": None, "flagged": bool(warnings)}
    else:
        assessed = pipeline.quality.assess(features)
    return {**assessed, "warnings": warnings, "uncertain_slices": uncertain}


def quality_summary(quality: dict) -> str:
    """"confidence 0.86" or "LOW CONFIDENCE 0.31 (expected Dice 0.45): review carefully", for the CLI and batch."""
    if quality.get("confidence") is None:
        return "confidence not calibrated for this bundle"
    text = f"confidence {quality['confidence']:.2f}"
    if quality["flagged"]:
        text = f"LOW CONFIDENCE {quality['confidence']:.2f} (expected Dice {quality['expected_dice']:.2f}): review carefully"
    return text


@dataclass
class CaseResult:
    """What the networks and the post-processing make of one study, before any output is written.

    A function of the study's content and of the pipeline (networks, setting, confidence model)
    alone, so the warm engine can remember it (monai_core.remembered_results); ``timing`` holds
    the seconds it took (``inference_s``, ``map_back_s``).
    """

    prediction: SlicePrediction
    mask: np.ndarray | sitk.Image  # on the output grid (monai_core.study.Study.mask_on_input_grid)
    quality: dict  # report.json's "quality"
    measurements: dict  # report.json's "measurements"
    pixels: list[int]  # tumour pixels per analysed slice
    timing: dict


def analyse_case(pipeline: TumorSegPipeline, study: Study, progress: Progress | None = None) -> CaseResult:
    """Both networks, the final mask on the output grid, its confidence and its measurements."""
    progress = progress or (lambda *a: None)
    started = time.perf_counter()
    spacing = study.grid.GetSpacing()[2] if study.grid is not None else None  # None: a Kaggle stack
    prediction = pipeline.predict(study.slices, progress, spacing)
    inference_s = time.perf_counter() - started
    started = time.perf_counter()
    mask = study.mask_on_input_grid(prediction.tumour_probability, pipeline.mask_threshold)
    map_back_s = time.perf_counter() - started
    quality = assess_quality(study, prediction, mask, pipeline)
    return CaseResult(prediction, mask, quality, measure(mask), study.pixels_per_slice(mask),
                      {"inference_s": inference_s, "map_back_s": map_back_s})


def build_report(study: Study, result: CaseResult, pipeline: TumorSegPipeline, timing: dict) -> dict:
    total = int(sum(result.pixels))
    voxel_ml = study.voxel_ml()
    return {
        "case_id": study.case_id,
        "inputs": study.inputs,
        "tumor_detected": total > 0,
        "tumor_volume_ml": None if voxel_ml is None else round(total * voxel_ml, 3),
        "tumor_slices": sum(1 for n in result.pixels if n > 0),
        "slices": [
            {
                "index": k,
                "tumor_probability": round(float(p), 4),
                "positive": bool(positive),
                "tumor_pixels": result.pixels[k],
            }
            for k, (p, positive) in enumerate(zip(result.prediction.slice_probability, result.prediction.positive))
        ],
        "thresholds": {
            "classifier": pipeline.classifier_threshold,
            "mask": pipeline.mask_threshold,
            "cleanup": pipeline.setting.to_config()["cleanup"],
        },
        "measurements": result.measurements,  # null for a Kaggle slice stack: no spacing
        "quality": result.quality,
        "bundle": pipeline.identity,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }


def detect_case(
    pipeline: TumorSegPipeline | Future,
    out_root: str | Path,
    kaggle_dir=None,
    flair=None,
    t1=None,
    t1c=None,
    case_id: str | None = None,
    seg_nrrd: bool = False,
    overlay: bool = False,
    dicom_seg: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    series_uids: dict[str, str] | None = None,
    dicom_sr: bool = False,
    choice: StudyChoice | None = None,
    studies=None,
    results=None,
) -> dict:
    """Run the whole pipeline on one study and write ``out_root/<case_id>/``; returns the report.

    ``series_uids`` picks the series of each sequence when its path is a DICOM folder of several
    series; ``choice`` (:func:`monai_core.series_choice.choose_series`) gives the series chosen
    in a whole DICOM study instead of paths. ``dicom_sr`` adds measurements.dcm, which references
    the SEG and so needs ``dicom_seg``. ``pipeline`` may be a Future of one still loading (a cold
    ``tumorseg detect`` loads the models while the study is read); the networks wait for it.
    ``studies`` (a :class:`monai_core.study_cache.StudyCache`) remembers studies read before, and
    ``results`` (a :class:`monai_core.remembered_results.RememberedResults`) their analysis, as the
    warm engine does.
    """
    if dicom_sr and not dicom_seg:
        raise InputError(None, "--dicom-sr needs --dicom-seg: the SR references the DICOM-SEG's segment")
    try:
        study, timing = read_case(out_root, kaggle_dir, flair, t1, t1c, case_id, dicom_seg, overwrite, progress,
                                  series_uids, choice, studies)
    except BaseException:
        if isinstance(pipeline, Future):
            wait([pipeline])  # the loading thread ends before this error ends the process
        raise
    if isinstance(pipeline, Future):
        pipeline = pipeline.result()  # the loader's own error (a weights checksum) is raised here
    return finish_case(pipeline, study, timing, out_root, seg_nrrd, overlay, dicom_seg, overwrite, progress,
                       dicom_sr, results)


def detect_folder(pipeline: TumorSegPipeline, dataset_dir: str | Path, output_dir: str | Path, overwrite: bool = False) -> list[dict]:
    """Detect on a Kaggle-layout case folder, or on every Kaggle-layout case folder inside ``dataset_dir``,
    writing ``output_dir/<case>/`` as ``tumorseg detect`` does; returns the reports. The entry point of
    the bundle's ``configs/inference.json`` (``python -m monai.bundle run --config_file
    bundle/configs/inference.json --dataset_dir CASES --output_dir OUT``); ``tumorseg batch`` is the
    resumable, parallel way to run many cases."""
    dataset_dir = Path(dataset_dir)
    cases = [dataset_dir] if is_kaggle_case(dataset_dir) else sorted(d for d in dataset_dir.iterdir() if is_kaggle_case(d))
    if not cases:
        raise InputError(dataset_dir, "holds no Kaggle-layout case folder (<case>_<n>.tif slices)")
    reports = []
    for case in cases:
        report = detect_case(pipeline, output_dir, kaggle_dir=case, overwrite=overwrite)
        print(f"{report['case_id']}: {slices_summary(report)}; {quality_summary(report['quality'])}", flush=True)
        reports.append(report)
    return reports


def read_case(
    out_root: str | Path,
    kaggle_dir=None,
    flair=None,
    t1=None,
    t1c=None,
    case_id: str | None = None,
    dicom_seg: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    series_uids: dict[str, str] | None = None,
    choice: StudyChoice | None = None,
    studies=None,
) -> tuple[Study, dict]:
    """The first half of :func:`detect_case`: check the request and load the study (no network needed).

    Kept apart so that ``tumorseg batch`` can read the next case while the networks run on this one.
    Returns the study and its timing so far, which :func:`finish_case` completes.
    """
    progress = progress or (lambda *a: None)
    started = time.perf_counter()
    if dicom_seg and choice is None and (flair is None or not Path(flair).is_dir()):
        raise InputError(flair or kaggle_dir, "--dicom-seg needs the FLAIR as a DICOM series folder")
    if case_id is not None:
        case_folder_ready(out_root, case_id, overwrite)  # fail before the work, not after
    load = studies.load if studies is not None else load_study
    study = load(kaggle_dir, flair, t1, t1c, case_id, progress, series_uids, choice)
    case_folder_ready(out_root, study.case_id, overwrite)
    return study, {"load_s": time.perf_counter() - started, **study.timing}


def finish_case(
    pipeline: TumorSegPipeline,
    study: Study,
    timing: dict,
    out_root: str | Path,
    seg_nrrd: bool = False,
    overlay: bool = False,
    dicom_seg: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    dicom_sr: bool = False,
    results=None,
) -> dict:
    """The second half of :func:`detect_case`: both networks, map back, write the outputs; returns the report.

    ``results`` (a :class:`monai_core.remembered_results.RememberedResults`) remembers the
    analysis of studies seen before, as the warm engine does.
    """
    progress = progress or (lambda *a: None)
    started = time.perf_counter()
    result = results.analyse(pipeline, study, progress) if results is not None else analyse_case(pipeline, study, progress)
    timing.update(result.timing)
    mask, quality = result.mask, result.quality

    progress("write", 0.0, f"writing {study.case_id}")
    with CaseWriter(out_root, study.case_id, overwrite) as folder:
        write_mask_nifti(mask, folder / "segmentation.nii.gz")
        if seg_nrrd:
            write_seg_nrrd(mask, folder / "segmentation.seg.nrrd")
        if overlay:
            model_masks = result.prediction.tumour_probability >= pipeline.mask_threshold
            write_overlay_png(study.slices, model_masks, result.prediction.positive, folder / "overlay.png")
        flair_uid = (study.inputs.get("series_uids") or {}).get("flair")
        source = study.flair_series or study.inputs["flair"]  # the datasets read with the FLAIR: not decoded again
        seg_note = _write_dicom_seg(source, flair_uid, mask, pipeline, folder, quality["flagged"]) if dicom_seg else None
        timing["total_s"] = timing["load_s"] + time.perf_counter() - started
        report = build_report(study, result, pipeline, timing)
        if seg_note is not None:
            report["dicom_seg"] = seg_note
        if dicom_sr:  # after the SEG, which it references, and after the measurements it holds
            report["dicom_sr"] = _write_dicom_sr(source, flair_uid, report["measurements"], pipeline, folder,
                                                 quality["flagged"])
        write_json_atomic(folder / "report.json", report)  # last: its presence marks the case complete
    for item in report["quality"]["warnings"]:
        progress("warning", 1.0, f"{item['message']} [{item['code']}]")
    progress("quality", 1.0, quality_summary(report["quality"]))
    progress("done", 1.0, f"{study.case_id}: {'tumour' if report['tumor_detected'] else 'no tumour'} detected")
    return report


def _source_datasets(flair, series_uid) -> list:
    """The FLAIR series' sorted datasets: ``flair`` is its DicomSeries, or a folder to read them from."""
    from .io.dicom import DicomSeries, read_series

    return (flair if isinstance(flair, DicomSeries) else read_series(flair, series_uid)).datasets


def _write_dicom_seg(flair, series_uid, mask: sitk.Image, pipeline: TumorSegPipeline, folder: Path, low_confidence: bool) -> dict:
    """DICOM-SEG referencing the FLAIR series' own instances (see monai_core.dicom_seg)."""
    from .dicom_seg import EmptySegmentationError, write_dicom_seg

    identity = pipeline.identity
    try:
        write_dicom_seg(
            sitk.GetArrayFromImage(mask).astype(np.uint8),
            _source_datasets(flair, series_uid),
            folder / "segmentation.dcm",
            algorithm_name=identity.get("name") or "TumorSeg",
            algorithm_version=identity.get("version") or "unknown",
            low_confidence=low_confidence,
        )
    except EmptySegmentationError as error:  # the standard needs at least one frame
        return {"written": False, "reason": error.problem}
    return {"written": True, "file": "segmentation.dcm"}


def _write_dicom_sr(flair, series_uid, measurements: dict, pipeline: TumorSegPipeline, folder: Path,
                    low_confidence: bool) -> dict:
    """TID 1500 measurement report referencing segmentation.dcm and the FLAIR series (see monai_core.dicom_sr)."""
    from .dicom_sr import EmptyMeasurementsError, write_measurement_report

    identity = pipeline.identity
    try:
        write_measurement_report(
            measurements,
            folder / "segmentation.dcm",
            _source_datasets(flair, series_uid),
            folder / "measurements.dcm",
            algorithm_name=identity.get("name") or "TumorSeg",
            algorithm_version=identity.get("version") or "unknown",
            low_confidence=low_confidence,
        )
    except EmptyMeasurementsError as error:  # no tumour: nothing to measure, no segment to reference
        return {"written": False, "reason": error.problem}
    return {"written": True, "file": "measurements.dcm"}
