"""Benchmark the rigid registrations of ``tumorseg detect``: time, and how well they align, against release 0.4.0.

For each case of ``tests/registration_cases.py`` (the sample study's T1 and T1c, the same with
headers moved by a known transform, the skull-stripped scans of tests/data/bet) and each recipe
(the shipped ``register_rigid``; release 0.4.0's, ITK's shrink-factor pyramid, kept here to compare), it prints:

- the CPU time (``time.process_time``, all threads) and the wall time of one registration;
- ``vs ref``: the largest displacement over the FLAIR's head box from the committed reference of the
  shipped recipe (``tests/data/registration_reference.json``), and ``vs 0.4.0`` from 0.4.0's result
  (``registration_reference_0.4.0.json``), in mm (:func:`registration_cases.displacement`);
- ``follows``: for a case with a moved header, how far the result lies from the same recipe's result
  on the unmoved case moved by the known transform (a registration that follows the images: 0);
- ``seeds``: the largest displacement between the recipe's result with metric seed 42 and with
  seeds 7, 123 and 999 (how much of a result is the draw of metric samples);
- ``head MI``: the mutual information over every voxel of the FLAIR's head at full resolution, lower
  is better (:func:`registration_cases.head_mutual_information`), a judge neither recipe samples.

Then the two registrations of the sample study as ``detect`` runs them: one after the other on
SimpleITK's default threads against ``register_rigid_all`` (side by side, one core each).

    python tests/benchmarks/registration_accuracy.py [--rounds 5] [--write-reference]

CPU times hold on a busy machine; wall times only on an idle one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import registration_cases as rc  # noqa: E402
from monai_core.checks import head_mask  # noqa: E402
from monai_core.preprocess import register_rigid, register_rigid_all  # noqa: E402

SEEDS = (7, 123, 999)


def release_040(fixed: sitk.Image, moving: sitk.Image, threads: int | None = None, seed: int = 42) -> sitk.Transform:
    """Release 0.4.0's register_rigid: ITK's pyramid (shrink 4 then 2 on every axis, smoothing 2 and 1
    voxels) on the full images, 5% random metric samples, at most 80 iterations per level."""
    fixed, moving = sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)
    method = sitk.ImageRegistrationMethod()
    if threads is not None:
        method.SetNumberOfThreads(threads)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.05, seed=seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=80, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2])
    method.SetSmoothingSigmasPerLevel([2, 1])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY), inPlace=False)
    return method.Execute(fixed, moving)


RECIPES = {
    "shipped (register_rigid)": lambda fixed, moving, seed=42: register_rigid(fixed, moving, seed=seed),
    "0.4.0 (ITK shrink 4, 2)": lambda fixed, moving, seed=42: release_040(fixed, moving, seed=seed),
}


def timed(function, *args):
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def case_table(rounds: int) -> None:
    print(f"{'recipe':26} {'case':18} {'cpu s':>6} {'wall s':>6} {'vs ref':>7} {'vs 0.4.0':>8} {'follows':>7} "
          f"{'seeds':>6} {'head MI':>8}  (mm)")
    cases = {name: rc.load_case(name) for name in rc.CASES}
    points = {name: rc.head_points(fixed, count=1)[0] for name, (fixed, _) in cases.items()}
    heads = {name: head_mask(fixed) for name, (fixed, _) in cases.items()}
    for recipe, register in RECIPES.items():
        results = {}
        for name, (fixed, moving) in cases.items():
            runs = [timed(register, fixed, moving) for _ in range(rounds)]
            transform = results[name] = runs[0][0]
            corners = points[name]
            seeds = max(rc.displacement(register(fixed, moving, seed), transform, corners).max() for seed in SEEDS)
            moved_from = rc.expected_from_move(name, results.get(name.removesuffix(" moved")))
            follows = f"{rc.displacement(transform, moved_from, corners).max():7.2f}" if moved_from is not None else f"{'':7}"
            print(f"{recipe:26} {name:18} {statistics.median(r[1] for r in runs):6.2f} "
                  f"{statistics.median(r[2] for r in runs):6.2f} {rc.displacement(transform, rc.reference(name), corners).max():7.2f} "
                  f"{rc.displacement(transform, rc.reference(name, rc.REFERENCE_040), corners).max():8.2f} {follows} "
                  f"{seeds:6.2f} {rc.head_mutual_information(fixed, moving, transform, heads[name]):8.4f}", flush=True)


def sample_pair(rounds: int) -> None:
    """The sample study's two registrations as detect runs them: one after the other, and side by side."""
    flair, t1 = rc.load_case("sample t1")
    _, t1c = rc.load_case("sample t1c")
    movings = {"t1": t1, "t1c": t1c}
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    results = {"one after the other": [], "register_rigid_all": []}
    for _ in range(rounds):  # alternating, so that both see the same machine
        results["one after the other"].append(timed(lambda: {n: register_rigid(flair, m) for n, m in movings.items()}))
        results["register_rigid_all"].append(timed(register_rigid_all, flair, movings))
    print(f"\nsample study, T1 and T1c onto the FLAIR, SimpleITK global threads {threads}, median of {rounds}:")
    for label, runs in results.items():
        print(f"  {label:22} cpu {statistics.median(r[1] for r in runs):5.2f} s  wall {statistics.median(r[2] for r in runs):5.2f} s")
    before = np.array([[rc.as_euler(t).GetParameters() for t in run[0].values()] for run in results["one after the other"]])
    now = np.array([[rc.as_euler(t).GetParameters() for t in run[0].values()] for run in results["register_rigid_all"]])
    print(f"  largest parameter difference (rad or mm): between register_rigid_all runs {np.abs(now - now[0]).max():.1e}, "
          f"against one after the other {np.abs(now - before).max():.1e}")


def write_reference() -> None:
    cases = {}
    for name in rc.CASES:
        cases[name] = rc.to_record(register_rigid(*rc.load_case(name)))
        print(name, cases[name], flush=True)
    made_with = ("monai_core.preprocess.register_rigid (pyramid in millimetres), SimpleITK's default threads, "
                 "tests/benchmarks/registration_accuracy.py --write-reference")
    rc.REFERENCE.write_text(json.dumps({"made_with": made_with, "cases": cases}, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timings per recipe and case (median; default 5)")
    parser.add_argument("--write-reference", action="store_true",
                        help="replace the committed reference with this checkout's results (only on purpose)")
    options = parser.parse_args()
    if options.write_reference:
        write_reference()
        return
    print(f"reference: {json.loads(rc.REFERENCE.read_text())['made_with']}")
    case_table(options.rounds)
    sample_pair(options.rounds)


if __name__ == "__main__":
    main()
