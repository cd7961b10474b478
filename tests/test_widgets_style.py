"""Headless tests of the style-transfer panel: grid look-ups, the missing-grid path, the live path, banners."""

import io

import pytest
import torch
from PIL import Image

from nstlab.weights import untrained_backbone
from nstlab.widgets.style_panel import (
    GridSpec,
    compute_grid,
    default_cache_dir,
    grid_key,
    grid_path,
    lecture_spec,
    prepare,
    style_panel,
)

# The smallest grid that still has two values of every control: 8 runs of one step at 48 pixels.
TINY = GridSpec(size=48, steps=1, ratios=(1e2, 1e4), layer_choices=("relu1_1", "relu1_1 … relu3_1"),
                inits=("content", "noise"))


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg19")


@pytest.fixture(scope="module")
def grid(backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("style_grid")
    return folder, compute_grid(TINY, backbone=backbone, cache_dir=folder, show_progress=False)


def test_grid_is_cached_under_the_settings_and_holds_every_combination(grid):
    folder, path = grid
    assert path == grid_path(TINY, pretrained=False, cache_dir=folder) and path.parent == folder
    saved = torch.load(path, weights_only=True)
    assert len(saved["images"]) == 2 * 2 * 2 and saved["pretrained"] is False
    assert all(image.dtype == torch.uint8 and image.shape[:2] == (1, 3) for image in saved["images"].values())
    other = GridSpec(size=48, steps=2, ratios=TINY.ratios, layer_choices=TINY.layer_choices, inits=TINY.inits)
    assert grid_path(other, pretrained=False, cache_dir=folder) != path  # other settings, another file
    assert grid_path(TINY, pretrained=True, cache_dir=folder) != path  # never shown as pretrained


def test_existing_grid_is_not_recomputed(grid, backbone):
    folder, path = grid
    before = path.stat().st_mtime_ns
    assert compute_grid(TINY, backbone=backbone, cache_dir=folder) == path
    assert path.stat().st_mtime_ns == before


def test_changing_controls_shows_the_matching_grid_entry(grid, backbone):
    folder, path = grid
    saved = torch.load(path, weights_only=True)["images"]
    panel = style_panel(TINY, live=False, backbone=backbone, cache_dir=folder)
    assert panel.mode == "grid"
    before = panel.result_view.value
    panel.ratio.value = 1e4
    panel.layers.value = "relu1_1"
    panel.init.value = "noise"
    assert panel.key == grid_key(1e4, "relu1_1", "noise")
    assert torch.equal(panel.image, saved[panel.key])
    assert panel.result_view.value != before and panel.key in panel.status.value


def test_slider_between_grid_values_shows_the_nearest_on_a_log_scale(grid, backbone):
    folder, _ = grid
    panel = style_panel(TINY, live=False, backbone=backbone, cache_dir=folder)
    panel.ratio.value = 1e3  # halfway in log scale: either neighbour is right, but it must be one of them
    assert panel.key.split("|")[0] in ("1e+02", "1e+04")
    panel.ratio.value = 1e5  # beyond the grid: clamped by the slider, or the nearest value
    assert panel.key.startswith("1e+04")


def test_every_image_says_untrained_when_the_network_is(grid, backbone):
    folder, _ = grid
    panel = style_panel(TINY, live=False, backbone=backbone, cache_dir=folder)
    assert panel.pretrained is False and "UNTRAINED" in panel.banner.value
    shown = Image.open(io.BytesIO(panel.result_view.value)).convert("RGB")
    assert shown.getpixel((shown.width - 2, 2)) == (176, 0, 0)  # the red strip across the top of the image


def test_missing_grid_says_how_to_make_it_and_shows_no_result(tmp_path, backbone):
    panel = style_panel(TINY, live=False, backbone=backbone, cache_dir=tmp_path)
    assert panel.image is None and panel.result_view.value == b""
    assert "No precomputed grid" in panel.status.value and "compute_grid" in panel.status.value
    assert "nstlab present --prepare" in panel.status.value
    assert panel.compute_button.layout.display != "none"
    assert panel.result_view.layout.display == "none"  # an empty image would be a broken-image icon in a browser
    panel.init.value = "noise"  # changing a control must not fail either
    assert panel.image is None and panel.result_view.layout.display == "none"


def test_grid_computed_after_the_panel_is_picked_up_by_reload(tmp_path, backbone):
    spec = GridSpec(size=48, steps=1, ratios=(1e3,), layer_choices=("relu1_1",), inits=("content",))
    panel = style_panel(spec, live=False, backbone=backbone, cache_dir=tmp_path)
    assert panel.image is None
    compute_grid(spec, backbone=backbone, cache_dir=tmp_path, show_progress=False)
    panel.reload()
    panel.refresh()
    assert panel.image is not None and panel.compute_button.layout.display == "none"
    assert panel.result_view.layout.display is None and panel.result_view.value


def test_prepare_estimates_then_caches_the_lecture_grid_once(tmp_path, monkeypatch, capsys):
    """`nstlab present --prepare` calls prepare(): an estimate first, the lecture's grid cached, and a second
    call returns the cached file without computing."""
    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    spec = lecture_spec()
    path = prepare(cache_dir=tmp_path)
    out = capsys.readouterr().out
    assert "about" in out and f"{len(spec.ratios) * len(spec.layer_choices) * len(spec.inits)} images" in out
    saved = torch.load(path, weights_only=True)
    assert path.parent == tmp_path and len(saved["images"]) == 8 and saved["spec"]["size"] == spec.size
    before = path.stat().st_mtime_ns
    assert prepare(cache_dir=tmp_path) == path and path.stat().st_mtime_ns == before
    assert "already prepared" in capsys.readouterr().out
    panel = style_panel(spec, live=False, cache_dir=tmp_path)  # what the lecture shows: the prepared grid
    assert panel.image is not None and panel.grid_file == path


def test_lecture_grid_is_the_default_grid_outside_the_grade_profile():
    assert lecture_spec("fast") == lecture_spec("full") == GridSpec()
    tiny = lecture_spec("grade")
    assert all(len(values) == 2 for values in (tiny.ratios, tiny.layer_choices, tiny.inits))


def test_live_mode_runs_an_optimisation_on_each_change(backbone):
    spec = GridSpec(size=48, steps=1, ratios=(1e2, 1e4), layer_choices=("relu1_1",), inits=("content", "noise"))
    panel = style_panel(spec, live=True, backbone=backbone, device="cpu")
    assert panel.mode == "live" and "live: 1 lbfgs steps" in panel.status.value
    first = panel.image
    panel.init.value = "noise"
    assert panel.image.shape == first.shape and not torch.equal(panel.image, first)
    assert "UNTRAINED" in panel.banner.value


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_live_mode_is_the_default_on_a_gpu(backbone):
    spec = GridSpec(size=64, steps=2, ratios=(1e3,), layer_choices=("relu1_1",), inits=("content",))
    panel = style_panel(spec, backbone=backbone)
    assert panel.mode == "live" and panel.device.type == "cuda"


def test_grid_folder_is_the_user_cache_not_the_repository():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    path = grid_path(TINY, pretrained=False)
    assert path.parent == default_cache_dir() and default_cache_dir().parts[-2:] == ("nstlab", "style_grid")
    assert repo not in path.parents


def test_bad_grid_settings_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match="LAYER_CHOICES"):
        GridSpec(layer_choices=("conv9_9",))
    with pytest.raises(ValueError, match="init"):
        GridSpec(inits=("zeros",))
    with pytest.raises(ValueError, match="positive"):
        GridSpec(ratios=(0.0,))
