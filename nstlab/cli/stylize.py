"""``nstlab stylize CONTENT STYLE [STYLE ...] -o OUT``: neural style transfer from the command line.

CONTENT and STYLE are image files or built-in images by name (``nstlab.data.list_images()``: astronaut,
chelsea, ..., mosaic, swirl). Settings start from a preset (``gatys``, ``deeplearning_ai``, ``caffe``); every
option given overrides it. Without ``--preset``, the paper's settings run at the active profile's size and
step count, so a CPU run finishes in minutes.

A checkpoint (``OUT.ckpt``) is saved as the run goes; if the run is killed, the same command with
``--resume`` continues from the last saved step. It is removed when the image is written.

Folders that cannot take OUT or the checkpoint (read-only, on a read-only file system, or a file where a
folder should be) are refused before the run starts, so that no work is lost at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from nstlab.cli import UserError, load_network

PRESET_NAMES = ("gatys", "deeplearning_ai", "caffe")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,1, got {text!r}") from err


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nstlab stylize``."""
    p = subparsers.add_parser("stylize", help="style transfer by optimising the image (Gatys et al.)",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="content image: a file or a built-in name")
    p.add_argument("styles", metavar="STYLE", nargs="+", help="style image(s): files or built-in names")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="where to write the result (.png, .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT (and start afresh over a checkpoint)")
    p.add_argument("--preset", choices=PRESET_NAMES, help="start from these settings (default: gatys at the profile's size)")
    p.add_argument("--size", type=int, help="long side of the result in pixels")
    p.add_argument("--steps", type=int, help="optimiser steps per scale")
    p.add_argument("--alpha", type=float, help="content weight")
    p.add_argument("--beta", type=float, help="style weight")
    p.add_argument("--tv-weight", type=float, help="total-variation weight")
    p.add_argument("--content-layers", type=_names, help="comma-separated, e.g. relu4_2")
    p.add_argument("--style-layers", type=_names, help="comma-separated, e.g. relu1_1,relu2_1,relu3_1")
    p.add_argument("--style-layer-weights", type=_floats, help="one weight per style layer, comma-separated")
    p.add_argument("--style-blend", type=_floats, help="one weight per style image, comma-separated")
    p.add_argument("--init", choices=("content", "noise", "mix"), help="initial image")
    p.add_argument("--init-mix", type=_floats, help="shares of content,style,noise for --init mix, e.g. 0.95,0.05,0")
    p.add_argument("--optimizer", choices=("lbfgs", "lbfgsb", "adam"), help="optimiser")
    p.add_argument("--lr", type=float, help="learning rate (Adam, L-BFGS step length)")
    p.add_argument("--scales", type=_floats, help="coarse-to-fine fractions of --size, e.g. 0.5,1")
    p.add_argument("--scale-steps", type=_floats, help="steps at each scale instead of --steps, e.g. 200,50")
    p.add_argument("--style-loss", choices=("gram", "mean_std", "mmd_linear"),
                   help="the statistic the style layers match: Gram matrices (default), per-channel mean and std "
                        "(AdaIN's), or means only; retune --beta when changing it")
    p.add_argument("--content-target", choices=("content", "adain"),
                   help="pull the content layers towards the photo's features (default) or AdaIN(photo, style)")
    p.add_argument("--pool", choices=("max", "avg"), help="pooling in VGG")
    p.add_argument("--normalised", action=argparse.BooleanOptionalAction, default=None,
                   help="the paper's normalised VGG, each filter rescaled to mean activation 1 (default: as the "
                        "preset says; gatys: on); the untrained network is rescaled per layer")
    p.add_argument("--arch", choices=("vgg19", "vgg16"), help="network")
    p.add_argument("--preserve-colour", choices=("luminance", "match"), help="keep the content image's colours")
    p.add_argument("--seed", type=int, help="seed of the initial noise")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or mps (default: the best available)")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                   help="precision of the network's backward pass (default auto: bf16 where the device computes it "
                        "natively, else fp32; or NSTLAB_PRECISION); its forward pass, the losses and the image "
                        "stay float32")
    p.add_argument("--untrained", action="store_true",
                   help="use a random network if the pretrained weights are unavailable (results are not meaningful)")
    p.add_argument("--save-every", type=int, help="save the image every N steps into OUT's folder OUT-STEM_steps/")
    p.add_argument("--checkpoint", type=Path, help="checkpoint file (default: OUT.ckpt)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="save the checkpoint every N steps (default 10)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not save checkpoints")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _refuse_unwritable(path: Path, option: str) -> None:
    """Raise a :class:`UserError` unless a file can be written at ``path`` (missing folders would be created).

    Permission bits are not enough to tell: root ignores them, while an immutable folder or a read-only mount
    refuses root too. So this creates and removes a file in the nearest folder that exists.
    """
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file; give {option} a file name (inside that folder, for example).")
    folder = path.parent
    try:
        while not folder.exists():  # the run creates the missing folders inside the nearest existing one
            folder = folder.parent
        if not folder.is_dir():
            raise UserError(f"cannot write {path}: {folder} is a file, not a folder; choose another path for {option}.")
        fd, probe = tempfile.mkstemp(prefix=".nstlab-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"cannot write {path}: {folder} is not writable ({err.strerror}); choose a writable folder "
                        f"for {option}.") from err


# Option name on the command line -> StyleConfig field.
OVERRIDES = ("size", "steps", "alpha", "beta", "tv_weight", "content_layers", "style_layers", "style_layer_weights",
             "style_blend", "init", "init_mix", "optimizer", "lr", "scales", "scale_steps", "pool", "arch", "preserve_colour",
             "seed", "save_every", "style_loss", "content_target", "precision", "normalised")


def _config(args: argparse.Namespace):
    from nstlab.profiles import get_profile
    from nstlab.stylize import PRESETS

    config = PRESETS[args.preset or "gatys"]
    if args.preset is None:  # the paper's settings, at the profile's sizes
        profile = get_profile()
        config = replace(config, size=profile.image_size, steps=profile.style_steps)
    changes = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    if "scale_steps" in changes:
        changes["scale_steps"] = tuple(int(n) for n in changes["scale_steps"])
    return replace(config, **changes)


def _statistics(config) -> str:
    """The style loss and content target, when they are not the paper's, for the line announcing the run."""
    parts = ([f"style loss {config.style_loss}"] if config.style_loss != "gram" else []) + \
            (["AdaIN content target"] if config.content_target == "adain" else []) + \
            [f"{'normalised ' if config.normalised else ''}{config.arch.upper()} with {config.pool} pooling"]
    return "".join(f", {p}" for p in parts)


def run(args: argparse.Namespace) -> int:
    """Run ``nstlab stylize``; returns the exit status."""
    from nstlab.data import open_image
    from nstlab.device import choose_device, choose_precision
    from nstlab.images import ImageError, save_image
    from nstlab.stylize import CheckpointUnreadable, SizeTooLarge, StyleDiverged, check_memory, output_size, stylize

    out: Path = args.output
    if out.exists() and not out.is_dir() and not args.overwrite:
        raise UserError(f"{out} already exists; choose another name or pass --overwrite.")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"):
        raise UserError(f"{out}: unknown image format {out.suffix!r}; use .png or .jpg.")
    checkpoint = None if args.no_checkpoint else (args.checkpoint or out.with_name(out.name + ".ckpt"))
    _refuse_unwritable(out, "-o")  # before any work: a result that cannot be saved would be lost
    if checkpoint is not None:
        _refuse_unwritable(checkpoint, "--checkpoint")
    if args.resume and (checkpoint is None or not checkpoint.exists()):
        raise UserError(f"--resume: no checkpoint at {checkpoint}; run without --resume to start afresh.")
    if checkpoint is not None and checkpoint.exists() and not args.resume and not args.overwrite:
        raise UserError(f"{checkpoint} holds an unfinished run; pass --resume to continue it or --overwrite to "
                        "start afresh.")
    if args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every {args.checkpoint_every} must be at least 1.")
    try:
        config = _config(args)
        choice = choose_device(args.device)
        how = choose_precision(config.precision, device=choice.device)
        content = open_image(args.content)
        styles = [open_image(s) for s in args.styles]
    except (ImageError, ValueError, TypeError) as err:
        raise UserError(str(err)) from err

    steps_dir = out.with_name(f"{out.stem}_steps") if config.save_every else None
    if steps_dir is not None:
        _refuse_unwritable(steps_dir / "step_00000.png", "-o")

    scales = "+".join(f"{s:g}" for s in config.scales)
    steps = "+".join(map(str, config.scale_steps)) if config.scale_steps else f"{config.steps}"
    print(f"stylize: {args.content} in the style of {', '.join(args.styles)}; {config.size} px, {steps} "
          f"steps x scales {scales}, {config.optimizer}, alpha={config.alpha:g}, beta={config.beta:g}, "
          f"init {config.init}{_statistics(config)}; device {choice}; precision {how}", flush=True)
    try:  # before loading 550 MB of weights: refuse a size that cannot fit
        check_memory(output_size(content, config), arch=config.arch, device=choice.device, optimizer=config.optimizer,
                     layers=config.content_layers + config.style_layers)
    except SizeTooLarge as err:
        raise UserError(str(err)) from err
    backbone = load_network(config.arch, untrained=args.untrained, seed=config.seed,
                            what="run on a random network (the result will not be meaningful)")
    try:
        result = stylize(content, styles, config, backbone=backbone, device=choice.device, checkpoint=checkpoint,
                         checkpoint_every=args.checkpoint_every, resume=args.resume,
                         out_dir=steps_dir,
                         show_progress=False if args.no_progress else None)
    except CheckpointUnreadable as err:
        raise UserError(f"{err.path}: not a readable nstlab checkpoint: {err.reason}. Delete it, or start afresh "
                        "without --resume (and with --overwrite).") from err
    except (SizeTooLarge, StyleDiverged, ImageError, ValueError, TypeError, FileNotFoundError) as err:
        raise UserError(str(err)) from err

    if result.start_step:
        print(f"resumed from step {result.start_step} (checkpoint {checkpoint})")
    try:
        save_image(result.image, out, overwrite=args.overwrite)
    except (FileExistsError, ImageError) as err:
        raise UserError(str(err)) from err
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()  # the run is finished and its result safe on disk
    last = result.losses[-1] if result.losses else None
    losses = (f"loss {last.total:.4g} (content {last.content:.4g}, style {last.style:.4g}, tv {last.tv:.4g})"
              if last else "no steps run")
    h, w = result.image.shape[-2:]
    trained = "" if result.pretrained else " [UNTRAINED network: not a meaningful result]"
    print(f"wrote {out} ({w}x{h}): step {result.steps} in {result.seconds:.1f} s "
          f"({result.steps_per_second:.2f} steps/s), {losses}{trained}")
    return 0
