"""The MONAI bundle: metadata schema, network I/O, TorchScript export and real two-iteration training runs."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import BUNDLE, DATA, KAGGLE, ROOT, SAMPLE_PATIENTS

CONFIGS = BUNDLE / "configs"
META = str(CONFIGS / "metadata.json")
INFERENCE = str(CONFIGS / "inference.json")
CLASSIFIER_IO = [
    "--_meta_#network_data_format#inputs#image#spatial_shape", "[128,128]",
    "--_meta_#network_data_format#outputs#pred#num_channels", "2",
]


def bundle_cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_verify_metadata_against_the_official_schema():
    out = bundle_cli("verify_metadata", "--meta_file", META, "--filepath", DATA / "meta_schema_20240725.json")
    assert "metadata is verified with no error" in out.stdout + out.stderr
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert {"network_data_format", "classifier_data_format"} <= meta.keys()


def test_verify_net_in_out_segmenter():
    out = bundle_cli("verify_net_in_out", "network_def", "--meta_file", META, "--config_file", INFERENCE)
    assert "verified with no error" in out.stdout + out.stderr


def test_verify_net_in_out_classifier():
    out = bundle_cli("verify_net_in_out", "classifier_def", "--meta_file", META, "--config_file", INFERENCE, *CLASSIFIER_IO)
    assert "verified with no error" in out.stdout + out.stderr


@pytest.mark.parametrize(
    "net_id, weights, size, extra",
    [
        ("network_def", "model.pt", 256, []),
        ("classifier_def", "model_classifier.pt", 128, ["--input_shape", "[1,3,128,128]", "--use_trace", "True"]),
    ],
)
def test_ckpt_export_to_torchscript_matches_the_weights(tmp_path, net_id, weights, size, extra):
    target = tmp_path / "net.ts"
    bundle_cli("ckpt_export", net_id, "--filepath", target, "--ckpt_file", BUNDLE / "models" / weights,
               "--meta_file", META, "--config_file", INFERENCE, *extra)
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(INFERENCE)
    net = parser.get_parsed_content(net_id).eval()
    net.load_state_dict(torch.load(BUNDLE / "models" / weights, weights_only=True))
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = net(x)
        assert torch.allclose(torch.jit.load(str(target))(x), expected, atol=1e-4)
        shipped = BUNDLE / "models" / weights.replace(".pt", ".ts")
        assert torch.allclose(torch.jit.load(str(shipped))(x), expected, atol=1e-4)


@pytest.mark.parametrize("config, weights", [("train_segmenter.json", "model.pt"), ("train_classifier.json", "model_classifier.pt")])
def test_two_iteration_training_run_writes_a_safe_checkpoint(tmp_path, config, weights):
    patients = tmp_path / "patients.txt"
    patients.write_text("\n".join(SAMPLE_PATIENTS) + "\n")
    bundle_cli(
        "run", "--config_file", CONFIGS / config, "--meta_file", META, "--logging_file", CONFIGS / "logging.conf",
        "--bundle_root", BUNDLE, "--dataset_dir", KAGGLE, "--patients_file", patients, "--n_folds", "4",
        "--epochs", "1", "--epoch_length", "2", "--val_interval", "1", "--output_dir", tmp_path / "run",
    )
    saved = tmp_path / "run" / "models" / weights
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and len(state) > 10
    final = torch.load(tmp_path / "run" / "models" / "checkpoint_final.pt", weights_only=True)
    assert {"network", "optimizer", "lr_scheduler"} <= final.keys()
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_bundle_inference_run_writes_what_detect_writes(tmp_path):
    """``monai.bundle run`` with inference.json and its documented overrides, on a Kaggle-layout folder:
    one case folder per case, the same mask as ``tumorseg detect``, and no silent overwrite."""
    dataset = tmp_path / "cases"
    dataset.mkdir()
    case = "TCGA_HT_7680_19970202"
    (dataset / case).symlink_to(KAGGLE / case, target_is_directory=True)
    out = tmp_path / "bundle_out"
    args = ["run", "--config_file", INFERENCE, "--bundle_root", BUNDLE, "--dataset_dir", dataset, "--output_dir", out]
    result = bundle_cli(*args)
    assert f"{case}: tumour on" in result.stdout
    cli = subprocess.run([sys.executable, "-m", "monai_core", "detect", KAGGLE / case, "-o", tmp_path / "cli", "--progress", "none"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-2000:]
    import nibabel as nib
    import numpy as np

    bundle_mask = np.asanyarray(nib.load(out / case / "segmentation.nii.gz").dataobj)
    cli_mask = np.asanyarray(nib.load(tmp_path / "cli" / case / "segmentation.nii.gz").dataobj)
    assert bundle_mask.shape == (256, 256, 21) and bundle_mask.sum() > 0 and np.array_equal(bundle_mask, cli_mask)
    report = out / case / "report.json"
    before = report.read_bytes()
    again = subprocess.run([sys.executable, "-m", "monai.bundle", *map(str, args)], cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "exists" in again.stderr and report.read_bytes() == before
