r"""Neural style transfer by optimising the pixels: the loop of Gatys, Ecker and Bethge (2016).

Gatys et al., *Image Style Transfer Using Convolutional Neural Networks* (CVPR 2016) start from an image
:math:`\vec x` and change its pixels until it has the content of a photo :math:`\vec p` and the style of a
painting :math:`\vec a`, by minimising

.. math:: L_{total}(\vec p, \vec a, \vec x) = \alpha L_{content}(\vec p, \vec x)
          + \beta \sum_l w_l E_l(\vec a, \vec x) \; (+ \lambda_{TV} \, TV(\vec x)).

The losses are the pure functions of :mod:`nstlab.losses` (their module docstring declares the convention);
this module is the loop around them, configured by one frozen :class:`StyleConfig` whose fields carry the
paper's symbols. It adds what a practical run needs: initialisation from the content, noise or a mix;
three optimisers (``lbfgs``: torch's L-BFGS; ``lbfgsb``: scipy's L-BFGS-B with the pixels bounded to
[0, 1], as the Caffe-era code did; ``adam``); coarse-to-fine scales; colour preservation
(:mod:`nstlab.colour`); several styles blended by weight (their Gram matrices are mixed, as in Johnson's
``neural-style``); a progress bar and a callback; checkpoints that let a killed run continue; a clear stop
when the loss becomes NaN or diverges; and a memory estimate that refuses sizes that cannot fit.
The network runs in the channels-last layout and, with ``config.precision`` ``"bf16"`` (or ``"auto"`` on
hardware with native bfloat16, :func:`nstlab.device.choose_precision`), computes its backward pass in
bfloat16 and its forward pass in float32 (:class:`nstlab.device.Bf16Backward`): rounding the forward pass
to bf16 stops L-BFGS well short of the float32 loss, rounding the gradient does not; the Gram matrices,
losses, optimiser state and the image stay float32.
The style term need not be Gram matrices: ``config.style_loss`` chooses the statistic the style layers
match (:mod:`nstlab.statistics`: ``"gram"``, per-channel ``"mean_std"`` as in Huang & Belongie's AdaIN, or
``"mmd_linear"``, the means alone), and ``config.content_target="adain"`` pulls the content layers towards
:math:`\mathrm{AdaIN}(P^l, S^l)` instead of :math:`P^l`, AdaIN's own target reached by optimisation instead
of by a decoder (a real-time decoder would need training on tens of thousands of photos and paintings; see
:mod:`nstlab.statistics`).
The pieces live in modules of their own, and are importable from here too: the settings in
:mod:`nstlab.style_config`, the memory estimate in :mod:`nstlab.memory`, the initial image, one optimisation
step and the optimisers' runs in :mod:`nstlab.optimise`.

Departures from the paper: layer names follow :mod:`nstlab.vgg`, where the paper's Caffe ``conv4_2`` (whose
ReLU works in place) is ``relu4_2``; images live in [0, 1] rather than Caffe's 0-255, so learning rates
quoted for 0-255 pixels are divided by 255.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nstlab import losses, statistics
from nstlab.colour import luminance_image, luminance_transfer, match_colours
from nstlab.device import Bf16Backward, autocast, channels_last, choose_precision
from nstlab.images import resize_long_side, save_image
from nstlab.memory import MemoryEstimate, SizeTooLarge, check_memory, estimate_memory
from nstlab.optimise import initial_image, optimisation_step, run_lbfgsb, run_torch
from nstlab.progress import progress
from nstlab.style_config import (
    COLOUR_MODES,
    INITS,
    OPTIMIZERS,
    PAPER_CONTENT,
    PAPER_STYLE,
    PRESETS,
    StyleConfig,
    output_size,
)
from nstlab.vgg import VGGFeatures

# The names of a run's pieces, importable from here for convenience; each is defined in its own module.
__all__ = ["COLOUR_MODES", "INITS", "OPTIMIZERS", "PAPER_CONTENT", "PAPER_STYLE", "PRESETS", "CheckpointUnreadable",
           "MemoryEstimate", "SizeTooLarge", "StepLosses", "StyleConfig", "StyleDiverged", "StyleResult", "check_memory",
           "estimate_memory", "initial_image", "optimisation_step", "output_size", "plot_result", "stylize"]


# A run whose loss has risen at each of the last DIVERGENCE_PATIENCE steps to this far above its first value
# has diverged; carrying on wastes the user's time. (One high step is not enough: from the content image, the
# first Adam steps raise the loss legitimately.)
DIVERGENCE_FACTOR = 1e3
DIVERGENCE_PATIENCE = 5


@dataclass(frozen=True)
class StepLosses:
    """The loss terms at one step, as floats: those of the last evaluation of the objective in that step.

    For torch's L-BFGS and Adam that is the image before the step's update; for scipy's L-BFGS-B, after it.
    """

    step: int
    scale: int
    content: float
    style: float
    tv: float
    total: float


@dataclass(frozen=True)
class StyleResult:
    """What :func:`stylize` returns.

    Attributes:
        image: the result, (1, 3, H, W) float32 in [0, 1], on the device of the computation.
        losses: one :class:`StepLosses` per step, from step 1 (including steps of a resumed run).
        steps: the steps done in all (the last step number).
        seconds: wall-clock time of this call, loading the network included.
        loop_seconds: wall-clock time of the optimisation steps alone.
        pretrained: whether the network had pretrained weights; ``False`` means the result is not meaningful.
        note: the network's note, "UNTRAINED ..." when ``pretrained`` is false.
        config: the settings used.
        start_step: the step this call started from (non-zero after ``resume``).
        stopped: ``"finished"`` or ``"callback"`` (the callback asked to stop).
        precision: the precision the network ran in, ``"fp32"`` or ``"bf16"`` (``config.precision`` resolved).
    """

    image: torch.Tensor
    losses: tuple[StepLosses, ...]
    steps: int
    seconds: float
    loop_seconds: float
    pretrained: bool
    note: str
    config: StyleConfig
    start_step: int = 0
    stopped: str = "finished"
    precision: str = "fp32"

    @property
    def steps_per_second(self) -> float:
        """Steps done by this call per second of wall-clock time."""
        return (self.steps - self.start_step) / self.loop_seconds if self.loop_seconds > 0 else float("nan")


class StyleDiverged(RuntimeError):
    """The loss became NaN or infinite, or grew far above its start; the message says what to change."""



# --- the pieces of a run ---------------------------------------------------------------------------------------


def _check_image(image: object, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor of shape (1, 3, H, W), got {type(image).__name__}; "
                        "load files with nstlab.data.open_image.")
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"{name} must have shape (1, 3, H, W), got {tuple(image.shape)}.")
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1]; load it with nstlab.images.load_image.")
    return image


def _features(extractor, x: torch.Tensor, precision: str = "fp32") -> dict[str, torch.Tensor]:
    """The network's activations of ``x``: one channels-last copy of the image, the forward pass in float32
    (an outer autocast switched off), with ``"bf16"`` the gradient's way back through the convolutions in
    bf16 (:class:`nstlab.device.Bf16Backward`); the activations in float32 for the Grams and losses."""
    with autocast("fp32", x.device), (Bf16Backward() if precision == "bf16" else contextlib.nullcontext()):
        out = extractor(channels_last(x))
    return {name: f.float() for name, f in out.items()}


def _finish(x: torch.Tensor, colour_content: torch.Tensor | None) -> torch.Tensor:
    """The optimised pixels as an image: clipped to [0, 1]; with luminance-only transfer, the photo's colours back."""
    image = x.detach().float().clamp(0, 1).contiguous()
    return image if colour_content is None else luminance_transfer(image, colour_content)


