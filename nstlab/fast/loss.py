r"""Johnson et al.'s perceptual loss: feature and style reconstruction through a frozen VGG16, next to Gatys'.

A frozen loss network :math:`\phi` (VGG16 from :mod:`nstlab.vgg`) compares the transform network's output
:math:`\hat y` with the content photo :math:`y_c` (the network's own input) and the style image :math:`y_s`.
With :math:`\phi_j(x)` the activations of layer :math:`j`, of shape :math:`C_j \times H_j \times W_j`
(Johnson et al. 2016, eq. 2-5):

.. math::

    \ell_{feat}^{\phi, j}(\hat y, y) = \frac{1}{C_j H_j W_j} \| \phi_j(\hat y) - \phi_j(y) \|_2^2
        \qquad (j = \mathrm{relu2\_2})

    G^\phi_j(x)_{cc'} = \frac{1}{C_j H_j W_j} \sum_{h, w} \phi_j(x)_{hwc} \, \phi_j(x)_{hwc'}
        \qquad \text{(the Gram matrix, normalised by } C_j H_j W_j)

    \ell_{style}^{\phi, J}(\hat y, y_s) = \sum_{j \in J} \| G^\phi_j(\hat y) - G^\phi_j(y_s) \|_F^2
        \qquad (J = \mathrm{relu1\_2, relu2\_2, relu3\_3, relu4\_3})

    \mathcal{L} = \lambda_c \, \ell_{feat} + \lambda_s \, \ell_{style} + \lambda_{TV} \, \ell_{TV}

Each term is **averaged** over the images of a batch (the losses of :mod:`nstlab.losses` are summed), so the
learning rate does not depend on the batch size.

**Next to Gatys' convention** (:mod:`nstlab.losses`, with :math:`N_l = C`, :math:`M_l = H W`, and unnormalised
:math:`G^l = F F^T`), for one image:

* the Gram matrices differ by the normalisation only: :math:`G^\phi_j = G^l / (C H W)`;
* the style term of one layer is **four times** Gatys' :math:`E_l`:
  :math:`\| (G^l - A^l) / (N_l M_l) \|_F^2 = 4 \cdot \frac{1}{4 N_l^2 M_l^2} \sum (G^l - A^l)^2 = 4 E_l`,
  so with equal weights :math:`w_l = 1/L`, :math:`\ell_{style} = 4 L \, \mathcal{L}_{style}`;
* the feature term is :math:`\frac{2}{C H W}` times Gatys' :math:`\tfrac12 \sum (F - P)^2`.

``tests/test_fast_loss.py`` checks all three against :mod:`nstlab.losses`. The total variation term
:math:`\ell_{TV}` is :func:`nstlab.losses.total_variation` (squared neighbour differences) divided by the number
of values :math:`N C H W`, a per-pixel mean like the other terms; Johnson et al. weigh it between
:math:`10^{-6}` and :math:`10^{-4}` on 0-255 pixels.

Departures from the paper: images are in [0, 1] and normalised for ImageNet inside the extractor, so weights
quoted for 0-255 pixels do not carry over unchanged (see :mod:`nstlab.fast.config`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nstlab.losses import check_features, total_variation

# Johnson et al.'s layers of VGG16 (nstlab.vgg names): style at the last ReLU of the first four blocks,
# content at relu2_2 (the paper shows relu3_3 keeps less of the photo's fine detail).
JOHNSON_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
JOHNSON_CONTENT_LAYER = "relu2_2"


def johnson_gram(F: torch.Tensor) -> torch.Tensor:
    r"""Johnson's Gram matrix :math:`G = F F^T / (C H W)` of each image's features.

    Equals ``nstlab.losses.gram_matrix(F, normalize=True)``.

    Args:
        F: activations of shape (N, C, H, W).

    Returns:
        A tensor of shape (N, C, C), one normalised Gram matrix per image.

    Example:
        >>> F = torch.ones(2, 3, 4, 5)
        >>> G = johnson_gram(F)
        >>> G.shape, round(G[0, 0, 1].item(), 6)  # 20 products of 1, divided by 3 * 4 * 5
        (torch.Size([2, 3, 3]), 0.333333)
    """
    F = check_features(F, "F")
    N, C, H, W = F.shape
    F_flat = F.reshape(N, C, H * W)  # (N, C, HW)
    return F_flat @ F_flat.transpose(1, 2) / (C * H * W)  # (N, C, C)


def perceptual_loss(features: Mapping[str, torch.Tensor], content_features: torch.Tensor,
                    style_grams: Mapping[str, torch.Tensor], *, content_layer: str = JOHNSON_CONTENT_LAYER,
                    content_weight: float = 1.0, style_weight: float = 1e5
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The perceptual loss :math:`\lambda_c \ell_{feat} + \lambda_s \ell_{style}`.

    Training adds :math:`\lambda_{TV} \ell_{TV}` (:func:`tv_loss`) to ``total`` when its ``tv_weight`` is
    positive; notebook 07's exercise has exactly this signature.

    Args:
        features: layer name -> activations of the transformed batch :math:`\phi_j(\hat y)`, (N, C, H, W); must
            hold ``content_layer`` and every layer of ``style_grams``.
        content_features: :math:`\phi_j(y_c)` at ``content_layer`` for the input batch, (N, C, H, W).
        style_grams: style layer name -> :func:`johnson_gram` of the style image, (1, C, C) (broadcast over
            the batch) or (N, C, C).
        content_layer: the layer of the feature reconstruction loss.
        content_weight: :math:`\lambda_c \ge 0`.
        style_weight: :math:`\lambda_s \ge 0`.

    Returns:
        ``(total, content, style)``: 0-dim tensors, each averaged over the batch; content and style unweighted.

    Example:
        >>> feats = {"relu2_2": torch.ones(2, 4, 3, 3), "relu1_2": torch.ones(2, 2, 6, 6)}
        >>> grams = {"relu1_2": torch.zeros(1, 2, 2)}
        >>> total, content, style = perceptual_loss(feats, torch.zeros(2, 4, 3, 3), grams, style_weight=10.0)
        >>> content.item(), style.item(), total.item()  # style: four entries of (36 / 72)^2
        (1.0, 1.0, 11.0)
    """
    for name, value in (("content_weight", content_weight), ("style_weight", style_weight)):
        if not (value >= 0 and value < float("inf")):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    if content_layer not in features:
        raise ValueError(f"features lack the content layer {content_layer!r}; features has {list(features)}.")
    if not style_grams:
        raise ValueError("style_grams is empty; give the Gram matrix of at least one style layer.")
    missing = [layer for layer in style_grams if layer not in features]
    if missing:
        raise ValueError(f"features lack the style layer(s) {missing}; extract them too (features has "
                         f"{list(features)}).")
    F_c = check_features(features[content_layer], f"features[{content_layer!r}]")
    P = check_features(content_features, "content_features")
    if P.shape != F_c.shape:
        raise ValueError(f"content_features has shape {tuple(P.shape)}, but features[{content_layer!r}] has "
                         f"{tuple(F_c.shape)}; compute both at the same layer from images of the same size.")
    N = F_c.shape[0]
    content = ((F_c - P) ** 2).mean()  # ||.||^2 / (C H W), averaged over the batch

    terms = []
    for layer, A in style_grams.items():
        G = johnson_gram(features[layer])  # (N, C, C)
        if A.ndim != 3 or A.shape[1:] != G.shape[1:] or A.shape[0] not in (1, N):
            raise ValueError(f"style_grams[{layer!r}] has shape {tuple(A.shape)}, but the features give Gram "
                             f"matrices of shape {tuple(G.shape)}; pass johnson_gram of the style image's "
                             f"features at {layer} (batch size 1).")
        terms.append(((G - A) ** 2).sum() / N)  # squared Frobenius norm, averaged over the batch
    style = torch.stack(terms).sum()

    total = content_weight * content + style_weight * style
    return total, content, style


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    r"""The total variation :math:`\ell_{TV}` as a per-value mean: :func:`nstlab.losses.total_variation` / (N C H W).

    Args:
        image: the transformed batch :math:`\hat y`, (N, 3, H, W).

    Returns:
        A 0-dim tensor.

    Example:
        >>> tv_loss(torch.tensor([[[[0.0, 1.0], [0.0, 3.0]]]])).item()  # (1 + 9 + 0 + 4) / 4
        3.5
    """
    image = check_features(image, "image")
    return total_variation(image) / image.numel()


