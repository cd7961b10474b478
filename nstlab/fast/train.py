r"""Training a transform network for one style: Adam on the perceptual loss, batch after batch of photos.

Johnson et al. (2016) train :math:`f_W` by stochastic gradient descent on

.. math:: W^* = \arg\min_W \; \mathbf{E}_{x} \Big[ \lambda_c \ell_{feat}(f_W(x), x)
          + \lambda_s \ell_{style}(f_W(x), y_s) + \lambda_{TV} \ell_{TV}(f_W(x)) \Big]

over photos :math:`x` (COCO in the paper), with the loss network frozen. One step (:func:`train_step`) takes a
batch, stylises it, measures the loss through VGG16 and moves the network's weights; :func:`train` repeats it.

:func:`train` adds what a practical run needs: photos from a folder or the built-in ones
(:mod:`nstlab.fast.data`), batches, a progress bar with the losses, a preview callback, a checkpoint every k
steps from which a killed run resumes, a clear stop when the loss becomes NaN (:class:`TrainingDiverged`), and
the untrained-VGG16 fallback only when asked for (the model then says so in its metadata for good).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nstlab import __version__
from nstlab.device import autocast, channels_last, choose_device, choose_precision, frozen_weights_in
from nstlab.fast.config import FastConfig
from nstlab.fast.data import TrainingImages
from nstlab.fast.loss import JOHNSON_CONTENT_LAYER, perceptual_loss, style_targets, tv_loss
from nstlab.fast.model_file import FastModel, thumbnail
from nstlab.fast.network import TransformNet
from nstlab.profiles import GRADER_ENV_VAR
from nstlab.weights import Backbone


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and what to change."""


def train_step(net: nn.Module, extractor: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
               style_grams: dict[str, torch.Tensor], *, content_layer: str = JOHNSON_CONTENT_LAYER,
               content_weight: float = 1.0, style_weight: float = 1e5) -> tuple[float, float, float]:
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
        content_weight, style_weight: :math:`\lambda_c, \lambda_s`.

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
    return _step(net, extractor, optimizer, batch, style_grams, content_layer=content_layer,
                 content_weight=content_weight, style_weight=style_weight)


def _step(net, extractor, optimizer, batch, style_grams, *, content_layer: str, content_weight: float,
          style_weight: float, tv_weight: float = 0.0, step: int | None = None,
          precision: str = "fp32") -> tuple[float, float, float]:
    """:func:`train_step` with the total variation term, the step's number for the NaN message and the precision
    of the network passes (``"fp32"`` or ``"bf16"`` autocast; the losses and Adam's moments stay float32)."""
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[1] != 3:
        got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ValueError(f"batch must have shape (N, 3, H, W) in [0, 1], got {got}; add a batch dimension with "
                         "x[None].")
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, batch.device):
        with torch.no_grad():
            content_features = extractor(batch)[content_layer]  # (N, C, H/2, W/2) at relu2_2
        y_hat = net(batch)  # (N, 3, H, W)
        features = extractor(y_hat)
    total, content, style = perceptual_loss(features, content_features, style_grams, content_layer=content_layer,
                                            content_weight=content_weight, style_weight=style_weight)
    if tv_weight > 0:
        total = total + tv_weight * tv_loss(y_hat.float())
    values = (total.item(), content.item(), style.item())
    if not all(math.isfinite(v) for v in values):
        where = f"at step {step}" if step is not None else "in this step"
        raise TrainingDiverged(
            f"the loss became {values[0]} {where} (content {values[1]}, style {values[2]}); the network was not "
            "updated. Lower the learning rate (lr) or the style weight, or resume from the last checkpoint.")
    total.backward()
    optimizer.step()
    return values


# --- the training loop -----------------------------------------------------------------------------------------

# What a checkpoint file says it is (a model file says something else: see model_file.KIND).
CHECKPOINT_KIND = "nstlab-fast-style-checkpoint"
# Settings that may change when a run is resumed; any other change would make the saved state meaningless.
# (lr may change so that a run that diverged can continue from its last checkpoint with a smaller one.)
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "preview_every", "lr", "profile")
# Stylised images handed to the preview callback: the same crops at every call, so that a student sees one
# picture change as the network learns.
PREVIEW_IMAGES = 2
PREVIEW_SEED = 12345


