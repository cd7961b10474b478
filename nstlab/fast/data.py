"""Training photos for a fast-style network: a folder of the user's photos, or the built-in ones, as random crops.

Johnson et al. train on COCO's 80,000 photos resized to 256 x 256. A student without that download still
needs a network that trains, so :class:`TrainingImages` draws batches from either

* a **folder** (searched recursively): every file Pillow can open counts, whatever its name; files it cannot
  read (notes, truncated downloads, images too small) are skipped and counted, never a crash; a folder with
  no readable image is a clear error; or
* the **built-in photos** (:func:`nstlab.data.list_images` with role ``"content"``), with random scales, crops
  and horizontal flips, so that five photos give enough variety for a few hundred steps.

Batch ``k`` depends only on the seed and ``k``, so a run resumed from a checkpoint sees the same batches as
a run that was never interrupted.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from nstlab.images import ImageError, load_image

# Photos are decoded at most this large (long side) before cropping: a 24-megapixel photo would otherwise cost a
# second per crop; crops are at most a few hundred pixels.
MAX_SOURCE_SIDE = 1024
# Spreads the seeds of successive steps apart (a prime), so that seed s, step k and seed s + 1, step k - 1 differ.
STEP_SEED_STRIDE = 1_000_003


class NoTrainingImages(ValueError):
    """A folder holds no image that can be used for training; the message names it and says what to do."""


def _readable(path: Path) -> bool:
    """Whether Pillow recognises ``path`` as an image (reads the header only, not the pixels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.size[0] > 0 and img.size[1] > 0
    except Exception:  # noqa: BLE001 - any file Pillow cannot open is simply not a training image
        return False


def find_images(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """The image files under ``folder`` (recursively), and the files that are not readable images.

    Args:
        folder: a folder of photos, searched recursively; hidden files and folders are ignored.

    Returns:
        ``(images, skipped)``: sorted paths of the files Pillow can open, and of those it cannot.

    Raises:
        NoTrainingImages: ``folder`` is missing, not a folder, or holds no readable image.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (40, 40)).save(d / "a.png"); _ = (d / "notes.txt").write_text("hello")
        >>> images, skipped = find_images(d)
        >>> [p.name for p in images], [p.name for p in skipped]
        (['a.png'], ['notes.txt'])
    """
    folder = Path(folder)
    if not folder.exists():
        raise NoTrainingImages(f"{folder}: no such folder; give a folder of photos, or no folder to train on the "
                               "built-in images.")
    if not folder.is_dir():
        raise NoTrainingImages(f"{folder}: is a file, not a folder; give the folder that holds the photos.")
    images, skipped = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            (images if _readable(path) else skipped).append(path)
    if not images:
        what = f"{len(skipped)} file(s), none of them an image Pillow can read" if skipped else "no files"
        raise NoTrainingImages(f"{folder}: {what}; put photos (JPEG, PNG, ...) in it, or train on the built-in "
                               "images by giving no folder.")
    return images, skipped


def _resize_short_side(image: torch.Tensor, side: int) -> torch.Tensor:
    """Resize (1, 3, H, W) so that its shorter side is ``side`` pixels (antialiased when shrinking)."""
    H, W = image.shape[-2:]
    scale = side / min(H, W)
    size = (max(side, round(H * scale)), max(side, round(W * scale)))
    return F.interpolate(image, size=size, mode="bilinear", antialias=scale < 1, align_corners=False).clamp(0, 1)


@dataclass
class TrainingImages:
    """Random square crops of photos, batch by batch, reproducible from a seed.

    Args:
        folder: a folder of photos (recursive), or ``None`` for the built-in photos.
        size: the side of the crops, in pixels.
        scale_range: (smallest, largest) random scale of a photo before cropping, relative to its size with the
            short side at ``source_scale`` times ``size``.
        source_scale: how many crop sides the short side of a photo spans at scale 1.
        seed: the seed of every random choice.

    Attributes:
        paths: the photos used (files or built-in names).
        skipped: files that could not be used; grows when a file fails to decode during training.
        source: ``"built-in images"`` or the folder, for logs and the model file.

    Example:
        >>> images = TrainingImages(None, size=32, seed=0)
        >>> images.batch(0, 2).shape, images.source
        (torch.Size([2, 3, 32, 32]), 'built-in images')
        >>> torch.equal(images.batch(5, 2), TrainingImages(None, size=32, seed=0).batch(5, 2))
        True
    """

    folder: str | os.PathLike | None
    size: int
    scale_range: tuple[float, float] = (0.6, 1.0)
    source_scale: float = 2.0
    seed: int = 0
    paths: list = field(init=False)
    skipped: list = field(init=False)
    source: str = field(init=False)

    def __post_init__(self) -> None:
        self._cache: dict[object, torch.Tensor] = {}
        if self.folder is None:
            from nstlab.data import list_images

            self.paths, self.skipped, self.source = list_images("content"), [], "built-in images"
        else:
            self.paths, self.skipped = find_images(self.folder)
            self.source = str(self.folder)

    def _load(self, index: int) -> torch.Tensor | None:
        """The photo ``paths[index]`` with its short side at ``source_scale * size``; ``None`` if unusable."""
        key = self.paths[index]
        if key in self._cache:
            return self._cache[key]
        try:
            if self.folder is None:
                from nstlab.data import builtin_image

                image = builtin_image(key)
            else:
                image = load_image(key)  # below 32 px on the short side: skipped like unreadable files
                if max(image.shape[-2:]) > MAX_SOURCE_SIDE:
                    image = _resize_short_side(image, round(MAX_SOURCE_SIDE * min(image.shape[-2:])
                                                            / max(image.shape[-2:])))
        except ImageError:
            return None
        image = _resize_short_side(image, round(self.source_scale * self.size))
        if self.folder is None or len(self.paths) <= 64:  # few photos: keep them decoded
            self._cache[key] = image
        return image

    def crop(self, generator: torch.Generator) -> torch.Tensor:
        """One random crop (1, 3, size, size): a photo, a scale, a position and a flip, drawn from ``generator``."""
        while self.paths:
            index = int(torch.randint(len(self.paths), (1,), generator=generator))
            image = self._load(index)
            if image is None:  # unreadable after all (truncated, too small): skip it for good and count it
                self.skipped.append(self.paths.pop(index))
                continue
            lo, hi = self.scale_range
            scale = lo + (hi - lo) * float(torch.rand((), generator=generator))
            short = max(self.size, round(scale * min(image.shape[-2:])))
            image = _resize_short_side(image, short) if short != min(image.shape[-2:]) else image
            H, W = image.shape[-2:]
            top = int(torch.randint(H - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(W - self.size + 1, (1,), generator=generator))
            out = image[:, :, top:top + self.size, left:left + self.size]  # (1, 3, size, size)
            if float(torch.rand((), generator=generator)) < 0.5:
                out = out.flip(-1)  # a mirrored photo is as good a photo
            return out
        raise NoTrainingImages(f"{self.source}: none of its images could be read; {len(self.skipped)} file(s) "
                               "were skipped. Check the photos, or train on the built-in images.")

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The batch of step ``step``: (batch_size, 3, size, size) in [0, 1], the same for the same seed and step."""
        generator = torch.Generator().manual_seed(self.seed * STEP_SEED_STRIDE + step)
        return torch.cat([self.crop(generator) for _ in range(batch_size)])  # (batch_size, 3, size, size)
