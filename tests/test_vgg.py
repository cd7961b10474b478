"""Tests of nstlab.vgg: named layers, one truncated pass, frozen, faithful taps, normalisation, pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf
from torch import nn

from nstlab.vgg import IMAGENET_MEAN, IMAGENET_STD, LAYER_NAMES, VGGFeatures, check_layers
from nstlab.weights import WeightsUnavailable, untrained_backbone


@pytest.fixture(scope="module")
def vgg19():
    return untrained_backbone("vgg19", seed=0)


@pytest.fixture(scope="module")
def vgg16():
    return untrained_backbone("vgg16", seed=0)


def images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def reference_activations(backbone, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer of torchvision's features, run module by module on a normalised copy, nothing in place."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    h, out = (x - mean) / std, {}
    for name, module in zip(LAYER_NAMES[backbone.arch], backbone.features, strict=True):
        h = torch.relu(h) if isinstance(module, nn.ReLU) else module(h)
        out[name] = h
    return out


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_layer_names_follow_the_modules_of_torchvision_features(arch, request):
    backbone = request.getfixturevalue(arch)
    names = LAYER_NAMES[arch]
    assert len(names) == len(backbone.features) == {"vgg16": 31, "vgg19": 37}[arch]
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, module in zip(names, backbone.features, strict=True):
        assert isinstance(module, kinds[name[:4]]), (name, module)
    assert names[-1] == "pool5" and ("conv5_4" in names) == (arch == "vgg19")


def test_features_match_a_module_by_module_reference_pass(vgg19):
    layers = ["conv1_1", "relu1_1", "relu2_1", "pool2", "relu3_1", "conv4_2", "relu4_2"]
    x = images()
    got = VGGFeatures(layers, backbone=vgg19)(x)
    ref = reference_activations(vgg19, x)
    assert list(got) == layers
    for name in layers:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-5)


def test_output_follows_the_requested_order(vgg16):
    out = VGGFeatures(["relu3_1", "relu1_2", "relu2_2"], backbone=vgg16)(images(1))
    assert list(out) == ["relu3_1", "relu1_2", "relu2_2"]
    assert [tuple(f.shape) for f in out.values()] == [(1, 256, 8, 8), (1, 64, 32, 32), (1, 128, 16, 16)]


def test_the_network_stops_after_the_deepest_requested_layer_and_runs_each_module_once(vgg19):
    extractor = VGGFeatures(["relu2_1", "relu1_1"], backbone=vgg19)
    assert len(extractor.features) == LAYER_NAMES["vgg19"].index("relu2_1") + 1
    calls = []
    for module in extractor.features:
        module.register_forward_hook(lambda m, i, o: calls.append(m))
    extractor(images(1))
    assert len(calls) == len(extractor.features)


def test_the_extractor_is_frozen_but_passes_gradients_to_the_image(vgg19):
    extractor = VGGFeatures(["relu2_1"], backbone=vgg19)
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not extractor.training and not any(m.training for m in extractor.modules())
    x = images(1).requires_grad_()
    extractor(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in extractor.parameters())


def test_a_tapped_convolution_is_not_overwritten_by_an_in_place_relu(vgg19):
    out = VGGFeatures(["conv1_1", "relu1_1", "conv2_1"], backbone=vgg19)(images(1))
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp(min=0))
    assert (out["conv2_1"] < 0).any()


def test_average_pooling_replaces_every_max_pooling(vgg19):
    extractor = VGGFeatures(["relu1_2", "pool1", "relu5_1"], backbone=vgg19, pool="avg")
    assert not any(isinstance(m, nn.MaxPool2d) for m in extractor.features)
    assert sum(isinstance(m, nn.AvgPool2d) for m in extractor.features) == 4
    out = extractor(images(1))
    torch.testing.assert_close(out["pool1"], nnf.avg_pool2d(out["relu1_2"], 2))
    max_out = VGGFeatures(["relu1_2", "pool1"], backbone=vgg19)(images(1))
    torch.testing.assert_close(max_out["pool1"], nnf.max_pool2d(max_out["relu1_2"], 2))


def test_the_extractor_normalises_images_in_0_1_itself(vgg19):
    """Feeding x must equal running the raw first convolution on (x - mean) / std."""
    x = images(1)
    got = VGGFeatures(["conv1_1"], backbone=vgg19)(x)["conv1_1"]
    conv = vgg19.features[0]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(got, conv((x - mean) / std), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, conv(x), atol=1e-3)


def test_the_extractor_leaves_the_image_and_the_backbone_untouched(vgg19):
    x = images(1)
    x0 = x.clone()
    weight0 = vgg19.features[0].weight.clone()
    extractor = VGGFeatures(["conv1_1", "relu1_1", "relu1_2"], backbone=vgg19, pool="avg")
    extractor(x)
    assert torch.equal(x, x0) and torch.equal(vgg19.features[0].weight, weight0)
    assert vgg19.features[1].inplace and isinstance(vgg19.features[4], nn.MaxPool2d)
    assert extractor.features[0].weight.data_ptr() != vgg19.features[0].weight.data_ptr()


def test_the_extractor_reports_whether_its_weights_are_pretrained(vgg16):
    extractor = VGGFeatures(["relu1_1"], backbone=vgg16)
    assert extractor.arch == "vgg16" and extractor.pretrained is False
    assert extractor.note.startswith("UNTRAINED VGG16") and extractor.layers == ("relu1_1",)
    assert "pretrained=False" in repr(extractor)


def test_the_untrained_fallback_is_used_only_when_asked_and_then_marked(tmp_path, monkeypatch):
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="vgg16-397923af.pth"):
        VGGFeatures(["relu1_1"], arch="vgg16")
    extractor = VGGFeatures(["relu1_1"], arch="vgg16", fallback="untrained")
    assert extractor.pretrained is False and "UNTRAINED" in extractor.note


def test_unknown_layer_names_are_rejected_with_the_valid_names(vgg19):
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) 'conv4_5', 'fc7' for vgg19; valid .*relu5_4"):
        VGGFeatures(["relu1_1", "conv4_5", "fc7"], backbone=vgg19)
    with pytest.raises(ValueError, match="'conv5_4' for vgg16"):
        check_layers(["conv5_4"], arch="vgg16")
    with pytest.raises(ValueError, match="layers is empty"):
        check_layers([])
    with pytest.raises(TypeError, match=r"write \['relu1_1'\]"):
        check_layers("relu1_1")
    with pytest.raises(TypeError, match="must be strings"):
        check_layers([3])


def test_bad_options_are_rejected_before_any_weights_are_loaded(monkeypatch):
    monkeypatch.setattr("nstlab.vgg.load_backbone", lambda *a, **k: pytest.fail("tried to load weights"))
    with pytest.raises(ValueError, match="pool must be one of 'max', 'avg'"):
        VGGFeatures(["relu1_1"], pool="mean")
    with pytest.raises(ValueError, match="unknown architecture 'vgg11'"):
        VGGFeatures(["relu1_1"], arch="vgg11")
    with pytest.raises(ValueError, match="unknown layer name"):
        VGGFeatures(["relu9_1"])


def test_bad_images_are_rejected_with_their_shape_and_a_fix(vgg19):
    extractor = VGGFeatures(["relu4_1"], backbone=vgg19)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(3, 32, 32\).*x\[None\]"):
        extractor(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(1, 4, 32, 32\)"):
        extractor(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="too small to reach relu4_1, which needs at least 8 pixels"):
        extractor(torch.rand(1, 3, 7, 32))
    assert extractor(torch.rand(1, 3, 8, 8))["relu4_1"].shape == (1, 512, 1, 1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_extractor_computes_on_the_gpu_like_on_the_cpu(vgg19):
    from nstlab.checks import no_tf32

    extractor = VGGFeatures(["relu1_1", "relu3_1"], backbone=vgg19)
    x = images(1)
    cpu = extractor(x)
    with no_tf32():
        gpu = extractor.to("cuda")(x.cuda())
    for name in cpu:
        assert gpu[name].device.type == "cuda"
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=1e-4, atol=1e-4)


def test_images_on_another_device_than_the_extractor_get_a_clear_error(vgg19):
    extractor = VGGFeatures(["relu1_1"], backbone=vgg19)
    x = images(1).to("meta")
    with pytest.raises(ValueError, match=r"extractor.to\('meta'\)"):
        extractor(x)
