r"""Neural style transfer by optimising the pixels: the loop of Gatys, Ecker and Bethge (2016).

Gatys et al., *Image Style Transfer Using Convolutional Neural Networks* (CVPR 2016) start from an image
:math:`\vec x` and change its pixels until it has the content of a photo :math:`\vec p` and the style of a
painting :math:`\vec a`, by minimising

.. math:: L_{total}(\vec p, \vec a, \vec x) = \alpha L_{content}(\vec p, \vec x)
          + \beta \sum_l w_l E_l(\vec a, \vec x) \; (+ \lambda_{TV} \, TV(\vec x)).

The losses are the pure functions of :mod:`nstlab.losses` (their module docstring declares the convention);
this module is the loop around them, configured by one frozen :class:`StyleConfig` whose fields carry the
paper's symbols. It adds what a practical run needs: initialisation from the content, noise or a mix;
three optimisers (``lbfgs``: torch's L-BFGS; ``lbfgsb``: scipy's L-BFGS-B with the pixels bounded to
[0, 1], as the Caffe-era code did; ``adam``); coarse-to-fine scales; colour preservation
(:mod:`nstlab.colour`); several styles blended by weight (their Gram matrices are mixed, as in Johnson's
``neural-style``); a progress bar and a callback; checkpoints that let a killed run continue; a clear stop
when the loss becomes NaN or diverges; and a memory estimate that refuses sizes that cannot fit.

Departures from the paper: layer names follow :mod:`nstlab.vgg`, where the paper's Caffe ``conv4_2`` (whose
ReLU works in place) is ``relu4_2``; images live in [0, 1] rather than Caffe's 0-255, so learning rates
quoted for 0-255 pixels are divided by 255.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nstlab import losses
from nstlab.colour import luminance_image, luminance_transfer, match_colours
from nstlab.images import MIN_SIDE, resize_long_side, save_image
from nstlab.progress import progress
from nstlab.vgg import BLOCK_WIDTHS, LAYER_NAMES, VGGFeatures, check_layers

INITS = ("content", "noise", "mix")
OPTIMIZERS = ("lbfgs", "lbfgsb", "adam")
COLOUR_MODES = (None, "luminance", "match")
# The paper's layers, in the names of nstlab.vgg (Caffe's conv4_2 is the ReLU output, our relu4_2).
PAPER_CONTENT = ("relu4_2",)
PAPER_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# Pairs (s, y) that torch's L-BFGS remembers. Its default of 100 costs 200 copies of the image in memory and
# in every checkpoint; 20 converges as fast on these problems. The paper does not say.
LBFGS_HISTORY = 20
# Pairs that scipy's L-BFGS-B remembers: scipy's default, which the Caffe-era code used.
LBFGSB_HISTORY = 10
# A run whose loss has risen at each of the last DIVERGENCE_PATIENCE steps to this far above its first value
# has diverged; carrying on wastes the user's time. (One high step is not enough: from the content image, the
# first Adam steps raise the loss legitimately.)
DIVERGENCE_FACTOR = 1e3
DIVERGENCE_PATIENCE = 5
# Share of the free memory a run may plan to use: the allocator, Python and the display need the rest.
MEMORY_HEADROOM = 0.8
# Sizes suggested by the memory estimate are rounded down to a multiple of this (five 2x2 poolings).
SIZE_STEP = 32


@dataclass(frozen=True)
class StyleConfig:
    r"""The settings of one style-transfer run, in the paper's symbols.

    Attributes:
        alpha: :math:`\alpha`, weight of the content loss.
        beta: :math:`\beta`, weight of the style loss (only the ratio :math:`\alpha/\beta` matters).
        content_layers: layers whose activations :math:`F^l` must match the photo's :math:`P^l`.
        style_layers: layers whose Gram matrices :math:`G^l` must match the painting's :math:`A^l`.
        style_layer_weights: :math:`w_l`, one per style layer; ``None`` weighs them equally (:math:`1/L`).
        tv_weight: weight of the total-variation smoothness term (0 in the paper).
        convention: a loss convention of :data:`nstlab.losses.CONVENTIONS`.
        init: ``"content"``, ``"noise"`` (uniform in [0, 1]) or ``"mix"`` (see ``init_mix``).
        init_mix: shares of (content, style, noise) in the initial image when ``init="mix"``.
        optimizer: ``"lbfgs"``, ``"lbfgsb"`` (pixels bounded to [0, 1]) or ``"adam"``.
        lr: learning rate (step length of L-BFGS; ignored by L-BFGS-B, which searches its own).
        steps: optimiser iterations at each scale.
        scale_steps: iterations for each scale instead (e.g. ``(200, 50)`` with ``scales=(0.5, 1.0)``).
        size: long side of the result in pixels; ``None`` keeps the content image's size.
        scales: fractions of ``size`` run coarse to fine, each warm-started from the last; ends with 1.0.
        pool: ``"max"`` or ``"avg"`` pooling in VGG (the paper prefers average pooling).
        arch: ``"vgg19"`` (the paper) or ``"vgg16"``.
        preserve_colour: ``None``, ``"luminance"`` (luminance-only transfer) or ``"match"`` (colour matching).
        style_blend: one weight per style image; ``None`` blends them equally.
        save_every: save the image every this many steps when ``stylize`` gets ``out_dir`` (0: never).
        seed: seed of the initial noise and of the untrained fallback network.
    """

    alpha: float = 1.0
    beta: float = 1e3
    content_layers: tuple[str, ...] = PAPER_CONTENT
    style_layers: tuple[str, ...] = PAPER_STYLE
    style_layer_weights: tuple[float, ...] | None = None
    tv_weight: float = 0.0
    convention: str = "gatys"
    init: str = "content"
    init_mix: tuple[float, float, float] = (0.4, 0.0, 0.6)
    optimizer: str = "lbfgs"
    lr: float = 1.0
    steps: int = 300
    scale_steps: tuple[int, ...] | None = None
    size: int | None = 256
    scales: tuple[float, ...] = (1.0,)
    pool: str = "max"
    arch: str = "vgg19"
    preserve_colour: str | None = None
    style_blend: tuple[float, ...] | None = None
    save_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("content_layers", "style_layers", "style_layer_weights", "init_mix", "scales", "style_blend",
                     "scale_steps"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, str):
                    value = (value,)
                object.__setattr__(self, name, tuple(value))  # accept lists; store tuples so the config hashes
        _check_config(self)


def _check_config(c: StyleConfig) -> None:
    """Raise ValueError naming the field, the problem and the fix."""
    for name in ("alpha", "beta", "tv_weight"):
        value = getattr(c, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value} must be a finite number >= 0 (it weighs a loss term).")
    if c.alpha == 0 and c.beta == 0:
        raise ValueError("alpha and beta are both 0, so there is nothing to optimise; make one of them positive.")
    check_layers(c.content_layers, arch=c.arch)
    check_layers(c.style_layers, arch=c.arch)
    if c.style_layer_weights is not None:
        if len(c.style_layer_weights) != len(c.style_layers):
            raise ValueError(f"style_layer_weights has {len(c.style_layer_weights)} entries but style_layers has "
                             f"{len(c.style_layers)}; give one weight per style layer.")
        if any(not math.isfinite(w) or w < 0 for w in c.style_layer_weights) or sum(c.style_layer_weights) <= 0:
            raise ValueError(f"style_layer_weights {c.style_layer_weights} must be >= 0 with a positive sum.")
    if c.style_blend is not None and (any(not math.isfinite(w) or w < 0 for w in c.style_blend)
                                      or sum(c.style_blend) <= 0):
        raise ValueError(f"style_blend {c.style_blend} must be >= 0 with a positive sum (one weight per style).")
    if c.convention not in losses.CONVENTIONS:
        raise ValueError(f"unknown convention {c.convention!r}; use one of {', '.join(losses.CONVENTIONS)}.")
    if c.init not in INITS:
        raise ValueError(f"unknown init {c.init!r}; use one of {', '.join(INITS)}.")
    if len(c.init_mix) != 3 or any(w < 0 for w in c.init_mix) or sum(c.init_mix) <= 0:
        raise ValueError(f"init_mix {c.init_mix} must be three shares >= 0 (content, style, noise), not all 0.")
    if c.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {c.optimizer!r}; use one of {', '.join(OPTIMIZERS)}.")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ValueError(f"lr={c.lr} must be a positive number.")
    if c.steps < 1:
        raise ValueError(f"steps={c.steps} must be at least 1.")
    if c.scale_steps is not None and (len(c.scale_steps) != len(c.scales) or min(c.scale_steps) < 1):
        raise ValueError(f"scale_steps {c.scale_steps} must give at least 1 step for each of the scales {c.scales}.")
    if c.size is not None and c.size < MIN_SIDE:
        raise ValueError(f"size={c.size} is below the minimum of {MIN_SIDE} pixels; ask for a larger size.")
    if not c.scales or c.scales[-1] != 1.0 or any(not 0 < s <= 1 for s in c.scales) or list(c.scales) != sorted(set(c.scales)):
        raise ValueError(f"scales {c.scales} must increase strictly within (0, 1] and end with 1.0, e.g. (0.5, 1.0).")
    if c.pool not in ("max", "avg"):
        raise ValueError(f"pool={c.pool!r}; use 'max' or 'avg'.")
    if c.preserve_colour not in COLOUR_MODES:
        raise ValueError(f"preserve_colour={c.preserve_colour!r}; use None, 'luminance' or 'match'.")
    if c.save_every < 0:
        raise ValueError(f"save_every={c.save_every} must be >= 0 (0 saves no intermediate images).")


PRESETS: dict[str, StyleConfig] = {
    # Gatys et al. (2016): content conv4_2, style conv1_1..conv5_1 weighted equally, alpha/beta = 1e-3,
    # average pooling, white-noise init, L-BFGS, 512 px.
    "gatys": StyleConfig(alpha=1.0, beta=1e3, init="noise", pool="avg", optimizer="lbfgs", steps=500, size=512),
    # deeplearning.ai's course notebook: alpha = 10, beta = 40, Adam with learning rate 2.0 on 0-255 pixels
    # (2/255 on ours), initial image 60 % noise + 40 % content, 400 px wide, 200 iterations.
    "deeplearning_ai": StyleConfig(alpha=10.0, beta=40.0, convention="deeplearning_ai", init="mix",
                                   init_mix=(0.4, 0.0, 0.6), optimizer="adam", lr=2.0 / 255, steps=200, size=400),
    # The Caffe-era code (fzliu/style-transfer): 95 % content + 5 % style init, scipy's L-BFGS-B with pixel
    # bounds, style/content ratio 1e5, 512 px, 512 iterations.
    "caffe": StyleConfig(alpha=1.0, beta=1e5, init="mix", init_mix=(0.95, 0.05, 0.0), optimizer="lbfgsb",
                         steps=512, size=512),
}


@dataclass(frozen=True)
class StepLosses:
    """The loss terms at one step, as floats: those of the last evaluation of the objective in that step.

    For torch's L-BFGS and Adam that is the image before the step's update; for scipy's L-BFGS-B, after it.
    """

    step: int
    scale: int
    content: float
    style: float
    tv: float
    total: float


@dataclass(frozen=True)
class StyleResult:
    """What :func:`stylize` returns.

    Attributes:
        image: the result, (1, 3, H, W) float32 in [0, 1], on the device of the computation.
        losses: one :class:`StepLosses` per step, from step 1 (including steps of a resumed run).
        steps: the steps done in all (the last step number).
        seconds: wall-clock time of this call, loading the network included.
        loop_seconds: wall-clock time of the optimisation steps alone.
        pretrained: whether the network had pretrained weights; ``False`` means the result is not meaningful.
        note: the network's note, "UNTRAINED ..." when ``pretrained`` is false.
        config: the settings used.
        start_step: the step this call started from (non-zero after ``resume``).
        stopped: ``"finished"`` or ``"callback"`` (the callback asked to stop).
    """

    image: torch.Tensor
    losses: tuple[StepLosses, ...]
    steps: int
    seconds: float
    loop_seconds: float
    pretrained: bool
    note: str
    config: StyleConfig
    start_step: int = 0
    stopped: str = "finished"

    @property
    def steps_per_second(self) -> float:
        """Steps done by this call per second of wall-clock time."""
        return (self.steps - self.start_step) / self.loop_seconds if self.loop_seconds > 0 else float("nan")


class StyleDiverged(RuntimeError):
    """The loss became NaN or infinite, or grew far above its start; the message says what to change."""


class SizeTooLarge(MemoryError):
    """The run would not fit in memory; ``size_that_fits`` is the largest long side that would."""

    def __init__(self, message: str, *, size_that_fits: int | None) -> None:
        super().__init__(message)
        self.size_that_fits = size_that_fits


# --- memory ----------------------------------------------------------------------------------------------------


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
    """Float32 bytes of one forward and backward pass through VGG up to the deepest layer, plus the rest."""
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
    activations = 2 * per_pixel * pixels * 4  # every output and its gradient, float32
    image = 3 * pixels
    state = {"lbfgs": (2 * LBFGS_HISTORY + 4) * image * 4,
             "lbfgsb": (2 * LBFGSB_HISTORY + 6) * image * 8,  # scipy works in float64
             "adam": 4 * image * 4}[optimizer]
    return int(activations + params * 4 + state + 6 * image * 4)  # + the content, style and init images


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
        (1.4, 512)
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


def output_size(content: torch.Tensor, config: StyleConfig) -> tuple[int, int]:
    """The (height, width) of the result: the content's aspect ratio with the long side ``config.size``.

    Example:
        >>> output_size(torch.zeros(1, 3, 300, 400), StyleConfig(size=256))
        (192, 256)
    """
    h, w = content.shape[-2:]
    long = config.size or max(h, w)
    return max(1, round(h * long / max(h, w))), max(1, round(w * long / max(h, w)))


# --- the pieces of a run ---------------------------------------------------------------------------------------


def initial_image(content: torch.Tensor, style: torch.Tensor, *, init: str = "content",
                  mix: tuple[float, float, float] = (0.4, 0.0, 0.6), seed: int = 0) -> torch.Tensor:
    r"""The image the optimisation starts from: :math:`x_0 = c\,p + s\,a + n\,u`, :math:`u \sim U[0, 1]`.

    Args:
        content: the photo :math:`p`, (1, 3, H, W) in [0, 1].
        style: the painting :math:`a`, (1, 3, H', W'); stretched to H x W.
        init: ``"content"`` (c = 1), ``"noise"`` (n = 1) or ``"mix"`` (the shares ``mix``, normalised to sum 1).
        mix: shares (c, s, n) for ``init="mix"``.
        seed: seed of the noise (a local generator; the global random state is untouched).

    Returns:
        (1, 3, H, W) float32 in [0, 1], on the device of ``content``.

    Example:
        >>> p, a = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 8, 8)
        >>> initial_image(p, a, init="mix", mix=(0.95, 0.05, 0.0))[0, 0, 0, 0].item()
        0.05000000074505806
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}.")
    c, s, n = {"content": (1.0, 0.0, 0.0), "noise": (0.0, 0.0, 1.0), "mix": mix}[init]
    total = c + s + n
    x = (c / total) * content
    if s:
        stretched = F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        x = x + (s / total) * stretched.clamp(0, 1)
    if n:
        u = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))  # (1, 3, H, W) on the CPU
        x = x + (n / total) * u.to(content.device)
    return x.float().clamp(0, 1)


