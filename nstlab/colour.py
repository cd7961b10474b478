r"""Preserving the content image's colours in style transfer.

Gatys, Bethge, Hertzmann and Shechtman, *Preserving Color in Neural Artistic Style Transfer* (2016,
arXiv:1606.05897) give two ways to keep the colours of the photo while taking the brush strokes of the
painting:

1. **Luminance-only transfer.** Work in the YIQ colour space, where :math:`Y` is the luminance and :math:`I,
   Q` carry the colour. Transfer style between the luminance channels only, after matching the style's
   luminance to the content's mean and standard deviation,

   .. math:: L_s' = \frac{\sigma_c}{\sigma_s} (L_s - \mu_s) + \mu_c ,

   then put the content's :math:`I, Q` back on the stylised luminance.

2. **Colour matching.** Before the transfer, recolour the style image so that its pixels have the content's
   mean :math:`\mu_c` and covariance :math:`\Sigma_c` (the "image analogies" linear map)

   .. math:: x' = \Sigma_c^{1/2} \Sigma_s^{-1/2} (x - \mu_s) + \mu_c .

Images are float32 tensors of shape (N, 3, H, W) in [0, 1], RGB; every function returns a new tensor.
"""

from __future__ import annotations

import torch

# NTSC RGB -> YIQ; rows give Y, I, Q. Y is the luminance the paper transfers.
YIQ_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)
# Added to standard deviations and covariance eigenvalues: a flat grey image has zero variance and no inverse.
# Far below the variance of any real image's pixels (about 1e-2), so it changes nothing else.
EPS = 1e-8


def _check_image(image: torch.Tensor, name: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (N, 3, H, W), got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(image.shape)}")


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """Convert RGB images to YIQ.

    Args:
        image: (N, 3, H, W), RGB.

    Returns:
        (N, 3, H, W): channels Y (luminance, in [0, 1] for inputs in [0, 1]), I and Q.

    Example:
        >>> rgb_to_yiq(torch.ones(1, 3, 2, 2))[0, :, 0, 0].round(decimals=4).tolist()
        [1.0, 0.0, 0.0]
    """
    _check_image(image, "image")
    M = image.new_tensor(YIQ_FROM_RGB)  # (3, 3)
    return torch.einsum("dc,nchw->ndhw", M, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Convert YIQ images back to RGB (the inverse of :func:`rgb_to_yiq`, not clipped).

    Example:
        >>> x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5)
        True
    """
    _check_image(image, "image")
    M_inv = torch.linalg.inv(image.new_tensor(YIQ_FROM_RGB, dtype=torch.float64)).to(image.dtype)  # (3, 3)
    return torch.einsum("dc,nchw->ndhw", M_inv, image)


def luminance_image(image: torch.Tensor, *, like: torch.Tensor | None = None) -> torch.Tensor:
    r"""The luminance of ``image`` as a grey RGB image, optionally matched to the luminance of ``like``.

    With ``like`` given, the luminance is shifted and scaled to the mean and standard deviation of
    ``like``'s luminance, :math:`L' = \sigma_{like}/\sigma (L - \mu) + \mu_{like}` (the paper's step before a
    luminance-only transfer).

    Args:
        image: (N, 3, H, W), RGB in [0, 1].
        like: (N or 1, 3, H', W'), optional.

    Returns:
        (N, 3, H, W), three equal channels, in [0, 1].

    Example:
        >>> grey = luminance_image(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        >>> bool((grey[:, 0] == grey[:, 1]).all())
        True
    """
    Y = rgb_to_yiq(image)[:, :1]  # (N, 1, H, W)
    if like is not None:
        Y_like = rgb_to_yiq(like)[:, :1]
        mu, sigma = Y.mean(dim=(2, 3), keepdim=True), Y.std(dim=(2, 3), keepdim=True)
        mu_like, sigma_like = Y_like.mean(dim=(2, 3), keepdim=True), Y_like.std(dim=(2, 3), keepdim=True)
        Y = (Y - mu) * (sigma_like / (sigma + EPS)) + mu_like
    return Y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def luminance_transfer(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the luminance of ``stylised`` and take the colour (I, Q) of ``content``.

    Args:
        stylised: (N, 3, H, W), the result of a transfer on luminance images.
        content: (N, 3, H, W), the photo whose colours to keep; same H and W.

    Returns:
        (N, 3, H, W) in [0, 1].

    Example:
        >>> photo = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(luminance_transfer(luminance_image(photo), photo), photo, atol=1e-4)
        True
    """
    _check_image(stylised, "stylised")
    _check_image(content, "content")
    if stylised.shape[-2:] != content.shape[-2:]:
        raise ValueError(
            f"stylised {tuple(stylised.shape)} and content {tuple(content.shape)} must have the same height and width"
        )
    yiq = torch.cat([rgb_to_yiq(stylised)[:, :1], rgb_to_yiq(content)[:, 1:]], dim=1)  # (N, 3, H, W)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _sqrt_and_inv_sqrt(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric square root and inverse square root of a (3, 3) covariance, via its eigen-decomposition."""
    lam, U = torch.linalg.eigh(sigma)
    lam = lam.clamp_min(0) + EPS
    return (U * lam.sqrt()) @ U.T, (U * lam.rsqrt()) @ U.T


def match_colours(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    r"""Recolour ``image`` so that its pixels have the mean and covariance of ``reference``'s pixels.

    :math:`x' = \Sigma_r^{1/2} \Sigma_i^{-1/2} (x - \mu_i) + \mu_r`, computed in float64 on each image's
    pixels taken as points in RGB space; the result is clipped to [0, 1].

    Args:
        image: (1, 3, H, W), the image to recolour (the style image in style transfer).
        reference: (1, 3, H', W'), the image whose colours to take (the content image).

    Returns:
        (1, 3, H, W) in [0, 1].

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> red = torch.rand(1, 3, 16, 16, generator=g) * torch.tensor([1.0, 0.2, 0.2]).view(1, 3, 1, 1)
        >>> blue = torch.rand(1, 3, 16, 16, generator=g) * torch.tensor([0.2, 0.2, 1.0]).view(1, 3, 1, 1)
        >>> out = match_colours(red, blue)
        >>> bool(out[:, 2].mean() > out[:, 0].mean())
        True
    """
    _check_image(image, "image")
    _check_image(reference, "reference")
    if image.shape[0] != 1 or reference.shape[0] != 1:
        raise ValueError(
            f"match_colours takes one image each, (1, 3, H, W); got {tuple(image.shape)} and {tuple(reference.shape)}"
        )
    x = image[0].reshape(3, -1).double()  # (3, H*W)
    r = reference[0].reshape(3, -1).double()  # (3, H'*W')
    mu_x, mu_r = x.mean(dim=1, keepdim=True), r.mean(dim=1, keepdim=True)  # (3, 1)
    sigma_x = torch.cov(x) + EPS * torch.eye(3, dtype=x.dtype, device=x.device)
    sigma_r = torch.cov(r) + EPS * torch.eye(3, dtype=x.dtype, device=x.device)
    _, inv_sqrt_x = _sqrt_and_inv_sqrt(sigma_x)
    sqrt_r, _ = _sqrt_and_inv_sqrt(sigma_r)
    out = sqrt_r @ inv_sqrt_x @ (x - mu_x) + mu_r  # (3, H*W)
    return out.reshape(image.shape).to(image.dtype).clamp(0, 1)
