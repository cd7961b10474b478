r"""The settings of a fast-style training run: one frozen :class:`FastConfig`, and presets per profile.

A run of :func:`nstlab.fast.train` is described completely by a :class:`FastConfig`: the network's size
(``width``, ``blocks``), the crops it trains on (``size``, ``scale_range``, ``batch_size``), the optimiser
(Adam, ``lr``, ``steps``), the loss weights :math:`\lambda_c, \lambda_s, \lambda_{TV}` and layers, and how
often to save a checkpoint and call the preview. The config checks itself when it is made, so a bad setting
fails at once with a message naming the field and the fix.

:func:`fast_config` gives the presets of the three profiles (:mod:`nstlab.profiles`):

=========  ===================================================================================================
``fast``   the small network (0.3 M parameters), 128-px crops of the built-in photos, batch 2, 120 steps:
           about 0.75 CPU seconds a step, so at most 2 minutes of training even on one thread of the course's
           2-core CPU (docs/benchmarks.md, "Fast style transfer")
``full``   the paper's network (1.7 M), 256-px crops, batch 4, 40,000 steps (two epochs of COCO's 80,000
           photos at batch 4, as in the paper), lr 1e-3; a GPU and a folder of photos
``grade``  tiny and deterministic: width 8, one block, 32-px crops, batch 1, 3 steps
=========  ===================================================================================================

**Weights.** Our style term sums the squared Gram differences over all :math:`C^2` entries and our images
are [0, 1] pixels normalised inside VGG. PyTorch's ``fast_neural_style`` example, on the same pixels and Gram
normalisation, weighs the *mean* over the entries with :math:`10^{10}` against :math:`10^5` for the content;
in our sum that is :math:`10^5 / C^2` per layer, between 24 (relu1_2, C = 64) and 0.4 (relu4_3, C = 512).
:data:`STYLE_WEIGHT` takes 5 from that range (also Johnson's own ``style_weight``). The functions
:func:`nstlab.fast.perceptual_loss` and :func:`nstlab.fast.train_step` keep the agreed default of
:math:`10^5`, which puts much more weight on style; pass the config's weights to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from nstlab.fast.loss import JOHNSON_CONTENT_LAYER, JOHNSON_STYLE_LAYERS
from nstlab.fast.network import SMALL
from nstlab.vgg import check_layers

# lambda_s for our summed Frobenius style term; see the module docstring for where it comes from.
STYLE_WEIGHT = 5.0
# Adam's learning rate in the paper (1e-3); the small network on a few hundred CPU steps learns faster with more.
PAPER_LR = 1e-3
# Random scales of the source image before cropping: a crop then shows the photo's detail at several sizes.
SCALE_RANGE = (0.6, 1.0)
# Training images are cropped from photos resized so that their short side is this many times the crop size.
SOURCE_SCALE = 2.0


@dataclass(frozen=True)
class FastConfig:
    r"""The settings of one training run of a fast-style network.

    Attributes:
        size: side of the square training crops, in pixels (the paper: 256).
        steps: Adam steps in all (each on one batch).
        batch_size: images per step (the paper: 4).
        lr: Adam's learning rate.
        content_weight: :math:`\lambda_c`, weight of the feature reconstruction loss.
        style_weight: :math:`\lambda_s`, weight of the style reconstruction loss.
        tv_weight: :math:`\lambda_{TV}`, weight of the total variation (per-pixel mean).
        width: the network's width w (the paper: 32).
        blocks: the number of residual blocks (the paper: 5).
        content_layer: the layer of the feature loss (the paper: relu2_2).
        style_layers: the layers of the style loss (the paper: relu1_2, relu2_2, relu3_3, relu4_3).
        seed: seed of the network's initialisation and of the crops, flips and scales.
        checkpoint_every: save the checkpoint every this many steps (when a checkpoint file is given).
        preview_every: call the preview callback every this many steps (0: never).
        style_size: long side of the style image in pixels (``None``: as it is).
        scale_range: (smallest, largest) random scale of a source photo before cropping.
        profile: the profile the preset came from (``"custom"`` otherwise); recorded in the model file.
    """

    size: int = 128
    steps: int = 120
    batch_size: int = 2
    lr: float = 3e-3
    content_weight: float = 1.0
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = 0.0
    width: int = SMALL["width"]
    blocks: int = SMALL["blocks"]
    content_layer: str = JOHNSON_CONTENT_LAYER
    style_layers: tuple[str, ...] = JOHNSON_STYLE_LAYERS
    seed: int = 0
    checkpoint_every: int = 20
    preview_every: int = 20
    style_size: int | None = 256
    scale_range: tuple[float, float] = SCALE_RANGE
    profile: str = "custom"

    def __post_init__(self) -> None:
        for name in ("style_layers", "scale_range"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))  # accept lists; store tuples so the config hashes
        _check_config(self)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the loss network must return: the style layers and the content layer."""
        return tuple(dict.fromkeys((*self.style_layers, self.content_layer)))