def _check_image(image: object, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor of shape (1, 3, H, W), got {type(image).__name__}; "
                        "load files with nstlab.data.open_image.")
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"{name} must have shape (1, 3, H, W), got {tuple(image.shape)}.")
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1]; load it with nstlab.images.load_image.")
    return image


def _autocast(device: torch.device):
    """bf16 autocast on CUDA (the convolutions); a no-op elsewhere. Grams and losses stay in float32."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _features(extractor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with _autocast(x.device):
        out = extractor(x)
    return {name: f.float() for name, f in out.items()}


def _finish(x: torch.Tensor, colour_content: torch.Tensor | None) -> torch.Tensor:
    """The optimised pixels as an image: clipped to [0, 1]; with luminance-only transfer, the photo's colours back."""
    image = x.detach().float().clamp(0, 1).contiguous()
    return image if colour_content is None else luminance_transfer(image, colour_content)


def _diverged(step: int, what: str, config: StyleConfig) -> StyleDiverged:
    fixes = [f"lower beta (now {config.beta:g})"]
    if config.optimizer != "lbfgsb":
        fixes.append(f"lower the learning rate (now {config.lr:g})")
    fixes += ["try optimizer 'lbfgsb' (pixels kept in [0, 1]) or 'adam'"]
    if config.init != "content":
        fixes.append("start from the content image (init='content')")
    return StyleDiverged(f"step {step}: {what}; {', '.join(fixes)}.")


