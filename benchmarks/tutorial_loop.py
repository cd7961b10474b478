r"""A style-transfer loop written the way the official PyTorch tutorial writes it, to measure nstlab against.

The structure is that of PyTorch's "Neural Transfer Using PyTorch" tutorial (Jacob, 2017; the
``advanced_source/neural_style_tutorial.py`` of pytorch/tutorials): a ``Normalization`` module, then the
layers of a frozen VGG19 ``features`` copied one by one into a new ``nn.Sequential`` with its ReLUs made
out-of-place, a ``ContentLoss`` or ``StyleLoss`` module inserted after each chosen layer (each stores its loss
on itself during the forward pass), the network cut after the last loss module, and ``torch.optim.LBFGS`` with
its defaults (20 iterations per ``step``, history 100, no line search) over the image, whose closure clamps
the pixels to [0, 1], sums the stored losses, back-propagates and counts one "step" per evaluation; the loop
stops after ``num_steps`` evaluations, as the tutorial's ``while run[0] <= num_steps`` does. The image starts
as a copy of the content image; everything runs in float32 in the default (contiguous) memory layout.

Departures from the tutorial, so that both loops minimise the same function: the paper's layers
(relu1_1 ... relu5_1 for style, relu4_2 for content; the tutorial uses conv_1 ... conv_5 and conv_4) and the
Gatys et al. loss convention of :mod:`nstlab.losses` (content :math:`\tfrac12\sum(F-P)^2`, style
:math:`\sum_l \frac{1}{L}\frac{1}{4N_l^2M_l^2}\sum(G-A)^2`, :math:`\alpha = 1`, :math:`\beta = 10^3`,
:class:`nstlab.style_config.StyleConfig`'s defaults) instead of the tutorial's mean-squared errors with
:math:`\beta = 10^6`. ``benchmarks/bench_precision.py`` checks that the two loops' losses agree on the same
image before it times anything.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

# The paper's layers in the tutorial's naming (relu_k follows conv_k; VGG19's convolutions numbered 1..16).
STYLE_LAYERS = {"relu_1": "relu1_1", "relu_3": "relu2_1", "relu_5": "relu3_1", "relu_9": "relu4_1",
                "relu_13": "relu5_1"}
CONTENT_LAYERS = {"relu_10": "relu4_2"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ContentLoss(nn.Module):
    r"""Stores :math:`\tfrac12\sum(F-P)^2` on itself and passes its input on (the tutorial's pattern)."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target.detach()
        self.loss = torch.tensor(0.0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the tutorial's name
        self.loss = 0.5 * ((input - self.target) ** 2).sum()
        return input


def gram_matrix(input: torch.Tensor) -> torch.Tensor:  # noqa: A002
    a, b, c, d = input.size()  # a = batch size (1), b = channels, (c, d) = spatial size
    features = input.view(a * b, c * d)
    return torch.mm(features, features.t())  # unnormalised: the 1/(4 N^2 M^2) is in StyleLoss


class StyleLoss(nn.Module):
    r"""Stores :math:`\frac{w}{4N^2M^2}\sum(G-A)^2` on itself and passes its input on."""

    def __init__(self, target_feature: torch.Tensor, weight: float):
        super().__init__()
        _, n, h, w = target_feature.shape
        self.target = gram_matrix(target_feature).detach()
        self.factor = weight / (4.0 * n**2 * (h * w) ** 2)
        self.loss = torch.tensor(0.0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        G = gram_matrix(input)
        self.loss = self.factor * ((G - self.target) ** 2).sum()
        return input


class Normalization(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def get_style_model_and_losses(cnn: nn.Sequential, style_img: torch.Tensor, content_img: torch.Tensor):
    """The tutorial's model: VGG19's features rebuilt with loss modules after the chosen layers."""
    model = nn.Sequential(Normalization(IMAGENET_MEAN, IMAGENET_STD))
    content_losses, style_losses = [], []
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)  # the in-place version does not play nicely with the loss modules
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")
        model.add_module(name, layer)
        if name in CONTENT_LAYERS:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in STYLE_LAYERS:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature, 1.0 / len(STYLE_LAYERS))
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    # trim off the layers after the last content and style losses
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def run_style_transfer(cnn: nn.Sequential, content_img: torch.Tensor, style_img: torch.Tensor,
                       input_img: torch.Tensor, *, num_steps: int = 300, style_weight: float = 1e3,
                       content_weight: float = 1.0, on_evaluation=None) -> torch.Tensor:
    """The tutorial's loop; ``on_evaluation(run, loss, seconds)`` is called after every evaluation.

    Returns:
        The optimised image, clamped to [0, 1].
    """
    model, style_losses, content_losses = get_style_model_and_losses(cnn, style_img, content_img)
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = torch.optim.LBFGS([input_img])
    run = [0]
    while run[0] <= num_steps:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses)
            content_score = sum(cl.loss for cl in content_losses)
            loss = style_weight * style_score + content_weight * content_score
            loss.backward()
            run[0] += 1
            if on_evaluation is not None:
                on_evaluation(run[0], loss.item(), time.process_time())
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img


def frozen_vgg19_features(backbone) -> nn.Sequential:
    """A frozen copy of the backbone's ``features`` (VGG19, max pooling), as the tutorial takes it."""
    import copy

    cnn = copy.deepcopy(backbone.features).eval()
    cnn.requires_grad_(False)
    return cnn


def loss_at(cnn: nn.Sequential, content_img, style_img, image, *, style_weight: float = 1e3) -> float:
    """The tutorial objective at ``image`` (float32, no gradient), to compare with nstlab's."""
    model, style_losses, content_losses = get_style_model_and_losses(cnn, style_img, content_img)
    with torch.no_grad():
        model(image)
    return float(style_weight * sum(s.loss for s in style_losses) + sum(c.loss for c in content_losses))