def _check_config(c: FastConfig) -> None:
    """Raise ValueError naming the field, the problem and the fix."""
    for name in ("size", "steps", "batch_size", "width", "checkpoint_every"):
        value = getattr(c, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")
    if not isinstance(c.blocks, int) or c.blocks < 0:
        raise ValueError(f"blocks={c.blocks!r} must be an integer >= 0 (the paper uses 5).")
    if not isinstance(c.preview_every, int) or c.preview_every < 0:
        raise ValueError(f"preview_every={c.preview_every!r} must be an integer >= 0 (0: no preview).")
    # The loss network halves the crop three times before relu4_3; it needs a few pixels left there.
    if c.size < 32:
        raise ValueError(f"size={c.size} is below 32 pixels, too small for VGG16's relu4_3; use 32 or more.")
    if c.style_size is not None and c.style_size < 32:
        raise ValueError(f"style_size={c.style_size} is below 32 pixels; use 32 or more, or None.")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ValueError(f"lr={c.lr} must be a positive number (the paper uses {PAPER_LR}).")
    for name in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(c, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value} must be a finite number >= 0 (it weighs a loss term).")
    if c.content_weight == 0 and c.style_weight == 0:
        raise ValueError("content_weight and style_weight are both 0: nothing to learn; make one positive.")
    check_layers([c.content_layer], arch="vgg16")
    check_layers(c.style_layers, arch="vgg16")
    lo_hi = c.scale_range
    if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] <= 1:
        raise ValueError(f"scale_range={lo_hi} must be (smallest, largest) with 0 < smallest <= largest <= 1.")


# The presets; each is a complete FastConfig (see the module docstring for the measurements behind `fast`).
PRESETS: dict[str, FastConfig] = {
    "fast": FastConfig(profile="fast"),
    "full": FastConfig(size=256, steps=40_000, batch_size=4, lr=PAPER_LR, width=32, blocks=5, checkpoint_every=500,
                       preview_every=500, style_size=512, profile="full"),
    "grade": FastConfig(size=32, steps=3, batch_size=1, width=8, blocks=1, checkpoint_every=1, preview_every=1,
                        style_size=64, profile="grade"),
}


def fast_config(profile: str | None = None, **overrides) -> FastConfig:
    """The preset :class:`FastConfig` of a profile, with ``overrides`` applied.

    Args:
        profile: ``"fast"``, ``"full"`` or ``"grade"``; ``None`` uses the active profile
            (:func:`nstlab.profiles.get_profile`: ``NSTLAB_PROFILE``, nbgrader, a GPU, else fast).
        **overrides: fields of :class:`FastConfig` to change, such as ``steps=50``.

    Returns:
        A frozen, checked :class:`FastConfig`.

    Raises:
        ValueError: an unknown profile, or a bad setting (the message names the field).
        TypeError: an override that is not a field.

    Example:
        >>> c = fast_config("grade", steps=5)
        >>> c.profile, c.size, c.steps, c.width, c.blocks
        ('grade', 32, 5, 8, 1)
    """
    if profile is None:
        from nstlab.profiles import get_profile

        profile = get_profile().name
    key = str(profile).strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(map(repr, PRESETS))}.")
    return replace(PRESETS[key], **overrides)