def _targets(extractor, photo: torch.Tensor, paintings: list[torch.Tensor], blend: list[float],
             config: StyleConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    r"""The content activations :math:`P^l` (1, C, H, W) and the blended style Grams :math:`A^l = \sum_k b_k A^l_k` (1, C, C)."""
    with torch.no_grad():
        P = {name: f for name, f in _features(extractor, photo).items() if name in config.content_layers}
        style_features = [_features(extractor, painting) for painting in paintings]
        A = {name: sum(b * losses.gram_matrix(f[name]) for b, f in zip(blend, style_features, strict=True))
             for name in config.style_layers}
    return P, A


def _objective(extractor, P, A, config: StyleConfig, history: list) -> Callable:
    """The function of the pixels that the optimisers minimise; it stops the run on a NaN or infinite loss."""
    weights = dict(zip(config.style_layers, config.style_layer_weights, strict=True)) if config.style_layer_weights else None

    def objective(x: torch.Tensor) -> losses.LossParts:
        parts = losses.total_loss(_features(extractor, x), P, A, image=x, alpha=config.alpha, beta=config.beta,
                                  tv_weight=config.tv_weight, style_weights=weights, convention=config.convention)
        if not torch.isfinite(parts.total):
            raise _diverged(len(history) + 1, f"the loss became {parts.total.item()} (content "
                            f"{parts.content.item():.3g}, style {parts.style.item():.3g})", config)
        return parts

    return objective


# --- optimisers: each runs steps start+1 .. stop and calls on_step(step, x, parts, state) after each ----------


def _run_torch(objective, x0, opt_state, *, config, start, stop, on_step):
    x = x0.detach().clone().requires_grad_(True)
    if config.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=config.lr)
    else:
        # One L-BFGS iteration per step (max_iter=1), as Johnson's neural-style ran it; the history carries over.
        # Zero tolerances: the step count decides when to stop, whatever the scale of the loss (an untrained
        # network's losses are tiny, and torch's defaults would stop it at once).
        opt = torch.optim.LBFGS([x], lr=config.lr, max_iter=1, history_size=LBFGS_HISTORY,
                                tolerance_grad=0.0, tolerance_change=0.0)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    last = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        parts = objective(x)
        parts.total.backward()
        last["parts"] = parts
        return parts.total

    for step in range(start + 1, stop + 1):
        opt.step(closure)
        if config.optimizer == "adam":
            with torch.no_grad():
                x.clamp_(0, 1)  # a projected step: Adam's pixels stay valid, as in the PyTorch tutorial
        if on_step(step, x.detach(), last["parts"], opt.state_dict):
            return x.detach(), True
    return x.detach(), False


