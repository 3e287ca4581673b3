"""Robustness benchmark: per-patient Dice of the whole pipeline on the fold-0 validation patients
under each condition of :mod:`monai_core.robustness` (FLAIR only, fat suppression, skull stripping,
intensity scale, bias field, thin slices), and the gate's slice sensitivity under each.

Both networks run on every slice once per condition; the final masks are made at the bundle's own
setting by :func:`monai_core.postprocess.final_mask`, as shipped. Nothing is chosen here: the setting
is chosen out of fold by ``training/out_of_fold.py``. Writes ``OUT/robustness.json`` and a Markdown
table ``OUT/robustness.md``; ``case_outcomes`` gives ``training/calibrate_quality.py`` its cases.

    python training/robustness.py --data DATA/kaggle_3m [--bundle bundle] [--out bundle/docs]
    python training/robustness.py --data DATA/kaggle_3m --fold-networks runs/cv_b --name robustness_out_of_fold

With ``--fold-networks RUNS`` the networks are the cross-validation fold's own (``training/train_folds.py``),
trained without the fold's patients, and each real scan is detected by the networks of its patient's fold:
so every figure is out of fold. The shipped networks trained on all 88 development patients, the
fold-0 patients and the real scans' patients among them.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import torch

from monai_core.data import DEFAULT_PATIENT_LIST, patient_folds, read_patient_list
from monai_core.data.brain_gain import DEFAULT_BRAIN_MASKS
from monai_core.data.brain_masks import load_brain_masks
from monai_core.evaluation import PatientPrediction, truth_masks, pipeline_metrics
from monai_core.outputs import write_json_atomic
from monai_core.pipeline import DEFAULT_BUNDLE, TumorSegPipeline
from monai_core.postprocess import cleaned_probability, estimate_midline, MaskSetting
from monai_core.context import context_step
from monai_core.detect import KAGGLE_VOXEL_ML
from monai_core.metrics import dice
from monai_core.quality import case_features
from monai_core.robustness import CONDITIONS, perturb
from monai_core.study import load_kaggle_case

ROOT = Path(__file__).resolve().parents[1]
THIN_SPACING_MM = 1.0
THIN_VOXEL_ML = 0.94 * 0.94 * THIN_SPACING_MM / 1000  # the thin-slice condition's model grid: 0.94 mm pixels, 1 mm slices


def predict_conditions(pipeline: TumorSegPipeline, data: Path, patients: list[str], brain_masks: dict) -> dict:
    """{condition: [PatientPrediction]} with both networks run on every slice, and on every slice
    mirrored left-right (``flipped``, for the confidence's test-time augmentation); inputs not kept."""
    results = {condition: [] for condition in CONDITIONS}
    for i, patient in enumerate(patients):
        slices = load_kaggle_case(data / patient).slices
        truth = truth_masks(data / patient)
        for condition in CONDITIONS:
            case = perturb(condition, slices, truth, brain_masks[patient])
            x = torch.from_numpy(case.slices)
            step = context_step(THIN_SPACING_MM if condition == "1 mm thin slices" else None)
            prediction = PatientPrediction(patient, None, case.truth, pipeline.classify(x), pipeline.segment(x, step=step).astype(np.float16),
                                           estimate_midline(case.slices[:, 1]))
            prediction.flipped = pipeline.segment(torch.flip(x, dims=[-1]), step=step)[:, :, ::-1].astype(np.float16)
            prediction.voxel_ml = THIN_VOXEL_ML if condition == "1 mm thin slices" else KAGGLE_VOXEL_ML
            results[condition].append(prediction)
        print(f"[{i + 1}/{len(patients)}] {patient}", flush=True)
    return results


def case_outcomes(results: dict, setting: MaskSetting) -> list[dict]:
    """Per case (condition, patient): the pipeline's Dice at this setting and its confidence features,
    computed as :meth:`TumorSegPipeline.predict` and :func:`monai_core.detect.assess_quality` do."""
    cases = []
    mask = setting.mask_threshold
    for condition, predictions in results.items():
        for p in predictions:
            tumour = cleaned_probability(p.slice_probability, p.tumour_probability, setting, p.midline)
            final = tumour >= mask
            on_slices = final.reshape(len(final), -1).any(1)[:, None, None]
            flipped = np.where(on_slices, p.flipped.astype(np.float32), 0.0)
            features = case_features(p.slice_probability, tumour, flipped, mask, p.voxel_ml)
            cases.append({"condition": condition, "patient": p.patient, "dice": round(dice(final, p.truth), 4),
                          "features": {k: round(v, 5) for k, v in features.items()}})
    return cases


REAL_STUDIES = {  # label: (FLAIR folder, development patient): real scans with reference masks on their own grids
    "TCGA-FG-6692 raw scanner volumes": (ROOT / "tests" / "data" / "TCGA-FG-6692", "TCGA_FG_6692_20020606"),
    "TCGA-FG-6692 skull-stripped (BraTS Toolkit)": (ROOT / "tests" / "data" / "bet" / "TCGA-FG-6692", "TCGA_FG_6692_20020606"),
    "TCGA-DU-7294 skull-stripped (BraTS Toolkit)": (ROOT / "tests" / "data" / "bet" / "TCGA-DU-7294", "TCGA_DU_7294_19890104"),
}


def fold_pipeline(bundle: Path, runs: Path, fold: int) -> TumorSegPipeline:
    """The bundle's inference with the networks trained without ``fold`` (not in metadata.json, so
    loaded as a user's own weights: ``weights_only``, no sha256)."""
    from train_folds import weights_path

    return TumorSegPipeline(bundle, segmenter_weights=weights_path(runs, fold, "segmenter"),
                            classifier_weights=weights_path(runs, fold, "classifier"))


def real_studies(pipeline_for, out: Path) -> dict:
    """``tumorseg detect`` on real scans (FLAIR, T1, T1c), Dice against the data set's mask on the FLAIR grid.
    ``pipeline_for(patient)`` gives the pipeline that detects that development patient's scans."""
    import SimpleITK as sitk

    from monai_core.detect import detect_case

    rows = {}
    for i, (name, (folder, patient)) in enumerate(REAL_STUDIES.items()):
        pipeline = pipeline_for(patient)
        report = detect_case(pipeline, out, flair=folder / "flair.nii.gz", t1=folder / "t1.nii.gz",
                             t1c=folder / "t1c.nii.gz", case_id=f"real{i}", overwrite=True)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"real{i}" / "segmentation.nii.gz")))
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "flair_lesion.nii.gz")))
        rows[name] = {"dice": round(dice(mask, truth), 4), "volume_ml": report["tumor_volume_ml"], "patient": patient,
                      "quality": {k: report["quality"][k] for k in ("confidence", "flagged")},
                      "warnings": [w["code"] for w in report["quality"]["warnings"]]}
    return rows


