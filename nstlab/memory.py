"""How much memory a style-transfer run needs, and the largest image that fits.

Optimising the pixels keeps every activation of VGG up to the deepest layer used, and its gradient, alive at
once; at 512 pixels that is over a gigabyte, and it grows with the square of the side. Rather than let a run
die deep inside torch with an out-of-memory error (or push a laptop into swap), :func:`check_memory` adds up
the float32 activations and gradients layer by layer, the weights and the optimiser's state, compares the sum
with the free memory of the device, and refuses a size that cannot fit, naming one that would.
The estimate is compared with measured peaks in ``benchmarks/bench_stylize.py`` (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nstlab.optimise import LBFGS_HISTORY, LBFGSB_HISTORY
from nstlab.style_config import OPTIMIZERS, PAPER_CONTENT, PAPER_STYLE
from nstlab.vgg import BLOCK_WIDTHS, LAYER_NAMES, check_layers

# Share of the free memory a run may plan to use: the allocator, Python and the display need the rest.
MEMORY_HEADROOM = 0.8
# Sizes suggested by the memory estimate are rounded down to a multiple of this (five 2x2 poolings).
SIZE_STEP = 32
# scipy.optimize's code and data, loaded by the first L-BFGS-B run (measured: 40 MiB of resident memory).
SCIPY_BYTES = 48 * 2**20
# Float64 vectors of the image's size that a run of scipy's L-BFGS-B keeps besides its 2 m remembered ones:
# its workspace (5), the pixels, gradient and bounds, and the copies scipy's wrappers and ours make. Fitted to
# the peaks measured by benchmarks/bench_memory.py at 256 and 512 pixels (see docs/benchmarks.md).
LBFGSB_EXTRA_VECTORS = 45
# What a run needs whatever its size: the allocator's caches and the convolutions' scratch space. The measured
# peaks exceed activations, weights and state by up to 90 MiB at 256 pixels; this leaves a margin over that.
RUNTIME_BYTES = 128 * 2**20


class SizeTooLarge(MemoryError):
    """The run would not fit in memory; ``size_that_fits`` is the largest long side that would."""

    def __init__(self, message: str, *, size_that_fits: int | None) -> None:
        super().__init__(message)
        self.size_that_fits = size_that_fits



@dataclass(frozen=True)
class MemoryEstimate:
    """How much memory a run needs and how much is free.

    Attributes:
        height, width: the image size the estimate is for.
        needed_bytes: the estimate (activations and their gradients in float32, weights, optimiser state).
        available_bytes: free memory on the device, or ``None`` where it cannot be measured.
        size_that_fits: the largest long side (a multiple of 32) that fits, or ``None`` if unknown or none.
    """

    height: int
    width: int
    needed_bytes: int
    available_bytes: int | None
    size_that_fits: int | None

    @property
    def fits(self) -> bool:
        """True unless the estimate exceeds the usable share of the free memory."""
        return self.available_bytes is None or self.needed_bytes <= MEMORY_HEADROOM * self.available_bytes


def _available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` in bytes, or None where it cannot be measured."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        except (AttributeError, RuntimeError):
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _needed_bytes(height: int, width: int, *, arch: str, layers: Sequence[str], optimizer: str) -> int:
    """Bytes of one forward and backward pass through VGG up to the deepest layer, plus the optimiser and the rest."""
    names = LAYER_NAMES[arch]
    depth = max(names.index(name) for name in layers) + 1
    widths = [w for block in BLOCK_WIDTHS[arch] for w in block]
    per_pixel, area, params, c_in, conv = 0.0, 1, 0, 3, 0
    for name in names[:depth]:
        if name.startswith("pool"):
            area *= 4
            per_pixel += c_in / area
        elif name.startswith("conv"):
            params += 9 * c_in * widths[conv] + widths[conv]
            c_in = widths[conv]
            conv += 1
            per_pixel += c_in / area
        else:
            per_pixel += c_in / area
    pixels = height * width
    # Autograd keeps every layer's output for the backward pass; the gradients are freed as the pass goes
    # back, so at most two of them (the widest layer's, 64 channels at full size) are alive at once.
    activations = per_pixel * pixels * 4 + 2 * widths[0] * pixels * 4  # float32
    image = 3 * pixels
    state = {"lbfgs": (2 * LBFGS_HISTORY + 4) * image * 4,
             "lbfgsb": (2 * LBFGSB_HISTORY + LBFGSB_EXTRA_VECTORS) * image * 8 + SCIPY_BYTES,  # scipy: float64
             "adam": 4 * image * 4}[optimizer]
    # + the content, style and initial images and their resized copies
    return int(activations + params * 4 + state + 6 * image * 4 + RUNTIME_BYTES)


def estimate_memory(size: int | tuple[int, int], *, arch: str = "vgg19", device: str | torch.device = "cpu",
                    optimizer: str = "lbfgs", layers: Sequence[str] = PAPER_CONTENT + PAPER_STYLE) -> MemoryEstimate:
    """Estimate the memory a style-transfer run needs on ``device``, and the largest size that would fit.

    Args:
        size: the long side of a square image, or ``(height, width)``.
        arch: ``"vgg19"`` or ``"vgg16"``.
        device: where the run would compute.
        optimizer: one of ``"lbfgs"``, ``"lbfgsb"``, ``"adam"`` (their states differ a lot).
        layers: the layers used; the deepest one sets how much of VGG runs.

    Returns:
        A :class:`MemoryEstimate`.

    Example:
        >>> est = estimate_memory(512, device="cpu")
        >>> round(est.needed_bytes / 2**30, 1), est.height
        (1.0, 512)
    """
    height, width = (size, size) if isinstance(size, int) else size
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
    layers = check_layers(layers, arch=arch)
    need = _needed_bytes(height, width, arch=arch, layers=layers, optimizer=optimizer)
    available = _available_bytes(torch.device(device))
    fits_at = None
    if available is not None:
        long = max(height, width)
        for side in range(long - long % SIZE_STEP, SIZE_STEP - 1, -SIZE_STEP):
            h, w = max(1, round(height * side / long)), max(1, round(width * side / long))
            if _needed_bytes(h, w, arch=arch, layers=layers, optimizer=optimizer) <= MEMORY_HEADROOM * available:
                fits_at = side
                break
    return MemoryEstimate(height, width, need, available, fits_at)


def check_memory(size: int | tuple[int, int], **kwargs) -> MemoryEstimate:
    """:func:`estimate_memory`, raising :class:`SizeTooLarge` (with the size that would fit) if it does not fit.

    Example:
        >>> check_memory(64).fits
        True
    """
    est = estimate_memory(size, **kwargs)
    if not est.fits:
        device = kwargs.get("device", "cpu")
        advice = (f"use size {est.size_that_fits} (--size {est.size_that_fits})" if est.size_that_fits
                  else "free memory or use a machine with more")
        raise SizeTooLarge(
            f"a {est.width}x{est.height} image needs about {est.needed_bytes / 2**30:.1f} GiB on {device}, but only "
            f"{est.available_bytes / 2**30:.1f} GiB are free ({MEMORY_HEADROOM:.0%} of it usable); {advice}.",
            size_that_fits=est.size_that_fits)
    return est
