"""Benchmark the whole of ``tumorseg detect`` stage by stage, against a baseline commit and the Buda U-Net.

Two studies: the bundled sample study (TCGA-FG-6692: scanner-space FLAIR, T1 and T1c NIfTI, two
registrations) and a Kaggle stack (by default the repository's 34-slice validation patient
TCGA_DU_7294, not trained on). Per round, and alternating so that every version sees
the same machine state:

- in-process: ``detect_case`` in a child process whose pipeline is already loaded and warmed up,
  broken down into read (with the resampling onto the model grid), register, checks, classify,
  segment (with the clean-up), confidence (the flip pass and the features), map back and write
  (each stage's own time, without the stages it calls; "rest" is what no stage covers; work in
  other threads counts under the main thread's stage it runs beside: since each sequence's
  registration check and resampling run in its registration's worker, they count as register);
- cold: one whole ``python -m monai_core detect`` process (imports and model load included, and the
  way the command ends its process: ``monai_core.cli.end_process`` where the version has it), with
  its peak resident memory (``ru_maxrss``);
- both for this checkout and for ``--baseline REV`` (default: the 0.3.0 release commit), whose
  ``monai_core`` and ``bundle`` are extracted with ``git archive`` into a temporary folder;
- on the Kaggle stack, a cold Buda et al. U-Net process (the network of
  ``tests/benchmarks/detect_speed.py``, float32 on every slice) that reads the same slices.

Then it prints the medians and the compute floor of the networks that ran: GFLOP per slice
(``torch.utils.flop_counter.FlopCounterMode``), the number of slices each network ran on, the
measured peak GFLOP/s of this CPU (bfloat16 and float32 matrix products and a 3x3 convolution, the best
of them) and the ratio of the in-process time to that floor.

    python tests/benchmarks/detect_stages.py [--rounds 5] [--baseline 3778206] [--kaggle DIR]

Every child (both versions, in-process and cold, and the U-Net) is pinned to ``--threads`` cores and
gets that many torch, OpenMP and ITK threads; the torch count is checked inside each child. Every input
is in this repository (the sample study, the Kaggle stack, the baseline taken from its own history).
A version that loads its models in a thread while it reads (issue 27) keeps doing so under the
benchmark: the pipeline's timers are installed when it imports ``monai_core.pipeline``, not before;
its cold stage times then include the contention with that thread. At the end, the medians are also
printed as the Markdown table of the README's benchmark section.

Run it on an idle machine; on a busy one the figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "TCGA-FG-6692"
SAMPLE_ARGS = ["--flair", str(SAMPLE / "flair.nii.gz"), "--t1", str(SAMPLE / "t1.nii.gz"), "--t1c", str(SAMPLE / "t1c.nii.gz"),
               "--case-id", "TCGA-FG-6692"]
KAGGLE_STACK = ROOT / "tests" / "data" / "validation" / "TCGA_DU_7294_19890104"  # 34 slices, a fold-0 validation patient
STAGES = ("read", "register", "checks", "classify", "segment", "confidence", "map back", "write")

# Installed in a child process before monai_core runs: wraps the functions of each stage where the
# pipeline looks them up, so that it works on any version that has them (a missing name is skipped).
# Times are exclusive: a stage called inside another (the segmenter inside the flip pass) is
# counted once, under the innermost stage, except that the flip pass owns its segmenter calls.
PROFILER = r"""
import functools, threading, time
_stack, _totals = [], {}

