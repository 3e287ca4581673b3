"""Compare costs at most 2x one detect: medians of several runs of each, measured in the same run.

    python tests/benchmarks/compare_speed.py [--rounds 5]

One detect is ``detect_case`` on the LGG sample (FLAIR + T1 + T1c) with the networks already
loaded, as the warm engine and a batch worker run it. One compare is ``compare_cases`` between two
detect results of that study, one of them carried by a known rigid motion (5 degrees, 8 mm), as a
follow-up acquired with the head lying differently. Target (issue 18): compare <= 2x detect, on an
idle machine. Prints both medians and the ratio; exit 1 when the ratio is above the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RAW = ROOT / "tests" / "data" / "TCGA-FG-6692"
TARGET = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each (default 5)")
    options = parser.parse_args()

    from monai_core.compare import compare_cases
    from monai_core.detect import detect_case
    from monai_core.pipeline import TumorSegPipeline
    from test_compare import known_motion, moved

    pipeline = TumorSegPipeline()
    inputs = {name: str(RAW / f"{name}.nii.gz") for name in ("flair", "t1", "t1c")}
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        motion = known_motion()
        for name, path in list(inputs.items()):  # the follow-up: the same head, moved
            sitk.WriteImage(moved(sitk.ReadImage(path), motion), str(temp / f"moved_{name}.nii.gz"))
        followup_inputs = {name: str(temp / f"moved_{name}.nii.gz") for name in inputs}
        detect_case(pipeline, temp / "warmup", case_id="warmup", **inputs)  # builds the CPU kernels

        detect_s = []
        for round_ in range(options.rounds):
            started = time.perf_counter()
            detect_case(pipeline, temp / "detect", case_id=f"baseline{round_}", **inputs)
            detect_s.append(time.perf_counter() - started)
        detect_case(pipeline, temp / "detect", case_id="followup", **followup_inputs)

        compare_s = []
        for round_ in range(options.rounds):
            started = time.perf_counter()
            change = compare_cases(temp / "detect" / "baseline0", temp / "detect" / "followup", temp / "compare",
                                   case_id=f"change{round_}")
            compare_s.append(time.perf_counter() - started)

    detect, compare = statistics.median(detect_s), statistics.median(compare_s)
    ratio = compare / detect
    print(json.dumps({"rounds": options.rounds, "detect_median_s": round(detect, 3),
                      "compare_median_s": round(compare, 3), "ratio": round(ratio, 2), "target": TARGET,
                      "detect_s": [round(t, 3) for t in detect_s], "compare_s": [round(t, 3) for t in compare_s],
                      "compare_category": change["category"], "registration_s": change["timing_s"]["register_s"]}))
    print(f"compare {compare:.2f} s vs one detect {detect:.2f} s (medians of {options.rounds}): "
          f"{ratio:.2f}x, target <= {TARGET:.0f}x" + ("" if ratio <= TARGET else " -- ABOVE THE TARGET"))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