def style_targets(extractor, style_image: torch.Tensor, *, layers=JOHNSON_STYLE_LAYERS) -> dict[str, torch.Tensor]:
    r"""The style image's Gram matrices :math:`G^\phi_j(y_s)` at ``layers``, computed once before training.

    Args:
        extractor: an :class:`nstlab.vgg.VGGFeatures` that returns at least ``layers``.
        style_image: the style image, (1, 3, H, W) in [0, 1].
        layers: the style layers.

    Returns:
        Layer name -> a (1, C, C) tensor, without gradient.

    Example:
        >>> from nstlab.vgg import VGGFeatures
        >>> from nstlab.weights import untrained_backbone
        >>> extractor = VGGFeatures(["relu1_2"], backbone=untrained_backbone("vgg16"))
        >>> style_targets(extractor, torch.rand(1, 3, 32, 32), layers=["relu1_2"])["relu1_2"].shape
        torch.Size([1, 64, 64])
    """
    style_image = check_features(style_image, "style_image")
    if style_image.shape[0] != 1:
        raise ValueError(f"style_image must be one image of shape (1, 3, H, W), got {tuple(style_image.shape)}.")
    with torch.no_grad():
        feats = extractor(style_image)
    missing = [layer for layer in layers if layer not in feats]
    if missing:
        raise ValueError(f"the extractor does not return the style layer(s) {missing}; build it with them.")
    return {layer: johnson_gram(feats[layer]) for layer in layers}
