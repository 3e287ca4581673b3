"""Put newly trained weights into the bundle: copy them, export TorchScript, record every sha256.

    python training/ship_weights.py --segmenter runs/segmenter/models/model.pt \\
        --classifier runs/classifier/models/model_classifier.pt

The classifier export is traced at 128x128 (MONAI's DenseNet121 does not script cleanly); the
inference path loads it only when its sha256 matches ``configs/metadata.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from monai_core.outputs import write_json_atomic
from monai_core.pipeline import DEFAULT_BUNDLE
from monai_core.weights import load_state_dict, sha256

EXPORTS = {
    "model.pt": ("network_def", "model.ts", []),
    "model_classifier.pt": ("classifier_def", "model_classifier.ts", ["--input_shape", "[1,3,128,128]", "--use_trace", "True"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", required=True, type=Path, help="state dict of the trained ResUNet")
    parser.add_argument("--classifier", required=True, type=Path, help="state dict of the trained DenseNet121")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    args = parser.parse_args()

    models = args.bundle / "models"
    configs = args.bundle / "configs"
    for source, name in ((args.segmenter, "model.pt"), (args.classifier, "model_classifier.pt")):
        load_state_dict(source, None)  # a state dict that loads safely, or stop here
        shutil.copyfile(source, models / f".{name}.tmp")
        (models / f".{name}.tmp").replace(models / name)
        net_id, export, extra = EXPORTS[name]
        subprocess.run(
            [sys.executable, "-m", "monai.bundle", "ckpt_export", net_id, "--filepath", str(models / export),
             "--ckpt_file", str(models / name), "--meta_file", str(configs / "metadata.json"),
             "--config_file", str(configs / "inference.json"), "--bundle_root", str(args.bundle), *extra],
            check=True,
        )
    metadata = json.loads((configs / "metadata.json").read_text())
    metadata["weights_sha256"] = {f"models/{p.name}": sha256(p) for p in sorted(models.iterdir()) if p.suffix in {".pt", ".ts"}}
    write_json_atomic(configs / "metadata.json", metadata)
    for name, digest in metadata["weights_sha256"].items():
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main()
