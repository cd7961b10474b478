r"""Training a transform network for one style: Adam on the perceptual loss, batch after batch of photos.

Johnson et al. (2016) train :math:`f_W` by stochastic gradient descent on

.. math:: W^* = \arg\min_W \; \mathbf{E}_{x} \Big[ \lambda_c \ell_{feat}(f_W(x), x)
          + \lambda_s \ell_{style}(f_W(x), y_s) + \lambda_{TV} \ell_{TV}(f_W(x)) \Big]

over photos :math:`x` (COCO in the paper), with the loss network frozen. One step (:func:`train_step`) takes a
batch, stylises it, measures the loss through VGG16 and moves the network's weights; :func:`train` repeats it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nstlab.fast.loss import JOHNSON_CONTENT_LAYER, perceptual_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and what to change."""


def train_step(net: nn.Module, extractor: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
               style_grams: dict[str, torch.Tensor], *, content_layer: str = JOHNSON_CONTENT_LAYER,
               content_weight: float = 1.0, style_weight: float = 1e5, tv_weight: float = 0.0,
               step: int | None = None) -> tuple[float, float, float]:
    r"""One training step: stylise ``batch``, measure the perceptual loss, and update ``net`` by ``optimizer``.

    The content target :math:`\phi_j(x)` is the loss network's response to the input batch itself, computed
    without gradient; the loss is :func:`nstlab.fast.perceptual_loss`.

    Args:
        net: the transform network (any module from (N, 3, H, W) to (N, 3, H, W) in [0, 1]).
        extractor: an :class:`nstlab.vgg.VGGFeatures` returning the style layers and ``content_layer``.
        optimizer: an optimiser over ``net``'s parameters (Adam in the paper).
        batch: photos of shape (N, 3, H, W) in [0, 1].
        style_grams: style layer name -> :func:`nstlab.fast.johnson_gram` of the style image, (1, C, C).
        content_layer: the layer of the feature reconstruction loss.
        content_weight, style_weight, tv_weight: :math:`\lambda_c, \lambda_s, \lambda_{TV}`.
        step: the step's number, for the message when the loss is not finite.

    Returns:
        ``(total, content, style)`` of this batch, before the update, as Python floats.

    Raises:
        TrainingDiverged: the loss is NaN or infinite; ``net`` is left unchanged.

    Example:
        >>> from nstlab.fast.network import TransformNet
        >>> from nstlab.fast.loss import style_targets
        >>> from nstlab.vgg import VGGFeatures
        >>> from nstlab.weights import untrained_backbone
        >>> _ = torch.manual_seed(0)
        >>> extractor = VGGFeatures(["relu1_2", "relu2_2"], backbone=untrained_backbone("vgg16"))
        >>> net = TransformNet(width=4, blocks=1)
        >>> grams = style_targets(extractor, torch.rand(1, 3, 32, 32), layers=["relu1_2"])
        >>> opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        >>> total, content, style = train_step(net, extractor, opt, torch.rand(2, 3, 32, 32), grams)
        >>> math.isclose(total, content + 1e5 * style, rel_tol=1e-5)  # the loss before the step
        True
    """
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[1] != 3:
        got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ValueError(f"batch must have shape (N, 3, H, W) in [0, 1], got {got}; add a batch dimension with "
                         "x[None].")
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        content_features = extractor(batch)[content_layer]  # (N, C, H/2, W/2) at relu2_2
    y_hat = net(batch)  # (N, 3, H, W)
    features = extractor(y_hat)
    total, content, style = perceptual_loss(features, content_features, style_grams, content_layer=content_layer,
                                            content_weight=content_weight, style_weight=style_weight,
                                            image=y_hat, tv_weight=tv_weight)
    values = (total.item(), content.item(), style.item())
    if not all(math.isfinite(v) for v in values):
        where = f"at step {step}" if step is not None else "in this step"
        raise TrainingDiverged(
            f"the loss became {values[0]} {where} (content {values[1]}, style {values[2]}); the network was not "
            "updated. Lower the learning rate (lr) or the style weight, or resume from the last checkpoint.")
    total.backward()
    optimizer.step()
    return values
