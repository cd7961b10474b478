r"""The losses of neural style transfer: Gram matrices, content, style, total variation, and their gradients.

Notation of Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural networks". A layer
:math:`l` with :math:`N_l` filters and :math:`M_l` positions (height times width) responds to the image being
generated with :math:`F^l \in \mathbb{R}^{N_l \times M_l}`; :math:`P^l` is its response to the content image.
In tensors, one image's response has shape (C, H, W) with C = :math:`N_l` and H W = :math:`M_l`, and a batch
(N, C, H, W).

The declared convention (``convention="gatys"``, the default; also that of the Caffe-era reference code):

.. math::

    G^l_{ij} = \sum_k F^l_{ik} F^l_{jk}                                   \qquad \text{(Gram matrix)}

    \mathcal{L}_{content} = \tfrac12 \sum_{ij} (F^l_{ij} - P^l_{ij})^2

    E_l = \frac{1}{4 N_l^2 M_l^2} \sum_{ij} (G^l_{ij} - A^l_{ij})^2       \qquad \text{(A: the style image's Gram)}

    \mathcal{L}_{style} = \sum_l w_l E_l

    \mathcal{L}_{total} = \alpha \mathcal{L}_{content} + \beta \mathcal{L}_{style} + \lambda_{TV} \mathrm{TV}(x)

with :math:`\alpha / \beta = 10^{-3}` (the paper uses :math:`10^{-3}` and :math:`10^{-4}`) and equal weights
:math:`w_l = 1/5` over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1. The paper's "conv4_2" is our
``relu4_2``: Caffe's ReLU works in place, so the paper's layer outputs are rectified.

The deeplearning.ai programming assignment (``convention="deeplearning_ai"``) scales the content loss by
:math:`1 / (4 n_H n_W n_C)` instead of :math:`\tfrac12`, keeps the same style normalisation
:math:`1/(4 n_C^2 (n_H n_W)^2)`, and uses :math:`\alpha = 10, \beta = 40`. Because the two content losses
differ by a factor of :math:`2 n_H n_W n_C` (about :math:`10^6` at relu4_2 for a 256-pixel image), the
published :math:`\alpha/\beta` values differ by orders of magnitude: they describe the same balance.

Batches: every loss is the **sum** over the images of the batch, so that each image of a batch gets exactly
the gradient it would get alone. Targets with a batch size of 1 apply to every image.

The analytic gradients (:func:`content_gradient`, :func:`style_layer_gradient`) are eq. (2) and (6) of
the paper, as the Caffe-era code computes them: the gradient with respect to the layer's *pre-activation*,
i.e. the derivative with respect to :math:`F` masked by :math:`F > 0` (the ReLU's derivative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

TV_KINDS = ("l2", "l1")
# The layers Gatys et al. use: conv1_1 ... conv5_1 for style, conv4_2 for content, rectified (see above).
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
GATYS_CONTENT_LAYERS = ("relu4_2",)


@dataclass(frozen=True)
class Convention:
    r"""A loss normalisation and its weights :math:`\alpha, \beta`.

    Attributes:
        name: ``"gatys"`` or ``"deeplearning_ai"``.
        alpha: weight of the content loss.
        beta: weight of the style loss.
        content_normalisation: the factor before :math:`\sum (F - P)^2`: ``"1/2"`` or ``"1/(4 n_H n_W n_C)"``.
        style_normalisation: the factor before :math:`\sum (G - A)^2`, as written in the source.
        content_layers, style_layers: the layers the source uses.
        source: where the convention comes from.
    """

    name: str
    alpha: float
    beta: float
    content_normalisation: str
    style_normalisation: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    source: str

    def content_factor(self, C: int, H: int, W: int) -> float:
        r"""The factor before :math:`\sum (F - P)^2` for one image's (C, H, W) activations."""
        if self.content_normalisation == "1/2":
            return 0.5
        if self.content_normalisation == "1/(4 n_H n_W n_C)":
            return 1.0 / (4 * C * H * W)
        raise ValueError(f"unknown content normalisation {self.content_normalisation!r}; use '1/2' (Gatys) or "
                         "'1/(4 n_H n_W n_C)' (deeplearning.ai).")

    def style_factor(self, C: int, M: int) -> float:
        r"""The factor before :math:`\sum (G - A)^2` for C channels and M = H W positions."""
        return 1.0 / (4 * C**2 * M**2)


