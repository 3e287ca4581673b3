"""Choose the classifier and mask thresholds on the validation patients of a fold, and record them.

Runs both shipped networks on every slice of the validation patients (the patients of fold
``--fold`` of the same patient split the training configs use), searches the two thresholds and the 3D clean-up fraction for
the best mean per-patient Dice while keeping slice sensitivity >= 0.95, writes the result to
``bundle/docs/validation.json`` and, with ``--write``, into ``bundle/configs/inference.json``.

    python training/choose_thresholds.py --data DATA/kaggle_3m [--fold 0] [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monai_core.data import DEFAULT_PATIENT_LIST, patient_folds, read_patient_list
from monai_core.evaluation import choose_thresholds, pipeline_metrics, predict_patients
from monai_core.outputs import write_json_atomic
from monai_core.pipeline import DEFAULT_BUNDLE, TumorSegPipeline


def cross_validate_selection(predictions: list) -> list[dict]:
    """How much choosing on the same patients flatters: choose on one half, score the other, and swap."""
    halves = [predictions[0::2], predictions[1::2]]
    results = []
    for chosen_on, scored_on in (halves, halves[::-1]):
        c = choose_thresholds(chosen_on)
        m = pipeline_metrics(scored_on, c["classifier_threshold"], c["mask_threshold"], c["min_component_fraction"])
        results.append(
            {
                "chosen_on": [p.patient for p in chosen_on],
                "thresholds": [c["classifier_threshold"], c["mask_threshold"], c["min_component_fraction"]],
                "scored_dice": m["dice"],
                "scored_sensitivity": m["sensitivity"],
                "scored_specificity": m["specificity"],
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--write", action="store_true", help="store the thresholds in configs/inference.json")
    args = parser.parse_args()

    patients = patient_folds(read_patient_list(DEFAULT_PATIENT_LIST), args.n_folds, args.seed)[args.fold]
    pipeline = TumorSegPipeline(args.bundle)
    predictions = predict_patients(pipeline, args.data, patients)
    at_default = pipeline_metrics(predictions, 0.5, 0.5)
    chosen = choose_thresholds(predictions)
    report = {
        "validation_patients": patients,
        "fold": args.fold,
        "n_folds": args.n_folds,
        "seed": args.seed,
        "at_0.5_0.5": {k: at_default[k] for k in ("dice", "slice_auc", "sensitivity", "specificity", "confusion_matrix")},
        "chosen": chosen,
        "selection_cross_validated": cross_validate_selection(predictions),
    }
    write_json_atomic(args.bundle / "docs" / "validation.json", report)
    d = chosen["dice"]
    print(
        f"{len(patients)} validation patients: classifier threshold {chosen['classifier_threshold']}, "
        f"mask threshold {chosen['mask_threshold']}, components >= {chosen['min_component_fraction']} of the largest: per-patient Dice mean {d['mean']:.4f} median {d['median']:.4f}, "
        f"slice AUC {chosen['slice_auc']:.4f}, sensitivity {chosen['sensitivity']:.4f}, specificity {chosen['specificity']:.4f} "
        f"(at 0.5/0.5: Dice mean {at_default['dice']['mean']:.4f})"
    )
    for half in report["selection_cross_validated"]:
        print(
            f"chosen on the other half {half['thresholds']}: this half's Dice mean {half['scored_dice']['mean']:.4f} "
            f"median {half['scored_dice']['median']:.4f}, sensitivity {half['scored_sensitivity']:.4f}, "
            f"specificity {half['scored_specificity']:.4f}"
        )
    if args.write:
        config_path = args.bundle / "configs" / "inference.json"
        config = json.loads(config_path.read_text())
        config["classifier_threshold"] = chosen["classifier_threshold"]
        config["mask_threshold"] = chosen["mask_threshold"]
        config["min_component_fraction"] = chosen["min_component_fraction"]
        write_json_atomic(config_path, config)


if __name__ == "__main__":
    main()
