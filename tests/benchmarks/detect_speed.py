"""Benchmark ``tumorseg detect``: in-process time per study, cold CLI time and peak memory.

Prints medians over ``--runs`` runs on this machine, and, in the same run, the time of a baseline:
the Buda et al. U-Net (32 initial features, 7.8M parameters, random weights, float32 as in its
reference implementation) segmenting every slice of the same studies.

    python tests/benchmarks/detect_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
KAGGLE = ROOT / "tests" / "data" / "kaggle_3m"


class BudaUNet(nn.Module):
    """The U-Net of Buda et al. 2019 for timing: 4 levels of two conv-BN-ReLU, 32 initial features."""

    def __init__(self, in_channels=3, out_channels=1, features=32):
        super().__init__()
        widths = [features * 2**i for i in range(5)]

        def block(i, o):
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
            )

        self.encoders = nn.ModuleList([block(in_channels, widths[0])] + [block(widths[i], widths[i + 1]) for i in range(3)])
        self.bottleneck = block(widths[3], widths[4])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(4))])
        self.decoders = nn.ModuleList([block(widths[i] * 2, widths[i]) for i in reversed(range(4))])
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], 1))
        return torch.sigmoid(self.head(x))


def median_time(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a child process."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def synthetic_volume(path: Path, size: tuple[int, int, int]) -> None:
    """A FLAIR-like NIfTI made from the sample's real slices, tiled to the requested size."""
    import SimpleITK as sitk

    from monai_core.study import load_kaggle_case

    slices = np.concatenate([load_kaggle_case(p).slices[:, 1] for p in sorted(KAGGLE.iterdir()) if p.is_dir()])
    z, y, x = size[2], size[1], size[0]
    stack = np.resize(slices, (z, 256, 256))
    volume = np.kron(stack, np.ones((1, y // 256, x // 256), np.float32)) * 1000
    image = sitk.GetImageFromArray(volume.astype(np.int16))
    image.SetSpacing((230 / x, 230 / y, 5.0))
    sitk.WriteImage(image, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # here, not at import: detect_stages.py imports BudaUNet without monai_core
    from monai_core.detect import detect_case
    from monai_core.pipeline import TumorSegPipeline
    from monai_core.study import load_kaggle_case

    torch.set_num_threads(2)
    pipeline = TumorSegPipeline()
    baseline = BudaUNet().eval().to(memory_format=torch.channels_last)
    print(f"baseline Buda U-Net parameters: {sum(p.numel() for p in baseline.parameters()) / 1e6:.2f}M")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in sorted(p for p in KAGGLE.iterdir() if p.is_dir()):
            study = load_kaggle_case(case)
            x = torch.from_numpy(study.slices).contiguous(memory_format=torch.channels_last)
            ours = median_time(lambda: pipeline.predict(study.slices), args.runs)
            count = iter(range(10**6))
            full = median_time(
                lambda: detect_case(pipeline, Path(tmp) / str(next(count)), kaggle_dir=case), args.runs
            )
            with torch.inference_mode():
                base = median_time(lambda: [baseline(b) for b in torch.split(x, 8)], args.runs)
            results[case.name] = {"slices": len(x), "inference_s": ours, "detect_in_process_s": full, "baseline_s": base}
            print(
                f"{case.name}: {len(x)} slices, two-stage inference {ours:.3f} s, whole detect in-process {full:.3f} s, "
                f"Buda U-Net {base:.3f} s -> {base / ours:.1f}x faster (inference), {base / full:.1f}x (whole detect)"
            )
        per_36 = statistics.median(r["detect_in_process_s"] / r["slices"] * 36 for r in results.values())
        ratio = statistics.median(r["baseline_s"] / r["detect_in_process_s"] for r in results.values())
        print(f"median in-process detect time scaled to 36 slices: {per_36:.3f} s; speed-up over baseline {ratio:.1f}x")

        case = sorted(p for p in KAGGLE.iterdir() if p.is_dir())[0]
        cli = [sys.executable, "-m", "monai_core", "detect", str(case), "--progress", "none", "--overwrite"]
        colds = [peak_rss_of(cli + ["-o", str(Path(tmp) / "cli")])[0] for _ in range(args.runs)]
        print(f"cold CLI wall time (imports and model load included): median {statistics.median(colds):.2f} s over {args.runs} runs")

        for size in ((256, 256, 88), (512, 512, 200)):
            path = Path(tmp) / f"flair_{size[2]}.nii.gz"
            synthetic_volume(path, size)
            command = [sys.executable, "-c", (
                "import resource,sys; from monai_core.cli import main; main(sys.argv[1:]); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
            ), "detect", "--flair", str(path), "-o", str(Path(tmp) / "mem"), "--progress", "none", "--overwrite"]
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
            print(f"peak resident memory, {size[0]}x{size[1]}x{size[2]} volume: {int(out[-1]) / 1024:.0f} MB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