def _run_lbfgsb(objective, x0, *, start, stop, on_step):
    """scipy's L-BFGS-B on the flattened float64 pixels, bounded to [0, 1]; its memory cannot be saved."""
    import numpy as np
    from scipy.optimize import Bounds, minimize

    shape, device = x0.shape, x0.device
    last, step, stopped = {}, [start], [False]

    def fun(z):
        x = torch.from_numpy(z).to(device=device, dtype=torch.float32).view(shape).requires_grad_(True)
        parts = objective(x)
        parts.total.backward()
        last["parts"] = parts
        return parts.total.item(), x.grad.double().cpu().numpy().ravel()

    def callback(intermediate_result):  # scipy passes the result object to a parameter of this exact name
        step[0] += 1
        x = torch.from_numpy(intermediate_result.x).to(device=device, dtype=torch.float32).view(shape)
        if on_step(step[0], x, last["parts"], lambda: None):
            stopped[0] = True
            raise StopIteration

    n = stop - start
    result = minimize(fun, x0.detach().double().cpu().numpy().ravel(), jac=True, method="L-BFGS-B",
                      bounds=Bounds(0.0, 1.0), callback=callback,
                      options={"maxiter": n, "maxfun": 50 * n, "maxcor": LBFGSB_HISTORY, "ftol": 0.0, "gtol": 0.0})
    x = torch.from_numpy(np.asarray(result.x)).to(device=device, dtype=torch.float32).view(shape)
    return x, stopped[0]


