r"""VGG as a feature extractor: the activations of named layers, in one forward pass.

Gatys et al. (2016) describe an image by the responses of the layers of VGG19 (Simonyan & Zisserman, 2015):
layer :math:`l` with :math:`N_l` filters gives a matrix :math:`F^l \in \mathbb{R}^{N_l \times M_l}`, one row
per filter and one column per position (:math:`M_l = H_l W_l`). Johnson et al. (2016) use VGG16 the same way.
Here a layer's response is returned as a tensor of shape (N, C, H', W'), with C = :math:`N_l`; the losses
in :mod:`nstlab.losses` flatten it to :math:`F^l` themselves.

Layers are named as in the paper, never by index: ``conv{b}_{i}`` (the i-th convolution of block b),
``relu{b}_{i}`` (its rectified output, what the Caffe code of the paper calls ``conv{b}_{i}`` because Caffe's
ReLU works in place) and ``pool{b}`` (the pooling that ends block b).

:class:`VGGFeatures` is

* **one pass**: ``forward`` returns every requested layer from a single pass and stops after the deepest;
* **frozen**: always in ``eval`` mode and its weights never require gradients (gradients still flow to the
  input image, which is what style transfer optimises);
* **faithful to tapped layers**: a ReLU never works in place on an activation that is returned;
* **self-normalising**: it takes images in [0, 1] and applies the ImageNet mean and standard deviation the
  network was trained with;
* **optionally average-pooled**: ``pool="avg"`` replaces max pooling by average pooling, as the paper
  recommends ("slightly more appealing results");
* **optionally normalised**: ``normalised=True`` uses the paper's normalised VGG19 (below).

**The normalised network.** Gatys et al. "normalized the network by scaling the weights such that the mean
activation of each convolutional filter over images and positions is equal to one". With
:math:`m^l_k` the mean of filter :math:`k`'s rectified output at layer :math:`l` on natural images, filter
:math:`k` of layer :math:`l` is divided by :math:`m^l_k` and the next layer's weights on input channel
:math:`k` are multiplied by it:

.. math:: W^l_{kj} \leftarrow W^l_{kj} \, \frac{m^{l-1}_j}{m^l_k}, \qquad b^l_k \leftarrow \frac{b^l_k}{m^l_k}.

Because :math:`\max(0, c z) = c \max(0, z)` and pooling (max or average) commutes with a positive factor per
channel, every rectified and pooled layer is then the original one divided by :math:`m^l_k` channel by
channel, and the classifier (after compensating ``pool5``) would give the same answer. What changes is the
size of the losses: every layer now contributes activations of about 1, which is what the paper's
:math:`\alpha/\beta = 10^{-3}` assumed. The paper took the means over ImageNet's validation images; we take
them over the built-in photos and textures (:data:`NORMALISATION_IMAGES`, shipped with scikit-image and
matplotlib, so the result is the same everywhere and offline), computed once per set of weights and cached
beside the weights file. Filters that never fire on those images (mean 0) are left as they are.

**The untrained stand-in.** Random-weight networks can still synthesise textures and transfer style once
their activations are scaled sensibly (He, Wang & Hopcroft 2016, *A powerful generative model using random
weights for the deep image representation*; Ustyuzhaninov et al. 2017, *What does it take to generate
natural textures?*). For an untrained backbone, ``normalised=True`` therefore rescales **each layer as a
whole** to a mean activation of 1 on the same images, instead of each filter: a random filter that natural
images barely excite is typically tuned to pixel noise, and dividing it by its tiny mean would let it
dominate every loss (style transfer then barely moves the photo and content reconstructions from
``relu2_1`` on stay noise). One factor per layer keeps the random filters' relative sizes and gives the
losses the same magnitudes as the normalised pretrained network.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

from nstlab.weights import ARCHS, Backbone, load_backbone

# The convolution widths of each VGG, block by block: torchvision's configurations "D" (VGG16) and "E"
# (VGG19), from Table 1 of Simonyan & Zisserman (2015). Every block ends with a 2x2 pooling.
BLOCK_WIDTHS = {
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}
# The mean and standard deviation of ImageNet's RGB channels, which torchvision's VGG weights expect
# (``VGG19_Weights.IMAGENET1K_V1.transforms()`` normalises with these).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLS = ("max", "avg")
# The images whose activations set the normalisation: the built-in photos and the textures that scikit-image
# and matplotlib ship as files (nstlab.data), so the means can be computed offline and come out the same on
# every machine. (The drawn images, mosaic and swirl, are left out: they are not natural images.)
NORMALISATION_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hopper", "hubble", "brick", "gravel")
# Their long side in pixels: large enough that relu5_x still has 8 x 8 positions to average over, small
# enough that the one pass over all eight images takes seconds on a CPU.
NORMALISATION_SIZE = 128
# How a backbone is normalised: one factor per filter (the paper's, for pretrained weights) or one per
# layer (for the untrained stand-in; see the module docstring).
NORMALISATIONS = ("filter", "layer")


def _layer_names(blocks: tuple[tuple[int, ...], ...]) -> tuple[str, ...]:
    """The names of the modules of ``vgg.features``, in order: conv, relu for each layer, then a pool."""
    names: list[str] = []
    for b, widths in enumerate(blocks, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


# The name of every module of torchvision's ``vgg16().features`` / ``vgg19().features``, in order.
LAYER_NAMES: dict[str, tuple[str, ...]] = {arch: _layer_names(BLOCK_WIDTHS[arch]) for arch in BLOCK_WIDTHS}


def check_layers(layers: Sequence[str], *, arch: str = "vgg19") -> tuple[str, ...]:
    """Check that ``layers`` are layer names of ``arch`` and return them as a tuple, duplicates removed.

    Args:
        layers: layer names such as ``"relu4_2"``.
        arch: ``"vgg16"`` or ``"vgg19"``.

    Raises:
        ValueError: for an unknown architecture, an empty list or an unknown name; the message lists the
            valid names.
        TypeError: if ``layers`` is a single string or holds something that is not a string.

    Example:
        >>> check_layers(["relu1_1", "conv4_2", "relu1_1"])
        ('relu1_1', 'conv4_2')
    """
    if arch not in LAYER_NAMES:
        raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(LAYER_NAMES)}.")
    if isinstance(layers, str):
        raise TypeError(f"layers must be a sequence of layer names, got the single string {layers!r}; "
                        f"write [{layers!r}].")
    layers = tuple(dict.fromkeys(layers))
    if not layers:
        raise ValueError("layers is empty; ask for at least one layer, such as 'relu4_2'.")
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"layer names must be strings such as 'relu4_2', got {name!r}.")
    unknown = [name for name in layers if name not in LAYER_NAMES[arch]]
    if unknown:
        raise ValueError(f"unknown layer name(s) {', '.join(map(repr, unknown))} for {arch}; valid names are "
                         f"{', '.join(LAYER_NAMES[arch])}.")
    return layers


def activation_means(features: nn.Sequential, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    r"""The mean rectified activation :math:`m^l_k` of every filter, over images and positions.

    Args:
        features: a VGG's ``features`` (convolutions, ReLUs and poolings, as torchvision builds them).
        images: images of shape (1, 3, H, W) in [0, 1], any sizes; each counts equally.

    Returns:
        One tensor of shape (C_l,) per convolution, in order: the mean of its ReLU's output.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> means = activation_means(untrained_backbone().features, [torch.rand(1, 3, 32, 32)])
        >>> len(means), tuple(means[0].shape), bool((means[0] >= 0).all())
        (16, (64,), True)
    """
    device = next(features.parameters()).device  # compute where the network is
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    totals: list[torch.Tensor] = []
    with torch.no_grad():
        for x in images:
            if x.ndim != 4 or x.shape[:2] != (1, 3):
                raise ValueError(f"expected images of shape (1, 3, H, W), got {tuple(x.shape)}.")
            h = (x.to(device, torch.float32) - mean) / std
            per_layer = []
            for module in features:
                h = torch.relu(h) if isinstance(module, nn.ReLU) else module(h)  # never in place on our h
                if isinstance(module, nn.ReLU):
                    per_layer.append(h.mean(dim=(0, 2, 3)).double().cpu())  # (C_l,): over positions
            totals = per_layer if not totals else [t + m for t, m in zip(totals, per_layer, strict=True)]
    return [(t / len(images)).float() for t in totals]


def rescale_features(features: nn.Sequential, means: Sequence[torch.Tensor], *, per: str = "filter") -> nn.Sequential:
    r"""A copy of ``features`` whose rectified layers are the original ones divided by ``means``.

    Implements :math:`W^l_{kj} \leftarrow W^l_{kj} m^{l-1}_j / m^l_k`, :math:`b^l_k \leftarrow b^l_k / m^l_k`
    (module docstring). A filter with mean 0 keeps its scale (factor 1).

    Args:
        features: a VGG's ``features``; left untouched.
        means: :math:`m^l`, one (C_l,) tensor per convolution (:func:`activation_means`).
        per: ``"filter"`` divides each filter by its own mean; ``"layer"`` divides a whole layer by the
            mean over its filters.

    Returns:
        The rescaled copy, frozen like ``features``.

    Example:
        >>> conv = nn.Conv2d(3, 2, 3, padding=1)
        >>> twice = rescale_features(nn.Sequential(conv, nn.ReLU()), [torch.tensor([2.0, 4.0])])
        >>> x = torch.rand(1, 3, 5, 5)
        >>> torch.allclose(twice(x) * torch.tensor([2.0, 4.0]).view(1, 2, 1, 1), torch.relu(conv(x)), atol=1e-6)
        True
    """
    if per not in NORMALISATIONS:
        raise ValueError(f"per must be one of {', '.join(map(repr, NORMALISATIONS))}, got {per!r}.")
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    if len(means) != len(convs):
        raise ValueError(f"got {len(means)} mean vectors for {len(convs)} convolutions; compute them with "
                         "activation_means on the same features.")
    out = copy.deepcopy(features)
    previous = torch.ones(1)  # the input image is not rescaled
    for conv, m in zip((m for m in out if isinstance(m, nn.Conv2d)), means, strict=True):
        m = m.detach().double().cpu()
        if per == "layer":
            m = m.mean().expand(conv.out_channels)
        scale = torch.where(m > 0, m, torch.ones_like(m))  # (C_l,): a dead filter keeps its scale
        factor = previous.view(1, -1, 1, 1) / scale.view(-1, 1, 1, 1)  # (C_l, C_{l-1}, 1, 1), in float64
        with torch.no_grad():
            conv.weight.mul_(factor.to(conv.weight))  # our copy's weights, (C_l, C_{l-1}, 3, 3)
            if conv.bias is not None:
                conv.bias.div_(scale.to(conv.bias))
        previous = scale
    return out


def _fingerprint(features: nn.Sequential) -> str:
    """16 hex digits that change with the weights and with the normalisation images: the cache's key."""
    import hashlib

    digest = hashlib.sha256(repr((NORMALISATION_IMAGES, NORMALISATION_SIZE)).encode())
    for module in features:
        if isinstance(module, nn.Conv2d):
            # Every 101st weight of each layer, bit for bit: other weights (another seed, pretrained ones)
            # differ in all of them, and hashing a sample costs milliseconds instead of a pass over 20 M.
            digest.update(module.weight.detach().reshape(-1)[::101].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


# Means computed in this process, by fingerprint: several extractors built from one backbone pay once.
_MEANS: dict[str, list[torch.Tensor]] = {}


def normalisation_means(backbone: Backbone, *, cache: bool = True) -> list[torch.Tensor]:
    """:func:`activation_means` of ``backbone`` on :data:`NORMALISATION_IMAGES`, computed once and cached.

    The file is ``weights_dir()/{arch}-activation-means-{fingerprint}.pt``, next to the weights; its name
    changes with the weights, so means are never used for other weights. A cache folder that cannot be
    written only costs the computation the next time.

    Args:
        backbone: a :class:`nstlab.weights.Backbone`, pretrained or not (it is measured as given).
        cache: read and write the file (``False``: compute afresh, for tests).

    Returns:
        One (C_l,) tensor per convolution, the mean rectified activation of each filter.
    """
    from nstlab.data import builtin_image
    from nstlab.weights import weights_dir

    key = f"{backbone.arch}-activation-means-{_fingerprint(backbone.features)}"
    if cache and key in _MEANS:
        return _MEANS[key]
    path = weights_dir() / f"{key}.pt"
    if cache and path.is_file():
        try:
            means = torch.load(path, map_location="cpu", weights_only=True)["means"]
            if len(means) == sum(isinstance(m, nn.Conv2d) for m in backbone.features):
                _MEANS[key] = means
                return means
        except Exception:  # noqa: BLE001, S110 - a damaged cache file is recomputed and replaced
            pass
    images = [builtin_image(name, size=NORMALISATION_SIZE) for name in NORMALISATION_IMAGES]
    means = activation_means(backbone.features, images)
    if cache:
        _MEANS[key] = means
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            torch.save({"means": means, "images": NORMALISATION_IMAGES, "size": NORMALISATION_SIZE}, partial)
            os.replace(partial, path)  # atomic: a reader never sees half a file
        except OSError:
            pass  # a read-only cache costs only the computation next time
    return means


def normalise_backbone(backbone: Backbone, *, per: str | None = None, cache: bool = True) -> Backbone:
    """The normalised copy of ``backbone``: Gatys et al.'s normalised VGG, or the scaled untrained stand-in.

    Args:
        backbone: a :class:`nstlab.weights.Backbone`; left untouched. One already normalised is returned as is.
        per: ``"filter"`` (the paper) or ``"layer"``; ``None`` chooses ``"filter"`` for pretrained weights and
            ``"layer"`` for an untrained network (module docstring).
        cache: use the cached means (see :func:`normalisation_means`).

    Returns:
        A :class:`nstlab.weights.Backbone` with ``normalised=True`` and a ``note`` that says so.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> normalised = normalise_backbone(untrained_backbone("vgg16"))
        >>> normalised.normalised, normalised.note.startswith("UNTRAINED")
        (True, True)
    """
    if backbone.normalised:
        return backbone
    per = per if per is not None else ("filter" if backbone.pretrained else "layer")
    features = rescale_features(backbone.features, normalisation_means(backbone, cache=cache), per=per)
    note = f"{backbone.note} Normalised: mean activation 1 per {per} on {len(NORMALISATION_IMAGES)} built-in images."
    return Backbone(features.requires_grad_(False).eval(), backbone.arch, backbone.pretrained, note, True)


class VGGFeatures(nn.Module):
    r"""A frozen VGG that returns the activations of named layers.

    Args:
        layers: the layers to return, e.g. ``["relu1_1", "relu2_1", "relu4_2"]``.
        arch: ``"vgg19"`` (Gatys et al.) or ``"vgg16"`` (Johnson et al.).
        pool: ``"max"`` (the trained network) or ``"avg"`` (the paper's choice for image synthesis).
        normalised: use the normalised network (:func:`normalise_backbone`: the paper's for pretrained
            weights, one factor per layer for the untrained stand-in); a backbone that is already normalised
            stays so either way.
        fallback: ``None`` to require pretrained weights, or ``"untrained"`` to accept a randomly initialised
            network when they are unavailable; then ``pretrained`` is ``False`` and ``note`` says so.
        backbone: a :class:`nstlab.weights.Backbone` to use instead of loading one; its ``arch`` replaces
            ``arch``, and its modules are copied, never modified.

    Attributes:
        layers: the requested layer names, in the order given.
        arch: the architecture.
        pretrained: whether the weights are the pretrained ImageNet ones.
        normalised: whether the network is the normalised one.
        note: a line for banners and logs; says "UNTRAINED" when ``pretrained`` is ``False``.
        features: the truncated network, ending at the deepest requested layer.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> extractor = VGGFeatures(["relu1_1", "relu2_1"], backbone=untrained_backbone("vgg19"))
        >>> out = extractor(torch.rand(2, 3, 32, 32))
        >>> {name: tuple(f.shape) for name, f in out.items()}
        {'relu1_1': (2, 64, 32, 32), 'relu2_1': (2, 128, 16, 16)}
        >>> extractor.pretrained
        False
    """

    def __init__(self, layers: Sequence[str], *, arch: str = "vgg19", pool: str = "max", normalised: bool = False,
                 fallback: str | None = None, backbone: Backbone | None = None) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(map(repr, POOLS))}, got {pool!r}.")
        if not isinstance(normalised, bool):
            raise TypeError(f"normalised must be True or False, got {normalised!r}.")
        if backbone is None:
            if arch not in ARCHS:
                raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHS)}.")
            self.layers = check_layers(layers, arch=arch)  # before loading: a typo should not cost a download
            backbone = load_backbone(arch, fallback=fallback)
        arch = backbone.arch
        self.layers = check_layers(layers, arch=arch)
        names = LAYER_NAMES[arch]
        if len(backbone.features) != len(names):
            raise ValueError(f"the backbone has {len(backbone.features)} modules, but {arch}'s features have "
                             f"{len(names)}; pass the `features` of torchvision's {arch}.")
        if normalised:
            backbone = normalise_backbone(backbone)
        self.arch, self.pool, self.normalised = arch, pool, backbone.normalised
        self.pretrained, self.note = backbone.pretrained, backbone.note
        depth = max(names.index(name) for name in self.layers) + 1  # stop after the deepest requested layer
        modules: list[nn.Module] = []
        for index, (name, module) in enumerate(zip(names[:depth], backbone.features, strict=False)):
            if name.startswith("conv"):
                modules.append(copy.deepcopy(module))
            elif name.startswith("relu"):
                # An in-place ReLU would overwrite the convolution output just before it: keep that intact
                # when it is returned, and save the memory everywhere else.
                modules.append(nn.ReLU(inplace=names[index - 1] not in self.layers))
            elif pool == "avg":
                modules.append(nn.AvgPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)
        self._names = names[:depth]
        # Each pooling halves the image; the deepest requested layer needs at least one pixel left.
        self.min_size = 2 ** sum(name.startswith("pool") for name in self._names[:-1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in evaluation mode whatever is asked: the extractor is frozen."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations of the requested layers.

        Args:
            x: images of shape (N, 3, H, W), RGB in [0, 1], at least ``min_size`` pixels on each side.

        Returns:
            A dict from layer name (in the order of ``layers``) to activations of shape (N, C, H', W').
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected images of shape (N, 3, H, W) in [0, 1], got {got}; add a batch "
                             "dimension with x[None] or convert grey/RGBA images to RGB.")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} pixels are too small to reach "
                             f"{self._names[-1]}, which needs at least {self.min_size} pixels on each side; "
                             "resize the image or ask for a shallower layer.")
        if x.device != self.mean.device:
            raise ValueError(f"the images are on {x.device} but the extractor is on {self.mean.device}; "
                             f"move it with extractor.to({str(x.device)!r}).")
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self._names, self.features, strict=True):
            h = module(h)
            if name in self.layers:
                out[name] = h
        return {name: out[name] for name in self.layers}

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, layers={self.layers}, pool={self.pool!r}, normalised={self.normalised}, "
                f"pretrained={self.pretrained}")
