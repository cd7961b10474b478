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
  recommends ("slightly more appealing results").
"""

from __future__ import annotations

import copy
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


class VGGFeatures(nn.Module):
    r"""A frozen VGG that returns the activations of named layers.

    Args:
        layers: the layers to return, e.g. ``["relu1_1", "relu2_1", "relu4_2"]``.
        arch: ``"vgg19"`` (Gatys et al.) or ``"vgg16"`` (Johnson et al.).
        pool: ``"max"`` (the trained network) or ``"avg"`` (the paper's choice for image synthesis).
        fallback: ``None`` to require pretrained weights, or ``"untrained"`` to accept a randomly initialised
            network when they are unavailable; then ``pretrained`` is ``False`` and ``note`` says so.
        backbone: a :class:`nstlab.weights.Backbone` to use instead of loading one; its ``arch`` replaces
            ``arch``, and its modules are copied, never modified.

    Attributes:
        layers: the requested layer names, in the order given.
        arch: the architecture.
        pretrained: whether the weights are the pretrained ImageNet ones.
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

    def __init__(self, layers: Sequence[str], *, arch: str = "vgg19", pool: str = "max",
                 fallback: str | None = None, backbone: Backbone | None = None) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(map(repr, POOLS))}, got {pool!r}.")
        if backbone is None:
            if arch not in ARCHS:
                raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHS)}.")
            self.layers = check_layers(layers, arch=arch)  # before loading: a typo should not cost a download
            backbone = load_backbone(arch, fallback=fallback)
        arch = backbone.arch
        self.layers = check_layers(layers, arch=arch)
        self.arch, self.pool = arch, pool
        self.pretrained, self.note = backbone.pretrained, backbone.note

        names = LAYER_NAMES[arch]
        if len(backbone.features) != len(names):
            raise ValueError(f"the backbone has {len(backbone.features)} modules, but {arch}'s features have "
                             f"{len(names)}; pass the `features` of torchvision's {arch}.")
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
        return f"arch={self.arch!r}, layers={self.layers}, pool={self.pool!r}, pretrained={self.pretrained}"