CONVENTIONS: dict[str, Convention] = {
    "gatys": Convention("gatys", 1.0, 1e3, "1/2", "1/(4 N_l^2 M_l^2)", GATYS_CONTENT_LAYERS,
                        GATYS_STYLE_LAYERS, "Gatys, Ecker & Bethge (2016), eq. (1), (4), (5), (7)"),
    "deeplearning_ai": Convention("deeplearning_ai", 10.0, 40.0, "1/(4 n_H n_W n_C)", "1/(4 n_C^2 (n_H n_W)^2)",
                                  GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS,
                                  "deeplearning.ai, Convolutional Neural Networks, week 4 assignment"),
}


@dataclass(frozen=True)
class LossParts:
    r"""The parts of the total loss, each a 0-dim tensor.

    Attributes:
        content: :math:`\mathcal{L}_{content}` (unweighted).
        style: :math:`\mathcal{L}_{style}` (unweighted by :math:`\beta`, weighted by :math:`w_l`).
        tv: total variation of the image (unweighted; zero when not asked for).
        total: :math:`\alpha \mathcal{L}_{content} + \beta \mathcal{L}_{style} + \lambda_{TV} \mathrm{TV}`.
    """

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor


def get_convention(convention: str | Convention) -> Convention:
    """The :class:`Convention` named ``convention`` (a :class:`Convention` is returned as it is).

    Example:
        >>> get_convention("deeplearning_ai").alpha
        10.0
    """
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; use one of {', '.join(map(repr, CONVENTIONS))}.")
    return CONVENTIONS[convention]


def check_features(F: torch.Tensor, name: str) -> torch.Tensor:
    """``F`` as an (N, C, H, W) floating-point tensor, half precision raised to float32 for Gram matrices and
    losses; a clear error naming ``name`` otherwise. Shared by every module that computes feature statistics."""
    if not isinstance(F, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (N, C, H, W), got {type(F).__name__}.")
    if F.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(F.shape)}; "
                         f"add a batch dimension with {name}[None].")
    if not F.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {F.dtype}; convert it with .float().")
    # Gram matrices and losses in float32 at least, even under mixed precision (see DESIGN.md).
    return F.float() if F.dtype in (torch.float16, torch.bfloat16) else F


