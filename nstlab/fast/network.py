r"""The image transform network of Johnson, Alahi & Fei-Fei (2016), with Ulyanov et al.'s instance normalisation.

Johnson et al., *Perceptual losses for real-time style transfer and super-resolution* (ECCV 2016), train a
feed-forward network :math:`f_W` once per style so that stylising a photo :math:`x` is one pass,
:math:`\hat y = f_W(x)`, instead of hundreds of optimisation steps. The network (their supplementary material,
as in their ``fast-neural-style`` code):

====================================  =========================  ========================================
stage                                 channels                   size
====================================  =========================  ========================================
reflection pad, 9x9 conv (the stem)   3 -> w                     H x W
3x3 conv, stride 2 (twice)            w -> 2w -> 4w              H/2, then H/4
residual blocks (``blocks`` of them)  4w                         H/4
upsample x2 + 3x3 conv (twice)        4w -> 2w -> w              H/2, then H
9x9 conv (the output)                 w -> 3                     H x W
====================================  =========================  ========================================

Every convolution but the last is followed by instance normalisation and a ReLU. The paper's size is
``w = 32`` with 5 residual blocks (about 1.7 M parameters); :data:`SMALL` (``w = 16``, 3 blocks, about 0.3 M)
trains on a laptop's CPU.

**Instance normalisation** (Ulyanov, Vedaldi & Lempitsky, 2016) normalises each image and channel over its
own pixels,

.. math:: \mathrm{IN}(x)_{nchw} = \gamma_c \frac{x_{nchw} - \mu_{nc}}{\sqrt{\sigma^2_{nc} + \epsilon}} + \beta_c,
          \qquad \mu_{nc} = \frac{1}{HW} \sum_{hw} x_{nchw}, \quad
          \sigma^2_{nc} = \frac{1}{HW} \sum_{hw} (x_{nchw} - \mu_{nc})^2,

so the contrast of the input photo is removed from every feature map; batch normalisation would mix the
statistics of the images of a batch instead, and behaves differently at training and test time.

Departures from the paper:

* **Upsampling**: the paper's fractionally strided (transposed) convolutions leave checkerboard artefacts
  where their kernels overlap unevenly (Odena, Dumoulin & Olah, 2016); here nearest-neighbour upsampling
  followed by a 3x3 convolution (:class:`UpsampleConv`) replaces them, as in Johnson's later code.
* **Padding**: reflection padding everywhere (no zero padding, which darkens borders), as in Ulyanov's and
  Johnson's later code; the paper used zero padding and trimmed the residual blocks.
* **Output**: the paper ends with a scaled tanh on 0-255 pixels; our images live in [0, 1], so the output is
  a **sigmoid**, :math:`\hat y = 1 / (1 + e^{-z})` (equal to :math:`(\tanh(z/2) + 1) / 2`), which maps any
  value into (0, 1) with a gradient everywhere.
* **Any size**: two stride-2 convolutions halve a side rounding up, so when H or W is not a multiple of 4 the
  upsampled map is up to 3 pixels larger; the output is cropped back to the input's size, always H x W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The paper's network (Johnson et al. 2016, supplementary Table 1): 32 channels after the stem, 5 residual blocks.
PAPER = dict(width=32, blocks=5)
# Half the width and three blocks: about 0.3 M parameters instead of 1.7 M, and about 4x less compute per pixel,
# so that the fast profile trains on a CPU in minutes.
SMALL = dict(width=16, blocks=3)
# The smallest side the network takes: the 9x9 stem pads 4 pixels by reflection, which needs more than 4, and
# the two halvings leave 2 pixels for the residual blocks' reflection padding at 8.
MIN_SIDE = 8
# Added to the variance before the square root (the default of torch's instance normalisation).
EPS = 1e-5


def instance_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, *,
                  eps: float = EPS) -> torch.Tensor:
    r"""Instance normalisation: each image's channel to mean 0 and variance 1 over its pixels, then scale and shift.

    :math:`\mathrm{IN}(x)_{nchw} = \gamma_c (x_{nchw} - \mu_{nc}) / \sqrt{\sigma^2_{nc} + \epsilon} + \beta_c`, with
    the biased variance (divided by H W), as ``nn.InstanceNorm2d(C, affine=True)`` computes it.

    Args:
        x: feature maps of shape (N, C, H, W).
        weight: :math:`\gamma`, shape (C,); ``None`` scales by 1.
        bias: :math:`\beta`, shape (C,); ``None`` shifts by 0.
        eps: :math:`\epsilon`, keeps the division finite for constant maps.

    Returns:
        A tensor of shape (N, C, H, W); ``x`` is not modified.

    Example:
        >>> x = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
        >>> [round(v, 3) for v in instance_norm(x).flatten().tolist()]  # mean 4, variance 5
        [-1.342, -0.447, 0.447, 1.342]
        >>> [round(v, 3) for v in instance_norm(x, torch.tensor([2.0]), torch.tensor([1.0])).flatten().tolist()]
        [-1.683, 0.106, 1.894, 3.683]
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (N, C, H, W), got {got}; add a batch dimension with x[None].")
    C = x.shape[1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (C,):
            raise ValueError(f"{name} must have shape ({C},), one value per channel of x, got {tuple(p.shape)}.")
    mu = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    var = ((x - mu) ** 2).mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1), biased: divided by H W
    x_hat = (x - mu) / torch.sqrt(var + eps)
    if weight is not None:
        x_hat = x_hat * weight.view(1, C, 1, 1)
    if bias is not None:
        x_hat = x_hat + bias.view(1, C, 1, 1)
    return x_hat