def _wrap(owner, name, stage):
    function = getattr(owner, name, None)
    if function is None or getattr(function, "_stage", None):
        return
    @functools.wraps(function)
    def timed(*args, **kwargs):
        if stage == "segment" and _stack and _stack[-1][0] == "confidence":
            return function(*args, **kwargs)  # the flip pass's own segmenter calls
        if threading.current_thread() is not threading.main_thread():
            return function(*args, **kwargs)  # beside a main-thread stage (a registration's checks): counted there
        _stack.append([stage, time.perf_counter(), 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            _, start, inner = _stack.pop()
            spent = time.perf_counter() - start
            _totals[stage] = _totals.get(stage, 0.0) + spent - inner
            if _stack:
                _stack[-1][2] += spent
    timed._stage = stage
    setattr(owner, name, timed)

def install():
    import monai_core.detect as detect, monai_core.study as study
    for name in ("load_study",):
        _wrap(detect, name, "read")
    for name in ("register_rigid", "register_rigid_scored", "register_rigid_all"):
        _wrap(study, name, "register")
    for name in ("registration_metric", "registration_warning", "skull_and_scalp_visible", "head_mask", "sequence_warnings",
                 "geometry_warnings"):
        _wrap(study, name, "checks")
    _wrap(detect, "lesion_warnings", "checks")
    for name in ("case_features", "uncertain_slices"):
        _wrap(detect, name, "confidence")
    _wrap(study.Study, "mask_on_input_grid", "map back")
    for name in ("write_mask_nifti", "write_seg_nrrd", "write_overlay_png", "write_json_atomic", "build_report",
                 "measure"):  # measure: in build_report until the analysis became detect.analyse_case
        _wrap(detect, name, "write")
    _wrap(study.Study, "pixels_per_slice", "write")  # as measure
    _after_import("monai_core.pipeline", _install_pipeline)

def _install_pipeline(pipeline):
    _wrap(pipeline.TumorSegPipeline, "classify", "classify")
    _wrap(pipeline.TumorSegPipeline, "segment", "segment")
    for name in ("keep_main_components", "clean_up", "cleaned_probability"):  # the clean-up of 0.3.0, 0.3.x and 0.4.0
        _wrap(pipeline, name, "segment")
    _wrap(pipeline.TumorSegPipeline, "flipped_segmentation", "confidence")

def _after_import(name, then):
    # then(module) once name is imported, by whichever thread, without importing it here: a version that
    # imports torch in the background while it reads (issue 27) keeps doing so under the benchmark
    import importlib.abc, importlib.machinery, sys
    if name in sys.modules:
        return then(sys.modules[name])

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            original = spec.loader

            class Loader(importlib.abc.Loader):
                def create_module(self, spec):
                    return original.create_module(spec)

                def exec_module(self, module):
                    original.exec_module(module)
                    then(module)

            spec.loader = Loader()
            return spec

    sys.meta_path.insert(0, Finder())

def take():
    out = dict(_totals)
    _totals.clear()
    return out
"""

IN_PROCESS = PROFILER + r"""
import json, sys, tempfile, statistics
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[3]))
install()
from monai_core.detect import detect_case
from monai_core.pipeline import TumorSegPipeline
study_args = json.loads(sys.argv[1])
repeats = int(sys.argv[2])
pipeline = TumorSegPipeline()
if torch.get_num_threads() != int(sys.argv[3]):
    sys.exit(f"the pipeline runs with {torch.get_num_threads()} torch threads, not {sys.argv[3]}")
counts = {"classifier": 0, "segmenter": 0}
def counted(name, function):
    def call(x, *a, **k):
        index = k.get("index", a[0] if a else None)  # segment(slices, index): the slices it runs on
        counts[name] += len(x) if index is None else len(index)
        return function(x, *a, **k)
    return call
pipeline.classify = counted("classifier", pipeline.classify)
pipeline.segment = counted("segmenter", pipeline.segment)
runs = []
with tempfile.TemporaryDirectory() as tmp:
    for k in range(repeats + 1):  # the first run builds the CPU kernels and is not counted
        take()
        for c in counts:
            counts[c] = 0
        start = time.perf_counter()
        report = detect_case(pipeline, Path(tmp) / str(k), **study_args)
        total = time.perf_counter() - start
        stages = take()
        if k:
            runs.append({"total": total, **stages, "start-up and rest": total - sum(stages.values())})