def write_real_studies(pipeline_for, out: Path, name: str, networks: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = real_studies(pipeline_for, Path(tmp))
    text = [f"# Real scans ({networks}): tumorseg detect with FLAIR, T1 and T1c", "",
            "Dice against the LGG data set's mask mapped onto each FLAIR grid (tests/data/bet/README.md).", "",
            "| study | Dice | volume (mL) | confidence | flagged | warnings |", "|---|---|---|---|---|---|"]
    for study, row in rows.items():
        text.append(f"| {study} | {row['dice']:.3f} | {row['volume_ml']:.1f} | {row['quality']['confidence']} | "
                    f"{row['quality']['flagged']} | {', '.join(row['warnings']) or '-'} |")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{name}_real.json", {"networks": networks, "studies": rows})
    (out / f"{name}_real.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def score(results: dict, setting: MaskSetting) -> dict:
    return {condition: pipeline_metrics(predictions, setting) for condition, predictions in results.items()}


def describe(setting: MaskSetting) -> str:
    return (f"classifier gate {setting.classifier_threshold}, mask threshold {setting.mask_threshold}, "
            f"confirmation {setting.confirm}, clean-up {setting.rule} {setting.parameter}")


def table(scored: dict, setting: str) -> str:
    as_is = scored["as is"]["dice"]["mean"]
    lines = [
        f"Setting: {setting}.",
        "",
        "| condition | Dice mean | median | min | mean - as is | slice sensitivity | specificity |",
        "|---|---|---|---|---|---|---|",
    ]
    for condition, m in scored.items():
        d = m["dice"]
        lines.append(
            f"| {condition} | {d['mean']:.3f} | {d['median']:.3f} | {d['min']:.3f} | {d['mean'] - as_is:+.3f} | "
            f"{m['sensitivity']:.3f} | {m['specificity']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--out", type=Path, default=DEFAULT_BUNDLE / "docs")
    parser.add_argument("--brain-masks", type=Path, default=DEFAULT_BRAIN_MASKS)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--name", default="robustness", help="file name stem of the outputs")
    parser.add_argument("--real-only", action="store_true", help="only the real scans, with the bundle's own settings")
    parser.add_argument("--fold-networks", type=Path, metavar="RUNS", help="the cross-validation networks in RUNS instead of the bundle's")
    args = parser.parse_args()

    folds = patient_folds(read_patient_list(DEFAULT_PATIENT_LIST))
    patients = folds[args.fold]
    @functools.cache
    def networks_of(fold: int | None) -> TumorSegPipeline:  # None: the bundle's own networks
        return TumorSegPipeline(args.bundle) if fold is None else fold_pipeline(args.bundle, args.fold_networks, fold)

    def pipeline_for(patient: str) -> TumorSegPipeline:
        fold = next(k for k, members in enumerate(folds) if patient in members) if args.fold_networks else None
        return networks_of(fold)

    pipeline = pipeline_for(patients[0])
    networks = (f"{pipeline.identity['version']} setting, networks of the patient's own fold ({args.fold_networks})"
                if args.fold_networks else f"bundle {pipeline.identity['version']}")
    write_real_studies(pipeline_for, args.out, args.name, networks)
    if args.real_only:
        return
    started = time.perf_counter()
    results = predict_conditions(pipeline, args.data, patients, load_brain_masks(args.brain_masks))
    shipped = pipeline.setting
    no_gate = MaskSetting(**{**shipped.as_dict(), "classifier_threshold": 0.0, "confirm": 0.0})
    report = {
        "bundle": pipeline.identity,
        "networks": networks,
        "fold": args.fold,
        "patients": patients,
        "seconds": round(time.perf_counter() - started, 1),
        "shipped_setting": shipped.as_dict(),
        "shipped": score(results, shipped),
        "no_gate": score(results, no_gate),
    }
    text = [f"# Robustness benchmark ({networks}; fold {args.fold}: {len(patients)} patients)", ""]
    text += ["## Shipped setting", table(report["shipped"], describe(shipped)), ""]
    text += ["## Segmenter on every slice (no classifier gate, no confirmation)", table(report["no_gate"], describe(no_gate)), ""]
    report["cases_setting"] = shipped.as_dict()
    report["cases"] = case_outcomes(results, shipped)  # for training/calibrate_quality.py
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / f"{args.name}.json", report)
    (args.out / f"{args.name}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
