"""Weights are loaded with ``torch.load(weights_only=True)`` and checked against metadata.json.

A tampered bundle file is refused with a clear message, a pickle payload is never executed (not
even when its checksum is recorded, nor when the user names it as their own weights), and the
user's explicit own weights are loaded without a checksum. Inference never loads the TorchScript
exports, which carry code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import BUNDLE
from monai_core.cli import main
from monai_core.errors import InputError
from monai_core.pipeline import TumorSegPipeline
from monai_core.weights import load_state_dict, sha256


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    """A private copy of the shipped bundle that a test may damage."""
    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLE, copy, ignore=shutil.ignore_patterns("*.ts", "eval", "runs"))
    return copy


class _Payload:
    """Unpickling this object creates ``marker``: proof that pickle code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_bomb(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    return path


def test_a_tampered_weights_file_is_refused(bundle_copy, tmp_path, capsys):
    weights = bundle_copy / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum mismatch.*refusing to run"):
        TumorSegPipeline(bundle_copy)

    out = tmp_path / "out"
    case = Path(__file__).parent / "data" / "kaggle_3m" / "TCGA_HT_7680_19970202"
    assert main(["detect", str(case), "-o", str(out), "--bundle", str(bundle_copy), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(weights) in err and "checksum mismatch" in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["models/model.pt", "models/model_classifier.pt"])
def test_weights_without_a_recorded_checksum_are_refused(bundle_copy, name):
    metadata = bundle_copy / "configs" / "metadata.json"
    content = json.loads(metadata.read_text())
    del content["weights_sha256"][name]
    metadata.write_text(json.dumps(content))
    with pytest.raises(InputError, match="no sha256 recorded"):
        TumorSegPipeline(bundle_copy)


def test_a_tampered_classifier_is_refused_and_no_torchscript_is_loaded(bundle_copy, monkeypatch):
    weights = bundle_copy / "models" / "model_classifier.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("inference loaded a TorchScript file"))
    with pytest.raises(InputError, match="checksum mismatch.*refusing to run"):
        TumorSegPipeline(bundle_copy)
    (bundle_copy / "models" / "model_classifier.pt").write_bytes((BUNDLE / "models" / "model_classifier.pt").read_bytes())
    TumorSegPipeline(bundle_copy)  # the intact bundle loads, still without torch.jit.load


def test_a_pickle_payload_is_never_executed(bundle_copy, tmp_path):
    marker = tmp_path / "pwned"
    bomb = _pickle_bomb(tmp_path / "evil.pt", marker)
    # 1. as the user's own weights (no checksum): weights_only refuses to unpickle it
    with pytest.raises(InputError, match="cannot load weights safely"):
        load_state_dict(bomb, None)
    with pytest.raises(InputError, match="cannot load weights safely"):
        TumorSegPipeline(BUNDLE, segmenter_weights=bomb)
    # 2. inside the bundle with its checksum recorded, as an attacker who controls both would do
    shutil.copyfile(bomb, bundle_copy / "models" / "model.pt")
    metadata = bundle_copy / "configs" / "metadata.json"
    content = json.loads(metadata.read_text())
    content["weights_sha256"]["models/model.pt"] = sha256(bomb)
    metadata.write_text(json.dumps(content))
    with pytest.raises(InputError, match="cannot load weights safely"):
        TumorSegPipeline(bundle_copy)
    assert not marker.exists(), "the pickle payload ran"
    # the payload is real: an unsafe load would have run it
    torch.load(bomb, weights_only=False)
    assert marker.exists()


def test_the_users_own_weights_are_allowed(tmp_path):
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.001  # fine-tuned: a different file, no recorded checksum
    own = tmp_path / "my weights.pt"
    torch.save(state, own)
    assert sha256(own) != json.loads((BUNDLE / "configs" / "metadata.json").read_text())["weights_sha256"]["models/model.pt"]
    pipeline = TumorSegPipeline(BUNDLE, segmenter_weights=own)
    assert pipeline.identity["sha256"]["models/model.pt"] == sha256(own)
    loaded = pipeline.segmenter.state_dict()[name]
    assert torch.allclose(loaded, state[name])


def test_the_users_own_classifier_weights_go_into_the_shipped_architecture(tmp_path):
    state = torch.load(BUNDLE / "models" / "model_classifier.pt", map_location="cpu", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.001
    own = tmp_path / "classifier.pt"
    torch.save(state, own)
    pipeline = TumorSegPipeline(BUNDLE, classifier_weights=own)
    assert pipeline.identity["sha256"]["models/model_classifier.pt"] == sha256(own)
    assert torch.allclose(pipeline.classifier.state_dict()[name], state[name])


def test_the_users_weights_for_another_network_are_refused_in_one_line(tmp_path):
    """The segmenter's state dict given as the classifier's (or the reverse) names the file, with no key dump."""
    with pytest.raises(InputError, match="do not fit the bundle's DenseNet121") as refused:
        TumorSegPipeline(BUNDLE, classifier_weights=BUNDLE / "models" / "model.pt")
    assert "model.pt" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(InputError, match="do not fit the bundle's ResUNet"):
        TumorSegPipeline(BUNDLE, segmenter_weights=BUNDLE / "models" / "model_classifier.pt")
