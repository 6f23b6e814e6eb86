"""BatchNorm folded into convolutions for inference: same outputs, original left alone."""

from __future__ import annotations

import torch
from torch import nn

from czii_cli.predict_probs.fusion import fold_batchnorm, foldable_pairs
from czii_cli.predict_probs.runner import NetworkRunner
from czii_cli.training.registry import build_network

torch.set_num_threads(1)


def trained_like_light_net() -> nn.Module:
    """A light net whose BatchNorms hold statistics and affine terms far from the identity."""
    torch.manual_seed(0)
    network = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8], "stem_stride": 2})
    generator = torch.Generator().manual_seed(1)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm3d):
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) * 2 + 0.25)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)
    return network.eval()


def test_the_light_net_folds_every_convolution_batchnorm_pair_to_the_same_outputs():
    network = trained_like_light_net()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    # stem 1 pair, two encoder levels of 2, one decoder level of 2; the input BatchNorm
    # follows no convolution and stays
    assert foldable_pairs(network) == 7
    folded = fold_batchnorm(network)
    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected, got = network(x), folded(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert foldable_pairs(folded) == 0
    assert sum(isinstance(m, nn.BatchNorm3d) for m in folded.modules()) == 1
    assert sum(isinstance(m, nn.BatchNorm3d) for m in network.modules()) == 8
    after = network.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_network_without_pairs_is_returned_itself_in_eval_mode():
    network = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.BatchNorm3d(2))
    network.train()
    assert fold_batchnorm(network) is network
    assert not network.training


def test_a_batchnorm_without_running_statistics_is_not_folded():
    network = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2, track_running_stats=False))
    assert foldable_pairs(network) == 0
    assert fold_batchnorm(network) is network


def test_the_runner_runs_the_folded_copy_and_gives_back_the_network_as_it_was():
    network = trained_like_light_net()
    network.train()
    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = network.eval()(x)
    network.train()
    calls = []
    for module in network.encoders.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.register_forward_hook(lambda *args: calls.append(1))
    with torch.inference_mode(), NetworkRunner(network, device=torch.device("cpu"), precision="float32") as runner:
        outputs = [runner(x) for _ in range(5)]  # the layout trials, then the chosen layout
    assert calls == []  # the network's own BatchNorms never ran
    assert all(torch.allclose(out, expected, atol=1e-5, rtol=1e-5) for out in outputs)
    assert network.training
    assert sum(isinstance(m, nn.BatchNorm3d) for m in network.modules()) == 8
    assert all(p.is_contiguous() for p in network.parameters())
