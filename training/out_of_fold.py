"""Out-of-fold predictions of the development patients, and the final-mask setting chosen out of fold.

``predict`` runs a fold's networks (trained without that fold, ``training/train_folds.py``) on
every slice of the fold's patients, as is and mirrored left-right, and caches the probabilities in
RUNS/oof/<source>/<patient>.npz, where <source> says whose networks made them: ``folds`` (each
patient by the networks of its own fold) or ``bundle-<version>`` (the shipped networks, only on the
fold they did not train on). ``choose`` reads one source, refuses a cache that mixes sources, and
picks the classifier gate, the mask threshold, the confirmation and the clean-up rule by nested
cross-validation (:mod:`monai_core.selection`): for each fold, the setting that scores best on the
*other* folds is applied to it, so every quoted figure comes from patients that chose nothing. With
a single fold cached, the outer groups are single patients (leave one patient out).

    python training/out_of_fold.py predict --data DATA/kaggle_3m --runs runs/cv --folds 0 1 2 3 4
    python training/out_of_fold.py predict --data DATA/kaggle_3m --runs runs/cv --bundle-models --held-out-fold 0
    python training/out_of_fold.py choose --runs runs/cv --source folds --out bundle/docs/out_of_fold.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))

from monai_core.data import DEFAULT_PATIENT_LIST, patient_folds, read_patient_list  # noqa: E402
from monai_core.evaluation import truth_masks  # noqa: E402
from monai_core.outputs import write_json_atomic  # noqa: E402
from monai_core.pipeline import DEFAULT_BUNDLE, TumorSegPipeline  # noqa: E402
from monai_core.postprocess import MaskSetting, Midline, estimate_midline  # noqa: E402
from monai_core.selection import SETTINGS_GRID, Case, best_setting, figures, nested, score_table  # noqa: E402
from monai_core.study import load_kaggle_case  # noqa: E402
from train_folds import weights_path  # noqa: E402

FOLDS_SOURCE = "folds"
SETTING_0_3_0 = MaskSetting(0.05, 0.5, "size", 0.25, 0.0)
FAMILIES = {  # name: which settings of the grid the family may choose from
    "clean-up only (gate 0.05, no confirmation)": lambda s: s.classifier_threshold == 0.05 and s.confirm == 0.0,
    "gate and clean-up (no confirmation)": lambda s: s.confirm == 0.0,
    "size rule, any gate and confirmation": lambda s: s.rule == "size",
    "evidence rule, any gate and confirmation": lambda s: s.rule == "evidence",
    "evidence_symmetry rule, any gate and confirmation": lambda s: s.rule == "evidence_symmetry",
    "everything (gate, confirmation, clean-up)": lambda s: True,
}
# The family that ships (0.4.0). Out of fold over all 88 (five folds, nested) it scores 0.851/0.884/min 0.344, and
# "everything" 0.847/0.884/min 0.000: the size rule, chosen for fold 0 by folds 1-4, drops TCGA_CS_5395's lesion.
# The per-slice classifier rules (higher gate, confirmation) were never chosen. So the clean-up is always by evidence.
SHIPPED = "evidence rule, any gate and confirmation"


class CacheError(SystemExit):
    """A cache that cannot be used as asked (mixed or missing sources)."""


def cache_dir(runs: Path, source: str) -> Path:
    return runs / "oof" / source


def bundle_source(bundle: Path) -> str:
    return "bundle-" + json.loads((bundle / "configs" / "metadata.json").read_text())["version"]


def _pipeline(args, fold: int) -> TumorSegPipeline | None:
    if args.bundle_models:
        return TumorSegPipeline(args.bundle)
    seg, cls = weights_path(args.runs, fold, "segmenter"), weights_path(args.runs, fold, "classifier")
    if not (seg.is_file() and cls.is_file()):
        print(f"fold {fold}: not trained yet, skipped", flush=True)
        return None
    return TumorSegPipeline(args.bundle, segmenter_weights=seg, classifier_weights=cls)


def predict(args) -> None:
    folds = patient_folds(read_patient_list(args.patients), args.n_folds)
    if args.bundle_models:
        if args.held_out_fold is None:
            raise CacheError("--bundle-models needs --held-out-fold: the one fold the bundle's networks did not train on")
        if set(args.folds) - {args.held_out_fold}:
            raise CacheError(f"the bundle's networks trained on folds other than {args.held_out_fold}: their predictions "
                             f"there are in-sample; predict only --folds {args.held_out_fold}")
        source = bundle_source(args.bundle)
    else:
        source = FOLDS_SOURCE
    folder = cache_dir(args.runs, source)
    for fold in args.folds:
        pipeline = _pipeline(args, fold)
        if pipeline is None:
            continue
        for patient in folds[fold]:
            path = folder / f"{patient}.npz"
            if path.is_file() and not args.overwrite:
                continue
            slices = load_kaggle_case(args.data / patient).slices
            x = torch.from_numpy(slices)
            probability = pipeline.segment(x)
            flipped = pipeline.segment(torch.flip(x, dims=[-1]))[:, :, ::-1]
            midline = estimate_midline(slices[:, 1])
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, fold=fold, source=source, weights=json.dumps(pipeline.identity["sha256"]),
                                slice_probability=pipeline.classify(x), tumour_probability=probability.astype(np.float16),
                                flipped=flipped.astype(np.float16), truth=truth_masks(args.data / patient),
                                midline=np.array([midline.column, midline.angle_degrees]))
            tmp.replace(path)
            print(f"fold {fold}: {patient}", flush=True)


def load_cache(runs: Path, source: str, flipped: bool = False) -> list[Case]:
    """The cached cases of one source; a file made by another source stops everything."""
    cases = []
    for path in sorted(cache_dir(runs, source).glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path) as f:
            if str(f["source"]) != source:
                raise CacheError(f"{path}: made by {f['source']}, not {source}: the cache mixes sources; predict again")
            case = Case(path.stem, f["slice_probability"], f["tumour_probability"], f["truth"].astype(bool),
                        Midline(*map(float, f["midline"])), int(f["fold"]))
            if flipped:
                case.flipped = f["flipped"]
            cases.append(case)
    return cases


def choose(args) -> dict:
    cases = load_cache(args.runs, args.source)
    if not cases:
        raise CacheError(f"{cache_dir(args.runs, args.source)}: no cached predictions; run predict first")
    names = [c.name for c in cases]
    folds = np.array([c.group for c in cases])
    groups = folds if len(set(folds)) > 1 else np.arange(len(cases))
    grid = SETTINGS_GRID + ([SETTING_0_3_0] if SETTING_0_3_0 not in SETTINGS_GRID else [])
    dice_table, counts = score_table(cases, grid)
    baseline = grid.index(SETTING_0_3_0)
    report = {"source": args.source, "patients": len(names), "folds": sorted(int(f) for f in set(folds)),
              "groups": {str(int(g)): [n for n, h in zip(names, groups) if h == g] for g in sorted(set(groups.tolist()))},
              "outer_groups": "folds" if len(set(folds)) > 1 else "patients (leave one patient out)",
              "min_slice_sensitivity": args.min_sensitivity, "settings_searched": len(grid),
              "0.3.0_setting": {"setting": SETTING_0_3_0.as_dict(),
                                **figures(names, dice_table[:, baseline], counts[:, baseline].sum(0))},
              "families": {}}
    for family, admits in FAMILIES.items():  # each family chosen out of fold on its own, so they compare fairly
        columns = [j for j, s in enumerate(grid) if admits(s)]
        oof_dice, oof_counts, chosen = nested(dice_table, counts, groups, columns, args.min_sensitivity)
        everyone = best_setting(dice_table, counts, columns, args.min_sensitivity)
        report["families"][family] = {"out_of_fold": figures(names, oof_dice, oof_counts),
                                      "setting_per_group": {str(g): grid[j].as_dict() for g, j in chosen.items()},
                                      "setting_on_all": grid[everyone].as_dict()}
    write_json_atomic(args.out, report)
    print(f"{len(names)} patients ({args.source}), folds {report['folds']}, outer groups: {report['outer_groups']}")
    rows = [("0.3.0 setting", report["0.3.0_setting"])]
    rows += [(f"{family}; on all: {v['setting_on_all']}", v["out_of_fold"]) for family, v in report["families"].items()]
    for label, f in rows:
        print(f"{label}\n    Dice mean {f['dice']['mean']:.3f} median {f['dice']['median']:.3f} min {f['dice']['min']:.3f} "
              f"(<0.4: {f['below_0.4']}, <0.5: {f['below_0.5']}); slices sensitivity {f['slice_sensitivity']:.3f} "
              f"specificity {f['slice_specificity']:.3f}")
    if args.markdown:
        write_markdown(args, report)
    if args.write_setting:
        write_setting(args, report)
    return report


def write_markdown(args, report: dict) -> None:
    """The families' out-of-fold figures and the per-patient table, with the command that made them."""
    command = " ".join(["python", "training/out_of_fold.py", "choose", "--runs", str(args.runs), "--source", args.source,
                        "--markdown", str(args.markdown)])
    lines = [f"# Out-of-fold figures ({report['patients']} development patients, predictions of {report['source']})", "",
             f"Made by `{command}`. Outer groups: {report['outer_groups']}; every figure comes from patients that chose "
             f"nothing: each group is scored at the setting chosen on the other groups (best mean Dice among settings whose "
             f"final-mask slice sensitivity reaches {report['min_slice_sensitivity']} on the choosing patients; "
             f"{report['settings_searched']} settings).", "",
             "| settings the choice may use | Dice mean | median | min | < 0.4 | < 0.5 | slice sensitivity | slice specificity | setting chosen on all |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [("0.3.0's setting, fixed", report["0.3.0_setting"], report["0.3.0_setting"]["setting"])]
    rows += [(family, v["out_of_fold"], v["setting_on_all"]) for family, v in report["families"].items()]
    for label, f, setting in rows:
        d = f["dice"]
        lines.append(f"| {label} | {d['mean']:.3f} | {d['median']:.3f} | {d['min']:.3f} | {f['below_0.4']} | {f['below_0.5']} | "
                     f"{f['slice_sensitivity']:.3f} | {f['slice_specificity']:.3f} | {describe(setting)} |")
    shipped = report["families"][SHIPPED]
    lines += ["", f"## Per patient ({SHIPPED}, the family that ships, chosen out of fold)", "", "| patient | group | Dice | setting of its group |", "|---|---|---|---|"]
    groups = {patient: group for group, patients in report.get("groups", {}).items() for patient in patients}
    for patient, value in sorted(shipped["out_of_fold"]["dice_per_patient"].items(), key=lambda kv: kv[1]):
        group = groups.get(patient, "")
        setting = shipped["setting_per_group"].get(str(group))
        lines.append(f"| {patient} | {group} | {value:.3f} | {describe(setting) if setting else ''} |")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.markdown.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.markdown)