summary = {key: statistics.median(r.get(key, 0.0) for r in runs) for key in runs[0]}
print(json.dumps({"times": summary, "slices": len(report["slices"]), "ran": counts}))
"""

COLD = PROFILER + r"""
import json, os, resource, sys
install()
from monai_core import cli
code = cli.main(sys.argv[1:])
with open(os.environ["DETECT_STAGES_OUT"], "w") as out:
    import torch
    json.dump({"stages": take(), "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "threads": torch.get_num_threads()}, out)
if hasattr(cli, "end_process"):  # the command's own way out (tumorseg and python -m monai_core), where it has one
    cli.end_process(code)
sys.exit(code)
"""

# The Buda U-Net as one cold process: read the slices, float32 on every slice, as in its reference code.
BUDA = r"""
import sys
sys.path.insert(0, sys.argv[2])
import numpy as np, torch
from pathlib import Path
from PIL import Image
from detect_speed import BudaUNet
torch.set_num_threads(int(sys.argv[3]))
files = sorted((p for p in Path(sys.argv[1]).glob("*.tif") if not p.name.endswith("_mask.tif")),
               key=lambda p: int(p.stem.rsplit("_", 1)[1]))
x = torch.from_numpy(np.stack([np.asarray(Image.open(p)).transpose(2, 0, 1) for p in files]).astype(np.float32) / 255)
network = BudaUNet().eval().to(memory_format=torch.channels_last)
with torch.inference_mode():
    masks = [network(b.contiguous(memory_format=torch.channels_last)) > 0.5 for b in torch.split(x, 8)]
print(int(sum(m.sum() for m in masks)))
"""


def extract(rev: str, where: Path) -> Path:
    """monai_core and bundle of commit ``rev``, unpacked into ``where`` (no checkout of the work tree)."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "monai_core", "bundle"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def _pinned(threads: int):
    """A preexec_fn that runs the child on ``threads`` cores, as ``taskset`` would.

    With OMP_NUM_THREADS, this gives every version the same thread count, whether it keeps torch's
    own count (this checkout) or sets one per available core (0.3.0's CLI did).
    """
    cores = set(sorted(os.sched_getaffinity(0))[:threads])
    return lambda: os.sched_setaffinity(0, cores)


def _env(checkout: Path, threads: int) -> dict:
    env = {"PYTHONPATH": str(checkout), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        env[name] = str(threads)  # ITK otherwise takes every core of the machine, not those it is pinned to
    return env


def in_process(checkout: Path, study: dict, repeats: int, threads: int) -> dict:
    result = subprocess.run([sys.executable, "-c", IN_PROCESS, json.dumps(study), str(repeats), str(threads)],
                            cwd=checkout, env=_env(checkout, threads), capture_output=True, text=True,
                            preexec_fn=_pinned(threads))
    if result.returncode:
        raise RuntimeError(f"{checkout}: the in-process run failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_child(command: list[str], cwd: Path, env: dict, threads: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process on ``threads`` cores, its own ru_maxrss from wait4."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=_pinned(threads))
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{command[:3]} failed: {child.stderr.read().decode()[-2000:]}")
    child.stderr.close()
    return wall, usage.ru_maxrss / 1024


def cold(checkout: Path, cli_args: list[str], out: Path, threads: int) -> dict:
    env = {**_env(checkout, threads), "DETECT_STAGES_OUT": str(out / "stages.json")}
    command = [sys.executable, "-c", COLD, "detect", *cli_args, "-o", str(out), "--overwrite", "--progress", "none"]
    wall, rss = run_child(command, checkout, env, threads)
    recorded = json.loads((out / "stages.json").read_text())
    if recorded["threads"] != threads:
        raise RuntimeError(f"{checkout}: the cold detect ran with {recorded['threads']} torch threads, not {threads}")
    stages = recorded["stages"]
    return {"total": wall, **stages, "start-up and rest": wall - sum(stages.values()), "peak_mb": rss}


def buda_cold(case: Path, threads: int) -> float:
    return run_child([sys.executable, "-c", BUDA, str(case), str(Path(__file__).parent), str(threads)], ROOT,
                     _env(ROOT, threads), threads)[0]


def gflop_per_slice() -> dict[str, float]:
    """GFLOP of one slice through each shipped network, at the size it runs at (counted, not estimated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT))
    from monai_core.pipeline import TumorSegPipeline

    pipeline = TumorSegPipeline()
    out = {}
    for name, network, size in (("classifier", pipeline.classifier, pipeline.classifier_size), ("segmenter", pipeline.segmenter, 256)):
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            network(torch.rand(1, 3, size, size))
        out[name] = counter.get_total_flops() / 1e9
    return out


def peak_gflops(threads: int, seconds: float = 1.0) -> dict[str, float]:
    """Measured GFLOP/s of this CPU: large matrix products and a 3x3 convolution, bfloat16 and float32."""
    import torch

    torch.set_num_threads(threads)
    out = {}

    def rate(function, flop):
        function()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            function()
            n += 1
        return n * flop / (time.perf_counter() - start) / 1e9

    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.rand(1024, 1024, dtype=dtype), torch.rand(1024, 1024, dtype=dtype)
            out[f"matmul {str(dtype)[6:]}"] = rate(lambda: a @ b, 2 * 1024**3)
            x = torch.rand(8, 64, 128, 128, dtype=dtype).contiguous(memory_format=torch.channels_last)
            conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(dtype).to(memory_format=torch.channels_last)
            out[f"conv3x3 {str(dtype)[6:]}"] = rate(lambda: conv(x), 2 * 8 * 64 * 64 * 9 * 128 * 128)
    return out


def medians(runs: list[dict]) -> dict:
    return {key: statistics.median(r.get(key, 0.0) for r in runs) for key in runs[0]}


def stage_line(label: str, times: dict) -> str:
    parts = [f"{stage} {times.get(stage, 0.0):.3f}" for stage in (*STAGES, "start-up and rest") if stage in times or stage in STAGES]
    extra = f", peak {times['peak_mb']:.0f} MB" if "peak_mb" in times else ""
    return f"  {label}: total {times['total']:.3f} s = " + ", ".join(parts) + extra


def markdown_table(study: str, m: dict, baseline: str) -> str:
    """The README's stage table for one study: medians of this checkout and of the baseline, and their ratio."""
    current_in, base_in = m[("current", "in-process")], m[(f"baseline {baseline}", "in-process")]
    current_cold, base_cold = m[("current", "cold")], m[(f"baseline {baseline}", "cold")]
    rows = [(f"in-process {stage}", current_in.get(stage, 0.0), base_in.get(stage, 0.0))
            for stage in (*STAGES, "start-up and rest")]
    rows += [("**in-process total**", current_in["total"], base_in["total"]),
             ("cold: start-up (imports, model load) and rest", current_cold["start-up and rest"], base_cold["start-up and rest"]),
             ("**cold total**", current_cold["total"], base_cold["total"])]
    lines = [f"| {study} | current (s) | {baseline} (s) | current / {baseline} |", "|---|---|---|---|"]
    lines += [f"| {label} | {a:.2f} | {b:.2f} | {a / b:.2f}x |" if b else f"| {label} | {a:.2f} | {b:.2f} | - |"
              for label, a, b in rows]
    lines.append(f"| cold peak memory (MB) | {current_cold['peak_mb']:.0f} | {base_cold['peak_mb']:.0f} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are printed")
    parser.add_argument("--repeats", type=int, default=3, help="in-process detect runs per round (median taken)")
    parser.add_argument("--baseline", default="3778206", help="git revision to compare against (default: release 0.3.0)")
    parser.add_argument("--kaggle", type=Path, default=KAGGLE_STACK, help="a Kaggle-layout case folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads and cores for every version and the U-Net (default: the cores available)")
    args = parser.parse_args()
    if not 1 <= args.threads <= len(os.sched_getaffinity(0)):
        parser.error(f"--threads must be between 1 and the {len(os.sched_getaffinity(0))} cores available")
    if not args.kaggle.is_dir():
        parser.error(f"{args.kaggle}: no such Kaggle case folder (give one with --kaggle)")
    studies = {
        "bundled sample (NIfTI, 2 registrations)": ({"flair": str(SAMPLE / "flair.nii.gz"), "t1": str(SAMPLE / "t1.nii.gz"),
                                                     "t1c": str(SAMPLE / "t1c.nii.gz"), "case_id": "TCGA-FG-6692"}, SAMPLE_ARGS),
        f"Kaggle stack {args.kaggle.name}": ({"kaggle_dir": str(args.kaggle)}, [str(args.kaggle)]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"current": ROOT, f"baseline {args.baseline}": extract(args.baseline, Path(tmp) / "baseline")}
        runs: dict[tuple, list] = {}
        ran: dict[tuple, dict] = {}
        kaggle_name = list(studies)[1]
        for round_ in range(args.rounds):
            for study, (api_args, cli_args) in studies.items():
                for version, checkout in versions.items():
                    result = in_process(checkout, api_args, args.repeats, args.threads)
                    runs.setdefault((study, version, "in-process"), []).append(result["times"])
                    ran[(study, version)] = {**result["ran"], "slices": result["slices"]}
                    out = Path(tmp) / "cold" / version.split()[0]
                    runs.setdefault((study, version, "cold"), []).append(cold(checkout, cli_args, out, args.threads))
                if study == kaggle_name:
                    runs.setdefault((study, "Buda U-Net", "cold"), []).append({"total": buda_cold(args.kaggle, args.threads)})
            print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
                f"{s.split()[0]} {v.split()[0]} {m} {r[-1]['total']:.2f} s" for (s, v, m), r in runs.items()), flush=True)

    flop = gflop_per_slice()
    peak = peak_gflops(args.threads)
    best = max(peak.values())
    print(f"\nmedians of {args.rounds} rounds ({args.threads} threads), seconds")
    for study in studies:
        print(study)
        m = {key[1:]: medians(r) for key, r in runs.items() if key[0] == study}
        for (version, mode), times in m.items():
            if version != "Buda U-Net":
                print(stage_line(f"{version}, {mode}", times))
        current, base = m[("current", "in-process")]["total"], m[(f"baseline {args.baseline}", "in-process")]["total"]
        cold_current, cold_base = m[("current", "cold")]["total"], m[(f"baseline {args.baseline}", "cold")]["total"]
        print(f"  in-process current/baseline {current / base:.2f}x; cold current/baseline {cold_current / cold_base:.2f}x")
        if ("Buda U-Net", "cold") in m:
            buda = m[("Buda U-Net", "cold")]["total"]
            print(f"  cold Buda U-Net process {buda:.3f} s; cold current/Buda {cold_current / buda:.2f}x, "
                  f"baseline/Buda {cold_base / buda:.2f}x")
        for version in versions:
            count = ran[(study, version)]
            floor_gflop = count["classifier"] * flop["classifier"] + count["segmenter"] * flop["segmenter"]
            floor = floor_gflop / best
            time_ = m[(version, "in-process")]["total"]
            print(f"  {version}: {count['slices']} slices; classifier on {count['classifier']}, segmenter on "
                  f"{count['segmenter']} (flip pass included): {floor_gflop:.1f} GFLOP, floor {floor:.3f} s; "
                  f"in-process time / floor {time_ / floor:.2f}")
    for study in studies:
        print("\n" + markdown_table(study, {key[1:]: medians(r) for key, r in runs.items() if key[0] == study}, args.baseline))
    print(f"GFLOP per slice: classifier {flop['classifier']:.3f} (at its input size), segmenter {flop['segmenter']:.3f}")
    print("measured peak GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()) + f"; floor uses {best:.1f}")


if __name__ == "__main__":
    main()
