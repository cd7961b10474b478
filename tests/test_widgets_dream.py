"""Headless tests of the dream explorer: grid look-ups, the missing-grid path, the live path, UNTRAINED marks."""

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from nstlab.weights import untrained_backbone
from nstlab.widgets import dream_explorer as explorer_module
from nstlab.widgets.dream_explorer import (
    GridSpec,
    compute_grid,
    default_cache_dir,
    dream_explorer,
    grid_key,
    grid_path,
    lecture_spec,
    prepare,
)

# The smallest grid that still has two values of every control: 16 dreams of one step per octave at 48 px
# (a square image, so that two octaves fit: 48 / 1.4 = 34 px). It is the lecture's grid in the grade profile.
TINY = lecture_spec("grade")


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg19")


@pytest.fixture(scope="module")
def grid(backbone, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dream_grid")
    return folder, compute_grid(TINY, backbone=backbone, cache_dir=folder, show_progress=False)


def test_grid_is_cached_under_the_settings_and_holds_every_combination(grid):
    folder, path = grid
    assert path == grid_path(TINY, pretrained=False, cache_dir=folder) and path.parent == folder
    saved = torch.load(path, weights_only=True)
    assert len(saved["images"]) == 2 * 2 * 2 * 2 and saved["pretrained"] is False
    assert saved["note"].startswith("UNTRAINED")
    assert all(image.dtype == torch.uint8 and image.shape[:2] == (1, 3) and max(image.shape[-2:]) == 48
               for image in saved["images"].values())
    other = GridSpec(**{**TINY.__dict__, "steps": 2})
    assert grid_path(other, pretrained=False, cache_dir=folder) != path  # other settings, another file
    assert grid_path(TINY, pretrained=True, cache_dir=folder) != path  # never shown as pretrained


def test_grid_entries_differ_by_the_settings_they_were_made_with(grid):
    """A grid of identical pictures would pass the look-up tests; the controls must change the dream."""
    _, path = grid
    images = torch.load(path, weights_only=True)["images"]
    base = images[grid_key("relu2_1", None, 2, 0.03)]
    for other in [grid_key("relu1_1", None, 2, 0.03), grid_key("relu2_1", 3, 2, 0.03),
                  grid_key("relu2_1", None, 1, 0.03), grid_key("relu2_1", None, 2, 0.01)]:
        assert not torch.equal(images[other], base), other


def test_existing_grid_is_not_recomputed(grid, backbone, monkeypatch):
    folder, path = grid
    before = path.stat().st_mtime_ns

    def no_dreaming(*args, **kwargs):
        raise AssertionError("compute_grid dreamed although the grid was cached")

    monkeypatch.setattr(explorer_module, "dream", no_dreaming)
    assert compute_grid(TINY, backbone=backbone, cache_dir=folder) == path
    assert path.stat().st_mtime_ns == before


def test_changing_controls_shows_the_matching_grid_entry(grid, backbone):
    folder, path = grid
    saved = torch.load(path, weights_only=True)["images"]
    explorer = dream_explorer(TINY, live=False, backbone=backbone, cache_dir=folder)
    assert explorer.mode == "grid" and explorer.image is not None
    assert torch.equal(explorer.image, saved[explorer.key])
    shown = {explorer.key: explorer.result_view.value}
    for control, value in [(explorer.layer, "relu1_1"), (explorer.channel, "3"), (explorer.octaves, 1),
                           (explorer.step_size, 0.03)]:
        before = explorer.result_view.value
        control.value = value
        assert torch.equal(explorer.image, saved[explorer.key])
        assert explorer.result_view.value != before and explorer.key in explorer.status.value
        shown[explorer.key] = explorer.result_view.value
    assert explorer.key == grid_key("relu1_1", 3, 1, 0.03)
    assert len(shown) == 5 and len(set(shown.values())) == 5


def test_every_image_says_untrained_when_the_network_is(grid, backbone):
    folder, _ = grid
    explorer = dream_explorer(TINY, live=False, backbone=backbone, cache_dir=folder)
    assert explorer.pretrained is False and "UNTRAINED" in explorer.banner.value
    shown = Image.open(io.BytesIO(explorer.result_view.value)).convert("RGB")
    assert shown.getpixel((shown.width - 2, 2)) == (176, 0, 0)  # the red strip across the top of the dream
    original = Image.open(io.BytesIO(explorer.original_view.value)).convert("RGB")
    assert original.getpixel((original.width - 2, 2)) != (176, 0, 0)  # the photo itself is not the network's


def test_missing_grid_says_how_to_make_it_and_shows_no_image(tmp_path, backbone):
    explorer = dream_explorer(TINY, live=False, backbone=backbone, cache_dir=tmp_path)
    assert explorer.image is None and explorer.result_view.value == b""
    assert explorer.result_view.layout.display == "none"  # not shown as a broken image
    assert "No precomputed grid" in explorer.status.value and "nstlab present --prepare" in explorer.status.value
    assert explorer.compute_button.layout.display != "none"
    explorer.octaves.value = 1  # changing a control must not fail either
    assert explorer.image is None and explorer.result_view.layout.display == "none"


def test_grid_computed_after_the_explorer_is_picked_up_by_reload(tmp_path, backbone):
    spec = GridSpec(image="astronaut", size=48, steps=1, layers=("relu1_1",), channels=(None,), octaves=(1,),
                    step_sizes=(0.02,))
    explorer = dream_explorer(spec, live=False, backbone=backbone, cache_dir=tmp_path)
    assert explorer.image is None
    compute_grid(spec, backbone=backbone, cache_dir=tmp_path, show_progress=False)
    explorer.reload()
    explorer.refresh()
    assert explorer.image is not None and explorer.compute_button.layout.display == "none"
    assert explorer.result_view.layout.display is None and explorer.result_view.value != b""


def test_live_mode_dreams_on_each_change(backbone):
    spec = GridSpec(image="astronaut", size=48, steps=1, layers=("relu1_1",), channels=(None, 5), octaves=(1,),
                    step_sizes=(0.05,))
    explorer = dream_explorer(spec, live=True, backbone=backbone, device="cpu")
    assert explorer.mode == "live" and "live: 1 ascent steps over 1 octave(s)" in explorer.status.value
    first = explorer.image
    explorer.channel.value = "5"
    assert explorer.image.shape == first.shape and not torch.equal(explorer.image, first)
    assert "UNTRAINED" in explorer.banner.value


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_live_mode_is_the_default_on_a_gpu(backbone):
    spec = GridSpec(size=64, steps=2, layers=("relu4_1",), channels=(None,), octaves=(2,), step_sizes=(0.02,))
    explorer = dream_explorer(spec, backbone=backbone)
    assert explorer.mode == "live" and explorer.device.type == "cuda" and explorer.image is not None


def test_grid_folder_is_the_user_cache_not_the_repository():
    repo = Path(__file__).resolve().parents[1]
    path = grid_path(TINY, pretrained=False)
    assert path.parent == default_cache_dir() and default_cache_dir().parts[-2:] == ("nstlab", "dream_grid")
    assert repo not in path.parents


def test_prepare_caches_the_lecture_grid_once_with_an_estimate_first(tmp_path, monkeypatch, capsys):
    """prepare() makes the lecture's grid (tiny in the grade profile) in the given folder, offline with the
    untrained network and marked so, prints an estimate first, and a second call finds it cached."""
    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    path = prepare(cache_dir=tmp_path, progress=True)
    assert path == grid_path(TINY, pretrained=False, cache_dir=tmp_path) and path.is_file()
    saved = torch.load(path, weights_only=True)
    assert len(saved["images"]) == 16 and saved["pretrained"] is False
    out = capsys.readouterr().out
    assert "16 dreams of 48 px" in out and "UNTRAINED VGG19: about" in out
    before = path.stat().st_mtime_ns
    assert prepare(cache_dir=tmp_path, progress=True) == path and path.stat().st_mtime_ns == before
    assert "already prepared" in capsys.readouterr().out
    explorer = dream_explorer(live=False, cache_dir=tmp_path)  # by default the explorer shows that grid
    assert explorer.grid_file == path and explorer.image is not None


def test_default_grid_has_every_layer_from_edges_to_object_parts():
    spec = GridSpec()
    assert spec.layers[0] == "relu1_1" and spec.layers[-1] == "relu5_1" and None in spec.channels
    assert len(spec.octaves) > 1 and len(spec.step_sizes) > 1 and spec.size <= 160


def test_bad_grid_settings_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="conv9_9"):
        GridSpec(layers=("conv9_9",))
    with pytest.raises(ValueError, match="channel 64 is out of range for relu1_1"):
        GridSpec(layers=("relu1_1",), channels=(64,))
    with pytest.raises(ValueError, match="step_size"):
        GridSpec(step_sizes=(0.0,))
    with pytest.raises(ValueError, match="octaves"):
        GridSpec(octaves=())
    with pytest.raises(ValueError, match="unknown image"):
        GridSpec(image="nowhere")
    with pytest.raises(ValueError, match="only 1 octave"):
        GridSpec(image="chelsea", size=48, octaves=(1, 2))
