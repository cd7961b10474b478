r"""Style from statistics: per-channel mean and standard deviation, AdaIN, and the Gram loss as an MMD.

A layer's response to an image, :math:`F^l \in \mathbb{R}^{N_l \times M_l}` (:math:`N_l` channels,
:math:`M_l = H W` positions; a tensor of shape (N, C, H, W) with C = :math:`N_l`, as in :mod:`nstlab.losses`),
can be read as :math:`M_l` samples :math:`f_1, \dots, f_{M_l} \in \mathbb{R}^{N_l}`, one feature vector per
position. A *style* is then a property of the distribution of these samples, not of where they are, and a
style loss compares two distributions by some of their statistics:

* **Mean and standard deviation** per channel (Huang & Belongie 2017, "Arbitrary style transfer in real-time
  with adaptive instance normalization"): with :math:`\mu_c(F) = \frac{1}{M}\sum_k F_{ck}` and
  :math:`\sigma_c(F) = \sqrt{\frac{1}{M}\sum_k (F_{ck} - \mu_c)^2 + \epsilon}`,

  .. math:: L_{ms}(F, S) = \sum_c (\mu_c(F) - \mu_c(S))^2 + (\sigma_c(F) - \sigma_c(S))^2 .

  Their paper sums the L2 *norms* of the differences over layers; we use the squared norms, which have the
  same minimum and a smooth gradient at it. The variance is the biased one (divided by M) and
  :math:`\epsilon = 10^{-5}`, as in their code.

* **Adaptive instance normalisation** moves content features to the style's statistics, channel by channel:

  .. math:: \mathrm{AdaIN}(c, s) = \sigma(s) \frac{c - \mu(c)}{\sigma(c)} + \mu(s) .

* **Maximum mean discrepancy** (Li, Wang, Liu & Hou 2017, "Demystifying neural style transfer"). For samples
  :math:`X = \{x_i\}_{i=1}^{M}`, :math:`Y = \{y_j\}_{j=1}^{M'}` and a kernel :math:`k`, the biased estimate is

  .. math:: \mathrm{MMD}^2[X, Y] = \frac{1}{M^2}\sum_{i,i'} k(x_i, x_{i'}) + \frac{1}{M'^2}\sum_{j,j'} k(y_j, y_{j'})
            - \frac{2}{M M'}\sum_{i,j} k(x_i, y_j).

  With the linear kernel :math:`k(x, y) = x^\top y` it is :math:`\|\bar x - \bar y\|^2`: only the means count.

**The Gram loss is an MMD** (the derivation for our convention, that of :mod:`nstlab.losses`:
:math:`G = F F^\top`, :math:`E_l = \frac{1}{4 N_l^2 M_l^2} \sum_{ij} (G_{ij} - A_{ij})^2`). Write the
generated image's samples :math:`f_k` (the columns of :math:`F`) and the style image's :math:`s_k` (the columns
of :math:`S`, so :math:`A = S S^\top`). Then :math:`G = \sum_k f_k f_k^\top`, and for two such sums

.. math:: \langle G, A \rangle_F = \sum_{ij} G_{ij} A_{ij} = \sum_{k, k'} (f_k^\top s_{k'})^2 .

Expanding the square, :math:`\sum_{ij}(G - A)_{ij}^2 = \langle G, G\rangle - 2\langle G, A\rangle + \langle A, A\rangle
= \sum_{k,k'} (f_k^\top f_{k'})^2 - 2 \sum_{k,k'} (f_k^\top s_{k'})^2 + \sum_{k,k'} (s_k^\top s_{k'})^2`, which is
:math:`M_l^2 \, \mathrm{MMD}^2` with the quadratic kernel :math:`k(x, y) = (x^\top y)^2` when both images have
:math:`M_l` positions. Hence

.. math:: E_l = \frac{1}{4 N_l^2 M_l^2} \cdot M_l^2 \, \mathrm{MMD}^2_{quad}[F, S] = \frac{\mathrm{MMD}^2_{quad}[F, S]}{4 N_l^2} .

The constant is :math:`1/(4 N_l^2)` (:data:`GRAM_MMD_CONSTANT`); :math:`M_l` cancels. Li et al. state the
identity with the same normalisation of the Gram loss, so their constant is ours. **When the sizes differ**
(:math:`M` positions in the generated image, :math:`M'` in the style image), the same expansion gives
:math:`\mathrm{MMD}^2_{quad} = \| G / M - A / M' \|_F^2`: the MMD compares Gram matrices each divided by its own
number of positions, while :math:`E_l` subtracts the unnormalised :math:`A` of the style image from :math:`G`.
Then :math:`E_l = \mathrm{MMD}^2 / (4 N_l^2)` holds only after the style's Gram is rescaled to
:math:`A \, M / M'` (what :func:`gram_style_as_mmd` computes is this size-independent form).
:mod:`nstlab.stylize` resizes the style image to the generated image's size, so there the two agree up to
the rounding of the sizes.

A *real-time* AdaIN network (VGG19 up to relu4_1 as the encoder, :func:`adain`, and a decoder back to pixels)
needs its decoder trained: Huang & Belongie trained a mirror of the encoder (convolutions and nearest-neighbour
upsampling) with the content loss towards the AdaIN target plus :func:`mean_std_loss` at relu1_1 ... relu4_1,
on pairs drawn from MS-COCO (about 80,000 photos) and WikiArt (about 80,000 paintings), 160,000 iterations of
8 pairs: two folders of tens of gigabytes and GPU time that a laptop CPU cannot offer. This library does not
train one; :mod:`nstlab.stylize` with ``content_target="adain"`` reaches the same target by optimising the
pixels, one run per image, with no network trained.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nstlab import losses

# Huang & Belongie's epsilon inside the standard deviation: keeps sigma, and 1/sigma in adain, finite for a
# channel that is constant (a dead ReLU gives many).
EPS = 1e-5
KERNELS = ("quadratic", "linear")
# E_l = GRAM_MMD_CONSTANT(N_l) * MMD^2_quadratic for two images with the same number of positions (derived above).
GRAM_MMD_CONSTANT = "1/(4 N_l^2)"
# The style losses nstlab.stylize can minimise, by name: the Gram loss of Gatys et al. (the default), the
# mean/std loss of Huang & Belongie, and the linear-kernel MMD (means only, the weakest of the three).
STYLE_LOSSES = ("gram", "mean_std", "mmd_linear")



def _check_pair(F: torch.Tensor, S: torch.Tensor, what: str) -> None:
    """S must have F's channels and F's batch size or a batch size of 1 (its positions may differ)."""
    if S.shape[1] != F.shape[1] or S.shape[0] not in (1, F.shape[0]):
        raise ValueError(f"{what}: the style features have shape {tuple(S.shape)} but the others "
                         f"{tuple(F.shape)}; they need the same channels C and a batch size of {F.shape[0]} or 1 "
                         "(take both from the same layer).")


def mean_std(F: torch.Tensor, *, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The per-channel mean :math:`\mu_c` and standard deviation :math:`\sigma_c = \sqrt{\mathrm{var}_c + \epsilon}`.

    The variance is the biased one, over the H W positions of each image and channel.

    Args:
        F: activations of shape (N, C, H, W).
        eps: :math:`\epsilon`, added to the variance.

    Returns:
        ``(mu, sigma)``, each of shape (N, C).

    Example:
        >>> F = torch.tensor([[[[0.0, 2.0]], [[1.0, 1.0]]]])  # (1, 2, 1, 2)
        >>> mu, sigma = mean_std(F, eps=0.0)
        >>> mu.tolist(), sigma.tolist()
        ([[1.0, 1.0]], [[1.0, 0.0]])
    """
    F = losses.check_features(F, "F")
    N, C, H, W = F.shape
    flat = F.reshape(N, C, H * W)  # (N, C, M)
    mu = flat.mean(dim=2)  # (N, C)
    var = flat.var(dim=2, unbiased=False)  # (N, C), divided by M
    return mu, torch.sqrt(var + eps)