def describe(setting: dict) -> str:
    return (f"gate {setting['classifier_threshold']}, mask {setting['mask_threshold']}, confirm {setting['confirm']}, "
            f"{setting['rule']} {setting['parameter']}")


def write_setting(args, report: dict) -> None:
    """Store the setting chosen on all patients of the full search in ``configs/inference.json``:
    only from the fold networks' predictions of every development patient."""
    expected = len(read_patient_list(DEFAULT_PATIENT_LIST))
    if args.source != FOLDS_SOURCE or report["patients"] != expected:
        raise CacheError(f"a shipped setting is chosen on the out-of-fold predictions of all {expected} development "
                         f"patients (source {FOLDS_SOURCE}), not on {report['patients']} of {args.source}")
    setting = MaskSetting(**report["families"][SHIPPED]["setting_on_all"])
    path = args.bundle / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config.pop("min_component_fraction", None)
    config.update(setting.to_config())
    write_json_atomic(path, config)
    print(f"wrote {setting} to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="cache out-of-fold probabilities")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--patients", type=Path, default=DEFAULT_PATIENT_LIST, help="the patients dealt into folds (as in training)")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--bundle", type=Path, default=ROOT / "bundle")
    p.add_argument("--bundle-models", action="store_true", help="the bundle's own networks, on the fold they did not train on")
    p.add_argument("--held-out-fold", type=int, help="with --bundle-models: the fold the bundle's networks did not train on (0.3.0: 0)")
    p.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("choose", help="choose the setting by nested cross-validation and report out-of-fold figures")
    c.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv")
    c.add_argument("--source", default=FOLDS_SOURCE, help="whose predictions: folds (default) or bundle-<version>")
    c.add_argument("--out", type=Path, default=ROOT / "runs" / "cv" / "out_of_fold.json")
    c.add_argument("--min-sensitivity", type=float, default=0.95, help="final-mask slice sensitivity a chosen setting must reach on the patients that choose it")
    c.add_argument("--bundle", type=Path, default=ROOT / "bundle")
    c.add_argument("--markdown", type=Path, help="also write the figures and the per-patient table as Markdown")
    c.add_argument("--write-setting", action="store_true", help="store the setting chosen on all patients in the bundle's inference.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("TUMORSEG_THREADS", "2")))  # 1 beside a background training
    predict(args) if args.command == "predict" else choose(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
