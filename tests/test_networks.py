"""The two networks: output shapes, and gradients that reach the first layer."""

import pytest
import torch
from monai.networks.nets import DenseNet121

from monai_core.networks import ResUNet


def test_resunet_output_shape_and_levels():
    net = ResUNet(in_channels=3, out_channels=2, channels=(4, 8, 16, 32, 64))
    out = net(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, 2, 64, 48)
    assert len(net.down) == 4 and len(net.up) == 4
    assert [b.body[0].out_channels for b in net.down] == [4, 8, 16, 32]
    assert net.bridge.body[0].out_channels == 64


def test_resunet_gradients_reach_first_layer():
    net = ResUNet(channels=(4, 8, 16, 32, 64))
    net(torch.rand(2, 3, 32, 32)).mean().backward()
    first = net.down[0].body[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert net.down[0].shortcut[0].weight.grad.abs().sum() > 0


def test_resunet_rejects_wrong_number_of_levels():
    with pytest.raises(ValueError, match="five values"):
        ResUNet(channels=(8, 16, 32))


def test_resunet_torchscript_matches_eager():
    net = ResUNet(channels=(4, 8, 16, 32, 64)).eval()
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-5)


def test_densenet121_classifier_shape_and_gradients():
    net = DenseNet121(spatial_dims=2, in_channels=3, out_channels=2)
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 2)
    out.sum().backward()
    assert net.features.conv0.weight.grad.abs().sum() > 0


def test_the_inference_densenet121_is_monais_to_the_bit():
    """monai_core.networks.TorchDenseNet121 (inference, no MONAI import) loads the state dict MONAI's DenseNet121
    trains, module for module, and gives the same logits in float32 and under bfloat16 autocast."""
    from monai_core.networks import TorchDenseNet121

    torch.manual_seed(0)
    monai_net = DenseNet121(spatial_dims=2, in_channels=3, out_channels=2).eval()
    for module in monai_net.modules():  # running statistics that are not 0 and 1, as trained ones are not
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = TorchDenseNet121(spatial_dims=2, in_channels=3, out_channels=2).eval()
    ours.load_state_dict(monai_net.state_dict())
    assert [name for name, _ in ours.named_modules()] == [name for name, _ in monai_net.named_modules()]
    x = torch.rand(3, 3, 128, 128)
    with torch.inference_mode():
        assert torch.equal(ours(x), monai_net(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(ours(x), monai_net(x))


def test_the_bundle_configs_densenet121_is_still_monais():
    """A bare "DenseNet121" target in the bundle's configs means MONAI's network even with monai_core's
    networks imported: MONAI's config parser searches every loaded module named monai*."""
    import monai.networks.nets
    from monai.bundle import ConfigParser

    import monai_core.pipeline  # noqa: F401  (loads monai_core.networks)

    parser = ConfigParser({"net": {"_target_": "DenseNet121", "spatial_dims": 2, "in_channels": 3, "out_channels": 2}})
    assert type(parser.get_parsed_content("net")) is monai.networks.nets.DenseNet121
