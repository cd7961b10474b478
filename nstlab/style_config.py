r"""The settings of a style-transfer run: one frozen :class:`StyleConfig` in the symbols of Gatys et al. (2016).

A run of :func:`nstlab.stylize.stylize` is described completely by a :class:`StyleConfig`: the loss weights
:math:`\alpha`, :math:`\beta`, :math:`w_l` and :math:`\lambda_{TV}`, the layers, the initial image, the
optimiser and its schedule, the size and the colour handling. The config checks itself when it is made, so a
bad setting fails at once with a message naming the field and the fix, not minutes into a run.
:data:`PRESETS` reproduces the classic settings of the paper, the deeplearning.ai course and the Caffe-era code.

Layer names follow :mod:`nstlab.vgg`: the paper's Caffe ``conv4_2`` (whose ReLU works in place) is ``relu4_2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nstlab import losses
from nstlab.device import PRECISIONS
from nstlab.images import MIN_SIDE
from nstlab.statistics import STYLE_LOSSES
from nstlab.vgg import check_layers

INITS = ("content", "noise", "mix")
# What the content layers are pulled towards: the photo's own activations P (Gatys et al.), or
# adain(P, S), the photo's activations carrying the painting's per-channel statistics (Huang & Belongie 2017).
CONTENT_TARGETS = ("content", "adain")
OPTIMIZERS = ("lbfgs", "lbfgsb", "adam")
COLOUR_MODES = (None, "luminance", "match")
# The paper's layers, in the names of nstlab.vgg (Caffe's conv4_2 is the ReLU output, our relu4_2).
PAPER_CONTENT = ("relu4_2",)
PAPER_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# beta (with alpha = 1) for the untrained stand-in, normalised per layer (nstlab.vgg.normalise_backbone), at
# the course's small sizes: at 64-128 px and 15-50 L-BFGS steps from the photo, beta = 1e1 keeps the photo,
# 1e3 mixes in the painting's colours and grain, 1e4 stylises the photo while its layout stays readable, and
# 1e5 turns it into texture (measured on chelsea and mosaic; tests/test_fallback.py checks the trend).
STAND_IN_BETA = 1e4


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
        normalised: use the normalised VGG (:func:`nstlab.vgg.normalise_backbone`): each filter rescaled to a
            mean activation of 1, as in the paper, so that its :math:`\alpha/\beta` mean what the paper meant
            (the untrained stand-in is rescaled per layer; see :data:`STAND_IN_BETA`).
        arch: ``"vgg19"`` (the paper) or ``"vgg16"``.
        preserve_colour: ``None``, ``"luminance"`` (luminance-only transfer) or ``"match"`` (colour matching).
        style_blend: one weight per style image; ``None`` blends them equally.
        save_every: save the image every this many steps when ``stylize`` gets ``out_dir`` (0: never).
        seed: seed of the initial noise and of the untrained fallback network.
        style_loss: the statistic the style layers match (:data:`nstlab.statistics.STYLE_LOSSES`): ``"gram"``
            (Gatys et al.), ``"mean_std"`` (per-channel mean and standard deviation, Huang & Belongie) or
            ``"mmd_linear"`` (per-channel means only). The three scale differently with the activations
            (the Gram loss as their fourth power, the others as their square), so ``beta`` must be tuned
            again when it changes; the losses of each step show the balance.
        content_target: ``"content"`` (the photo's activations :math:`P^l`) or ``"adain"``
            (:math:`\mathrm{AdaIN}(P^l, S^l)` at each content layer, blended over the styles): the content
            already carries the style's statistics, so any style works without a trained decoder.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (:func:`nstlab.device.choose_precision`). With bf16
            the network's forward pass stays float32 and the gradient's way back through its convolutions
            computes in bf16 (:class:`nstlab.device.Bf16Backward`); Gram matrices, losses, the optimiser's
            state and the image stay float32 whatever it is.
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
    normalised: bool = False
    arch: str = "vgg19"
    preserve_colour: str | None = None
    style_blend: tuple[float, ...] | None = None
    save_every: int = 0
    seed: int = 0
    style_loss: str = "gram"
    content_target: str = "content"
    precision: str = "auto"

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
    if not isinstance(c.normalised, bool):
        raise ValueError(f"normalised={c.normalised!r}; use True (the paper's normalised VGG) or False.")
    if c.preserve_colour not in COLOUR_MODES:
        raise ValueError(f"preserve_colour={c.preserve_colour!r}; use None, 'luminance' or 'match'.")
    if c.style_loss not in STYLE_LOSSES:
        raise ValueError(f"unknown style_loss {c.style_loss!r}; use one of {', '.join(STYLE_LOSSES)}.")
    if c.content_target not in CONTENT_TARGETS:
        raise ValueError(f"unknown content_target {c.content_target!r}; use one of {', '.join(CONTENT_TARGETS)}.")
    if c.precision not in PRECISIONS:
        raise ValueError(f"precision={c.precision!r}; use one of {', '.join(PRECISIONS)} (auto: bf16 where the "
                         "device computes it natively, else fp32).")
    if c.save_every < 0:
        raise ValueError(f"save_every={c.save_every} must be >= 0 (0 saves no intermediate images).")


PRESETS: dict[str, StyleConfig] = {
    # Gatys et al. (2016): content conv4_2, style conv1_1..conv5_1 weighted equally, alpha/beta = 1e-3,
    # the normalised VGG19 with average pooling, white-noise init, L-BFGS, 512 px.
    "gatys": StyleConfig(alpha=1.0, beta=1e3, init="noise", pool="avg", normalised=True, optimizer="lbfgs", steps=500,
                         size=512),
    # deeplearning.ai's course notebook: alpha = 10, beta = 40, Adam with learning rate 2.0 on 0-255 pixels
    # (2/255 on ours), initial image 60 % noise + 40 % content, 400 px wide, 200 iterations.
    "deeplearning_ai": StyleConfig(alpha=10.0, beta=40.0, convention="deeplearning_ai", init="mix",
                                   init_mix=(0.4, 0.0, 0.6), optimizer="adam", lr=2.0 / 255, steps=200, size=400),
    # The Caffe-era code (fzliu/style-transfer): 95 % content + 5 % style init, scipy's L-BFGS-B with pixel
    # bounds, style/content ratio 1e5, 512 px, 512 iterations.
    "caffe": StyleConfig(alpha=1.0, beta=1e5, init="mix", init_mix=(0.95, 0.05, 0.0), optimizer="lbfgsb",
                         steps=512, size=512),
}


def output_size(content: torch.Tensor, config: StyleConfig) -> tuple[int, int]:
    """The (height, width) of the result: the content's aspect ratio with the long side ``config.size``.

    Example:
        >>> output_size(torch.zeros(1, 3, 300, 400), StyleConfig(size=256))
        (192, 256)
    """
    h, w = content.shape[-2:]
    long = config.size or max(h, w)
    return max(1, round(h * long / max(h, w))), max(1, round(w * long / max(h, w)))

