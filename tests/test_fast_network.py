"""Tests of the transform network of nstlab.fast: instance normalisation against torch's, shapes at any size,
outputs in [0, 1], the parameter counts of the small and the paper's network, and no transposed convolution.
Networks are tiny or run on 16-40 px images, so the file takes seconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nstlab.fast import PAPER, SMALL, ResidualBlock, TransformNet, UpsampleConv, count_parameters, instance_norm

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_instance_norm_matches_torch_in_float64():
    """instance_norm by hand equals nn.InstanceNorm2d(affine=True) and F.instance_norm, with and without affine."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, 6, generator=g, dtype=torch.float64) * 4 + 2
    module = nn.InstanceNorm2d(5, affine=True).double()
    with torch.no_grad():
        module.weight.copy_(torch.randn(5, generator=g, dtype=torch.float64))
        module.bias.copy_(torch.randn(5, generator=g, dtype=torch.float64))
    torch.testing.assert_close(instance_norm(x, module.weight, module.bias), module(x))
    torch.testing.assert_close(instance_norm(x), F.instance_norm(x))


def test_instance_norm_normalises_each_image_on_its_own():
    """Each (image, channel) gets mean 0 and variance 1; another image in the batch changes nothing."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    y = instance_norm(x, eps=0.0)
    torch.testing.assert_close(y.mean(dim=(2, 3)), torch.zeros(2, 3, dtype=torch.float64))
    torch.testing.assert_close(y.var(dim=(2, 3), unbiased=False), torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(instance_norm(x[:1], eps=0.0), y[:1])
    x_copy = x.clone()
    instance_norm(x)
    assert torch.equal(x, x_copy)  # the input is not modified


def test_instance_norm_rejects_wrong_shapes_with_the_shape_it_got():
    with pytest.raises(ValueError, match=r"got \(3, 8, 8\).*x\[None\]"):
        instance_norm(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        instance_norm(torch.rand(1, 3, 8, 8), torch.ones(4))


def test_residual_block_is_the_identity_plus_a_learned_change():
    """With the second normalisation's scale and shift at zero, the block returns its input exactly."""
    block = ResidualBlock(4)
    with torch.no_grad():
        block.in2.weight.zero_()
        block.in2.bias.zero_()
    x = torch.rand(2, 4, 9, 9)
    assert torch.equal(block(x), x)


def test_upsample_conv_doubles_the_size_and_is_not_a_transposed_convolution():
    up = UpsampleConv(6, 3, kernel_size=3, scale=2)
    assert up(torch.rand(1, 6, 5, 7)).shape == (1, 3, 10, 14)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in up.modules())


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (32, 40), (8, 9)])
def test_output_has_the_input_size_and_lies_in_0_1(size):
    """Any H, W (multiples of 4 or not) give an output of the same size, strictly inside (0, 1)."""
    net = TransformNet(width=4, blocks=1)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1


def test_outputs_are_in_0_1_even_for_extreme_weights():
    """The sigmoid bounds the output whatever the weights: scale every parameter up a thousand times."""
    net = TransformNet(width=4, blocks=1)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1000)
        y = net(torch.rand(1, 3, 16, 16))
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_parameter_counts_of_the_small_and_the_paper_network():
    """The paper's size (w=32, 5 blocks) has about 1.7 M parameters, SMALL (w=16, 3 blocks) about 0.3 M."""
    paper, small = count_parameters(TransformNet(**PAPER)), count_parameters(TransformNet(**SMALL))
    assert 1.6e6 < paper < 1.75e6
    assert 0.25e6 < small < 0.32e6
    # By hand for SMALL: each residual block has two 3x3 convolutions of 64 -> 64 channels with bias, and two
    # instance normalisations with 64 scales and shifts.
    per_block = 2 * (64 * 64 * 9 + 64) + 2 * 2 * 64
    assert count_parameters(TransformNet(width=16, blocks=4)) - small == per_block


def test_no_transposed_convolution_and_every_padding_reflects():
    net = TransformNet(**SMALL)
    kinds = {type(m) for m in net.modules()}
    assert nn.ConvTranspose2d not in kinds and nn.ZeroPad2d not in kinds
    assert all(m.padding == (0, 0) for m in net.modules() if isinstance(m, nn.Conv2d))  # padding by reflection
    assert sum(isinstance(m, nn.InstanceNorm2d) and m.affine for m in net.modules()) == 5 + 2 * SMALL["blocks"]


def test_settings_rebuild_the_same_architecture():
    net = TransformNet(width=6, blocks=2)
    assert net.settings == {"width": 6, "blocks": 2}
    again = TransformNet(**net.settings)
    again.load_state_dict(net.state_dict())  # same parameter names and shapes
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))


def test_images_of_one_batch_do_not_influence_each_other():
    """Instance (not batch) normalisation: an image's output is the same alone or in a batch."""
    net = TransformNet(width=4, blocks=1)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(net(x)[1:2], net(x[1:2]))


@pytest.mark.parametrize("bad", [dict(width=0), dict(blocks=-1), dict(width=2.5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="width=32, blocks=5"):
        TransformNet(**bad)


def test_wrong_input_shapes_name_the_shape():
    net = TransformNet(width=4, blocks=1)
    with pytest.raises(ValueError, match=r"got \(3, 16, 16\)"):
        net(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match=r"got \(1, 4, 16, 16\)"):
        net(torch.rand(1, 4, 16, 16))
