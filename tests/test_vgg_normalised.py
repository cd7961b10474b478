"""Tests of the normalised VGG (nstlab.vgg.normalise_backbone and its pieces) and of how it is switched on.

The property Gatys et al. rely on: after rescaling, every filter's mean activation over the images is 1, and
every layer is the original one divided by those means channel by channel (so the network's answer is
unchanged). The weights are an untrained VGG19 presented as pretrained, which exercises the paper's
per-filter rule without the 550 MB file; the property does not depend on what the weights learned.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as nnf
from torch import nn

from nstlab import vgg
from nstlab.style_config import PRESETS, StyleConfig
from nstlab.vgg import LAYER_NAMES, VGGFeatures, activation_means, normalise_backbone, rescale_features
from nstlab.weights import Backbone, untrained_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

ALL = LAYER_NAMES["vgg19"]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A private weights folder for the module's cached means (the user's cache stays untouched)."""
    folder, before = tmp_path_factory.mktemp("weights"), os.environ.get("NSTLAB_WEIGHTS_DIR")
    os.environ["NSTLAB_WEIGHTS_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["NSTLAB_WEIGHTS_DIR"]
    else:
        os.environ["NSTLAB_WEIGHTS_DIR"] = before


@pytest.fixture(scope="module")
def as_pretrained():
    raw = untrained_backbone("vgg19", seed=0)
    return Backbone(raw.features, "vgg19", True, "pretrained VGG19 (stand-in for the test)")


@pytest.fixture(scope="module")
def normalised(as_pretrained, weights_dir):
    # Means kept in memory by earlier tests of these same weights (seed 0) would skip the file written here.
    vgg._MEANS.clear()
    return normalise_backbone(as_pretrained)


def images(n: int = 2, size: int = 40, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, size, size + 8, generator=g) for _ in range(n)]


def test_after_normalisation_every_filter_has_mean_activation_one_on_the_images_used(as_pretrained):
    """Gatys et al.'s definition, on any images: rescale with their means, measure again, get 1 per filter."""
    x = images()
    means = activation_means(as_pretrained.features, x)
    assert [tuple(m.shape) for m in means] == [(w,) for block in vgg.BLOCK_WIDTHS["vgg19"] for w in block]
    after = activation_means(rescale_features(as_pretrained.features, means), x)
    for m, a in zip(means, after, strict=True):
        alive = m > 0
        torch.testing.assert_close(a[alive], torch.ones_like(a[alive]), rtol=2e-3, atol=2e-3)
        torch.testing.assert_close(a[~alive], m[~alive])  # a filter that never fires is left as it was


def test_the_normalised_network_is_the_original_divided_by_the_means_channel_by_channel(as_pretrained, normalised):
    """Every conv, relu and pool output (pool5 included: the chain's final output) equals the original one
    divided by its layer's means, for max and average pooling: the rescaling changes sizes, not the answer."""
    means = iter(vgg.normalisation_means(as_pretrained))
    scale, scales = None, {}
    for name in ALL:
        if name.startswith("conv"):
            m = next(means)
            scale = torch.where(m > 0, m, torch.ones_like(m)).view(1, -1, 1, 1)
        scales[name] = scale
    x = images(1, size=48)[0]
    for pool in ("max", "avg"):
        raw = VGGFeatures(ALL, backbone=as_pretrained, pool=pool)(x)
        got = VGGFeatures(ALL, backbone=normalised, pool=pool)(x)
        for name in ALL:
            torch.testing.assert_close(got[name] * scales[name], raw[name], rtol=1e-3, atol=1e-5,
                                       msg=lambda m, name=name, pool=pool: f"{name} ({pool} pooling): {m}")


def test_normalisation_means_are_the_mean_activations_on_the_built_in_images_and_are_cached(as_pretrained, normalised,
                                                                                           weights_dir):
    from nstlab.data import builtin_image

    files = list(weights_dir.glob("vgg19-activation-means-*.pt"))
    assert len(files) == 1, files  # written beside the weights by the fixture's normalisation
    photos = [builtin_image(name, size=vgg.NORMALISATION_SIZE) for name in vgg.NORMALISATION_IMAGES[:2]]
    fresh = vgg.normalisation_means(as_pretrained, cache=False)
    cached = torch.load(files[0], weights_only=True)["means"]
    for a, b in zip(fresh, cached, strict=True):
        torch.testing.assert_close(a, b)
    # the two first images' means, against the eight-image average they are part of
    two = activation_means(as_pretrained.features, photos)
    assert not torch.allclose(two[0], fresh[0])
    # with only the normalised network's scale, the built-in images' filters average 1
    after = activation_means(normalised.features, [builtin_image(n, size=vgg.NORMALISATION_SIZE)
                                                   for n in vgg.NORMALISATION_IMAGES])
    alive = fresh[5] > 0
    torch.testing.assert_close(after[5][alive], torch.ones_like(after[5][alive]), rtol=2e-3, atol=2e-3)


