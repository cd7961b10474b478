"""What the image-showing demos share: tensors to bytes for an ``ipywidgets.Image``, and durations in words.

The style panel, the dream explorer and the before/after slider all show (1, 3, H, W) images in [0, 1],
enlarged to a fixed width, with a red strip across the top when the network behind them is the untrained
stand-in. Keeping the drawing here means the strip looks and reads the same in every demo.
"""

from __future__ import annotations

import io

import torch
from PIL import Image, ImageDraw

# Height in pixels of the red strip that marks images made with the untrained stand-in network.
STRIP_HEIGHT = 14
STRIP_COLOUR = (176, 0, 0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A float image in [0, 1] as uint8 on the CPU, same shape (values outside [0, 1] are clipped).

    Example:
        >>> to_uint8(torch.tensor([[[[0.0, 0.5, 2.0]]]])).tolist()
        [[[[0, 128, 255]]]]
    """
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def image_png(image: torch.Tensor, *, width: int, banner: str | None = None, smooth: bool = False) -> bytes:
    """PNG bytes of a (1, 3, H, W) image (uint8, or float in [0, 1]) resized to ``width`` pixels.

    Args:
        image: the image; only the first of the batch is drawn.
        width: the width of the PNG; the height keeps the aspect ratio.
        banner: text of a red strip across the top (for the untrained stand-in), or ``None`` for none.
        smooth: bilinear resizing (photos shown large); nearest-neighbour otherwise, so that small results
            enlarge into visible pixels instead of a blur.

    Example:
        >>> image_png(torch.zeros(1, 3, 8, 8), width=16, banner="UNTRAINED")[:4]
        b'\\x89PNG'
    """
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    img = Image.fromarray(image[0].permute(1, 2, 0).cpu().numpy())  # (H, W, 3)
    resample = Image.BILINEAR if smooth else Image.NEAREST
    img = img.resize((width, max(1, round(img.height * width / img.width))), resample)
    if banner:
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 0, img.width, STRIP_HEIGHT), fill=STRIP_COLOUR)
        draw.text((4, 1), banner, fill=(255, 255, 255))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def duration(seconds: float) -> str:
    """A duration for an estimate printed before long work: seconds below 90 s, whole minutes above.

    Example:
        >>> duration(42.3), duration(600)
        ('42 s', '10 min')
    """
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
