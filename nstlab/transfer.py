r"""What a pretrained CNN's features hold, and how to reuse them: content reconstruction and transfer learning.

**Content representation** (Gatys et al., 2016, §2.1 and Fig. 1; Mahendran & Vedaldi, 2015): the response
:math:`P^l` of layer :math:`l` to a photo :math:`\vec p` is a description of the photo. How much of the photo
it keeps shows up when we search for an image :math:`\vec x`, starting from noise, whose response
:math:`F^l` matches it, by gradient descent on

.. math:: L_\text{content}(\vec p, \vec x, l) = \tfrac12 \sum_{i,j} (F^l_{ij} - P^l_{ij})^2 .

Shallow layers pin down nearly every pixel; deep layers keep the arrangement of objects and let the exact
pixel values go. :func:`reconstruct` runs that search (the loss is :func:`nstlab.losses.content_loss`).

**Transfer learning** (Yosinski et al., 2014): features learned on ImageNet are useful for other tasks. We
keep the convolutional **backbone** of VGG and put a new **head** on top: global average pooling then one
linear layer from the :math:`C` channels to the new classes. First the backbone is **frozen** (its weights
get no gradients) and only the head is trained; then the **last block** (``conv5_1`` … ``pool5``) is
unfrozen and **fine-tuned** together with the head, with a smaller learning rate. The small dataset is made
here, offline: :func:`patch_dataset` cuts square patches from the built-in textures, and the class of a
patch is the image it came from. Training patches come from the top three quarters of each image, test
patches from the bottom quarter, so no test pixel was ever seen in training.

Shapes use N (batch), C (channels), H and W; K is the number of classes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nstlab.data import builtin_image
from nstlab.device import autocast, channels_last, choose_precision
from nstlab.losses import content_loss
from nstlab.progress import progress
from nstlab.vgg import LAYER_NAMES
from nstlab.weights import Backbone

# The classes of the patch dataset: the built-in textures ("which texture is this patch from?").
TEXTURES = ("brick", "gravel", "hubble", "mosaic", "swirl")
# 32 pixels is the smallest patch that survives VGG's five 2x2 poolings (32 / 2**5 = 1 position at pool5).
PATCH = 32
# Long side of the textures the patches are cut from: large enough for 8 patch-widths of room.
SOURCE_SIZE = 256
# Where the last block of VGG starts: everything before it is the part that stays frozen in fine-tuning.
LAST_BLOCK = "conv5_1"


# --- content representation -----------------------------------------------------------------------------------


def reconstruct(extractor: nn.Module, image: torch.Tensor, layer: str, *, steps: int = 150, eta: float = 0.05,
                seed: int = 0) -> torch.Tensor:
    r"""Find an image whose features at ``layer`` match those of ``image``, starting from uniform noise.

    Minimises :math:`\tfrac12 \sum (F^l - P^l)^2` over the pixels with Adam (learning rate :math:`\eta`),
    keeping the pixels in [0, 1] after every step. The target :math:`P^l` is computed once; the start is
    ``torch.rand(image.shape, generator=torch.Generator().manual_seed(seed))``, so the caller's random state is
    left alone. A progress bar shows the steps, except under nbgrader.

    Args:
        extractor: a :class:`nstlab.vgg.VGGFeatures` that returns ``layer``.
        image: the photo :math:`\vec p`, shape (1, 3, H, W) in [0, 1].
        layer: the layer whose features are matched, e.g. ``"relu4_1"``.
        steps: optimiser steps.
        eta: Adam's learning rate.
        seed: seed of the starting noise.

    Returns:
        The reconstruction :math:`\vec x`, shape (1, 3, H, W) in [0, 1], detached; ``image`` is untouched.

    Example:
        >>> from nstlab.vgg import VGGFeatures
        >>> from nstlab.weights import untrained_backbone
        >>> extractor = VGGFeatures(["relu1_1"], backbone=untrained_backbone())
        >>> x = reconstruct(extractor, torch.rand(1, 3, 16, 16), "relu1_1", steps=2)
        >>> tuple(x.shape), bool(x.min() >= 0 and x.max() <= 1)
        ((1, 3, 16, 16), True)
    """
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image should have shape (1, 3, H, W), got {tuple(image.shape)}")
    with torch.no_grad():
        P = extractor(image)[layer]  # (1, C, H', W'); a KeyError here means the extractor lacks the layer
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(image.shape, generator=gen).to(image).requires_grad_()
    optimiser = torch.optim.Adam([x], lr=eta)  # made once: Adam's running averages carry over between steps
    for _ in progress(range(steps), desc=f"reconstructing from {layer}"):
        loss = content_loss(extractor(x)[layer], P)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            x.clamp_(0, 1)  # x is our own leaf tensor, not the caller's
    return x.detach()


# --- a small dataset, made offline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Patches:
    """Patches (N, 3, PATCH, PATCH) in [0, 1] with labels (N,), split by image region; ``classes[k]`` names
    class k."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]