def _diverged(step: int, what: str, config: StyleConfig, precision: str = "fp32") -> StyleDiverged:
    fixes = ["run the network in float32 (--precision fp32, or precision='fp32'), since bfloat16 keeps only "
             "3 significant digits"] if precision == "bf16" else []
    fixes += [f"lower beta (now {config.beta:g})"]
    if config.optimizer != "lbfgsb":
        fixes.append(f"lower the learning rate (now {config.lr:g})")
    fixes += ["try optimizer 'lbfgsb' (pixels kept in [0, 1]) or 'adam'"]
    if config.init != "content":
        fixes.append("start from the content image (init='content')")
    return StyleDiverged(f"step {step}: {what}; {', '.join(fixes)}.")


def _targets(extractor, photo: torch.Tensor, paintings: list[torch.Tensor], blend: list[float],
             config: StyleConfig, precision: str = "fp32") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    r"""The content targets (1, C, H, W) and the blended style targets :math:`A^l = \sum_k b_k A^l_k`.

    The content target is the photo's :math:`P^l`, or :math:`\sum_k b_k \mathrm{AdaIN}(P^l, S^l_k)` with
    ``content_target="adain"``; the style targets are Gram matrices (1, C, C) or the statistics of
    ``config.style_loss`` (:func:`nstlab.statistics.style_target`).
    """
    with torch.no_grad():
        P = {name: f for name, f in _features(extractor, photo, precision).items() if name in config.content_layers}
        style_features = [_features(extractor, painting, precision) for painting in paintings]
        if config.content_target == "adain":
            P = {name: sum(b * statistics.adain(p, f[name]) for b, f in zip(blend, style_features, strict=True))
                 for name, p in P.items()}
        A = {name: sum(b * statistics.style_target(f[name], kind=config.style_loss)
                       for b, f in zip(blend, style_features, strict=True))
             for name in config.style_layers}
    return P, A


