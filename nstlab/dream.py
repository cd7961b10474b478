r"""DeepDream: gradient *ascent* on the image, amplifying what a layer of the network already sees.

Mordvintsev, Olah & Tyka (2015), "Inceptionism: going deeper into neural networks" (and their ``deepdream``
notebook). Style transfer (:mod:`nstlab.stylize`) moves the pixels *down* a loss; DeepDream moves them *up*
an objective :math:`J(\vec x)` of one layer :math:`l` of the network, so whatever the layer faintly detects
in the image becomes stronger: edges and textures in early layers, eyes and object parts in late ones. With
:math:`F = F^l(\vec x)` of shape (N, C, H, W) (:mod:`nstlab.vgg`),

.. math::

    J_{mean}(\vec x) = \frac{1}{N C H W} \sum F \qquad\text{or}\qquad
    J_{L2}(\vec x) = \tfrac12 \sum F^2 \qquad\text{(of one channel } c \text{ only, when asked)}

and a step normalises the gradient by its mean absolute value, so that the step size :math:`\eta` means the
same at every layer, octave and image:

.. math::

    g = \nabla_{\vec x} J, \qquad \vec x \leftarrow \mathrm{clip}_{[0,1]}\!\left(\vec x + \eta \,
    \frac{g}{\overline{|g|} + 10^{-8}}\right).

Two tricks make the pictures: **jitter**, a random roll of the image by up to ``jitter`` pixels before each
step and back after it (the network's grid of strides otherwise prints a checkerboard), and **octaves**: the
image is dreamed at sizes growing by ``octave_scale`` (about 1.4), coarse to fine; after each octave the
*detail* it added, :math:`\vec x_{dreamed} - \vec x_{base}`, is upsampled and added to the next octave's base,
so that large structures grow at the small sizes and fine ones at the large.

A **guide** image replaces :math:`J` by the match of the image's features with the guide's: each position
:math:`i` of the image takes the guide feature :math:`g_j` most similar to it, and
:math:`J_{guide} = \frac{1}{M}\sum_i \max_j f_i^\top g_j` (as in the original notebook's ``objective_guide``).

Departures from the original: VGG19 (Simonyan & Zisserman 2015) with the layer names of :mod:`nstlab.vgg`
instead of GoogLeNet's inception layers; pixels in [0, 1] (clipped after every step) rather than mean-subtracted
0-255 values; jitter by ``torch.roll``, so pixels that leave one edge come back at the other and the undo is
exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from nstlab.device import PRECISIONS, autocast, channels_last, choose_precision
from nstlab.images import resize_long_side
from nstlab.progress import progress as progress_bar
from nstlab.vgg import BLOCK_WIDTHS, check_layers

OBJECTIVES = ("mean", "l2")
# Below 32 pixels on the short side VGG's deeper layers have (almost) no positions left; see nstlab.images.
MIN_OCTAVE_SIDE = 32
# Added to the mean absolute gradient so that a zero gradient (a dead channel) gives a zero step, not NaN.
GRAD_EPS = 1e-8


@dataclass(frozen=True)
class DreamConfig:
    r"""The settings of one DeepDream run.

    Attributes:
        layer: the VGG19 layer whose activations are amplified, e.g. ``"relu4_2"`` (see :mod:`nstlab.vgg`).
        channel: one channel of that layer to amplify, or ``None`` for all of them (with a guide, it applies to
            the plain part of the objective, so it needs ``guide_weight < 1``).
        objective: ``"mean"`` (:math:`J_{mean}`) or ``"l2"`` (:math:`J_{L2}`).
        octaves: the number of octaves (image sizes); fewer are run where the smallest would drop below 32 px.
        octave_scale: the ratio between successive octave sizes (Mordvintsev et al. use 1.4).
        steps: ascent steps per octave.
        step_size: :math:`\eta`, in units of the mean absolute gradient (pixels are in [0, 1]).
        jitter: the largest random shift, in pixels, along each axis before each step (0: none).
        guide_weight: with a guide image, the share of :math:`J_{guide}` in the objective,
            :math:`(1 - w) J + w J_{guide}` (1: the guide alone, as in the original).
        seed: seed of the jitter (and of the untrained network, when that is used).
        size: long side of the result in pixels; ``None`` keeps the image's size.
        arch: ``"vgg19"`` or ``"vgg16"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` for the network passes
            (:func:`nstlab.device.choose_precision`); the objective, its gradient's normalisation and the image
            stay float32.
    """

    layer: str = "relu4_2"
    channel: int | None = None
    objective: str = "mean"
    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10
    step_size: float = 0.01
    jitter: int = 32
    guide_weight: float = 1.0
    seed: int = 0
    size: int | None = 256
    arch: str = "vgg19"
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_layers([self.layer], arch=self.arch)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; use one of {', '.join(PRECISIONS)} (auto: bf16 where "
                             "the device computes it natively, else fp32).")
        if self.channel is not None:
            channels = layer_channels(self.layer, arch=self.arch)
            if isinstance(self.channel, bool) or not isinstance(self.channel, int) or not 0 <= self.channel < channels:
                raise ValueError(f"channel {self.channel!r} is out of range for {self.layer}, which has {channels} "
                                 f"channels; give one of 0..{channels - 1} (or no channel, for all of them).")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; use one of {', '.join(map(repr, OBJECTIVES))}.")
        if self.octaves < 1:
            raise ValueError(f"octaves={self.octaves} must be at least 1.")
        if not (math.isfinite(self.octave_scale) and self.octave_scale > 1):
            raise ValueError(f"octave_scale={self.octave_scale} must be a number above 1, such as 1.4.")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be at least 1.")
        if not (math.isfinite(self.step_size) and self.step_size > 0):
            raise ValueError(f"step_size={self.step_size} must be a positive number, such as 0.01.")
        if self.jitter < 0:
            raise ValueError(f"jitter={self.jitter} must be >= 0 pixels (0 turns it off).")
        if not 0 <= self.guide_weight <= 1:
            raise ValueError(f"guide_weight={self.guide_weight} must be between 0 and 1.")
        if self.size is not None and self.size < MIN_OCTAVE_SIDE:
            raise ValueError(f"size={self.size} is below the minimum of {MIN_OCTAVE_SIDE} pixels; ask for a larger size.")


# Per profile (nstlab.profiles): a few seconds a picture on a CPU (fast), the papers' sizes (full), tiny (grade).
PROFILE_SETTINGS = {
    "fast": {"size": 256, "octaves": 4, "steps": 10},
    "full": {"size": 512, "octaves": 5, "steps": 20},
    "grade": {"size": 64, "octaves": 2, "steps": 3, "jitter": 8},
}


def dream_config(profile: str | None = None, **overrides) -> DreamConfig:
    """The :class:`DreamConfig` of a profile (``"fast"``, ``"full"``, ``"grade"``; ``None``: the active one).

    Example:
        >>> c = dream_config("grade", layer="relu3_1")
        >>> c.size, c.octaves, c.steps, c.layer
        (64, 2, 3, 'relu3_1')
    """
    from nstlab.profiles import get_profile

    chosen = get_profile(profile)
    return replace(DreamConfig(seed=chosen.seed, **PROFILE_SETTINGS[chosen.name]), **overrides)


def layer_channels(layer: str, *, arch: str = "vgg19") -> int:
    """The number of channels C of a named VGG layer.

    Example:
        >>> layer_channels("relu4_2"), layer_channels("pool1")
        (512, 64)
    """
    check_layers([layer], arch=arch)
    block = int(layer.removeprefix("pool")) if layer.startswith("pool") else int(layer[4])
    widths = BLOCK_WIDTHS[arch][block - 1]
    return widths[-1] if layer.startswith("pool") else widths[int(layer.split("_")[1]) - 1]


def _check_image(image: object, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor of shape (1, 3, H, W), got {type(image).__name__}; "
                        "load files with nstlab.data.open_image.")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(image.shape)}; add a batch dimension "
                         f"with {name}[None] or convert grey/RGBA images to RGB.")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {image.dtype}; use .float() / 255.")
    return image


def dream_objective(features: torch.Tensor, *, channel: int | None = None, kind: str = "mean") -> torch.Tensor:
    r"""The DeepDream objective of a layer's activations: their mean, or half their squared L2 norm.

    ``"mean"``: :math:`\frac{1}{N C H W}\sum F` (with ``channel``: :math:`\frac{1}{N H W}\sum F_{:, c}`);
    ``"l2"``: :math:`\tfrac12 \sum F^2` (with ``channel``: :math:`\tfrac12 \sum F_{:, c}^2`), whose gradient with
    respect to :math:`F` is :math:`F` itself, the original notebook's ``objective_L2``.

    Args:
        features: activations of shape (N, C, H, W).
        channel: one channel c to use, or ``None`` for all of them.
        kind: ``"mean"`` or ``"l2"``.

    Returns:
        A 0-dim tensor.

    Example:
        >>> F = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # (1, 2, 1, 2)
        >>> dream_objective(F).item(), dream_objective(F, channel=0, kind="l2").item()
        (2.0, 5.0)
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must have shape (N, C, H, W), got {got}; add a batch dimension with features[None].")
    if kind not in OBJECTIVES:
        raise ValueError(f"unknown objective kind {kind!r}; use one of {', '.join(map(repr, OBJECTIVES))}.")
    if channel is not None:
        C = features.shape[1]
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < C:
            raise ValueError(f"channel {channel!r} is out of range: the features have {C} channels (0..{C - 1}).")
        features = features[:, channel]  # (N, H, W)
    return features.mean() if kind == "mean" else 0.5 * (features**2).sum()


def guide_objective(features: torch.Tensor, guide_features: torch.Tensor) -> torch.Tensor:
    r"""How well each position's features match their best match in a guide: :math:`\frac1M\sum_i \max_j f_i^\top g_j`.

    Args:
        features: the image's activations, (1, C, H, W).
        guide_features: the guide's activations at the same layer, (1, C, H', W').

    Returns:
        A 0-dim tensor; its gradient moves each position towards its best-matching guide feature.

    Example:
        >>> f = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # positions (1, 0) and (0, 1)
        >>> g = torch.tensor([[[[2.0]], [[1.0]]]])              # one guide position (2, 1)
        >>> guide_objective(f, g).item()  # (2 + 1) / 2
        1.5
    """
    if features.ndim != 4 or guide_features.ndim != 4 or features.shape[:2] != guide_features.shape[:2] \
            or features.shape[0] != 1:
        raise ValueError(f"features {tuple(features.shape)} and guide_features {tuple(guide_features.shape)} must "
                         "both be (1, C, H, W) from the same layer.")
    X = features[0].flatten(1)  # (C, M)
    G = guide_features[0].flatten(1)  # (C, M')
    return (X.T @ G).max(dim=1).values.mean()  # (M, M') -> best guide match per position -> mean


def _ascent(image: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor], step_size: float,
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One normalised ascent step; returns the new image and the objective at the old one (both detached)."""
    x = image.detach().clone().requires_grad_(True)
    value = objective(x)
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"the objective must return a 0-dim tensor, got {got}; reduce it with .mean() or .sum().")
    (g,) = torch.autograd.grad(value, x)
    return (x.detach() + step_size * g / (g.abs().mean() + GRAD_EPS)).clamp(0, 1), value.detach()


def ascent_step(image: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor], *,
                step_size: float) -> torch.Tensor:
    r"""One normalised gradient-ascent step: :math:`\mathrm{clip}_{[0,1]}(x + \eta\, g / (\overline{|g|} + 10^{-8}))`.

    Args:
        image: images of shape (N, 3, H, W) in [0, 1]; not modified.
        objective: a function from images to a 0-dim tensor, :math:`J`.
        step_size: :math:`\eta`.

    Returns:
        A new, detached tensor of the shape of ``image``, in [0, 1].

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> y = ascent_step(x, lambda x: (x * torch.tensor([1.0, 3.0, 0.0])[:, None, None]).sum(), step_size=0.1)
        >>> [round(v, 3) for v in y[0, :, 0, 0].tolist()]  # |g| averages 4/3: steps 0.075, 0.225, 0
        [0.575, 0.725, 0.5]
    """
    return _ascent(_check_image(image, "image"), objective, step_size)[0]


def jitter(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Roll images by ``dx`` pixels to the right and ``dy`` down; ``jitter(jitter(x, dx, dy), -dx, -dy)`` is ``x``.

    Args:
        image: (N, C, H, W).
        dx, dy: shifts along W and H (negative: left, up); pixels leaving one edge enter at the other.

    Returns:
        A new tensor of the same shape.

    Example:
        >>> x = torch.arange(3.0).view(1, 1, 1, 3)
        >>> jitter(x, 1, 0).flatten().tolist()
        [2.0, 0.0, 1.0]
    """
    if image.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(image.shape)}.")
    return torch.roll(image, shifts=(int(dy), int(dx)), dims=(-2, -1))


def octave_sizes(height: int, width: int, *, octaves: int = 4, scale: float = 1.4) -> list[tuple[int, int]]:
    """The (height, width) of each octave, coarse to fine, the last being (height, width).

    Octave k from the end is the size divided by ``scale**k``, rounded. Octaves whose short side would fall
    below 32 pixels (:data:`MIN_OCTAVE_SIDE`) are left out, so a small image gets fewer octaves than asked.

    Raises:
        ValueError: the image's own short side is below 32 pixels, or ``octaves < 1`` or ``scale <= 1``.

    Example:
        >>> octave_sizes(256, 192, octaves=4, scale=1.4)
        [(93, 70), (131, 98), (183, 137), (256, 192)]
        >>> octave_sizes(48, 64, octaves=4)  # 48 / 1.4 = 34 still fits; 48 / 1.96 = 24 does not
        [(34, 46), (48, 64)]
    """
    if octaves < 1 or not scale > 1:
        raise ValueError(f"octaves={octaves} must be at least 1 and scale={scale} above 1.")
    if min(height, width) < MIN_OCTAVE_SIDE:
        raise ValueError(f"an image of {width}x{height} pixels is too small to dream on; the short side must be at "
                         f"least {MIN_OCTAVE_SIDE} pixels.")
    sizes = [(round(height / scale**k), round(width / scale**k)) for k in range(octaves - 1, -1, -1)]
    return [s for s in sizes if min(s) >= MIN_OCTAVE_SIDE]


@dataclass(frozen=True)
class DreamResult:
    """What :func:`dream` returns.

    Attributes:
        image: the dream, (1, 3, H, W) float32 in [0, 1], on the input's device.
        history: the objective before each step, in order (all octaves).
        sizes: the (height, width) of each octave run, coarse to fine.
        pretrained: whether the network had pretrained weights; ``False`` means the result is not meaningful.
        note: the network's note ("UNTRAINED ..." when ``pretrained`` is false), for banners and logs.
        config: the settings used.
        seconds: wall-clock time of the ascent.
    """

    image: torch.Tensor
    history: tuple[float, ...]
    sizes: tuple[tuple[int, int], ...]
    pretrained: bool
    note: str
    config: DreamConfig
    seconds: float

    @property
    def seconds_per_step(self) -> float:
        """Wall-clock seconds per ascent step, averaged over the octaves."""
        return self.seconds / max(1, len(self.history))


def dream_extractor(config: DreamConfig = DreamConfig(), *, fallback: str | None = None,
                    device: str | torch.device = "cpu"):
    """A :class:`nstlab.vgg.VGGFeatures` returning ``config.layer``: pretrained, or untrained if ``fallback`` allows.

    Example:
        >>> dream_extractor(DreamConfig(layer="relu1_1"), fallback="untrained").layers
        ('relu1_1',)
    """
    from nstlab.vgg import VGGFeatures
    from nstlab.weights import load_backbone

    backbone = load_backbone(config.arch, fallback=fallback, seed=config.seed)
    # Channels-last, converted once here; dream converts each image once per pass.
    return channels_last(VGGFeatures([config.layer], arch=config.arch, backbone=backbone).to(device))


def dream(image: torch.Tensor, extractor, config: DreamConfig = DreamConfig(), *, guide: torch.Tensor | None = None,
          progress: bool = True) -> DreamResult:
    r"""Dream on an image: octaves coarse to fine, each ``config.steps`` jittered normalised ascent steps.

    Args:
        image: the image, (1, 3, H, W) float32 in [0, 1]; resized to ``config.size`` on its long side, never
            modified. The computation runs on its device.
        extractor: a :class:`nstlab.vgg.VGGFeatures` that returns ``config.layer``, on the image's device
            (see :func:`dream_extractor`); its ``pretrained`` and ``note`` are passed on to the result.
        config: the settings.
        guide: an optional guide image (1, 3, H', W'); the objective becomes :math:`J_{guide}` (see
            ``config.guide_weight``). It is resized to the same long side as the image.
        progress: show a progress bar (hidden under nbgrader in any case).

    Returns:
        A :class:`DreamResult`.

    Example:
        >>> from nstlab.vgg import VGGFeatures
        >>> from nstlab.weights import untrained_backbone
        >>> extractor = VGGFeatures(["relu2_1"], backbone=untrained_backbone())
        >>> config = DreamConfig(layer="relu2_1", octaves=2, steps=2, size=64, jitter=4)
        >>> result = dream(torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0)), extractor, config,
        ...                progress=False)
        >>> result.image.shape, result.sizes, len(result.history), result.pretrained
        (torch.Size([1, 3, 48, 64]), ((34, 46), (48, 64)), 4, False)
    """
    image = _check_image(image, "image")
    if image.shape[0] != 1:
        raise ValueError(f"dream takes one image, (1, 3, H, W), got a batch of shape {tuple(image.shape)}.")
    layers = getattr(extractor, "layers", ())
    if config.layer not in layers:
        raise ValueError(f"the extractor does not return {config.layer!r} (it returns {list(layers)}); build it "
                         f"with VGGFeatures([{config.layer!r}], ...) or dream_extractor(config).")
    x = image.detach().float().clamp(0, 1)
    precision = choose_precision(config.precision, device=x.device).precision  # decided once for the run
    x = resize_long_side(x, config.size) if config.size is not None else x.clone()
    sizes = octave_sizes(*x.shape[-2:], octaves=config.octaves, scale=config.octave_scale)
    min_side = getattr(extractor, "min_size", 1)
    if min(sizes[0]) < min_side:
        raise ValueError(f"the smallest octave, {sizes[0][1]}x{sizes[0][0]} pixels, is below the {min_side} pixels "
                         f"{config.layer} needs; use fewer octaves or a larger size.")

    def features_of(x_):
        """The layer's activations in float32: one channels-last copy of the image, the network in ``precision``."""
        with autocast(precision, x_.device):
            return extractor(channels_last(x_))[config.layer].float()

    def plain(features):
        return dream_objective(features, channel=config.channel, kind=config.objective)

    if guide is not None and config.channel is not None and config.guide_weight == 1:
        raise ValueError(f"channel {config.channel} has no effect when the guide is the whole objective "
                         "(guide_weight=1); lower guide_weight to mix the two, or leave out the channel.")
    if guide is not None:
        guide = resize_long_side(_check_image(guide, "guide").detach().float().to(x.device), max(x.shape[-2:]))
        with torch.no_grad():
            target = features_of(guide)  # (1, C, H', W')
        w = config.guide_weight

        def objective_of(features):
            guided = guide_objective(features, target)
            return guided if w == 1 else (1 - w) * plain(features) + w * guided
    else:
        objective_of = plain

    def objective(x_):
        return objective_of(features_of(x_))

    rng = torch.Generator().manual_seed(config.seed)  # the jitter's own generator; the global state is untouched
    bases = [F.interpolate(x, size=s, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
             if s != tuple(x.shape[-2:]) else x for s in sizes]  # (1, 3, h_k, w_k) each
    history: list[float] = []
    ticks = progress_bar(range(len(sizes) * config.steps), desc="dream", disable=None if progress else True)
    next(ticks, None)  # show the bar at 0; each later next() counts a finished step, the last one closes it
    t0 = time.perf_counter()
    detail = torch.zeros_like(bases[0])
    try:
        for base in bases:
            # The detail dreamed so far, carried up to this octave's size and put back on its base.
            detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
            dreamed = (base + detail).clamp(0, 1)
            for _ in range(config.steps):
                dx, dy = (torch.randint(-config.jitter, config.jitter + 1, (2,), generator=rng).tolist()
                          if config.jitter else (0, 0))
                dreamed, value = _ascent(jitter(dreamed, dx, dy), objective, config.step_size)
                dreamed = jitter(dreamed, -dx, -dy)
                history.append(value.item())
                next(ticks, None)
            detail = dreamed - base
    finally:
        ticks.close()
    seconds = time.perf_counter() - t0
    return DreamResult(dreamed.contiguous(), tuple(history), tuple(sizes), bool(getattr(extractor, "pretrained", False)),
                       str(getattr(extractor, "note", "")), config, seconds)


def plot_dream(result: DreamResult, *, original: torch.Tensor | None = None, title: str | None = None):
    """A figure: the original (if given), the dream and the objective, with a red banner if the network was untrained.

    Returns:
        A matplotlib Figure (close it with ``plt.close(fig)``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> r = DreamResult(torch.zeros(1, 3, 8, 8), (1.0, 2.0), ((8, 8),), False, "UNTRAINED VGG19", DreamConfig(), 0.1)
        >>> fig = plot_dream(r, original=torch.ones(1, 3, 8, 8)); plt.close(fig)
    """
    import matplotlib.pyplot as plt

    c = result.config
    panels = ([("original", original)] if original is not None else []) + [("dream", result.image)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 3.4))
    for ax, (name, image) in zip(axes, panels, strict=False):
        ax.imshow(image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())  # (H, W, 3)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    axes[-1].plot(range(1, len(result.history) + 1), result.history)
    for k in range(1, len(result.sizes)):  # where each octave starts
        axes[-1].axvline(k * c.steps + 0.5, color="0.8", lw=0.8)
    axes[-1].set(title=f"objective J ({c.objective})", xlabel="step")
    what = f"{c.layer}" + (f", channel {c.channel}" if c.channel is not None else "")
    heading = title or f"DeepDream on {what}: {len(result.sizes)} octave(s) x {c.steps} steps, step size {c.step_size:g}"
    if result.pretrained:
        fig.suptitle(heading, fontsize=10)
    else:
        fig.suptitle(f"{heading}\n{result.note or 'UNTRAINED network: the result is not meaningful'}",
                     color="#b00", fontsize=8, wrap=True)
    fig.tight_layout()
    return fig