def patch_dataset(*, classes: tuple[str, ...] = TEXTURES, n_train: int = 32, n_test: int = 16,
                  seed: int = 0) -> Patches:
    """Cut random square patches from built-in images; the label of a patch is the image it came from.

    Training patches lie in the top three quarters of each image and test patches in the bottom quarter,
    so training and test pixels never overlap.

    Args:
        classes: names of built-in images (:func:`nstlab.data.list_images`), one class each.
        n_train: training patches per class.
        n_test: test patches per class.
        seed: seed of the patch positions.

    Returns:
        A :class:`Patches` with ``n_train * K`` training and ``n_test * K`` test patches.

    Example:
        >>> d = patch_dataset(classes=("brick", "gravel"), n_train=3, n_test=2)
        >>> tuple(d.x_train.shape), d.y_test.tolist()
        ((6, 3, 32, 32), [0, 0, 1, 1])
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be at least 1, got {n_train} and {n_test}")
    gen = torch.Generator().manual_seed(seed)

    def cut(img: torch.Tensor, rows: tuple[int, int], n: int) -> torch.Tensor:
        top = torch.randint(rows[0], rows[1] - PATCH + 1, (n,), generator=gen)
        left = torch.randint(0, img.shape[-1] - PATCH + 1, (n,), generator=gen)
        return torch.stack([img[0, :, t : t + PATCH, s : s + PATCH] for t, s in zip(top.tolist(), left.tolist(),
                                                                                     strict=True)])

    xs_train, xs_test = [], []
    for name in classes:
        img = builtin_image(name, size=SOURCE_SIZE)  # (1, 3, H, W)
        split = img.shape[2] * 3 // 4
        if img.shape[2] - split < PATCH:
            raise ValueError(f"{name!r} is only {img.shape[2]} pixels high at size {SOURCE_SIZE}; its bottom "
                             f"quarter cannot hold a {PATCH}-pixel test patch; choose another image")
        xs_train.append(cut(img, (0, split), n_train))  # (n_train, 3, PATCH, PATCH)
        xs_test.append(cut(img, (split, img.shape[2]), n_test))
    labels = torch.arange(len(classes))
    return Patches(torch.cat(xs_train), labels.repeat_interleave(n_train), torch.cat(xs_test),
                   labels.repeat_interleave(n_test), tuple(classes))


# --- heads, freezing and fine-tuning --------------------------------------------------------------------------


def global_average_pool(f: torch.Tensor) -> torch.Tensor:
    r"""Average every channel over its positions: :math:`g_{n,c} = \frac{1}{HW} \sum_{i,j} f_{n,c,i,j}`.

    Args:
        f: feature maps, shape (N, C, H, W).

    Returns:
        Shape (N, C).

    Example:
        >>> global_average_pool(torch.arange(8.0).reshape(1, 2, 2, 2))
        tensor([[1.5000, 5.5000]])
    """
    if f.ndim != 4:
        raise ValueError(f"f should have shape (N, C, H, W), got {tuple(f.shape)}")
    return f.mean(dim=(2, 3))


def freeze(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters get no gradients (``requires_grad=False``); the original is untouched.

    Example:
        >>> frozen = freeze(nn.Linear(2, 3))
        >>> any(p.requires_grad for p in frozen.parameters())
        False
    """
    frozen = copy.deepcopy(module)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def count_trainable(module: nn.Module) -> int:
    """The number of parameters (individual numbers) of ``module`` that will receive gradients.

    Example:
        >>> count_trainable(nn.Linear(2, 3)), count_trainable(freeze(nn.Linear(2, 3)))
        (9, 0)
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def train_head(features: torch.Tensor, y: torch.Tensor, *, n_classes: int, epochs: int = 200, eta: float = 0.01,
               seed: int = 0) -> nn.Linear:
    r"""Train a linear head :math:`s = W g + b` on fixed features with full-batch Adam on the cross-entropy.

    Adam rather than plain gradient descent: it scales each weight's step by the size of its gradient, so
    the same :math:`\eta` works whether the backbone's features are of size 0.01 (untrained) or 10.

    Args:
        features: pooled features g, shape (N, C); they are constants (a frozen backbone made them).
        y: labels, shape (N,), integers in 0..K-1.
        n_classes: K.
        epochs: gradient steps, each on all N examples.
        eta: Adam's learning rate :math:`\eta`.
        seed: seed of the head's initial weights (``nn.Linear``'s default initialisation).

    Returns:
        The trained ``nn.Linear(C, K)``.

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> head = train_head(g, torch.tensor([0, 1]), n_classes=2, epochs=20, eta=0.1)
        >>> head(g).argmax(dim=1).tolist()
        [0, 1]
    """
    if features.ndim != 2 or y.shape != features.shape[:1]:
        raise ValueError(f"features should be (N, C) and y (N,), got {tuple(features.shape)} and {tuple(y.shape)}")
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(seed)
        head = nn.Linear(features.shape[1], n_classes).to(features)
    optimiser = torch.optim.Adam(head.parameters(), lr=eta)
    g = features.detach()
    for _ in range(epochs):
        loss = F.cross_entropy(head(g), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head


def finetune(last: nn.Module, head: nn.Linear, h: torch.Tensor, y: torch.Tensor, *, epochs: int = 10,
             eta: float = 1e-3, backbone_factor: float = 0.1, batch_size: int = 64,
             seed: int = 0) -> tuple[nn.Module, nn.Linear, list[float]]:
    r"""Fine-tune a backbone block and the head together, the block with a smaller learning rate.

    Adam with two *parameter groups*: the head's parameters at learning rate :math:`\eta`, the block's at
    ``backbone_factor`` :math:`\cdot\,\eta`, so that the pretrained filters move only a little while the head
    adapts to them. Each epoch visits the N examples once, in the order of
    ``torch.randperm(N, generator=gen)`` (one ``gen = torch.Generator().manual_seed(seed)`` for the whole run),
    in mini-batches of ``batch_size``; the scores of a batch are ``head(global_average_pool(last(h[batch])))``.

    Args:
        last: the block to fine-tune, e.g. the last block of :func:`split_backbone`; frozen or not, a
            trainable copy of it is trained.
        head: the head trained on the frozen features, ``nn.Linear(C, K)``.
        h: what the frozen layers before ``last`` made of the training examples, (N, C', H, W): constants.
        y: labels, shape (N,), integers in 0..K-1.
        epochs: passes over the N examples.
        eta: the head's learning rate :math:`\eta`.
        backbone_factor: the block's learning rate as a fraction of :math:`\eta`.
        batch_size: examples per step (the last batch of an epoch may be smaller).
        seed: seed of the order of the examples.

    Returns:
        ``(last, head, losses)``: trained copies of the block and the head (the arguments are untouched), and
        the mean cross-entropy over the examples of each epoch, as measured during it.

    Example:
        >>> block, head = nn.Sequential(nn.Conv2d(2, 4, 1), nn.ReLU()), nn.Linear(4, 2)
        >>> h, y = torch.rand(6, 2, 3, 3), torch.tensor([0, 1, 0, 1, 0, 1])
        >>> block2, head2, losses = finetune(block, head, h, y, epochs=3, batch_size=4)
        >>> len(losses), torch.equal(block2[0].weight, block[0].weight)
        (3, False)
    """
    if h.ndim != 4 or y.shape != h.shape[:1]:
        raise ValueError(f"h should be (N, C, H, W) and y (N,), got {tuple(h.shape)} and {tuple(y.shape)}")
    last, head = copy.deepcopy(last).requires_grad_(True), copy.deepcopy(head).requires_grad_(True)
    optimiser = torch.optim.Adam([
        {"params": last.parameters(), "lr": eta * backbone_factor},  # pretrained: small steps
        {"params": head.parameters(), "lr": eta},
    ])
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(y), generator=gen).split(batch_size):
            scores = head(global_average_pool(last(h[batch])))  # (B, K)
            loss = F.cross_entropy(scores, y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(y))
    return last, head, losses


def split_backbone(backbone: Backbone, *, at: str = LAST_BLOCK) -> tuple[nn.Sequential, nn.Sequential]:
    """Cut a VGG backbone's ``features`` into the layers before ``at`` and the layers from ``at`` on.

    Returns:
        ``(body, last)``: copies, so fine-tuning ``last`` never changes ``backbone``.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> body, last = split_backbone(untrained_backbone("vgg16"))
        >>> len(last), type(last[0]).__name__
        (7, 'Conv2d')
    """
    names = LAYER_NAMES[backbone.arch]
    if at not in names:
        raise ValueError(f"{at!r} is not a layer of {backbone.arch}; valid names are {', '.join(names)}")
    k = names.index(at)
    return copy.deepcopy(backbone.features[:k]), copy.deepcopy(backbone.features[k:])


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] to the ImageNet statistics VGG's weights expect (as :class:`nstlab.vgg.VGGFeatures` does)."""
    from nstlab.vgg import IMAGENET_MEAN, IMAGENET_STD

    return (x - x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)


@dataclass(frozen=True)
class TransferResult:
    """Held-out accuracies of the frozen backbone + trained head, and after fine-tuning the last block."""

    frozen_accuracy: float
    finetuned_accuracy: float
    finetune_loss: list[float]
    trainable_frozen: int
    trainable_finetuned: int
    pretrained: bool
    note: str


def transfer(backbone: Backbone, data: Patches, *, head_epochs: int = 200, finetune_epochs: int = 10,
             eta_head: float = 0.01, eta_finetune: float = 1e-3, backbone_factor: float = 0.1, batch_size: int = 64,
             seed: int = 0, precision: str | None = None) -> TransferResult:
    r"""Train a head on a frozen backbone, then fine-tune the last block with it; compare on held-out patches.

    The body (everything before ``conv5_1``) is frozen in both stages, so its outputs are computed once. Stage
    1 trains :func:`train_head` on the pooled ``pool5`` features. Stage 2 starts from that head and trains it
    together with a copy of the last block (:func:`finetune`): Adam on mini-batches, learning rate
    ``eta_finetune`` for the head and ``backbone_factor * eta_finetune`` for the block.

    The convolutions run channels-last (the copies of the backbone converted once, the patches once); the
    frozen body's passes run in ``precision`` (``"fp32"``, ``"bf16"`` or ``"auto"``, default
    ``NSTLAB_PRECISION`` else auto: :func:`nstlab.device.choose_precision`), their outputs kept in float32;
    the training itself (head, fine-tuning, Adam's moments) stays float32.

    Returns:
        A :class:`TransferResult`; ``pretrained`` and ``note`` come from the backbone.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> d = patch_dataset(classes=("brick", "mosaic"), n_train=2, n_test=2)
        >>> r = transfer(untrained_backbone("vgg16"), d, head_epochs=5, finetune_epochs=1)
        >>> 0 <= r.frozen_accuracy <= 1 and 0 <= r.finetuned_accuracy <= 1, r.pretrained
        (True, False)
    """
    body, last = split_backbone(backbone)
    device = data.x_train.device  # compute where the data is
    body, last = channels_last(freeze(body).eval().to(device)), channels_last(last.to(device))
    how = choose_precision(precision, device=device).precision
    with torch.no_grad(), autocast(how, device):
        h_train = body(channels_last(normalise(data.x_train))).float()  # (N, 512, 2, 2) at 32-pixel patches
        h_test = body(channels_last(normalise(data.x_test))).float()
    with torch.no_grad():
        g_train = global_average_pool(last(h_train))  # (N, 512)
        g_test = global_average_pool(last(h_test))
    K = len(data.classes)
    head = train_head(g_train, data.y_train, n_classes=K, epochs=head_epochs, eta=eta_head, seed=seed)
    with torch.no_grad():
        frozen_acc = float((head(g_test).argmax(1) == data.y_test).float().mean())
    trainable_frozen = count_trainable(head)

    last, head, losses = finetune(last, head, h_train, data.y_train, epochs=finetune_epochs, eta=eta_finetune,
                                  backbone_factor=backbone_factor, batch_size=batch_size, seed=seed)
    with torch.no_grad():
        finetuned_acc = float((head(global_average_pool(last(h_test))).argmax(1) == data.y_test).float().mean())
    return TransferResult(frozen_acc, finetuned_acc, losses, trainable_frozen, count_trainable(last) + count_trainable(head),
                          backbone.pretrained, backbone.note)
