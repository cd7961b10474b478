"""Tests of nstlab.dream: a normalised ascent step raises the objective, octaves have the documented sizes, the
jitter is undone exactly, pixels stay in [0, 1], channel and guide objectives, seeds, and clear errors.

The network is the real untrained VGG19 (no weights can be downloaded here) at 32-64 px, so each run is
a fraction of a second; what is tested are properties of the ascent, not how the dreams look.
"""

from __future__ import annotations

import pytest
import torch

from nstlab.dream import (
    DreamConfig,
    ascent_step,
    dream,
    dream_config,
    dream_objective,
    guide_objective,
    jitter,
    layer_channels,
    octave_sizes,
    plot_dream,
)
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


@pytest.fixture(scope="module")
def extractor():
    return VGGFeatures(LAYERS, backbone=untrained_backbone("vgg19", seed=0))


def image(h=48, w=64, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def small(**changes) -> DreamConfig:
    """Two octaves of two steps on a 64-px image: fractions of a second."""
    return DreamConfig(**{"layer": "relu2_1", "octaves": 2, "steps": 2, "size": 64, "jitter": 4, **changes})


@pytest.mark.parametrize(("kind", "channel"), [("mean", None), ("l2", None), ("mean", 5), ("l2", 17)])
def test_one_small_ascent_step_increases_the_objective(extractor, kind, channel):
    x = image()

    def J(x):
        return dream_objective(extractor(x)["relu3_1"], channel=channel, kind=kind)

    y = ascent_step(x, J, step_size=1e-3)
    assert J(y).item() > J(x).item()


def test_ascent_step_is_the_normalised_gradient_step_and_leaves_its_input_alone():
    x = image(4, 4).requires_grad_(False)
    before = x.clone()
    weights = torch.linspace(-1, 2, x.numel()).view_as(x)

    def J(x):
        return (weights * x**2).sum()

    g = 2 * weights * x  # the gradient, by hand
    expected = (x + 0.05 * g / (g.abs().mean() + 1e-8)).clamp(0, 1)
    y = ascent_step(x, J, step_size=0.05)
    torch.testing.assert_close(y, expected)
    assert torch.equal(x, before) and not y.requires_grad


def test_dream_objective_of_a_channel_is_that_channel_alone():
    F = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(dream_objective(F, channel=2), F[:, 2].mean())
    torch.testing.assert_close(dream_objective(F, channel=2, kind="l2"), 0.5 * (F[:, 2] ** 2).sum())
    torch.testing.assert_close(dream_objective(F, kind="l2"), 0.5 * (F**2).sum())


def test_octaves_run_coarse_to_fine_by_the_scale_and_end_at_the_image_size():
    sizes = octave_sizes(300, 400, octaves=5, scale=1.3)
    assert sizes[-1] == (300, 400) and len(sizes) == 5
    for (h0, w0), (h1, w1) in zip(sizes, sizes[1:], strict=False):
        assert h0 < h1 and w0 < w1
    for k, (h, w) in enumerate(reversed(sizes)):
        assert (h, w) == (round(300 / 1.3**k), round(400 / 1.3**k))
    # octaves that would go below 32 px are left out, not squeezed
    assert octave_sizes(40, 100, octaves=6, scale=1.4) == [(40, 100)]
    with pytest.raises(ValueError, match="too small to dream on"):
        octave_sizes(20, 100)


def test_dream_returns_the_last_octave_at_the_configured_size_with_one_objective_per_step(extractor):
    result = dream(image(60, 80), extractor, small(octaves=3, steps=3, size=64, octave_scale=1.3), progress=False)
    assert result.image.shape == (1, 3, 48, 64)
    assert result.sizes == tuple(octave_sizes(48, 64, octaves=3, scale=1.3)) and len(result.sizes) == 2
    assert len(result.history) == 2 * 3 and result.seconds_per_step > 0


class Pointwise(torch.nn.Module):
    """An 'extractor' whose feature at each pixel depends on that pixel alone: then a rolled step, rolled back,
    is exactly the unrolled step, and any jitter left in place would show as a shifted image."""

    layers = ("relu1_1",)
    min_size = 1
    pretrained, note = False, "pointwise test features"

    def forward(self, x):
        return {"relu1_1": torch.sin(3 * x) + x**2}


def test_the_jitter_is_undone_after_every_step():
    x = image(48, 64, seed=2)
    torch.testing.assert_close(jitter(jitter(x, 5, -3), -5, 3), x, rtol=0, atol=0)
    assert not torch.equal(jitter(x, 5, -3), x)
    jittered = dream(x, Pointwise(), small(layer="relu1_1", jitter=16, steps=4), progress=False)
    still = dream(x, Pointwise(), small(layer="relu1_1", jitter=0, steps=4), progress=False)
    torch.testing.assert_close(jittered.image, still.image, rtol=0, atol=1e-6)
    assert (jittered.image - x).abs().max() > 0.01  # the steps did move the pixels


def test_jitter_changes_a_dream_on_a_convolutional_network(extractor):
    x = image()
    a = dream(x, extractor, small(jitter=0), progress=False).image
    b = dream(x, extractor, small(jitter=8), progress=False).image
    assert (a - b).abs().max() > 1e-3


def test_pixels_stay_in_range_even_with_huge_steps(extractor):
    result = dream(image(), extractor, small(step_size=2.0, steps=3), progress=False)
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert (result.image == 0).any() and (result.image == 1).any()  # the clipping was needed


def test_the_objective_rises_over_a_dream_on_a_layer_and_on_a_channel(extractor):
    for changes in ({}, {"channel": 3}):
        config = small(steps=6, octaves=1, jitter=0, **changes)
        result = dream(image(), extractor, config, progress=False)
        assert result.history[-1] > result.history[0], changes


def test_a_guide_pulls_the_features_towards_the_guide(extractor):
    x, guide = image(seed=3), image(40, 40, seed=4)
    target = extractor(guide)["relu2_1"]
    guided = dream(x, extractor, small(octaves=1, steps=5, jitter=0), guide=guide, progress=False)
    plain = dream(x, extractor, small(octaves=1, steps=5, jitter=0), progress=False)

    def match(img):
        return guide_objective(extractor(img)["relu2_1"], target).item()

    assert match(guided.image) > match(x)
    assert match(guided.image) > match(plain.image)


def test_guide_objective_is_the_mean_best_match_per_position():
    g = torch.Generator().manual_seed(5)
    f, h = torch.randn(1, 4, 3, 2, generator=g), torch.randn(1, 4, 2, 5, generator=g)
    X, G = f[0].flatten(1), h[0].flatten(1)
    best = [max(float(X[:, i] @ G[:, j]) for j in range(G.shape[1])) for i in range(X.shape[1])]
    assert guide_objective(f, h).item() == pytest.approx(sum(best) / len(best), rel=1e-6)


def test_the_same_seed_gives_the_same_dream_and_another_seed_another(extractor):
    x = image()
    a = dream(x, extractor, small(seed=1), progress=False).image
    b = dream(x, extractor, small(seed=1), progress=False).image
    c = dream(x, extractor, small(seed=2), progress=False).image
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dream_leaves_its_input_alone_and_says_the_network_is_untrained(extractor):
    x = image()
    before = x.clone()
    result = dream(x, extractor, small(), progress=False)
    assert torch.equal(x, before)
    assert result.pretrained is False and result.note.startswith("UNTRAINED")


def test_a_figure_of_an_untrained_dream_carries_the_banner(extractor):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = dream(image(), extractor, small(), progress=False)
    fig = plot_dream(result, original=image())
    try:
        assert "UNTRAINED" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_profiles_give_their_sizes_and_overrides_win():
    assert dream_config("grade").size == 64 and dream_config("full").size == 512
    assert dream_config("fast", steps=3).steps == 3


BAD_CONFIGS = {
    "unknown layer": ({"layer": "relu9_9"}, "unknown layer name(s) 'relu9_9'"),
    "channel out of range": ({"layer": "relu4_2", "channel": 512}, "relu4_2, which has 512 channels; give one of 0..511"),
    "negative channel": ({"channel": -1}, "out of range"),
    "unknown objective": ({"objective": "max"}, "'mean', 'l2'"),
    "octave scale of 1": ({"octave_scale": 1.0}, "above 1"),
    "no steps": ({"steps": 0}, "at least 1"),
    "negative step size": ({"step_size": -0.1}, "positive"),
    "tiny size": ({"size": 16}, "minimum of 32"),
    "guide weight above 1": ({"guide_weight": 2.0}, "between 0 and 1"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_settings_are_refused_when_the_config_is_made(case):
    changes, words = BAD_CONFIGS[case]
    with pytest.raises(ValueError) as info:
        DreamConfig(**changes)
    assert words in str(info.value), str(info.value)


def test_bad_calls_get_errors_that_name_the_fix(extractor):
    with pytest.raises(ValueError, match=r"does not return 'relu4_2'.*VGGFeatures\(\['relu4_2'\]"):
        dream(image(), extractor, DreamConfig(layer="relu4_2", size=64), progress=False)
    with pytest.raises(ValueError, match="one image"):
        dream(torch.rand(2, 3, 48, 48), extractor, small(), progress=False)
    with pytest.raises(ValueError, match=r"x\[None\]|\[None\]"):
        dream(torch.rand(3, 48, 48), extractor, small(), progress=False)
    with pytest.raises(ValueError, match="features have 128 channels"):
        dream_objective(torch.zeros(1, 128, 2, 2), channel=128)
    with pytest.raises(ValueError, match="lower guide_weight"):
        dream(image(), extractor, small(channel=3), guide=image(seed=1), progress=False)
    with pytest.raises(ValueError, match="0-dim tensor"):
        ascent_step(image(), lambda x: x, step_size=0.1)
    assert layer_channels("relu5_4") == 512 and layer_channels("conv2_1", arch="vgg16") == 128


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")
def test_dream_runs_on_the_device_of_its_input():
    cuda_extractor = VGGFeatures(["relu2_1"], backbone=untrained_backbone("vgg19")).to("cuda")
    result = dream(image().cuda(), cuda_extractor, small(), progress=False)
    assert result.image.device.type == "cuda"


def test_a_progress_bar_counts_every_step_and_is_silent_under_nbgrader(extractor, capsys, monkeypatch):
    dream(image(), extractor, small(), progress=True)
    err = capsys.readouterr().err
    assert "dream" in err and "4/4" in err
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    dream(image(), extractor, small(), progress=True)
    assert capsys.readouterr().err == ""
