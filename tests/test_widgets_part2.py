"""Headless tests of the Part II lecture demos: set control values, check what changed, and how fast."""


import pytest
import torch
import torch.nn.functional as F

from nstlab.widgets.conv_playground import CUSTOM, PRESETS, conv_playground


@pytest.fixture(scope="module")
def playground():
    return conv_playground(size=96)


def test_playground_output_is_the_convolution_of_the_photo_with_the_preset(playground):
    playground.preset.value = "Sobel y (horizontal edges)"
    expected = F.conv2d(playground.photo, torch.tensor(PRESETS["Sobel y (horizontal edges)"],
                                                       dtype=torch.float32)[None, None], padding=1)
    torch.testing.assert_close(playground.output, expected)


def test_playground_output_size_follows_stride_and_padding(playground):
    H, W = playground.photo.shape[2:]
    for s, P in [(1, 0), (2, 1), (3, 3), (4, 2)]:
        playground.stride.value, playground.padding.value = s, P
        assert playground.output.shape[2:] == ((H + 2 * P - 3) // s + 1, (W + 2 * P - 3) // s + 1)
        assert f"= {playground.output.shape[2]}" in playground.status.value
    playground.stride.value, playground.padding.value = 1, 1


def test_typing_into_the_grid_makes_a_custom_kernel_that_is_used(playground):
    playground.preset.value = "identity"
    before = playground.output_view.value
    torch.testing.assert_close(playground.output, playground.photo)  # identity with P = 1 keeps the photo
    playground.cells[4].value = 0.0
    playground.cells[0].value = 1.0  # now the kernel shifts the image by one pixel
    assert playground.preset.value == CUSTOM
    assert playground.kernel[0, 0] == 1.0 and playground.kernel[1, 1] == 0.0
    torch.testing.assert_close(playground.output[0, 0, 1:, 1:], playground.photo[0, 0, :-1, :-1])
    assert playground.output_view.value != before


def test_choosing_another_photo_redraws_the_input(playground):
    before = playground.input_view.value
    playground.image.value = "coffee"
    assert playground.input_view.value != before
    assert playground.photo.shape[2:] != (96, 96)  # coffee is landscape


def test_playground_at_lecture_size_redraws_on_stride_and_preset():
    """At the size used in lectures (its speed is in benchmarks/bench_widgets.py) both controls redraw."""
    demo = conv_playground(size=256)
    before = demo.output_view.value
    demo.stride.value = 2
    strided = demo.output_view.value
    demo.preset.value = "sharpen"
    assert before != strided != demo.output_view.value


def test_playground_rejects_an_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        conv_playground(preset="gaussian")


# --- the feature-map browser ---------------------------------------------------------------------------------

from nstlab.vgg import VGGFeatures  # noqa: E402
from nstlab.weights import untrained_backbone  # noqa: E402
from nstlab.widgets.feature_browser import feature_browser  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    # float32 maps, compared below with VGGFeatures' own (bf16 is tested in test_precision.py)
    return feature_browser(size=64, backbone=untrained_backbone("vgg16"), layers=("relu1_1", "relu2_1", "relu4_1"),
                           precision="fp32")


def test_browser_shows_the_chosen_channel_of_the_chosen_layer(browser):
    browser.layer.value = "relu2_1"
    browser.channel.value = 5
    photo = browser.features["photo"][None]
    expected = VGGFeatures(["relu2_1"], backbone=untrained_backbone("vgg16"))(photo)["relu2_1"][0, 5]
    torch.testing.assert_close(browser.map, expected)
    assert browser.channel.max == 127 and "relu2_1: 128 channels" in browser.status.value


def test_browser_changing_layer_redraws_and_keeps_the_channel_in_range(browser):
    browser.layer.value = "relu4_1"
    browser.channel.value = 400
    before = browser.map_view.value
    browser.layer.value = "relu1_1"
    assert browser.channel.max == 63 and browser.channel.value <= 63
    assert browser.map.shape == browser.features["photo"].shape[1:] and browser.map_view.value != before
    assert len(browser.top_channels) == 16


def test_browser_says_when_the_network_is_untrained(browser):
    assert browser.pretrained is False and "UNTRAINED" in browser.banner.value


def test_browser_new_photo_redraws(browser):
    before = browser.photo_view.value
    browser.image.value = "rocket"
    assert browser.photo_view.value != before