@dataclass(frozen=True)
class StepLosses:
    r"""The losses of one training step, before its update.

    Attributes:
        step: the step's number, from 1.
        total, content, style: :math:`\mathcal{L}`, :math:`\ell_{feat}` and :math:`\ell_{style}` of the batch.
    """

    step: int
    total: float
    content: float
    style: float


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained :class:`nstlab.fast.FastModel` (save it with :func:`nstlab.fast.save_model`).
        history: one :class:`StepLosses` per step, from step 1 (steps before a resume come from the checkpoint).
        steps: the number of steps done in all.
        start_step: the step the run resumed from (0 for a fresh start).
        seconds: training time in all, resumed parts included.
        skipped: the number of files that could not be used as training images.
        pretrained: whether the loss network was the pretrained VGG16.
        note: the loss network's note (starts with ``UNTRAINED`` when it was not pretrained).
        device: where the run computed.
    """

    model: FastModel
    history: list[StepLosses]
    steps: int
    start_step: int
    seconds: float
    skipped: int
    pretrained: bool
    note: str
    device: str


def _style_image(style_image, size: int | None) -> tuple[torch.Tensor, str]:
    """The style image as (1, 3, H, W) at ``size`` (long side), and its name."""
    from nstlab.data import open_image
    from nstlab.images import resize_long_side

    if isinstance(style_image, torch.Tensor):
        if style_image.ndim != 4 or style_image.shape[:2] != (1, 3):
            raise ValueError(f"style_image must have shape (1, 3, H, W), got {tuple(style_image.shape)}; add a "
                             "batch dimension with style_image[None].")
        image = style_image.detach().float()
        return (resize_long_side(image, size) if size is not None else image), "tensor"
    name = str(style_image)
    return open_image(style_image, size=size), (name if isinstance(style_image, str) and "/" not in name
                                                 else Path(name).name)


def _save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a run killed while saving keeps the previous checkpoint


def _load_checkpoint(path: Path, config: FastConfig, style_name: str, device: torch.device) -> dict:
    """The saved state of a run; refuses a file that is not a checkpoint or was made with other settings."""
    from nstlab.fast.model_file import ModelFileError

    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many kinds; its advice (weights_only=False) would be unsafe
        raise ModelFileError(f"{path}: not a readable training checkpoint (truncated or damaged); delete it to "
                             "start afresh.") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise ModelFileError(f"{path}: not a fast-style training checkpoint; give another checkpoint file, or "
                             "delete this one to start afresh.")
    saved, now = ckpt["config"], _plain(asdict(config))
    changed = [f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in now
               if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    if ckpt.get("style") != style_name:
        changed.append(f"style ({ckpt.get('style')!r} -> {style_name!r})")
    if changed:
        raise ValueError(f"{path} was saved by a run with other settings: {', '.join(changed)}; resume with the "
                         "same settings, or delete the checkpoint to start afresh.")
    return ckpt


def _plain(value):
    """Tuples to lists, recursively: a config as torch.save stores it and loads it back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _bar(total: int, initial: int, show: bool | None):
    """A tqdm bar that can show the losses; hidden under nbgrader, as :func:`nstlab.progress.progress` is."""
    if show is None:
        show = not os.environ.get(GRADER_ENV_VAR)
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step")


