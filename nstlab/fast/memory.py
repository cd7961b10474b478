"""How much memory training or applying a fast-style network needs, so that a size that cannot fit is refused.

Training keeps, for every image of a batch, the transform network's activations and the loss network's (VGG16
up to the deepest loss layer) for the backward pass, and their gradients; applying keeps only a few of the
transform network's maps at once. Rather than let torch die with an out-of-memory error (or push a laptop into
swap), :func:`check_training_memory` and :func:`check_apply_memory` compare an estimate with the free memory
of the device and raise :class:`nstlab.memory.SizeTooLarge` naming a size that fits. The VGG part reuses
the estimate of :func:`nstlab.memory.estimate_memory`, which ``benchmarks/bench_memory.py`` compares with measured peaks.
"""

from __future__ import annotations

import torch

from nstlab.fast.config import FastConfig
from nstlab.memory import MEMORY_HEADROOM, RUNTIME_BYTES, SIZE_STEP, SizeTooLarge, _available_bytes, _needed_bytes


def _net_maps_per_pixel(width: int, blocks: int) -> float:
    """Float32 maps per input pixel that a training pass of the transform network keeps for its backward pass.

    At full size the stem and the last upsampling (conv, norm, ReLU: 3 maps of w each, plus the upsampled 2w),
    at a quarter of the pixels the 2w stages, at a sixteenth the 4w stages and six maps per residual block.
    """
    full = 3 * width + 2 * width + 3 * width + 3
    quarter = (3 * 2 * width + 4 * width + 3 * 2 * width) / 4
    sixteenth = (3 * 4 * width + 6 * 4 * width * blocks) / 16
    return full + quarter + sixteenth


def training_bytes(config: FastConfig, size: int | None = None) -> int:
    """Estimated bytes of one training step of ``config`` (at crop side ``size``, default ``config.size``).

    Example:
        >>> from nstlab.fast.config import fast_config
        >>> round(training_bytes(fast_config("fast")) / 2**20)  # MiB, about
        493
    """
    side = config.size if size is None else size
    # nstlab.memory's estimate for one image through VGG16 (activations and gradients, weights, Adam's state of
    # one image's size, which stands in for the transform network's), less its fixed part, counted once below.
    vgg = _needed_bytes(side, side, arch="vgg16", layers=config.layers, optimizer="adam") - RUNTIME_BYTES
    net = 2 * _net_maps_per_pixel(config.width, config.blocks) * side * side * 4  # activations and gradients
    return int(config.batch_size * (2 * vgg + net) + RUNTIME_BYTES)  # VGG runs on the output and on the input


def apply_bytes(settings: dict, height: int, width: int) -> int:
    """Estimated bytes of applying a network with ``settings`` to one (height x width) image, without gradient.

    Example:
        >>> round(apply_bytes({"width": 32, "blocks": 5}, 1024, 1024) / 2**20)
        728
    """
    w = settings["width"]
    # The widest moment: the upsampled 2w map, its padded copy and the w-channel convolution output, at full size.
    return int((2 * w + 2 * w + w + 2 * 3) * height * width * 4 + RUNTIME_BYTES // 2)


def _refuse(needed: int, device: torch.device, what: str, advice: str) -> None:
    available = _available_bytes(device)
    if available is not None and needed > MEMORY_HEADROOM * available:
        raise SizeTooLarge(f"{what} needs about {needed / 2**30:.1f} GiB on {device}, but only "
                           f"{available / 2**30:.1f} GiB are free ({MEMORY_HEADROOM:.0%} of it usable); {advice}.",
                           size_that_fits=None)


def check_training_memory(config: FastConfig, device: str | torch.device = "cpu") -> int:
    """Raise :class:`nstlab.memory.SizeTooLarge` if a training step of ``config`` cannot fit; return the estimate.

    Example:
        >>> from nstlab.fast.config import fast_config
        >>> check_training_memory(fast_config("grade")) > 0
        True
    """
    device = torch.device(device)
    needed = training_bytes(config)
    available = _available_bytes(device)
    if available is None or needed <= MEMORY_HEADROOM * available:
        return needed
    fits = next((s for s in range(config.size - config.size % SIZE_STEP, SIZE_STEP - 1, -SIZE_STEP)
                 if training_bytes(config, s) <= MEMORY_HEADROOM * available), None)
    advice = (f"use --size {fits} or a smaller --batch-size" if fits else "use a smaller --batch-size or free memory")
    _refuse(needed, device, f"training on {config.size}-px crops in batches of {config.batch_size}", advice)
    return needed


def check_apply_memory(settings: dict, height: int, width: int, device: str | torch.device = "cpu") -> int:
    """Raise :class:`nstlab.memory.SizeTooLarge` if applying the network to a (height x width) image cannot fit.

    Example:
        >>> check_apply_memory({"width": 16, "blocks": 3}, 256, 256) > 0
        True
    """
    needed = apply_bytes(settings, height, width)
    _refuse(needed, torch.device(device), f"a {width}x{height} image", "resize it with --size (the long side)")
    return needed