def test_the_cache_belongs_to_its_weights_and_a_damaged_file_is_recomputed(as_pretrained, normalised, weights_dir):
    other = untrained_backbone("vgg19", seed=1)
    assert vgg._fingerprint(other.features) != vgg._fingerprint(as_pretrained.features)
    (path,) = weights_dir.glob("vgg19-activation-means-*.pt")
    expected = torch.load(path, weights_only=True)["means"]
    path.write_bytes(b"not a torch file")
    vgg._MEANS.clear()  # forget this process's copy, so that the file is read
    means = vgg.normalisation_means(as_pretrained)
    for a, b in zip(means, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.load(path, weights_only=True)["means"][0].shape == (64,)  # rewritten


def test_normalising_leaves_the_backbone_untouched_says_so_and_is_done_once(as_pretrained, normalised):
    w0 = as_pretrained.features[0].weight.clone()
    assert not as_pretrained.normalised and normalised.normalised
    assert torch.equal(as_pretrained.features[0].weight, w0)
    assert not torch.equal(normalised.features[0].weight, w0)
    assert normalised.note.startswith(as_pretrained.note) and "per filter" in normalised.note
    assert normalise_backbone(normalised) is normalised
    extractor = VGGFeatures(["relu1_1"], backbone=as_pretrained, normalised=True)
    assert extractor.normalised and "normalised=True" in repr(extractor)
    torch.testing.assert_close(extractor.features[0].weight, normalised.features[0].weight)
    assert VGGFeatures(["relu1_1"], backbone=normalised).normalised  # a normalised backbone stays so


def test_the_untrained_stand_in_is_normalised_per_layer(weights_dir):
    """One factor per layer: the mean over each layer's filters is 1, and the filters keep their ratios."""
    raw = untrained_backbone("vgg19", seed=0)
    stand_in = untrained_backbone("vgg19", seed=0, normalised=True)
    assert stand_in.normalised and not stand_in.pretrained and "per layer" in stand_in.note
    assert stand_in.note.startswith("UNTRAINED VGG19")
    x = images()
    before, after = activation_means(raw.features, x), activation_means(stand_in.features, x)
    layer_means = vgg.normalisation_means(raw)
    for b, a, m in zip(before, after, layer_means, strict=True):
        torch.testing.assert_close(a, b / m.mean(), rtol=1e-4, atol=1e-6)  # the ratios are kept
    # on the images that set it, each layer's mean activation is 1
    from nstlab.data import builtin_image

    photos = [builtin_image(n, size=vgg.NORMALISATION_SIZE) for n in vgg.NORMALISATION_IMAGES]
    for a in activation_means(stand_in.features, photos):
        assert a.mean().item() == pytest.approx(1.0, rel=1e-4)


def test_average_pooling_of_the_normalised_network_changes_the_pooling_layers_only(normalised):
    x = images(1, size=48)[0]
    max_net = VGGFeatures(ALL, backbone=normalised, pool="max")
    avg_net = VGGFeatures(ALL, backbone=normalised, pool="avg")
    kinds = {type(m).__name__ for m in avg_net.features}
    assert kinds == {"Conv2d", "ReLU", "AvgPool2d"}
    for a, b in zip(max_net.features, avg_net.features, strict=True):
        if isinstance(a, nn.Conv2d):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    got, ref = avg_net(x), max_net(x)
    for name in ("conv1_1", "relu1_1", "conv1_2", "relu1_2"):  # before the first pooling: identical
        torch.testing.assert_close(got[name], ref[name])
    previous = None
    for name in ALL:
        if name.startswith("pool"):
            torch.testing.assert_close(got[name], nnf.avg_pool2d(got[previous], 2))
            torch.testing.assert_close(ref[name], nnf.max_pool2d(ref[previous], 2))
        previous = name
    assert not torch.allclose(got["pool1"], ref["pool1"])


def test_bad_normalisation_settings_are_refused_with_the_fix(as_pretrained):
    with pytest.raises(TypeError, match="normalised must be True or False, got 'yes'"):
        VGGFeatures(["relu1_1"], backbone=as_pretrained, normalised="yes")
    with pytest.raises(ValueError, match="normalised='yes'; use True"):
        StyleConfig(normalised="yes")
    with pytest.raises(ValueError, match="per must be one of 'filter', 'layer', got 'channel'"):
        rescale_features(as_pretrained.features, [], per="channel")
    with pytest.raises(ValueError, match="got 2 mean vectors for 16 convolutions"):
        rescale_features(as_pretrained.features, [torch.ones(64), torch.ones(64)])
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\), got \(3, 8, 8\)"):
        activation_means(as_pretrained.features, [torch.rand(3, 8, 8)])


def test_the_paper_preset_uses_the_normalised_network_with_average_pooling():
    assert PRESETS["gatys"].normalised and PRESETS["gatys"].pool == "avg"
    assert not StyleConfig().normalised and not replace(PRESETS["gatys"], normalised=False).normalised


def test_stylize_builds_a_normalised_extractor_when_the_config_asks(weights_dir):
    from nstlab.stylize import stylize

    g = torch.Generator().manual_seed(3)
    photo, painting = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    config = StyleConfig(size=32, steps=1, content_layers=("relu2_1",), style_layers=("relu1_1",), precision="fp32",
                         normalised=True, pool="avg")
    backbone = untrained_backbone("vgg19", seed=0)
    result = stylize(photo, painting, config, backbone=backbone, show_progress=False)
    assert "Normalised: mean activation 1 per layer" in result.note
    plain = stylize(photo, painting, replace(config, normalised=False), backbone=backbone, show_progress=False)
    assert "Normalised" not in plain.note
    assert plain.losses[0].style != pytest.approx(result.losses[0].style, rel=0.1)  # other sizes, other losses


def test_cli_normalised_flags_reach_the_config_and_the_announcing_line(tmp_path, weights_dir, capsys, monkeypatch):
    from nstlab.cli import main

    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    out = tmp_path / "out.png"
    args = ["stylize", "chelsea", "mosaic", "-o", str(out), "--untrained", "--size", "32", "--steps", "1",
            "--no-checkpoint", "--no-progress", "--style-layers", "relu1_1", "--content-layers", "relu2_1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "normalised VGG19 with avg pooling" in printed and out.exists()  # the gatys preset's default
    assert main([*args, "--no-normalised", "--pool", "max", "--overwrite"]) == 0
    assert "VGG19 with max pooling" in capsys.readouterr().out.replace("normalised VGG19", "")
