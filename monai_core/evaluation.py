"""Evaluate the shipped two-stage pipeline on whole patients with ground truth (Kaggle layout).

Metrics are those of DESIGN.md: per-patient Dice (all slices of a patient stacked, Buda et al.),
slice-level ROC AUC, and sensitivity, specificity and the confusion matrix at the shipped
classifier threshold. The same predictions also serve to choose the thresholds on validation
patients (:func:`choose_thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from monai.metrics import compute_roc_auc
from PIL import Image

from .data.lgg import find_slices
from .metrics import dice, summarise
from .pipeline import TumorSegPipeline
from .postprocess import MIRRORED_RULES, MaskSetting, estimate_midline, final_mask
from .study import load_kaggle_case

__all__ = ["PatientPrediction", "predict_patients", "pipeline_metrics", "write_plots"]


@dataclass
class PatientPrediction:
    """Everything needed to score one patient at any threshold: both networks run on every slice."""

    patient: str
    slices: np.ndarray  # (N, 3, 256, 256) model input, kept for overlays
    truth: np.ndarray  # (N, 256, 256) bool
    slice_probability: np.ndarray  # (N,)
    tumour_probability: np.ndarray  # (N, 256, 256), segmenter on every slice

    midline: object = None  # monai_core.postprocess.Midline, for the rules that mirror

    def mask(self, setting: MaskSetting) -> np.ndarray:
        """The final mask at ``setting``, as ``tumorseg detect`` makes it."""
        return final_mask(self.slice_probability, self.tumour_probability, setting, self.midline)


def truth_masks(case_dir: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(mask)) > 0 for _, _, mask in find_slices(case_dir)])


def predict_patients(
    pipeline: TumorSegPipeline, dataset_dir: str | Path, patients: Iterable[str], progress: Callable | None = None
) -> list[PatientPrediction]:
    """Run both networks on every slice of each patient."""
    out = []
    patients = list(patients)
    for i, patient in enumerate(patients):
        study = load_kaggle_case(Path(dataset_dir) / patient)
        x = torch.from_numpy(study.slices)
        midline = estimate_midline(study.slices[:, 1]) if pipeline.setting.rule in MIRRORED_RULES else None
        out.append(PatientPrediction(patient, study.slices, truth_masks(Path(dataset_dir) / patient), pipeline.classify(x),
                                     pipeline.segment(x), midline))
        if progress:
            progress("evaluate", (i + 1) / len(patients), patient)
    return out


def pipeline_metrics(predictions: list[PatientPrediction], setting: MaskSetting) -> dict:
    """Per-patient Dice of the final masks at ``setting``, the gate's slice detection metrics, and the
    final masks' slice sensitivity and specificity ("the slice holds tumour in the final mask")."""
    masks = {p.patient: p.mask(setting) for p in predictions}
    per_patient = {p.patient: dice(masks[p.patient], p.truth) for p in predictions}
    scores = np.concatenate([p.slice_probability for p in predictions])
    labels = np.concatenate([p.truth.reshape(len(p.truth), -1).any(1) for p in predictions]).astype(int)
    in_final = np.concatenate([m.reshape(len(m), -1).any(1) for m in masks.values()])
    predicted = scores >= setting.classifier_threshold
    tp = int(np.sum(predicted & (labels == 1)))
    tn = int(np.sum(~predicted & (labels == 0)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    auc = float(compute_roc_auc(torch.from_numpy(scores), torch.from_numpy(labels))) if 0 < labels.sum() < len(labels) else None
    return {
        "patients": len(predictions),
        "slices": int(len(labels)),
        "dice_per_patient": {k: round(v, 4) for k, v in per_patient.items()},
        "dice": summarise(per_patient.values()),
        "slice_auc": auc,
        "setting": setting.as_dict(),
        "classifier_threshold": setting.classifier_threshold,
        "sensitivity": tp / max(1, tp + fn),
        "specificity": tn / max(1, tn + fp),
        "confusion_matrix": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
        "final_mask_sensitivity": float(in_final[labels == 1].mean()) if labels.any() else None,
        "final_mask_specificity": float(1 - in_final[labels == 0].mean()) if (labels == 0).any() else None,
    }


def write_plots(predictions: list[PatientPrediction], metrics: dict, out_dir: Path, training_logs: dict | None = None) -> list[str]:
    """PNG plots: Dice per patient, slice ROC, confusion matrix, training curves, best/worst overlays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(figure, name):
        figure.tight_layout()
        figure.savefig(out_dir / name, dpi=90)
        plt.close(figure)
        written.append(name)

    scores = metrics["dice_per_patient"]
    order = sorted(scores, key=scores.get)
    figure, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(order)), [scores[p] for p in order], color="tab:blue")
    ax.axhline(metrics["dice"]["mean"], color="k", ls="--", label=f"mean {metrics['dice']['mean']:.3f}")
    ax.axhline(metrics["dice"]["median"], color="tab:orange", ls=":", label=f"median {metrics['dice']['median']:.3f}")
    ax.set_ylim(0, 1), ax.set_ylabel("per-patient Dice"), ax.set_xlabel(f"patients (n={len(order)})"), ax.legend()
    save(figure, "dice_per_patient.png")

    s = np.concatenate([p.slice_probability for p in predictions])
    y = np.concatenate([p.truth.reshape(len(p.truth), -1).any(1) for p in predictions])
    thresholds = np.unique(np.concatenate([[0.0, 1.01], s]))[::-1]
    tpr = [(s[y] >= t).mean() for t in thresholds]
    fpr = [(s[~y] >= t).mean() for t in thresholds]
    figure, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {metrics['slice_auc']:.3f}")
    ax.scatter([1 - metrics["specificity"]], [metrics["sensitivity"]], color="r", zorder=3, label=f"threshold {metrics['classifier_threshold']}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity"), ax.legend(loc="lower right")
    save(figure, "slice_roc.png")

    c = metrics["confusion_matrix"]
    figure, ax = plt.subplots(figsize=(3.6, 3.2))
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks([0, 1], ["no tumour", "tumour"]), ax.set_yticks([0, 1], ["no tumour", "tumour"])
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    save(figure, "confusion_matrix.png")

    for name, curves in (training_logs or {}).items():
        figure, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
        for ax, (label, (x, v)) in zip(axes[0], curves.items()):
            ax.plot(x, v), ax.set_title(label), ax.set_xlabel("epoch")
        save(figure, f"training_curves_{name}.png")

    by_patient = {p.patient: p for p in predictions}
    for tag, patient in (("best", order[-1]), ("worst", order[0])):
        p = by_patient[patient]
        mask = p.mask(MaskSetting(**metrics["setting"]))
        rows = np.flatnonzero(p.truth.any((1, 2)) | mask.any((1, 2)))[:12]
        if len(rows) == 0:
            continue
        figure, axes = plt.subplots(1, len(rows), figsize=(2 * len(rows), 2.3), squeeze=False)
        for ax, k in zip(axes[0], rows):
            ax.imshow(p.slices[k, 1], cmap="gray", vmin=0, vmax=1)
            if p.truth[k].any():
                ax.contour(p.truth[k], levels=[0.5], colors="lime", linewidths=0.7)
            if mask[k].any():
                ax.contour(mask[k], levels=[0.5], colors="red", linewidths=0.7)
            ax.set_title(f"{k}", fontsize=7), ax.axis("off")
        figure.suptitle(f"{tag}: {patient} Dice {scores[patient]:.3f} (green truth, red prediction)", fontsize=8)
        save(figure, f"overlay_{tag}.png")
    return written


def training_curves(log_file: str | Path) -> dict:
    """Per-epoch mean training loss and validation metrics parsed from a ``monai.bundle run`` log."""
    import re

    losses: dict[int, list[float]] = {}
    validation: dict[str, dict[int, float]] = {}
    for line in Path(log_file).read_text().splitlines():
        if match := re.search(r"Epoch: (\d+)/\d+, Iter: \d+/\d+ -- train_loss: ([\d.]+)", line):
            losses.setdefault(int(match[1]), []).append(float(match[2]))
        elif match := re.search(r"Epoch\[(\d+)\] Metrics -- (.*)$", line):
            for name, value in re.findall(r"(\w+): ([\d.]+)", match[2]):
                validation.setdefault(name, {})[int(match[1])] = float(value)
    curves = {"train_loss": (sorted(losses), [float(np.mean(losses[e])) for e in sorted(losses)])}
    for name, values in validation.items():
        curves[name] = (sorted(values), [values[e] for e in sorted(values)])
    return curves


def evaluate(
    pipeline: TumorSegPipeline,
    dataset_dir: str | Path,
    patients: Iterable[str],
    out_dir: str | Path,
    training_logs: dict | None = None,
    progress: Callable | None = None,
) -> dict:
    """Score the shipped pipeline at its own thresholds; writes ``metrics.json`` and PNG plots."""
    from .outputs import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = predict_patients(pipeline, dataset_dir, patients, progress)
    metrics = pipeline_metrics(predictions, pipeline.setting)
    metrics["bundle"] = pipeline.identity
    curves = {name: training_curves(path) for name, path in (training_logs or {}).items() if Path(path).is_file()}
    metrics["plots"] = write_plots(predictions, metrics, out_dir, curves)
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def run_bundle_evaluation(bundle_root, dataset_dir, patients, out_dir) -> dict:
    """Entry point of ``configs/evaluate.json``: the bundle's pipeline on the given patients."""
    bundle_root = Path(bundle_root)
    logs = {name: bundle_root / "docs" / "training" / f"{name}.log" for name in ("segmenter", "classifier")}
    metrics = evaluate(TumorSegPipeline(bundle_root), dataset_dir, patients, out_dir, logs)
    d = metrics["dice"]
    print(
        f"{metrics['patients']} patients: per-patient Dice mean {d['mean']:.4f} median {d['median']:.4f}; "
        f"slice AUC {metrics['slice_auc']:.4f}, sensitivity {metrics['sensitivity']:.4f}, "
        f"specificity {metrics['specificity']:.4f}; written to {out_dir}"
    )
    return metrics