# --- checkpoints -----------------------------------------------------------------------------------------------

# Fields that may change between a run and its resumption without making the saved state meaningless.
RESUMABLE_CHANGES = ("steps", "save_every")


def _save_checkpoint(path: Path, **payload) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a run killed while saving leaves the previous checkpoint intact


def _load_checkpoint(path: Path, config: StyleConfig, device: torch.device) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from; start without resume.")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        ckpt["image"], ckpt["step"], ckpt["config"]  # noqa: B018 - fail here on a foreign file
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same remedy
        raise ValueError(f"{path}: not a readable nstlab checkpoint ({err}); delete it and start afresh.") from err
    saved, now = ckpt["config"], asdict(config)
    changed = [f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in now
               if k not in RESUMABLE_CHANGES and _plain(saved.get(k)) != _plain(now[k])]
    if changed:
        raise ValueError(f"{path} was saved with other settings: {', '.join(changed)}; resume with the same "
                         "settings, or start afresh without resume.")
    return ckpt


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


# --- the loop --------------------------------------------------------------------------------------------------


def stylize(content: torch.Tensor, styles: torch.Tensor | Sequence[torch.Tensor], config: StyleConfig = StyleConfig(),
            *, extractor: torch.nn.Module | None = None, backbone=None, fallback: str | None = None,
            device: str | torch.device | None = None,
            callback: Callable[[int, torch.Tensor, StepLosses], bool | None] | None = None, callback_every: int = 1,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False,
            out_dir: str | os.PathLike | None = None, show_progress: bool | None = None) -> StyleResult:
    r"""Optimise an image to have the content of ``content`` and the style of ``styles`` (Gatys et al.).

    Minimises :math:`\alpha L_{content} + \beta \sum_l w_l E_l + \lambda_{TV} TV` over the pixels, scale by scale.

    Args:
        content: the photo, (1, 3, H, W) float32 in [0, 1].
        styles: one painting (1, 3, H', W') or several; their Gram matrices are blended by ``config.style_blend``.
        config: the run's settings (see :data:`PRESETS`).
        extractor: a :class:`nstlab.vgg.VGGFeatures` with every layer of the config, on ``device``; by default
            one is built (pretrained weights, or what ``fallback`` allows).
        backbone: a :class:`nstlab.weights.Backbone` to build the extractor from, instead of loading one.
        fallback: ``"untrained"`` to accept a random network when the weights are unavailable (the result
            then says ``pretrained=False``).
        device: where to compute; default the device of ``content``.
        callback: called as ``callback(step, image, losses)`` every ``callback_every`` steps; returning
            ``True`` stops the run.
        callback_every: how often the callback is called.
        checkpoint: a file where image, optimiser state and step are saved every ``checkpoint_every`` steps
            and at the end (scipy's L-BFGS-B restarts its memory on resume).
        checkpoint_every: how often to save the checkpoint.
        resume: continue from ``checkpoint`` instead of starting afresh.
        out_dir: where images are saved every ``config.save_every`` steps (``step_00010.png``...).
        show_progress: ``None`` shows a progress bar except under nbgrader; ``False`` hides it.

    Returns:
        A :class:`StyleResult`; its image is (1, 3, H, W) with the long side ``config.size``.

    Raises:
        ValueError, TypeError: bad images, layers, weights or checkpoint; the message says what to change.
        SizeTooLarge: the run would not fit in memory; the message gives the size that would.
        StyleDiverged: the loss became NaN or infinite, or diverged.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> g = torch.Generator().manual_seed(0)
        >>> photo, painting = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
        >>> config = StyleConfig(size=32, steps=2, style_layers=("relu1_1",), content_layers=("relu2_1",))
        >>> extractor = VGGFeatures(["relu1_1", "relu2_1"], backbone=untrained_backbone())
        >>> result = stylize(photo, painting, config, extractor=extractor, show_progress=False)
        >>> result.image.shape, result.steps, result.pretrained
        (torch.Size([1, 3, 32, 32]), 2, False)
    """
    t0 = time.perf_counter()
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    if not styles:
        raise ValueError("styles is empty; give at least one style image.")
    device = torch.device(device) if device is not None else _check_image(content, "content").device
    content = _check_image(content, "content").to(device, torch.float32)
    styles = [_check_image(s, f"style image {k + 1}").to(device, torch.float32) for k, s in enumerate(styles)]
    blend = config.style_blend or (1.0,) * len(styles)
    if len(blend) != len(styles):
        raise ValueError(f"style_blend has {len(blend)} weights for {len(styles)} style images; give one per style.")
    blend = [b / sum(blend) for b in blend]
    if callback_every < 1 or checkpoint_every < 1:
        raise ValueError("callback_every and checkpoint_every must be at least 1.")
    layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))

    long = config.size or max(content.shape[-2:])
    check_memory(output_size(content, config), arch=config.arch, device=device, optimizer=config.optimizer, layers=layers)

    if extractor is None:
        from nstlab.weights import load_backbone

        backbone = backbone or load_backbone(config.arch, fallback=fallback, seed=config.seed)
        extractor = VGGFeatures(layers, arch=config.arch, pool=config.pool, backbone=backbone).to(device)
        if device.type == "cuda":
            extractor = extractor.to(memory_format=torch.channels_last)  # our own copy: channels-last convolutions
    missing = [name for name in layers if name not in getattr(extractor, "layers", ())]
    if missing:
        raise ValueError(f"the extractor does not return layer(s) {missing}; build it with all of {list(layers)}.")
    pretrained, note = bool(getattr(extractor, "pretrained", False)), str(getattr(extractor, "note", ""))

    # Colour preservation changes the images the network sees, not the loop (Gatys et al. 2016b).
    if config.preserve_colour == "match":
        styles = [match_colours(s, content) for s in styles]
    elif config.preserve_colour == "luminance":
        styles = [luminance_image(s, like=content) for s in styles]

    ends = list(itertools.accumulate(config.scale_steps or (config.steps,) * len(config.scales)))  # last step of each scale
    total_steps = ends[-1]
    history: list[StepLosses] = []
    x, opt_state, at_scale, done, stopped = None, None, 0, 0, "finished"
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs the checkpoint file to resume from.")
        ckpt = _load_checkpoint(checkpoint, config, device)
        x, opt_state, at_scale, done = ckpt["image"].to(device), ckpt["optimizer"], ckpt["scale"], ckpt["step"]
        history = [StepLosses(**h) for h in ckpt["losses"]]
    start_step = done
    ticker = iter(progress(range(done, total_steps), desc="stylize", disable=None if show_progress is not False else True))
    next(ticker, None)  # show the bar at 0; each later next() counts a finished step, the last one closes it
    t_loop = time.perf_counter()
    try:
        for scale in range(at_scale, len(config.scales)):
            size = max(1, round(long * config.scales[scale]))
            photo = resize_long_side(content, size)  # (1, 3, h_s, w_s)
            seen = luminance_image(photo) if config.preserve_colour == "luminance" else photo
            colour_content = photo if config.preserve_colour == "luminance" else None
            min_side = getattr(extractor, "min_size", 1)
            if min(photo.shape[-2:]) < min_side:
                raise ValueError(f"scale {config.scales[scale]} makes the image {photo.shape[-1]}x{photo.shape[-2]} "
                                 f"pixels, below the {min_side} pixels the deepest layer needs; drop that scale or "
                                 "raise size.")
            paintings = [resize_long_side(s, size) for s in styles]
            if x is None:
                mixed = sum(b * F.interpolate(s, size=seen.shape[-2:], mode="bilinear", align_corners=False)
                            for b, s in zip(blend, paintings, strict=True))
                x = initial_image(seen, mixed.clamp(0, 1), init=config.init, mix=config.init_mix, seed=config.seed)
            elif x.shape[-2:] != seen.shape[-2:]:  # coarse to fine: warm-start from the previous scale
                x = F.interpolate(x, size=seen.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
                opt_state = None
            stop = ends[scale]
            if done >= stop:  # resumed after this scale was finished
                continue
            P, A = _targets(extractor, seen, paintings, blend, config)
            objective = _objective(extractor, P, A, config, history)
            first: list[float] = []

            def on_step(step, x_, parts, state_fn, scale=scale, stop=stop, colour_content=colour_content, first=first):
                nonlocal done
                done = step
                record = StepLosses(step, scale, parts.content.item(), parts.style.item(), parts.tv.item(), parts.total.item())
                history.append(record)
                next(ticker, None)
                first.append(record.total)
                recent = first[-DIVERGENCE_PATIENCE - 1:]
                if (record.total > DIVERGENCE_FACTOR * first[0] and len(recent) > DIVERGENCE_PATIENCE
                        and all(a < b for a, b in zip(recent, recent[1:], strict=False))):
                    raise _diverged(step, f"the loss grew from {first[0]:.3g} to {record.total:.3g} and is still "
                                    "rising", config)
                if out_dir is not None and config.save_every and step % config.save_every == 0:
                    save_image(_finish(x_, colour_content), Path(out_dir) / f"step_{step:05d}.png", overwrite=True)
                if checkpoint is not None and (step % checkpoint_every == 0 or step == stop):
                    _save_checkpoint(checkpoint, image=x_.detach().float().contiguous(), optimizer=state_fn(), step=step,
                                     scale=scale, losses=[asdict(h) for h in history], config=asdict(config))
                return bool(callback is not None and step % callback_every == 0
                            and callback(step, _finish(x_, colour_content), record))

            if config.optimizer == "lbfgsb":
                x, halted = _run_lbfgsb(objective, x, start=done, stop=stop, on_step=on_step)
                done = stop if not halted else done  # L-BFGS-B may converge early; the scale is then complete
            else:
                x, halted = _run_torch(objective, x, opt_state, config=config, start=done, stop=stop, on_step=on_step)
            if halted:
                stopped = "callback"
                break
    finally:
        ticker.close()
    image = _finish(x, colour_content)
    t_end = time.perf_counter()
    return StyleResult(image, tuple(history), done, t_end - t0, t_end - t_loop, pretrained, note, config,
                       start_step, stopped)


def plot_result(result: StyleResult, *, content: torch.Tensor | None = None,
                styles: Sequence[torch.Tensor] = ()):
    """A figure: content, styles, result and the loss curve, with a red banner if the network was untrained.

    Returns:
        A matplotlib Figure (close it with ``plt.close(fig)``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> r = StyleResult(torch.zeros(1, 3, 8, 8), (StepLosses(1, 0, 1.0, 1.0, 0.0, 2.0),), 1, 0.2, 0.1, False,
        ...                 "UNTRAINED VGG19", StyleConfig())
        >>> fig = plot_result(r); plt.close(fig)
    """
    import matplotlib.pyplot as plt

    panels = ([("content", content)] if content is not None else []) + \
             [(f"style {k + 1}", s) for k, s in enumerate(styles)] + [("result", result.image)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3 * (len(panels) + 1), 3.4))
    for ax, (title, image) in zip(axes, panels, strict=False):
        ax.imshow(image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())  # (H, W, 3)
        ax.set_title(title)
        ax.axis("off")
    axes[-1].semilogy([h.step for h in result.losses], [h.total for h in result.losses])
    axes[-1].set_title("total loss")
    axes[-1].set_xlabel("step")
    if not result.pretrained:
        fig.suptitle(result.note or "UNTRAINED network: the result is not meaningful", color="white",
                     backgroundcolor="darkred", fontsize=9, wrap=True)
    fig.tight_layout()
    return fig