def _check_target(target: torch.Tensor, expected: tuple[int, ...], name: str, what: str) -> None:
    """A target must match ``expected`` (N first), or have a batch size of 1."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(target).__name__}.")
    if target.ndim != len(expected) or tuple(target.shape[1:]) != expected[1:] or target.shape[0] not in (1, expected[0]):
        raise ValueError(f"{name} has shape {tuple(target.shape)}, but {what} needs {expected} "
                         f"(or a batch size of 1); compute it from the same layer and image size.")


def _check_weight(value: float, name: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


class _Gram(torch.autograd.Function):
    r"""G = F Fᵀ with the backward pass written out: :math:`\partial L / \partial F = (dG + dG^T) F`.

    Autograd would treat the two F's of F Fᵀ as two inputs and spend two matrix products on the backward
    pass; using G's symmetry it takes one. At relu1_1 of a 256-pixel image (F is 64 x 65,536) this halves
    the cost of the style loss's gradient (see docs/benchmarks.md). The backward is made of torch
    operations, so it is itself differentiable.

    Activations in the channels-last layout (what the networks produce, :func:`nstlab.device.channels_last`)
    are already :math:`F^\top`, positions by channels, in memory: the products then run on that view, and the
    gradient comes back in the same layout, with no copy either way (a transposing copy of relu1_1 and a
    gradient in the other layout, which the network's backward pass would have to add to its own, cost more
    than the product itself).
    """

    @staticmethod
    def forward(ctx, F_flat: torch.Tensor, positions_first: bool) -> torch.Tensor:  # (N, C, M) or (N, M, C)
        ctx.save_for_backward(F_flat)
        ctx.positions_first = positions_first
        if positions_first:
            return F_flat.transpose(1, 2) @ F_flat
        return F_flat @ F_flat.transpose(1, 2)

    @staticmethod
    def backward(ctx, dG: torch.Tensor) -> tuple[torch.Tensor, None]:  # (N, C, C) -> the layout of F_flat
        (F_flat,) = ctx.saved_tensors
        S = dG + dG.transpose(1, 2)  # symmetric
        return (F_flat @ S if ctx.positions_first else S @ F_flat), None


def gram_matrix(F: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    r"""The Gram matrix of each image's features, :math:`G_{ij} = \sum_k F_{ik} F_{jk}`.

    Args:
        F: activations of shape (N, C, H, W).
        normalize: divide by C H W (Johnson et al.'s normalisation); the Gatys convention does not.

    Returns:
        A tensor of shape (N, C, C): one Gram matrix per image, never mixing images of the batch.

    Example:
        >>> F = torch.ones(2, 3, 4, 5)
        >>> gram_matrix(F).shape, gram_matrix(F)[0, 0, 0].item(), round(gram_matrix(F, normalize=True)[1, 2, 1].item(), 6)
        (torch.Size([2, 3, 3]), 20.0, 0.333333)
    """
    F = check_features(F, "F")
    N, C, H, W = F.shape
    if C > 1 and F.is_contiguous(memory_format=torch.channels_last) and not F.is_contiguous():
        G = _Gram.apply(F.permute(0, 2, 3, 1).reshape(N, H * W, C), True)  # a view, (N, M, C)
    else:
        G = _Gram.apply(F.reshape(N, C, H * W), False)  # (N, C, M)
    return G / (C * H * W) if normalize else G


def content_loss(F: torch.Tensor, P: torch.Tensor, *, convention: str | Convention = "gatys") -> torch.Tensor:
    r"""The content loss :math:`\tfrac12 \sum (F - P)^2` (Gatys) or :math:`\frac{1}{4 n_H n_W n_C} \sum (F - P)^2`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        P: activations of the content images, (N, C, H, W) or (1, C, H, W).
        convention: ``"gatys"`` or ``"deeplearning_ai"``.

    Returns:
        A 0-dim tensor, summed over the batch.

    Example:
        >>> content_loss(torch.ones(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).item()
        9.0
    """
    F = check_features(F, "F")
    _check_target(P, tuple(F.shape), "P", "content_loss of F")
    _, C, H, W = F.shape
    return get_convention(convention).content_factor(C, H, W) * ((F - P) ** 2).sum()


def style_layer_loss(F: torch.Tensor, A_gram: torch.Tensor, *,
                     convention: str | Convention = "gatys") -> torch.Tensor:
    r"""One layer's style loss :math:`E_l = \frac{1}{4 N_l^2 M_l^2} \sum (G^l - A^l)^2`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        A_gram: the style images' Gram matrices ``gram_matrix(style_F)`` (unnormalised), (N, C, C) or (1, C, C).
        convention: ``"gatys"`` or ``"deeplearning_ai"`` (the same normalisation for this part).

    Returns:
        A 0-dim tensor, summed over the batch.

    Example:
        >>> F = torch.rand(1, 4, 3, 3, generator=torch.Generator().manual_seed(0))
        >>> style_layer_loss(F, gram_matrix(F)).item()
        0.0
    """
    F = check_features(F, "F")
    N, C, H, W = F.shape
    _check_target(A_gram, (N, C, C), "A_gram", "style_layer_loss of F")
    G = gram_matrix(F)  # (N, C, C)
    return get_convention(convention).style_factor(C, H * W) * ((G - A_gram) ** 2).sum()


def _layer_weights(target_grams: Mapping[str, torch.Tensor],
                   weights: Mapping[str, float] | None) -> dict[str, float]:
    """Equal weights :math:`w_l = 1/L` by default; given weights must name target layers and be >= 0."""
    if weights is None:
        if not target_grams:
            raise ValueError("target_grams is empty; give the Gram matrix of at least one style layer.")
        return {layer: 1.0 / len(target_grams) for layer in target_grams}
    unknown = [layer for layer in weights if layer not in target_grams]
    if unknown:
        raise ValueError(f"weights name layer(s) {unknown} that have no target Gram matrix; target_grams has "
                         f"{list(target_grams)}.")
    if not weights:
        raise ValueError("weights is empty; give at least one style layer a weight, or pass weights=None.")
    return {layer: _check_weight(w, f"the weight of style layer {layer!r}") for layer, w in weights.items()}


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], *,
               weights: Mapping[str, float] | None = None,
               convention: str | Convention = "gatys") -> torch.Tensor:
    r"""The style loss :math:`\mathcal{L}_{style} = \sum_l w_l E_l` over the style layers.

    Args:
        features: layer name -> activations of the generated images (N, C, H, W); may hold more layers.
        target_grams: layer name -> the style images' Gram matrix (N or 1, C, C); these are the style layers.
        weights: layer name -> :math:`w_l \ge 0`; default :math:`1/L` for each of the L target layers.
            Layers left out of ``weights`` do not count.
        convention: ``"gatys"`` or ``"deeplearning_ai"``.

    Returns:
        A 0-dim tensor.

    Example:
        >>> F = {"relu1_1": torch.ones(1, 2, 2, 2)}
        >>> style_loss(F, {"relu1_1": torch.zeros(1, 2, 2)}, weights={"relu1_1": 2.0}).item()
        0.5
    """
    w = _layer_weights(target_grams, weights)
    missing = [layer for layer in w if layer not in features]
    if missing:
        raise ValueError(f"features lack the style layer(s) {missing}; extract them too "
                         f"(features has {list(features)}).")
    terms = [w_l * style_layer_loss(features[layer], target_grams[layer], convention=convention)
             for layer, w_l in w.items()]
    return torch.stack(terms).sum()


def total_variation(x: torch.Tensor, *, kind: str = "l2") -> torch.Tensor:
    r"""The total variation of images: squared (``"l2"``) or absolute (``"l1"``) neighbour differences.

    :math:`\mathrm{TV}_2(x) = \sum (x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2` and
    :math:`\mathrm{TV}_1(x) = \sum |x_{i+1,j} - x_{i,j}| + |x_{i,j+1} - x_{i,j}|`, over all channels and images.

    Args:
        x: images of shape (N, C, H, W).
        kind: ``"l2"`` (smooth; Johnson et al.) or ``"l1"`` (keeps edges).

    Returns:
        A 0-dim tensor.

    Example:
        >>> x = torch.tensor([[[[0.0, 1.0], [0.0, 3.0]]]])
        >>> total_variation(x).item(), total_variation(x, kind="l1").item()
        (14.0, 6.0)
    """
    x = check_features(x, "x")
    if kind not in TV_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, TV_KINDS))}, got {kind!r}.")
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    if kind == "l2":
        return (dh**2).sum() + (dw**2).sum()
    return dh.abs().sum() + dw.abs().sum()


def total_loss(features: Mapping[str, torch.Tensor], content_targets: Mapping[str, torch.Tensor],
               style_grams: Mapping[str, torch.Tensor], *, image: torch.Tensor | None = None,
               alpha: float | None = None, beta: float | None = None, tv_weight: float = 0.0,
               tv_kind: str = "l2", style_weights: Mapping[str, float] | None = None,
               convention: str | Convention = "gatys") -> LossParts:
    r"""The total loss :math:`\alpha \mathcal{L}_{content} + \beta \mathcal{L}_{style} + \lambda_{TV} \mathrm{TV}(x)`.

    Args:
        features: layer name -> activations of the generated images (N, C, H, W).
        content_targets: content layer name -> the content images' activations P (N or 1, C, H, W); the
            content loss sums over these layers.
        style_grams: style layer name -> the style images' Gram matrices (N or 1, C, C).
        image: the generated images (N, 3, H, W); needed when ``tv_weight > 0``.
        alpha, beta: the weights of content and style; default the convention's.
        tv_weight: :math:`\lambda_{TV} \ge 0`.
        tv_kind: ``"l2"`` or ``"l1"``.
        style_weights: :math:`w_l` per style layer (see :func:`style_loss`).
        convention: ``"gatys"`` or ``"deeplearning_ai"``.

    Returns:
        A :class:`LossParts` with the unweighted parts and the weighted total.

    Example:
        >>> F = {"relu1_1": torch.ones(1, 2, 2, 2), "relu4_2": torch.ones(1, 2, 2, 2)}
        >>> parts = total_loss(F, {"relu4_2": torch.zeros(1, 2, 2, 2)}, {"relu1_1": gram_matrix(F["relu1_1"])})
        >>> parts.content.item(), parts.style.item(), parts.total.item()
        (4.0, 0.0, 4.0)
    """
    conv = get_convention(convention)
    alpha = _check_weight(conv.alpha if alpha is None else alpha, "alpha")
    beta = _check_weight(conv.beta if beta is None else beta, "beta")
    tv_weight = _check_weight(tv_weight, "tv_weight")
    if not content_targets:
        raise ValueError("content_targets is empty; give the content activations of at least one layer.")
    missing = [layer for layer in content_targets if layer not in features]
    if missing:
        raise ValueError(f"features lack the content layer(s) {missing}; features has {list(features)}.")
    content = torch.stack([content_loss(features[layer], P, convention=conv)
                           for layer, P in content_targets.items()]).sum()
    style = style_loss(features, style_grams, weights=style_weights, convention=conv)
    if tv_weight > 0:
        if image is None:
            raise ValueError("tv_weight > 0 needs the generated image: pass image=x.")
        tv = total_variation(image, kind=tv_kind)
    else:
        tv = content.new_zeros(())
    return LossParts(content, style, tv, alpha * content + beta * style + tv_weight * tv)


def content_gradient(F: torch.Tensor, P: torch.Tensor, *, convention: str | Convention = "gatys",
                     mask: bool = True) -> torch.Tensor:
    r"""The analytic gradient of :func:`content_loss`, eq. (2) of the paper: :math:`(F - P)` where :math:`F > 0`.

    Args:
        F: rectified activations of the generated images, (N, C, H, W).
        P: the content images' activations, (N or 1, C, H, W).
        convention: ``"gatys"`` (factor 1) or ``"deeplearning_ai"`` (factor :math:`1/(2 n_H n_W n_C)`).
        mask: ``True``: the gradient with respect to the pre-activation (zero where :math:`F \le 0`), as in the
            paper; ``False``: the gradient with respect to :math:`F` itself.

    Returns:
        A tensor of shape (N, C, H, W).

    Example:
        >>> content_gradient(torch.tensor([[[[2.0, 0.0]]]]), torch.tensor([[[[1.0, 1.0]]]]))
        tensor([[[[1., 0.]]]])
    """
    F = check_features(F, "F")
    _check_target(P, tuple(F.shape), "P", "content_gradient of F")
    _, C, H, W = F.shape
    grad = 2 * get_convention(convention).content_factor(C, H, W) * (F - P)  # d/dF of c * sum (F - P)^2
    return torch.where(F > 0, grad, 0.0) if mask else grad


def style_layer_gradient(F: torch.Tensor, A_gram: torch.Tensor, *, convention: str | Convention = "gatys",
                         mask: bool = True) -> torch.Tensor:
    r"""The analytic gradient of :func:`style_layer_loss`, eq. (6): :math:`\frac{1}{N_l^2 M_l^2} (G - A) F` where :math:`F > 0`.

    As in the Caffe-era code: ``c * (G - A) @ F * (F > 0)`` with :math:`c = 1/(N_l^2 M_l^2)`.

    Args:
        F: rectified activations of the generated images, (N, C, H, W).
        A_gram: the style images' Gram matrices, (N or 1, C, C), symmetric.
        convention: ``"gatys"`` or ``"deeplearning_ai"`` (the same for this part).
        mask: ``True``: the gradient with respect to the pre-activation (zero where :math:`F \le 0`), as in
            the paper; ``False``: the gradient with respect to :math:`F` itself.

    Returns:
        A tensor of shape (N, C, H, W).

    Example:
        >>> F = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> style_layer_gradient(F, gram_matrix(F)).abs().max().item()
        0.0
    """
    F = check_features(F, "F")
    N, C, H, W = F.shape
    _check_target(A_gram, (N, C, C), "A_gram", "style_layer_gradient of F")
    F_flat = F.reshape(N, C, H * W)  # (N, C, M)
    G = F_flat @ F_flat.transpose(1, 2)  # (N, C, C)
    # d/dF of c * sum (G - A)^2 is 4 c (G - A) F for symmetric G and A.
    grad = (4 * get_convention(convention).style_factor(C, H * W) * (G - A_gram) @ F_flat).reshape(N, C, H, W)
    return torch.where(F > 0, grad, 0.0) if mask else grad
