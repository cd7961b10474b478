"""Headless tests of the fast-style slider: pickers, the split, the cache, uploads, missing and untrained models."""

import datetime
import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from nstlab import data, fast
from nstlab.weights import untrained_backbone
from nstlab.widgets.fast_slider import MODEL_SUFFIX, composite, fast_slider, find_models, prepare

# The smallest training run that still makes a real model file: two steps of the grade preset.
TINY = fast.fast_config("grade", steps=2)
PHOTOS = ("coffee", "chelsea")
SIZE = 48


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg16")


@pytest.fixture(scope="module")
def models_dir(backbone, tmp_path_factory):
    """Two tiny models trained against the untrained VGG16, as `nstlab fast train` would save them."""
    folder = tmp_path_factory.mktemp("fast_models")
    for style, seed in (("mosaic", 0), ("swirl", 1)):
        result = fast.train(style, None, fast.fast_config("grade", steps=2, seed=seed), backbone=backbone,
                            fallback="untrained", progress=False)
        fast.save_model(result.model, folder / f"{style}{MODEL_SUFFIX}")
    return folder


def test_models_in_the_folder_are_offered_as_styles(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    assert list(demo.style_picker.options) == ["mosaic", "swirl"] and demo.style == "mosaic"
    assert list(demo.photo_picker.options) == list(PHOTOS)
    assert demo.image is not None and demo.image.dtype == torch.uint8 and bytes(demo.view.value).startswith(b"\x89PNG")


def test_the_stylised_half_is_the_model_applied_to_the_photo(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    model = fast.load_model(models_dir / f"mosaic{MODEL_SUFFIX}")
    with torch.no_grad():
        expected = (fast.apply(model, data.builtin_image("coffee", size=SIZE)).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(demo.stylised, expected)


def test_changing_style_or_photo_changes_the_image(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    first, first_png = demo.image.clone(), demo.view.value
    demo.style_picker.value = "swirl"
    assert not torch.equal(demo.image, first) and demo.view.value != first_png
    assert "swirl on coffee" in demo.status.value
    demo.photo_picker.value = "chelsea"
    assert demo.image.shape[-2:] == data.builtin_image("chelsea", size=SIZE).shape[-2:]
    assert "swirl on chelsea" in demo.status.value


def test_split_moves_between_the_original_and_the_stylised_photo(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    original = (data.builtin_image("coffee", size=SIZE) * 255).round().to(torch.uint8)
    demo.split.value = 0.0
    assert torch.equal(demo.image, demo.stylised)
    demo.split.value = 1.0
    assert torch.equal(demo.image, original)
    demo.split.value = 0.5
    x = round(0.5 * original.shape[-1])
    assert torch.equal(demo.image[..., : x], original[..., : x])
    assert torch.equal(demo.image[..., x + 1 :], demo.stylised[..., x + 1 :])
    assert (demo.image[..., x] == 255).all()  # the line at the split


def test_moving_the_split_or_coming_back_to_a_pair_runs_no_forward_pass(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    assert demo.seconds > 0 and len(demo.cache) == 1
    demo.style_picker.value = "swirl"
    demo.style_picker.value = "mosaic"
    assert demo.seconds == 0.0 and "from the cache" in demo.status.value and len(demo.cache) == 2
    before = dict(demo.cache)
    demo.split.value = 0.2
    assert demo.cache == before


def test_results_of_models_trained_against_the_untrained_network_are_marked(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    assert demo.pretrained is False and "UNTRAINED" in demo.banner.value
    shown = Image.open(io.BytesIO(demo.view.value)).convert("RGB")
    assert shown.getpixel((shown.width - 2, 2)) == (176, 0, 0)  # the red strip across the top


def test_no_model_gives_a_message_saying_how_to_make_one_not_a_broken_image(tmp_path):
    demo = fast_slider(tmp_path / "nothing here", photos=PHOTOS, size=SIZE)
    assert demo.image is None and demo.view.value == b""
    assert "No trained style model" in demo.status.value
    assert "nstlab fast train" in demo.status.value and "nstlab present --prepare" in demo.status.value
    demo.photo_picker.value = "chelsea"  # the controls still work
    demo.split.value = 0.1
    assert demo.image is None


def test_a_damaged_model_file_is_reported_and_the_others_still_shown(models_dir, tmp_path):
    for path in models_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / f"broken{MODEL_SUFFIX}").write_bytes(b"not a model at all")
    models, problems = find_models(tmp_path)
    assert sorted(models) == ["mosaic", "swirl"] and len(problems) == 1 and problems[0].startswith("broken")
    demo = fast_slider(tmp_path, photos=PHOTOS, size=SIZE)
    assert demo.image is not None and "broken" in demo.status.value


def test_an_uploaded_photo_is_offered_and_stylised(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    buffer = io.BytesIO()
    Image.new("RGB", (90, 60), (200, 30, 40)).save(buffer, format="PNG")
    demo.upload.value = ({"name": "red.png", "type": "image/png", "size": len(buffer.getvalue()),
                          "content": memoryview(buffer.getvalue()), "last_modified": datetime.datetime.now()},)
    assert demo.photo == "upload: red.png" and "upload: red.png" in demo.photo_picker.options
    assert demo.stylised.shape == (1, 3, 32, SIZE)  # resized to the demo's long side


def test_an_upload_that_is_not_an_image_says_so(models_dir):
    demo = fast_slider(models_dir, photos=PHOTOS, size=SIZE)
    demo.upload.value = ({"name": "notes.png", "type": "image/png", "size": 5, "content": memoryview(b"hello"),
                          "last_modified": datetime.datetime.now()},)
    assert demo.photo == "coffee" and "notes.png" in demo.status.value


def test_composite_rejects_images_of_different_sizes():
    with pytest.raises(ValueError, match="same shape"):
        composite(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 5, dtype=torch.uint8), 0.5)


def test_prepare_trains_missing_styles_only(tmp_path):
    folder = prepare(cache_dir=tmp_path, progress=False, styles=("mosaic",), config=TINY, fallback="untrained")
    path = folder / f"mosaic{MODEL_SUFFIX}"
    assert folder == tmp_path and path.is_file()
    assert fast.load_model(path).pretrained is False
    before = path.stat().st_mtime_ns
    prepare(cache_dir=tmp_path, progress=False, styles=("mosaic",), config=TINY, fallback="untrained")
    assert path.stat().st_mtime_ns == before  # present: not trained again, not overwritten


def test_models_folder_is_the_user_cache_not_the_repository():
    repo = Path(__file__).resolve().parents[1]
    assert repo not in fast.default_models_dir().parents


def test_results_of_a_model_trained_against_the_pretrained_network_carry_no_mark(tmp_path):
    torch.manual_seed(0)
    model = fast.FastModel(fast.TransformNet(width=4, blocks=1),
                           {"style": {"name": "mosaic"}, "training": {"pretrained": True}})
    fast.save_model(model, tmp_path / f"made-here{MODEL_SUFFIX}")
    demo = fast_slider(tmp_path, photos=PHOTOS, size=SIZE)
    assert demo.pretrained is True and demo.banner.value == ""
    shown = Image.open(io.BytesIO(demo.view.value)).convert("RGB")
    assert shown.getpixel((shown.width - 2, 2)) != (176, 0, 0)