def _objective(extractor, P, A, config: StyleConfig, history: list, precision: str = "fp32") -> Callable:
    """The function of the pixels that the optimisers minimise; it stops the run on a NaN or infinite loss."""
    weights = dict(zip(config.style_layers, config.style_layer_weights, strict=True)) if config.style_layer_weights else None

    def objective(x: torch.Tensor) -> losses.LossParts:
        parts = statistics.total_loss(_features(extractor, x, precision), P, A, kind=config.style_loss, image=x,
                                      alpha=config.alpha, beta=config.beta, tv_weight=config.tv_weight,
                                      style_weights=weights, convention=config.convention)
        if not torch.isfinite(parts.total):
            raise _diverged(len(history) + 1, f"the loss became {parts.total.item()} (content "
                            f"{parts.content.item():.3g}, style {parts.style.item():.3g})", config, precision)
        return parts

    return objective



# --- checkpoints -----------------------------------------------------------------------------------------------

# Fields that may change between a run and its resumption without making the saved state meaningless.
RESUMABLE_CHANGES = ("steps", "save_every", "precision")
# Fields added to StyleConfig after checkpoints were first written, with the values those runs used.
ADDED_FIELDS = {"style_loss": "gram", "content_target": "content", "normalised": False}
# What _save_checkpoint writes; a file without all of them is not a checkpoint of a run.
CHECKPOINT_FIELDS = ("image", "optimizer", "step", "scale", "losses", "config")


class CheckpointUnreadable(ValueError):
    """A checkpoint that cannot be resumed from: empty, truncated, damaged or another kind of file.

    Attributes:
        path: the checkpoint file.
        reason: what is wrong with it, as a phrase ("the file is empty").
    """

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: not a readable nstlab checkpoint: {reason}. Delete it, or start afresh "
                         "without resume.")


def _save_checkpoint(path: Path, **payload) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a run killed while saving leaves the previous checkpoint intact