def train(style_image: torch.Tensor | str | os.PathLike, images: str | os.PathLike | None = None,
          config: FastConfig = FastConfig(), *, backbone: Backbone | None = None, fallback: str | None = None,
          checkpoint: str | os.PathLike | None = None, resume: bool = True,
          preview: Callable[[int, torch.Tensor], object] | None = None, progress: bool | None = True,
          device: str | torch.device | None = None, precision: str | None = None) -> TrainResult:
    r"""Train a transform network for one style (Johnson et al. 2016): Adam on the perceptual loss.

    Args:
        style_image: the style: a (1, 3, H, W) tensor in [0, 1], a built-in image name or an image file;
            resized to ``config.style_size``.
        images: a folder of photos (searched recursively; unreadable files are skipped and counted), or
            ``None`` for random crops of the built-in photos, which works offline.
        config: the settings (:func:`nstlab.fast.fast_config` gives the profiles' presets).
        backbone: the VGG16 loss network to use (:func:`nstlab.weights.load_backbone`); default: load it.
        fallback: ``"untrained"`` to accept a random VGG16 when the pretrained weights are unavailable; the
            model then records ``pretrained=False`` for good. ``None`` raises instead.
        checkpoint: a file to save the run to every ``config.checkpoint_every`` steps and at the end.
        resume: continue from ``checkpoint`` when it exists (a finished run returns at once).
        preview: called as ``preview(step, images)`` every ``config.preview_every`` steps and at the end, with
            the network's output for a fixed set of crops, (2, 3, size, size); returning ``True`` stops the run.
        progress: show a progress bar with the losses (``None``: hidden under nbgrader).
        device: where to train; default :func:`nstlab.device.choose_device`.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` for the network passes (default: ``NSTLAB_PRECISION``,
            else auto; :func:`nstlab.device.choose_precision`). Both networks run channels-last.

    Returns:
        A :class:`TrainResult`.

    Raises:
        nstlab.weights.WeightsUnavailable: the pretrained VGG16 is unavailable and no fallback was asked for.
        nstlab.fast.data.NoTrainingImages: ``images`` holds no readable image.
        TrainingDiverged: the loss became NaN or infinite (the message names the step and the fix).

    Example:
        >>> from nstlab.fast.config import fast_config
        >>> style = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> result = train(style, config=fast_config("grade"), fallback="untrained", progress=False)
        >>> result.steps, len(result.history), result.model.pretrained, result.model.note.split()[0]
        (3, 3, False, 'UNTRAINED')
    """
    from nstlab.vgg import VGGFeatures
    from nstlab.weights import load_backbone

    if not isinstance(config, FastConfig):
        raise TypeError(f"config must be a FastConfig (see fast_config), got {type(config).__name__}.")
    device = choose_device(device).device
    how = choose_precision(precision, device=device).precision  # decided once for the run
    style, style_name = _style_image(style_image, config.style_size)
    photos = TrainingImages(images, size=config.size, scale_range=config.scale_range, seed=config.seed)
    if backbone is None:
        backbone = load_backbone("vgg16", fallback=fallback, seed=config.seed)
    if backbone.arch != "vgg16":
        raise ValueError(f"the loss network must be VGG16 (Johnson et al.), got {backbone.arch}; pass "
                         "load_backbone('vgg16').")
    extractor = channels_last(VGGFeatures(config.layers, backbone=backbone).to(device))  # converted once
    grams = style_targets(extractor, channels_last(style.to(device)), layers=config.style_layers)  # in float32
    extractor = frozen_weights_in(extractor, how)  # for a bf16 run, the frozen weights cast once, not every step

    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's RNG alone
        torch.manual_seed(config.seed)
        net = channels_last(TransformNet(width=config.width, blocks=config.blocks).to(device))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    history: list[StepLosses] = []
    start, seconds_before = 0, 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and resume and checkpoint.exists():
        ckpt = _load_checkpoint(checkpoint, config, style_name, device)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = config.lr
        start, seconds_before = int(ckpt["step"]), float(ckpt["seconds"])
        history = [StepLosses(int(s), *map(float, row)) for s, row in enumerate(ckpt["history"].tolist(), start=1)]
        photos.skipped.extend(Path(p) for p in ckpt["skipped"][len(photos.skipped):])
    preview_batch = None
    if preview is not None:  # the same crops at every call, drawn apart from the training batches
        generator = torch.Generator().manual_seed(PREVIEW_SEED)
        preview_batch = channels_last(torch.cat([photos.crop(generator) for _ in range(PREVIEW_IMAGES)]).to(device))

    def save(step: int, seconds: float) -> None:
        rows = torch.tensor([[h.total, h.content, h.style] for h in history], dtype=torch.float64).reshape(-1, 3)
        _save_checkpoint(checkpoint, {
            "kind": CHECKPOINT_KIND, "format": 1, "step": step, "seconds": seconds, "style": style_name,
            "config": _plain(asdict(config)), "net": net.state_dict(), "optimizer": optimizer.state_dict(),
            "history": rows, "skipped": [str(p) for p in photos.skipped]})

    bar = _bar(config.steps, min(start, config.steps), progress)
    t0 = time.perf_counter()
    step = start
    try:
        while step < config.steps:
            step += 1
            # (B, 3, size, size), converted to channels-last once; every convolution after it keeps the layout
            batch = channels_last(photos.batch(step, config.batch_size).to(device))
            total, content, style_loss = _step(
                net, extractor, optimizer, batch, grams, content_layer=config.content_layer,
                content_weight=config.content_weight, style_weight=config.style_weight, tv_weight=config.tv_weight,
                step=step, precision=how)
            history.append(StepLosses(step, total, content, style_loss))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4g}", content=f"{content:.4g}", style=f"{style_loss:.4g}",
                                refresh=False)
            if checkpoint is not None and (step % config.checkpoint_every == 0 or step == config.steps):
                save(step, seconds_before + time.perf_counter() - t0)
            last = step == config.steps
            if preview is not None and ((config.preview_every and step % config.preview_every == 0) or last):
                with torch.no_grad():
                    if preview(step, net(preview_batch)) is True:
                        if checkpoint is not None:
                            save(step, seconds_before + time.perf_counter() - t0)
                        break
    finally:
        if bar is not None:
            bar.close()
    seconds = seconds_before + time.perf_counter() - t0

    final = history[-1] if history else None
    metadata = {
        "style": {"name": style_name, "thumbnail": thumbnail(style)},
        "training": {
            "steps": step, "seconds": seconds, "device": str(device), "pretrained": bool(backbone.pretrained),
            "loss_network": backbone.note, "images": photos.source, "skipped": len(photos.skipped),
            "losses": ({"total": final.total, "content": final.content, "style": final.style} if final else {}),
            "history": torch.tensor([[h.total, h.content, h.style] for h in history],
                                    dtype=torch.float32).reshape(-1, 3),
            "config": _plain(asdict(config)),
        },
        "nstlab_version": __version__,
    }
    model = FastModel(net, metadata)
    return TrainResult(model, history, step, start, seconds, len(photos.skipped), bool(backbone.pretrained),
                       backbone.note, str(device))