def mean_std_loss(F: torch.Tensor, S: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    r"""The mean/std style loss :math:`\sum_c (\mu_c(F) - \mu_c(S))^2 + (\sigma_c(F) - \sigma_c(S))^2`.

    Summed over the channels and **averaged** over the images of the batch (unlike :mod:`nstlab.losses`,
    which sums; with one image, the usual case, the two agree).

    Args:
        F: activations of the generated images, (N, C, H, W).
        S: activations of the style images, (N or 1, C, H', W'); H' W' may differ from H W.
        eps: :math:`\epsilon` of :func:`mean_std`.

    Returns:
        A 0-dim tensor.

    Example:
        >>> F, S = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 2, 2)
        >>> round(mean_std_loss(F, S).item(), 6)  # each of the 3 channels: means differ by 1, stds equal
        3.0
    """
    F, S = losses.check_features(F, "F"), losses.check_features(S, "S")
    _check_pair(F, S, "mean_std_loss")
    mu_F, sigma_F = mean_std(F, eps=eps)  # (N, C) each
    mu_S, sigma_S = mean_std(S, eps=eps)  # (N or 1, C) each
    per_image = ((mu_F - mu_S) ** 2 + (sigma_F - sigma_S) ** 2).sum(dim=1)  # (N,)
    return per_image.mean()


def adain(content_features: torch.Tensor, style_features: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    r"""Adaptive instance normalisation: :math:`\sigma(s) \frac{c - \mu(c)}{\sigma(c)} + \mu(s)`, per image and channel.

    Args:
        content_features: (N, C, H, W).
        style_features: (N or 1, C, H', W'); one style image applies to every content image.
        eps: :math:`\epsilon` of :func:`mean_std`.

    Returns:
        A new tensor of shape (N, C, H, W) whose per-channel mean is the style's and whose standard deviation
        is the style's up to :math:`\epsilon`; the inputs are not modified.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> c, s = torch.rand(1, 4, 8, 8, generator=g), 3 + 2 * torch.rand(1, 4, 5, 5, generator=g)
        >>> t = adain(c, s)
        >>> torch.allclose(mean_std(t)[0], mean_std(s)[0], atol=1e-5)
        True
    """
    c = losses.check_features(content_features, "content_features")
    s = losses.check_features(style_features, "style_features")
    _check_pair(c, s, "adain")
    mu_c, sigma_c = mean_std(c, eps=eps)  # (N, C)
    mu_s, sigma_s = mean_std(s, eps=eps)  # (N or 1, C)
    normalised = (c - mu_c[..., None, None]) / sigma_c[..., None, None]  # (N, C, H, W), mean 0, std ~1
    return sigma_s[..., None, None] * normalised + mu_s[..., None, None]


def _check_samples(X: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of samples (M, C), got {type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (M, C): one row per sample (position), got {tuple(X.shape)}; "
                         f"from features (1, C, H, W) take F[0].flatten(1).T.")
    if not X.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {X.dtype}; convert it with .float().")
    return X


def mmd2(X: torch.Tensor, Y: torch.Tensor, *, kernel: str = "quadratic") -> torch.Tensor:
    r"""The biased squared maximum mean discrepancy between two sets of samples.

    :math:`\mathrm{MMD}^2 = \overline{k(X, X)} + \overline{k(Y, Y)} - 2\,\overline{k(X, Y)}` (means over all pairs),
    with :math:`k(x, y) = (x^\top y)^2` (``"quadratic"``) or :math:`x^\top y` (``"linear"``, which makes it
    :math:`\|\bar x - \bar y\|^2`). Computed from the kernel matrices, as defined: memory and time grow as
    :math:`M M'`, so use it on small layers (the Gram matrices compute the quadratic case in :math:`M C^2`).

    Args:
        X: samples of shape (M, C), one row per position.
        Y: samples of shape (M', C).
        kernel: ``"quadratic"`` or ``"linear"``.

    Returns:
        A 0-dim tensor.

    Example:
        >>> X, Y = torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> mmd2(X, Y, kernel="linear").item()  # ||(2, 0) - (0, 1)||^2
        5.0
    """
    X, Y = _check_samples(X, "X"), _check_samples(Y, "Y")
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features per sample and Y {Y.shape[1]}; both need the same C.")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}.")
    power = 2 if kernel == "quadratic" else 1
    k_xx = ((X @ X.T) ** power).mean()  # (M, M) -> mean
    k_yy = ((Y @ Y.T) ** power).mean()  # (M', M') -> mean
    k_xy = ((X @ Y.T) ** power).mean()  # (M, M') -> mean
    return k_xx + k_yy - 2 * k_xy


def gram_style_as_mmd(F: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    r"""The Gatys style-layer loss :math:`E_l`, computed as :math:`\mathrm{MMD}^2_{quad} / (4 N_l^2)`.

    Equal to ``losses.style_layer_loss(F, losses.gram_matrix(S))`` when F and S have the same H W (see the
    module docstring; when they differ this is the size-independent form, with the style's Gram rescaled to
    F's number of positions). Summed over the batch, like :mod:`nstlab.losses`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        S: activations of the style images, (N or 1, C, H', W').

    Returns:
        A 0-dim tensor.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> F, S = torch.rand(1, 3, 4, 4, generator=g).double(), torch.rand(1, 3, 4, 4, generator=g).double()
        >>> a, b = gram_style_as_mmd(F, S), losses.style_layer_loss(F, losses.gram_matrix(S))
        >>> torch.allclose(a, b, rtol=1e-12, atol=0)
        True
    """
    F, S = losses.check_features(F, "F"), losses.check_features(S, "S")
    _check_pair(F, S, "gram_style_as_mmd")
    N, C = F.shape[:2]
    terms = []
    for n in range(N):
        X = F[n].flatten(1).T  # (C, H, W) -> (M, C): positions as samples
        Y = S[n if S.shape[0] == N else 0].flatten(1).T  # (M', C)
        terms.append(mmd2(X, Y, kernel="quadratic") / (4 * C**2))
    return torch.stack(terms).sum()


# --- the style losses of nstlab.stylize, by name ----------------------------------------------------------------


def style_target(S: torch.Tensor, *, kind: str = "gram") -> torch.Tensor:
    """What a style image's activations contribute to a style loss named ``kind`` (see :data:`STYLE_LOSSES`).

    Targets of several style images can be blended by a weighted sum, like Gram matrices.

    Args:
        S: activations of the style images, (N, C, H, W).
        kind: ``"gram"``: the Gram matrix (N, C, C); ``"mean_std"``: mean and standard deviation stacked,
            (N, 2, C); ``"mmd_linear"``: the mean (N, C).

    Returns:
        The target tensor, shaped as above.

    Example:
        >>> style_target(torch.ones(1, 3, 2, 2), kind="mean_std").shape
        torch.Size([1, 2, 3])
    """
    S = losses.check_features(S, "S")
    if kind == "gram":
        return losses.gram_matrix(S)  # (N, C, C)
    if kind == "mean_std":
        return torch.stack(mean_std(S), dim=1)  # (N, 2, C)
    if kind == "mmd_linear":
        return S.mean(dim=(2, 3))  # (N, C)
    raise ValueError(f"unknown style loss {kind!r}; use one of {', '.join(map(repr, STYLE_LOSSES))}.")


def style_layer_loss(F: torch.Tensor, target: torch.Tensor, *, kind: str = "gram",
                     convention: str = "gatys") -> torch.Tensor:
    r"""One layer's style loss of the kind ``kind`` against a :func:`style_target`, summed over the batch.

    ``"gram"``: :math:`E_l` of :mod:`nstlab.losses` (in ``convention``); ``"mean_std"``: :math:`L_{ms}`;
    ``"mmd_linear"``: :math:`\|\mu(F) - \mu(S)\|^2 = \mathrm{MMD}^2_{lin}`.

    Args:
        F: activations of the generated images, (N, C, H, W).
        target: ``style_target(S, kind=kind)``, with a batch size of N or 1.
        kind: a name of :data:`STYLE_LOSSES`.
        convention: the loss convention of the Gram loss.

    Returns:
        A 0-dim tensor.

    Example:
        >>> F = torch.zeros(1, 3, 4, 4)
        >>> style_layer_loss(F, style_target(torch.ones(1, 3, 2, 2), kind="mmd_linear"), kind="mmd_linear").item()
        3.0
    """
    F = losses.check_features(F, "F")
    if kind == "gram":
        return losses.style_layer_loss(F, target, convention=convention)
    ours = style_target(F, kind=kind)  # (N, 2, C) or (N, C)
    if target.shape[1:] != ours.shape[1:] or target.shape[0] not in (1, ours.shape[0]):
        raise ValueError(f"the {kind} target has shape {tuple(target.shape)}, but F needs {tuple(ours.shape)} "
                         "(or a batch size of 1); make it with style_target(S, kind=...) from the same layer.")
    return ((ours - target) ** 2).sum()


def style_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor], *, kind: str = "gram",
               weights: Mapping[str, float] | None = None, convention: str = "gatys") -> torch.Tensor:
    r"""The style loss :math:`\sum_l w_l L_l` with the layer loss ``kind`` (:func:`style_layer_loss`).

    For ``kind="gram"`` this is :func:`nstlab.losses.style_loss` itself.

    Args:
        features: layer name -> activations of the generated images (N, C, H, W); may hold more layers.
        targets: layer name -> :func:`style_target` of the style images; these are the style layers.
        kind: a name of :data:`STYLE_LOSSES`.
        weights: layer name -> :math:`w_l \ge 0`; default :math:`1/L` for each of the L target layers.
        convention: the loss convention of the Gram loss.

    Returns:
        A 0-dim tensor.

    Example:
        >>> F = {"relu1_1": torch.zeros(1, 2, 2, 2)}
        >>> style_loss(F, {"relu1_1": torch.ones(1, 2)}, kind="mmd_linear").item()
        2.0
    """
    if kind == "gram":
        return losses.style_loss(features, targets, weights=weights, convention=convention)
    if not targets:
        raise ValueError("targets is empty; give the style target of at least one layer.")
    w = dict(weights) if weights is not None else {layer: 1.0 / len(targets) for layer in targets}
    missing = [layer for layer in w if layer not in features or layer not in targets]
    if missing:
        raise ValueError(f"style layer(s) {missing} lack features or a target; features has {list(features)}, "
                         f"targets {list(targets)}.")
    return torch.stack([w_l * style_layer_loss(features[layer], targets[layer], kind=kind)
                        for layer, w_l in w.items()]).sum()


def total_loss(features: Mapping[str, torch.Tensor], content_targets: Mapping[str, torch.Tensor],
               style_targets: Mapping[str, torch.Tensor], *, kind: str = "gram", image: torch.Tensor | None = None,
               alpha: float = 1.0, beta: float = 1e3, tv_weight: float = 0.0, tv_kind: str = "l2",
               style_weights: Mapping[str, float] | None = None, convention: str = "gatys") -> losses.LossParts:
    r""":math:`\alpha L_{content} + \beta \sum_l w_l L_l + \lambda_{TV} TV` with the style loss ``kind``.

    For ``kind="gram"`` this is :func:`nstlab.losses.total_loss` itself; otherwise the content and
    total-variation terms are the same and the style term is :func:`style_loss`.

    Args:
        features, content_targets: as for :func:`nstlab.losses.total_loss`.
        style_targets: layer name -> :func:`style_target` of the style images (Gram matrices for ``"gram"``).
        kind: a name of :data:`STYLE_LOSSES`.
        image, alpha, beta, tv_weight, tv_kind, style_weights, convention: as for :func:`nstlab.losses.total_loss`.

    Returns:
        A :class:`nstlab.losses.LossParts`.

    Example:
        >>> F = {"relu1_1": torch.ones(1, 2, 2, 2)}
        >>> parts = total_loss(F, F, {"relu1_1": torch.zeros(1, 2, 2)}, kind="mean_std", beta=10.0)
        >>> parts.content.item(), round(parts.style.item(), 3), round(parts.total.item(), 3)
        (0.0, 2.0, 20.0)
    """
    if kind == "gram":
        return losses.total_loss(features, content_targets, style_targets, image=image, alpha=alpha, beta=beta,
                                 tv_weight=tv_weight, tv_kind=tv_kind, style_weights=style_weights,
                                 convention=convention)
    if not content_targets:
        raise ValueError("content_targets is empty; give the content activations of at least one layer.")
    missing = [layer for layer in content_targets if layer not in features]
    if missing:
        raise ValueError(f"features lack the content layer(s) {missing}; features has {list(features)}.")
    content = torch.stack([losses.content_loss(features[layer], P, convention=convention)
                           for layer, P in content_targets.items()]).sum()
    style = style_loss(features, style_targets, kind=kind, weights=style_weights, convention=convention)
    if tv_weight > 0:
        if image is None:
            raise ValueError("tv_weight > 0 needs the generated image: pass image=x.")
        tv = losses.total_variation(image, kind=tv_kind)
    else:
        tv = content.new_zeros(())
    return losses.LossParts(content, style, tv, alpha * content + beta * style + tv_weight * tv)