def _load_checkpoint(path: Path, config: StyleConfig, device: torch.device) -> dict:
    """The saved state of a run, its ``losses`` as :class:`StepLosses`; refuses a file it cannot resume from."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from; start without resume.")
    if path.is_dir():
        raise CheckpointUnreadable(path, "it is a folder")
    if path.stat().st_size == 0:
        raise CheckpointUnreadable(path, "the file is empty")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except OSError as err:
        raise CheckpointUnreadable(path, f"it cannot be read ({err.strerror})") from err
    except Exception as err:  # noqa: BLE001 - torch raises many kinds; torch's own advice (weights_only=False) is unsafe
        raise CheckpointUnreadable(path, "it is truncated, damaged or not a file torch can load") from err
    missing = [k for k in CHECKPOINT_FIELDS if k not in ckpt] if isinstance(ckpt, dict) else list(CHECKPOINT_FIELDS)
    if missing:
        raise CheckpointUnreadable(path, f"it is a torch file but not a checkpoint of a style-transfer run "
                                   f"(it lacks {', '.join(map(repr, missing))})")
    try:
        if not isinstance(ckpt["image"], torch.Tensor) or ckpt["image"].ndim != 4:
            raise TypeError("its image is not a (1, 3, H, W) tensor")
        ckpt["losses"] = [StepLosses(**h) for h in ckpt["losses"]]
        saved, now = dict(ckpt["config"]), asdict(config)
        int(ckpt["step"]), int(ckpt["scale"])  # noqa: B018 - fail here, not in the loop
    except (TypeError, ValueError) as err:
        raise CheckpointUnreadable(path, f"its contents are damaged ({err})") from err
    saved = {**ADDED_FIELDS, **saved}  # checkpoints saved before these fields existed ran with their defaults
    changed = [f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in now
               if k not in RESUMABLE_CHANGES and _plain(saved.get(k)) != _plain(now[k])]
    if changed:
        raise ValueError(f"{path} was saved with other settings: {', '.join(changed)}; resume with the same "
                         "settings, or start afresh without resume.")
    return ckpt


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


# --- the loop --------------------------------------------------------------------------------------------------


def stylize(content: torch.Tensor, styles: torch.Tensor | Sequence[torch.Tensor], config: StyleConfig = StyleConfig(),
            *, extractor: torch.nn.Module | None = None, backbone=None, fallback: str | None = None,
            device: str | torch.device | None = None,
            callback: Callable[[int, torch.Tensor, StepLosses], bool | None] | None = None, callback_every: int = 1,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False,
            out_dir: str | os.PathLike | None = None, show_progress: bool | None = None) -> StyleResult:
    r"""Optimise an image to have the content of ``content`` and the style of ``styles`` (Gatys et al.).

    Minimises :math:`\alpha L_{content} + \beta \sum_l w_l E_l + \lambda_{TV} TV` over the pixels, scale by scale.

    Args:
        content: the photo, (1, 3, H, W) float32 in [0, 1].
        styles: one painting (1, 3, H', W') or several; their Gram matrices are blended by ``config.style_blend``.
        config: the run's settings (see :data:`PRESETS`).
        extractor: a :class:`nstlab.vgg.VGGFeatures` with every layer of the config, on ``device``; by default
            one is built (pretrained weights, or what ``fallback`` allows) with ``config.pool`` and
            ``config.normalised``; a given extractor keeps its own pooling and normalisation.
        backbone: a :class:`nstlab.weights.Backbone` to build the extractor from, instead of loading one.
        fallback: ``"untrained"`` to accept a random network when the weights are unavailable (the result
            then says ``pretrained=False``).
        device: where to compute; default the device of ``content``.
        callback: called as ``callback(step, image, losses)`` every ``callback_every`` steps; returning
            ``True`` stops the run.
        callback_every: how often the callback is called.
        checkpoint: a file where image, optimiser state and step are saved every ``checkpoint_every`` steps
            and at the end (scipy's L-BFGS-B restarts its memory on resume).
        checkpoint_every: how often to save the checkpoint.
        resume: continue from ``checkpoint`` instead of starting afresh.
        out_dir: where images are saved every ``config.save_every`` steps (``step_00010.png``...).
        show_progress: ``None`` shows a progress bar except under nbgrader; ``False`` hides it.

    Returns:
        A :class:`StyleResult`; its image is (1, 3, H, W) with the long side ``config.size``.

    Raises:
        ValueError, TypeError: bad images, layers, weights or checkpoint; the message says what to change.
        SizeTooLarge: the run would not fit in memory; the message gives the size that would.
        StyleDiverged: the loss became NaN or infinite, or diverged.

    Example:
        >>> from nstlab.weights import untrained_backbone
        >>> g = torch.Generator().manual_seed(0)
        >>> photo, painting = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
        >>> config = StyleConfig(size=32, steps=2, style_layers=("relu1_1",), content_layers=("relu2_1",))
        >>> extractor = VGGFeatures(["relu1_1", "relu2_1"], backbone=untrained_backbone())
        >>> result = stylize(photo, painting, config, extractor=extractor, show_progress=False)
        >>> result.image.shape, result.steps, result.pretrained
        (torch.Size([1, 3, 32, 32]), 2, False)
    """
    t0 = time.perf_counter()
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    if not styles:
        raise ValueError("styles is empty; give at least one style image.")
    device = torch.device(device) if device is not None else _check_image(content, "content").device
    # Contiguous copies, so that the result does not depend on how the caller's images are laid out in memory
    # (the convolutions round differently on a permuted input, and Adam's first step amplifies that).
    content = _check_image(content, "content").to(device, torch.float32).contiguous()
    styles = [_check_image(s, f"style image {k + 1}").to(device, torch.float32).contiguous()
              for k, s in enumerate(styles)]
    blend = config.style_blend or (1.0,) * len(styles)
    if len(blend) != len(styles):
        raise ValueError(f"style_blend has {len(blend)} weights for {len(styles)} style images; give one per style.")
    blend = [b / sum(blend) for b in blend]
    if callback_every < 1 or checkpoint_every < 1:
        raise ValueError("callback_every and checkpoint_every must be at least 1.")
    layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))

    long = config.size or max(content.shape[-2:])
    check_memory(output_size(content, config), arch=config.arch, device=device, optimizer=config.optimizer, layers=layers)

    precision = choose_precision(config.precision, device=device).precision  # decided once for the whole run
    if extractor is None:
        from nstlab.weights import load_backbone

        backbone = backbone or load_backbone(config.arch, fallback=fallback, seed=config.seed)
        extractor = VGGFeatures(layers, arch=config.arch, pool=config.pool, normalised=config.normalised,
                                backbone=backbone).to(device)
        if device.type in ("cpu", "cuda"):
            extractor = channels_last(extractor)  # our own copy, converted once: channels-last convolutions
    missing = [name for name in layers if name not in getattr(extractor, "layers", ())]
    if missing:
        raise ValueError(f"the extractor does not return layer(s) {missing}; build it with all of {list(layers)}.")
    pretrained, note = bool(getattr(extractor, "pretrained", False)), str(getattr(extractor, "note", ""))

    # Colour preservation changes the images the network sees, not the loop (Gatys et al. 2016b).
    if config.preserve_colour == "match":
        styles = [match_colours(s, content) for s in styles]
    elif config.preserve_colour == "luminance":
        styles = [luminance_image(s, like=content) for s in styles]

    ends = list(itertools.accumulate(config.scale_steps or (config.steps,) * len(config.scales)))  # last step of each scale
    total_steps = ends[-1]
    history: list[StepLosses] = []
    x, opt_state, at_scale, done, stopped = None, None, 0, 0, "finished"
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs the checkpoint file to resume from.")
        ckpt = _load_checkpoint(checkpoint, config, device)
        x, opt_state, at_scale, done = ckpt["image"].to(device), ckpt["optimizer"], ckpt["scale"], ckpt["step"]
        history = ckpt["losses"]
    start_step = done
    ticker = iter(progress(range(done, total_steps), desc="stylize", disable=None if show_progress is not False else True))
    next(ticker, None)  # show the bar at 0; each later next() counts a finished step, the last one closes it
    t_loop = time.perf_counter()
    try:
        for scale in range(at_scale, len(config.scales)):
            size = max(1, round(long * config.scales[scale]))
            photo = resize_long_side(content, size)  # (1, 3, h_s, w_s)
            seen = luminance_image(photo) if config.preserve_colour == "luminance" else photo
            colour_content = photo if config.preserve_colour == "luminance" else None
            min_side = getattr(extractor, "min_size", 1)
            if min(photo.shape[-2:]) < min_side:
                raise ValueError(f"scale {config.scales[scale]} makes the image {photo.shape[-1]}x{photo.shape[-2]} "
                                 f"pixels, below the {min_side} pixels the deepest layer needs; drop that scale or "
                                 "raise size.")
            paintings = [resize_long_side(s, size) for s in styles]
            if x is None:
                mixed = sum(b * F.interpolate(s, size=seen.shape[-2:], mode="bilinear", align_corners=False)
                            for b, s in zip(blend, paintings, strict=True))
                x = initial_image(seen, mixed.clamp(0, 1), init=config.init, mix=config.init_mix, seed=config.seed)
            elif x.shape[-2:] != seen.shape[-2:]:  # coarse to fine: warm-start from the previous scale
                x = F.interpolate(x, size=seen.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
                opt_state = None
            stop = ends[scale]
            if done >= stop:  # resumed after this scale was finished
                continue
            P, A = _targets(extractor, seen, paintings, blend, config, precision)
            objective = _objective(extractor, P, A, config, history, precision)
            first: list[float] = []

            def on_step(step, x_, parts, state_fn, scale=scale, stop=stop, colour_content=colour_content, first=first):
                nonlocal done
                done = step
                record = StepLosses(step, scale, parts.content.item(), parts.style.item(), parts.tv.item(), parts.total.item())
                history.append(record)
                next(ticker, None)
                first.append(record.total)
                recent = first[-DIVERGENCE_PATIENCE - 1:]
                if (record.total > DIVERGENCE_FACTOR * first[0] and len(recent) > DIVERGENCE_PATIENCE
                        and all(a < b for a, b in zip(recent, recent[1:], strict=False))):
                    raise _diverged(step, f"the loss grew from {first[0]:.3g} to {record.total:.3g} and is still "
                                    "rising", config, precision)
                if out_dir is not None and config.save_every and step % config.save_every == 0:
                    save_image(_finish(x_, colour_content), Path(out_dir) / f"step_{step:05d}.png", overwrite=True)
                if checkpoint is not None and (step % checkpoint_every == 0 or step == stop):
                    _save_checkpoint(checkpoint, image=x_.detach().float().contiguous(), optimizer=state_fn(), step=step,
                                     scale=scale, losses=[asdict(h) for h in history], config=asdict(config))
                return bool(callback is not None and step % callback_every == 0
                            and callback(step, _finish(x_, colour_content), record))

            if config.optimizer == "lbfgsb":
                x, halted = run_lbfgsb(objective, x, start=done, stop=stop, on_step=on_step)
                done = stop if not halted else done  # L-BFGS-B may converge early; the scale is then complete
            else:
                x, halted = run_torch(objective, x, optimizer=config.optimizer, lr=config.lr, start=done, stop=stop,
                                      on_step=on_step, state=opt_state)
            if halted:
                stopped = "callback"
                break
    finally:
        ticker.close()
    image = _finish(x, colour_content)
    t_end = time.perf_counter()
    return StyleResult(image, tuple(history), done, t_end - t0, t_end - t_loop, pretrained, note, config,
                       start_step, stopped, precision)


def plot_result(result: StyleResult, *, content: torch.Tensor | None = None,
                styles: Sequence[torch.Tensor] = ()):
    """A figure: content, styles, result and the loss curve, with a red banner if the network was untrained.

    Returns:
        A matplotlib Figure (close it with ``plt.close(fig)``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
        >>> r = StyleResult(torch.zeros(1, 3, 8, 8), (StepLosses(1, 0, 1.0, 1.0, 0.0, 2.0),), 1, 0.2, 0.1, False,
        ...                 "UNTRAINED VGG19", StyleConfig())
        >>> fig = plot_result(r); plt.close(fig)
    """
    import matplotlib.pyplot as plt

    panels = ([("content", content)] if content is not None else []) + \
             [(f"style {k + 1}", s) for k, s in enumerate(styles)] + [("result", result.image)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3 * (len(panels) + 1), 3.4))
    for ax, (title, image) in zip(axes, panels, strict=False):
        ax.imshow(image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())  # (H, W, 3)
        ax.set_title(title)
        ax.axis("off")
    axes[-1].semilogy([h.step for h in result.losses], [h.total for h in result.losses])
    axes[-1].set_title("total loss")
    axes[-1].set_xlabel("step")
    if not result.pretrained:
        fig.suptitle(result.note or "UNTRAINED network: the result is not meaningful", color="white",
                     backgroundcolor="darkred", fontsize=9, wrap=True)
    fig.tight_layout()
    return fig
