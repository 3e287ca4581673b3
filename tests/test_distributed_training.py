"""Distributed training with ``bundle/configs/multi_gpu_train.json`` merged over either training config.

The override must keep the tumour-weighted sampling of the single-process configs (each rank
draws from its own shard with the same weights) and must work on the CPU with the gloo backend,
which is how it is tested here: ``torchrun --nproc_per_node=2`` on the four sample patients.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from monai.bundle import ConfigParser
from monai.data import DistributedWeightedRandomSampler

from conftest import BUNDLE, KAGGLE, ROOT, SAMPLE_PATIENTS

CONFIGS = {"segmenter": ("train_segmenter.json", "model.pt"), "classifier": ("train_classifier.json", "model_classifier.pt")}


def overrides(tmp_path: Path, output_dir: Path) -> dict:
    patients = tmp_path / "patients.txt"
    patients.write_text("\n".join(SAMPLE_PATIENTS) + "\n")
    return {
        "bundle_root": str(BUNDLE),
        "dataset_dir": str(KAGGLE),
        "patients_file": str(patients),
        "n_folds": 4,
        "epochs": 1,
        "epoch_length": 2,
        "val_interval": 1,
        "output_dir": str(output_dir),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_override_keeps_tumour_weighted_sampling(name, tmp_path):
    """In a one-process gloo group: DDP network, per-rank sample count, and the configured tumour fraction."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / CONFIGS[name][0]), str(BUNDLE / "configs" / "multi_gpu_train.json")])
    parser.update({**overrides(tmp_path, tmp_path / "run"), "dist_backend": "gloo"})
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        network = parser.get_parsed_content("network")
        sampler = parser.get_parsed_content("train#dataloader").sampler
        items = parser.get_parsed_content("split")[0]
    finally:
        dist.destroy_process_group()
    assert isinstance(network, torch.nn.parallel.DistributedDataParallel)
    assert isinstance(sampler, DistributedWeightedRandomSampler)
    assert len(sampler) == parser["epoch_length"] * parser["train"]["batch_size"]  # per rank, as one process draws

    tumour = {i for i, item in enumerate(items) if item["tumor"]}
    configured = parser["tumour_fraction"] if name == "segmenter" else 0.5  # train_classifier.json weighs with 0.5
    assert abs(len(tumour) / len(items) - configured) > 0.1  # so that weighted and plain sampling differ
    torch.manual_seed(0)
    drawn = [i for _ in range(100) for i in sampler]
    assert abs(sum(i in tumour for i in drawn) / len(drawn) - configured) < 0.05


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torchrun_two_processes_on_cpu(name, tmp_path):
    config, model_file = CONFIGS[name]
    output_dir = tmp_path / "run"
    args = overrides(tmp_path, output_dir)
    command = [
        str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node=2", "--master_port", str(free_port()),
        "-m", "monai.bundle", "run",
        "--config_file", f"['bundle/configs/{config}','bundle/configs/multi_gpu_train.json']",
        "--dist_backend", "gloo",
    ]
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    state = torch.load(output_dir / "models" / model_file, weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / config))
    parser["bundle_root"] = str(BUNDLE)
    parser.get_parsed_content("network_def").load_state_dict(state)  # strict: no "module." from DDP
    final = torch.load(output_dir / "models" / "checkpoint_final.pt", weights_only=True)
    assert set(final) == {"network", "optimizer", "lr_scheduler"}
    assert not any(key.startswith("module.") for key in final["network"])
    assert (output_dir / "metrics.csv").is_file()
