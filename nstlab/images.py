"""Loading and saving images robustly.

Course images are float32 tensors in [0, 1] of shape (N, 3, H, W), RGB. Photos in the wild are not: they
are rotated by an EXIF tag, grey, palette-based, transparent, CMYK or 16 bits per channel, sometimes
truncated, sometimes not images at all, sometimes far too large. :func:`load_image` turns all of those into
the course's convention or fails with a message that names the file, the problem and the fix.
:func:`save_image` never overwrites an existing file unless asked to.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse to decode more pixels than this unless the caller raises the limit: a 50-megapixel photo already
# needs 600 MB as float32 and far more inside VGG.
MAX_PIXELS = 50_000_000
# VGG halves an image five times; below 32 px the deepest layers would have no pixels left.
MIN_SIDE = 32


class ImageError(ValueError):
    """An image could not be used; the message names the file, the problem and the fix."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparent pixels are composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images: rescale the actual range to 0..255 rather than clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode == "RGB":
        return img
    if img.mode == "RGBA":
        return img.convert("RGB")
    # CMYK, YCbCr, LAB, HSV, 1, L ...: PIL's own conversion to RGB.
    return img.convert("RGB")


# ITU-R BT.601 luma weights for R, G and B: the brightness a viewer perceives, used by colour preservation.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """Convert an 8-bit RGB array of shape (H, W, 3) to the course's image convention.

    Args:
        array: ``uint8`` array of shape (H, W, 3), values 0..255, as PIL and matplotlib give them.

    Returns:
        float32 tensor of shape (1, 3, H, W) with values in [0, 1], contiguous in that layout.

    Example:
        >>> array_to_tensor(np.full((2, 4, 3), 255, dtype=np.uint8)).shape
        torch.Size([1, 3, 2, 4])
    """
    if not isinstance(array, np.ndarray) or array.ndim != 3 or array.shape[-1] != 3:
        got = f"shape {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise ValueError(f"expected an (H, W, 3) numpy array, got {got}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8 (values 0..255), got {array.dtype}")
    x = torch.from_numpy(array.astype(np.float32) / 255.0)  # (H, W, 3)
    # (1, 3, H, W), copied into that layout: a permuted view would give later gradients the same odd strides,
    # and L-BFGS, which views the gradient as one flat vector, cannot use those.
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def luminance(image: torch.Tensor) -> torch.Tensor:
    r"""The perceived brightness of each pixel, :math:`Y = 0.299 R + 0.587 G + 0.114 B`.

    Args:
        image: (N, 3, H, W), RGB.

    Returns:
        (N, 1, H, W), same dtype and device.

    Example:
        >>> luminance(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an RGB batch of shape (N, 3, H, W), got {tuple(image.shape)}")
    w = image.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)  # (1, 3, 1, 1), broadcast over N, H, W
    return (image * w).sum(dim=1, keepdim=True)  # (N, 1, H, W)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a PIL image of any mode to a float32 tensor of shape (1, 3, H, W) in [0, 1].

    Example:
        >>> pil_to_tensor(Image.new("L", (4, 2), 255)).shape
        torch.Size([1, 3, 2, 4])
    """
    return array_to_tensor(np.asarray(_to_rgb(img), dtype=np.uint8))


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Convert one image, (3, H, W) or (1, 3, H, W) in [0, 1], to an 8-bit RGB PIL image.

    Example:
        >>> tensor_to_pil(torch.ones(1, 3, 2, 4)).size
        (4, 2)
    """
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, (1, 3, H, W), got a batch of shape {tuple(image.shape)}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError("the image contains NaN or infinite values; it cannot be saved")
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)  # (3, H, W)
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) so that its longer side is ``size`` pixels, keeping the aspect ratio.

    Example:
        >>> resize_long_side(torch.zeros(1, 3, 100, 50), 40).shape
        torch.Size([1, 3, 40, 20])
    """
    if image.ndim != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new_hw == (h, w):
        return image.clone()
    return torch.nn.functional.interpolate(image, size=new_hw, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def load_image(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> torch.Tensor:
    """Load an image file as a float32 tensor of shape (1, 3, H, W) in [0, 1], RGB, upright.

    EXIF rotation is applied; grey, palette, alpha (over white), CMYK and 16-bit images become 8-bit RGB.

    Args:
        path: the image file.
        size: if given, resize so that the long side has this many pixels.
        max_pixels: refuse images with more pixels than this (checked before decoding).
        min_side: refuse images whose shorter side (after resizing) is below this.

    Returns:
        Tensor of shape (1, 3, H, W), float32, values in [0, 1].

    Raises:
        ImageError: the file is missing, not an image, truncated, too large or too small; the message
            names the file and says what to do.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "grey.png")
        >>> Image.new("L", (64, 48), 128).save(p)
        >>> load_image(p).shape
        torch.Size([1, 3, 48, 64])
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file. Check the path, or use a built-in image by name (nstlab.data).")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not an image PIL can read (is it a PNG, JPEG, ...?). Convert it or pick another file.") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{path}: the image is enormous ({err}). Downscale it before use.") from err
    except OSError as err:
        raise ImageError(f"{path}: cannot be opened ({err}).") from err
    with img:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(
                f"{path}: {w}×{h} is {w * h / 1e6:.1f} megapixels, more than the limit of {max_pixels / 1e6:.0f}. "
                "Downscale the image first, or pass a larger max_pixels if you have the memory."
            )
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            image = pil_to_tensor(img)
        except OSError as err:
            raise ImageError(f"{path}: the file is damaged or truncated ({err}). Re-download or re-export it.") from err
    if size is not None:
        if size < min_side:
            raise ImageError(f"size={size} is below the minimum of {min_side} pixels; ask for a larger size.")
        image = resize_long_side(image, size)
    short = min(image.shape[-2:])
    if short < min_side:
        raise ImageError(
            f"{path}: {image.shape[-1]}×{image.shape[-2]} pixels is too small; the shorter side must be at least "
            f"{min_side} pixels (the network halves it five times). Use a larger image or a larger size."
        )
    return image


def save_image(image: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save one image tensor, (3, H, W) or (1, 3, H, W) in [0, 1], to ``path``; the format comes from the suffix.

    Args:
        image: the image; values outside [0, 1] are clipped.
        path: where to write; missing parent folders are created.
        overwrite: replace an existing file. Without it an existing file is an error, so no work is lost.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        ImageError: the suffix is not an image format PIL can write.

    Example:
        >>> import tempfile, os
        >>> p = save_image(torch.zeros(1, 3, 8, 8), os.path.join(tempfile.mkdtemp(), "black.png"))
        >>> p.name
        'black.png'
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or pass overwrite=True (--overwrite).")
    ext = path.suffix.lower()
    if ext not in Image.registered_extensions():
        raise ImageError(f"{path}: unknown image format {ext!r}; use .png or .jpg.")
    pil = tensor_to_pil(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    # Write to a temporary file first so that an interrupted save never leaves half an image under the real name.
    pil.save(tmp, format=Image.registered_extensions()[ext], **({"quality": 95} if ext in (".jpg", ".jpeg") else {}))
    os.replace(tmp, path)
    return path