def _conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1) -> nn.Sequential:
    """Reflection padding of half the kernel, then a convolution: the output keeps the size (divided by stride)."""
    return nn.Sequential(nn.ReflectionPad2d(kernel_size // 2),
                         nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride))


class _InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` that keeps a channels-last input channels-last.

    torch's fused kernel returns the usual layout, so every convolution after it would copy its input back to
    channels-last; for such inputs this computes :func:`instance_norm` instead (element-wise and reductions,
    which keep the layout), in float32 also under bf16 autocast. Other inputs, and ONNX and Core ML exports,
    take torch's kernel, which those formats know as InstanceNormalization.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return instance_norm(x.float(), self.weight, self.bias, eps=self.eps)
        return super().forward(x)


def _norm(channels: int) -> nn.InstanceNorm2d:
    # torch's module computes exactly instance_norm above (tests check it), in one fused kernel that ONNX and
    # Core ML know as InstanceNormalization; the subclass only keeps channels-last inputs in their layout.
    return _InstanceNorm2d(channels, affine=True, eps=EPS)


class ResidualBlock(nn.Module):
    r"""A residual block: :math:`x + \mathrm{IN}(\mathrm{conv}(\mathrm{ReLU}(\mathrm{IN}(\mathrm{conv}(x)))))`.

    Two reflection-padded 3x3 convolutions with instance normalisation and a ReLU between them; the block learns
    a change to its input rather than a replacement, so that many of them train as easily as one (He et al. 2016).

    Args:
        channels: C, the number of channels in and out.

    Example:
        >>> block = ResidualBlock(8)
        >>> block(torch.rand(2, 8, 12, 12)).shape
        torch.Size([2, 8, 12, 12])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = _conv(channels, channels, 3), _norm(channels)
        self.conv2, self.in2 = _conv(channels, channels, 3), _norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W)
        h = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(h))  # no ReLU after the sum, as in Johnson's supplementary material


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling by ``scale``, reflection padding, then a convolution (no transposed convolution).

    Every output pixel sees the same number of input pixels, so no checkerboard pattern can appear, unlike a
    transposed convolution whose kernel size is not divisible by its stride.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: the convolution's kernel (odd).
        scale: the upsampling factor.

    Example:
        >>> UpsampleConv(8, 4)(torch.rand(1, 8, 5, 7)).shape
        torch.Size([1, 4, 10, 14])
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.conv = _conv(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C_in, H, W) -> (N, C_out, scale H, scale W)
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class TransformNet(nn.Module):
    """Johnson et al.'s image transform network: a photo in [0, 1] to a stylised image in [0, 1] of the same size.

    Args:
        width: channels after the stem, w (the paper: 32); the deepest stage has 4 w.
        blocks: the number of residual blocks (the paper: 5).

    Attributes:
        settings: ``dict(width=..., blocks=...)``, enough to build the same network again.

    Example:
        >>> net = TransformNet(**SMALL)
        >>> y = net(torch.rand(2, 3, 30, 41))
        >>> y.shape, bool(y.min() > 0 and y.max() < 1), net.settings
        (torch.Size([2, 3, 30, 41]), True, {'width': 16, 'blocks': 3})
    """

    def __init__(self, *, width: int = 32, blocks: int = 5) -> None:
        super().__init__()
        if int(width) != width or width < 1 or int(blocks) != blocks or blocks < 0:
            raise ValueError(f"width must be a positive integer and blocks an integer >= 0, got width={width!r}, "
                             f"blocks={blocks!r}; the paper uses width=32, blocks=5.")
        w = int(width)
        self.settings = dict(width=w, blocks=int(blocks))
        self.stem, self.in_stem = _conv(3, w, 9), _norm(w)  # (N, w, H, W)
        self.down1, self.in_down1 = _conv(w, 2 * w, 3, stride=2), _norm(2 * w)  # (N, 2w, H/2, W/2)
        self.down2, self.in_down2 = _conv(2 * w, 4 * w, 3, stride=2), _norm(4 * w)  # (N, 4w, H/4, W/4)
        self.residuals = nn.Sequential(*(ResidualBlock(4 * w) for _ in range(int(blocks))))
        self.up1, self.in_up1 = UpsampleConv(4 * w, 2 * w), _norm(2 * w)  # (N, 2w, H/2, W/2)
        self.up2, self.in_up2 = UpsampleConv(2 * w, w), _norm(w)  # (N, w, H, W)
        self.out = _conv(w, 3, 9)  # (N, 3, H, W): no normalisation, no ReLU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stylise images.

        Args:
            x: images of shape (N, 3, H, W) in [0, 1], at least :data:`MIN_SIDE` pixels on each side.

        Returns:
            Images of shape (N, 3, H, W) in (0, 1).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}; add a batch dimension "
                             "with x[None] or convert grey/RGBA images to RGB.")
        H, W = x.shape[-2:]
        h = F.relu(self.in_stem(self.stem(x)))
        h = F.relu(self.in_down1(self.down1(h)))
        h = F.relu(self.in_down2(self.down2(h)))
        h = self.residuals(h)
        h = F.relu(self.in_up1(self.up1(h)))
        h = F.relu(self.in_up2(self.up2(h)))
        z = self.out(h)[:, :, :H, :W]  # a side that is not a multiple of 4 comes back up to 3 pixels larger
        return torch.sigmoid(z)

    def extra_repr(self) -> str:
        return f"width={self.settings['width']}, blocks={self.settings['blocks']}"


def count_parameters(net: nn.Module) -> int:
    """The number of trainable parameters of ``net``.

    Example:
        >>> count_parameters(TransformNet(**PAPER)), count_parameters(TransformNet(**SMALL))
        (1679235, 276675)
    """
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
