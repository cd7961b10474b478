"""Robust image loading and saving: every odd input becomes RGB in [0, 1] or fails with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstlab.images import (
    ImageError,
    array_to_tensor,
    load_image,
    luminance,
    pil_to_tensor,
    resize_long_side,
    save_image,
    tensor_to_pil,
)


def _gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "I", "F", "1"])
def test_every_mode_loads_as_rgb_float_in_unit_range(tmp_path: Path, mode: str):
    img = _gradient_rgb().convert(mode if mode not in ("I;16", "I", "F") else "L")
    if mode in ("I;16", "I", "F"):
        arr = np.asarray(img).astype(np.uint16) * 257  # full 16-bit range
        img = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.int32 if mode == "I" else np.float32))
    path = tmp_path / ("x.tiff" if mode in ("CMYK", "F", "I") else "x.png")
    img.save(path)
    x = load_image(path)
    assert x.shape == (1, 3, 48, 64) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert x.is_contiguous()  # not a permuted view of the (H, W, 3) pixels: its strides would reach the gradients


def test_sixteen_bit_images_keep_their_contrast(tmp_path: Path):
    arr = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    x = load_image(tmp_path / "deep.png")
    assert x.min() == 0.0 and x.max() == 1.0  # rescaled, not clipped to white


def test_transparent_pixels_become_white(tmp_path: Path):
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)  # black and fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert torch.equal(load_image(tmp_path / "clear.png"), torch.ones(1, 3, 40, 40))


def test_palette_image_with_transparency_is_composited(tmp_path: Path):
    img = Image.new("P", (40, 40), 0)
    img.putpalette([255, 0, 0] * 256)
    img.info["transparency"] = 0
    img.save(tmp_path / "pal.png", transparency=0)
    assert torch.equal(load_image(tmp_path / "pal.png"), torch.ones(1, 3, 40, 40))


def test_exif_rotation_is_applied(tmp_path: Path):
    img = _gradient_rgb(64, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rotated.jpg").shape == (1, 3, 64, 40)


def test_truncated_file_names_the_file_and_the_fix(tmp_path: Path):
    path = tmp_path / "cut.jpg"
    _gradient_rgb().save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match=r"cut\.jpg.*(damaged or truncated|cannot be opened)"):
        load_image(path)


def test_non_image_file_is_rejected_by_name(tmp_path: Path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        load_image(path)


def test_missing_file_and_folder_are_rejected(tmp_path: Path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_too_large_image_is_refused_before_decoding(tmp_path: Path):
    _gradient_rgb(200, 100).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png: 200×100 .* more than the limit"):
        load_image(tmp_path / "big.png", max_pixels=10_000)


def test_too_small_image_says_the_minimum(tmp_path: Path):
    _gradient_rgb(20, 20).save(tmp_path / "tiny.png")
    with pytest.raises(ImageError, match=r"tiny\.png: 20×20 pixels is too small.*at least 32"):
        load_image(tmp_path / "tiny.png")
    with pytest.raises(ImageError, match="size=8 is below the minimum"):
        load_image(tmp_path / "tiny.png", size=8)


def test_resize_keeps_aspect_ratio_and_does_not_touch_the_input():
    x = torch.rand(1, 3, 100, 50, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    assert resize_long_side(x, 40).shape == (1, 3, 40, 20)
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match=r"expected \(N, C, H, W\), got \(3, 100, 50\)"):
        resize_long_side(x[0], 40)


def test_save_never_overwrites_without_the_flag(tmp_path: Path):
    path = save_image(torch.zeros(1, 3, 8, 8), tmp_path / "out" / "a.png")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_image(torch.ones(1, 3, 8, 8), path)
    assert load_image(path, min_side=1).max() == 0  # the first image is still there
    save_image(torch.ones(1, 3, 8, 8), path, overwrite=True)
    assert load_image(path, min_side=1).min() == 1


def test_save_then_load_round_trips_to_8_bit_precision(tmp_path: Path):
    x = torch.rand(1, 3, 33, 47, generator=torch.Generator().manual_seed(1))
    y = load_image(save_image(x, tmp_path / "r.png"))
    assert (x - y).abs().max() <= 0.5 / 255 + 1e-6


def test_save_rejects_unknown_suffix_and_nan(tmp_path: Path):
    with pytest.raises(ImageError, match="unknown image format '.xyz'"):
        save_image(torch.zeros(1, 3, 8, 8), tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="NaN"):
        save_image(torch.full((1, 3, 8, 8), float("nan")), tmp_path / "nan.png")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_tensor_to_pil_rejects_batches_and_wrong_channel_counts():
    with pytest.raises(ValueError, match="a batch of shape"):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"got \(4, 4, 4\)"):
        tensor_to_pil(torch.zeros(4, 4, 4))


def test_array_to_tensor_matches_pil_path_and_checks_its_input():
    arr = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert torch.equal(array_to_tensor(arr), pil_to_tensor(Image.fromarray(arr)))
    with pytest.raises(ValueError, match="uint8"):
        array_to_tensor(arr.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        array_to_tensor(arr[..., :2])


def test_luminance_is_a_convex_combination_matching_a_float64_reference():
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    torch.testing.assert_close(luminance(x), ref, rtol=1e-12, atol=0)
    assert torch.allclose(luminance(torch.ones(1, 3, 1, 1)), torch.ones(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        luminance(torch.zeros(3, 4, 4))
