"""``nstlab fast``: fast style transfer (Johnson et al. 2016): train a network per style, apply it, export it.

  nstlab fast train STYLE -o MODEL [--images DIR] [--profile fast|full|grade] [--size] [--steps] ...
  nstlab fast apply MODEL CONTENT [CONTENT ...] -o OUT [--size] [--overwrite]
  nstlab fast export MODEL --format onnx|coreml -o FILE
  nstlab fast info MODEL

STYLE and CONTENT are image files or built-in images by name (``nstlab.data.list_images()``: astronaut,
chelsea, ..., mosaic, swirl). Training runs on the built-in photos (random crops, flips and scales) unless
--images names a folder of photos; settings start from the profile's preset (fast on a CPU: the small network,
128-px crops, about two minutes) and every option given overrides it. A checkpoint (MODEL.ckpt) is saved as the
run goes; if it is killed, the same command with --resume continues from the last checkpoint. Outputs are never
overwritten without --overwrite.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from nstlab.cli import UserError, load_network
from nstlab.cli.stylize import _refuse_unwritable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
# `nstlab fast train` option -> FastConfig field.
OVERRIDES = ("size", "steps", "width", "blocks", "batch_size", "lr", "content_weight", "style_weight", "tv_weight",
             "seed", "checkpoint_every", "style_size")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nstlab fast`` and its four subcommands."""
    p = subparsers.add_parser("fast", help="fast style transfer: train a network per style, apply, export",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="fast_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("train", help="train a transform network for one style")
    t.add_argument("style", metavar="STYLE", help="style image: a file or a built-in name")
    t.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL", help="the model file to write (.pt)")
    t.add_argument("--images", type=Path, metavar="DIR", help="folder of training photos, searched recursively "
                   "(default: the built-in photos)")
    t.add_argument("--profile", choices=("fast", "full", "grade"), help="preset (default: the active profile)")
    t.add_argument("--size", type=int, help="side of the training crops in pixels")
    t.add_argument("--steps", type=int, help="training steps")
    t.add_argument("--width", type=int, help="network width (16 small, 32 the paper's)")
    t.add_argument("--blocks", type=int, help="residual blocks (3 small, 5 the paper's)")
    t.add_argument("--batch-size", type=int, help="images per step")
    t.add_argument("--lr", type=float, help="Adam's learning rate")
    t.add_argument("--content-weight", type=float, help="weight of the feature (content) loss")
    t.add_argument("--style-weight", type=float, help="weight of the style loss")
    t.add_argument("--tv-weight", type=float, help="weight of the total variation")
    t.add_argument("--style-size", type=int, help="long side of the style image in pixels")
    t.add_argument("--seed", type=int, help="seed of the initialisation and the crops")
    t.add_argument("--checkpoint", type=Path, help="checkpoint file (default: MODEL.ckpt)")
    t.add_argument("--checkpoint-every", type=int, help="save the checkpoint every N steps")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace MODEL (and start afresh over a checkpoint)")
    t.add_argument("--untrained", action="store_true", help="use a random VGG16 if the pretrained weights are "
                   "unavailable (the model is marked UNTRAINED for good)")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or mps (default: the best available)")
    t.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                   help="precision of the network passes (default auto: bf16 where the device computes it natively, "
                        "else fp32; or NSTLAB_PRECISION)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.set_defaults(_fast=_train)

    a = sub.add_parser("apply", help="stylise images with a trained model")
    a.add_argument("model", metavar="MODEL", type=Path, help="a model file from `nstlab fast train`")
    a.add_argument("contents", metavar="CONTENT", nargs="+", help="images: files or built-in names")
    a.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                   help="an image file for one CONTENT, a folder for several")
    a.add_argument("--size", type=int, help="resize each image to this long side first (default: as it is)")
    a.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    a.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or mps (default: the best available)")
    a.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                   help="precision of the network passes (default auto: bf16 where the device computes it natively, "
                        "else fp32; or NSTLAB_PRECISION)")
    a.set_defaults(_fast=_apply)

    e = sub.add_parser("export", help="export a model to ONNX or Core ML")
    e.add_argument("model", metavar="MODEL", type=Path, help="a model file from `nstlab fast train`")
    e.add_argument("--format", required=True, choices=("onnx", "coreml"), help="onnx (checked in onnxruntime) or "
                   "coreml (needs the deploy extra; runs on macOS/iOS)")
    e.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="FILE.onnx or FILE.mlpackage")
    e.add_argument("--overwrite", action="store_true", help="replace FILE")
    e.set_defaults(_fast=_export)

    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model", metavar="MODEL", type=Path, help="a model file")
    i.set_defaults(_fast=_info)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``nstlab fast SUBCOMMAND``; returns the exit status."""
    return args._fast(args)


def _load(path: Path):
    from nstlab.fast import ModelFileError, load_model

    try:
        return load_model(path)
    except ModelFileError as err:
        raise UserError(str(err)) from err


# --- train -----------------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace):
    from nstlab.fast import fast_config

    changes = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    config = fast_config(args.profile)
    return replace(config, **changes) if changes else config


def _train(args: argparse.Namespace) -> int:
    from nstlab.data import open_image
    from nstlab.device import choose_device, choose_precision
    from nstlab.fast import NoTrainingImages, TrainingDiverged, describe_model, find_images, save_model, train
    from nstlab.fast.memory import check_training_memory
    from nstlab.fast.model_file import ModelFileError
    from nstlab.images import ImageError
    from nstlab.memory import SizeTooLarge

    out: Path = args.output
    if out.is_dir():
        raise UserError(f"{out} is a folder; give the model a file name such as {out / 'style.pt'}.")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} already exists; choose another name or pass --overwrite.")
    checkpoint = args.checkpoint or out.with_name(out.name + ".ckpt")
    _refuse_unwritable(out, "-o")  # before any work: a model that cannot be saved would be lost
    _refuse_unwritable(checkpoint, "--checkpoint")
    if args.resume and not checkpoint.exists():
        raise UserError(f"--resume: no checkpoint at {checkpoint}; run without --resume to start afresh.")
    if checkpoint.exists() and not args.resume and not args.overwrite:
        raise UserError(f"{checkpoint} holds an unfinished run; pass --resume to continue it or --overwrite to "
                        "start afresh.")
    try:
        config = _config(args)
        choice = choose_device(args.device)
        how = choose_precision(args.precision, device=choice.device)
        open_image(args.style, size=config.style_size)  # a bad style image fails now, not after loading VGG16
        if args.images is not None:
            found, skipped = find_images(args.images)
        check_training_memory(config, choice.device)
    except (ImageError, NoTrainingImages, SizeTooLarge, ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    if checkpoint.exists() and args.overwrite and not args.resume:
        checkpoint.unlink()  # start afresh, as asked

    source = (f"{len(found)} photo(s) in {args.images}" + (f" ({len(skipped)} unreadable file(s) skipped)"
                                                          if skipped else "")) if args.images else "built-in photos"
    print(f"fast train: style {args.style}; network width {config.width}, {config.blocks} block(s); {config.steps} "
          f"steps of {config.batch_size} x {config.size}-px crops of {source}; profile {config.profile}; "
          f"device {choice}; precision {how}", flush=True)
    backbone = load_network("vgg16", untrained=args.untrained, seed=config.seed,
                            what="train against a random VGG16 (the model will be marked UNTRAINED and will not "
                                 "be meaningful)")
    try:
        result = train(args.style, args.images, config, backbone=backbone, checkpoint=checkpoint, resume=args.resume,
                       progress=False if args.no_progress else None, device=choice.device, precision=how.precision)
    except TrainingDiverged as err:
        raise UserError(f"{err} Resume with --resume --lr SMALLER.") from err
    except (ModelFileError, NoTrainingImages, ImageError, ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    if result.start_step:
        print(f"resumed from step {result.start_step} (checkpoint {checkpoint})")
    try:
        save_model(result.model, out, overwrite=args.overwrite)
    except (FileExistsError, OSError) as err:
        raise UserError(str(err)) from err
    if checkpoint.exists():
        checkpoint.unlink()  # the run is finished and its model safe on disk
    last = result.history[-1] if result.history else None
    loss = (f"loss {last.total:.4g} (content {last.content:.4g}, style {last.style:.4g})" if last else "no steps")
    flag = "" if result.pretrained else " [UNTRAINED loss network: not a meaningful model]"
    skipped = f", {result.skipped} unreadable file(s) skipped" if result.skipped else ""
    print(f"wrote {out}: step {result.steps} in {result.seconds:.1f} s, {loss}{skipped}{flag}")
    if not result.pretrained:
        print(describe_model(result.model).splitlines()[-1])
    return 0


# --- apply -----------------------------------------------------------------------------------------------------


def _targets(args: argparse.Namespace) -> list[Path]:
    """The output file of each CONTENT: OUT itself for one, OUT/<name>.png for several; all checked first."""
    out: Path = args.output
    if len(args.contents) == 1 and not out.is_dir():
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{out}: unknown image format {out.suffix!r}; use .png or .jpg (or give a folder).")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} is a file, but {len(args.contents)} images need a folder; give a folder for -o.")
        targets = [out / f"{Path(c).stem}.png" for c in args.contents]
        seen = {}
        for content, target in zip(args.contents, targets, strict=True):
            if target in seen:
                raise UserError(f"{content} and {seen[target]} would both be written to {target}; rename one.")
            seen[target] = content
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise UserError(f"{', '.join(existing)} already exist(s); choose another -o or pass --overwrite.")
    for target in targets:
        _refuse_unwritable(target, "-o")
    return targets


def _apply(args: argparse.Namespace) -> int:
    from nstlab.data import open_image
    from nstlab.device import choose_device, choose_precision
    from nstlab.fast import apply
    from nstlab.fast.memory import check_apply_memory
    from nstlab.images import ImageError, save_image
    from nstlab.memory import SizeTooLarge

    model = _load(args.model)
    targets = _targets(args)
    try:
        choice = choose_device(args.device)
        how = choose_precision(args.precision, device=choice.device)
        if args.size is not None:  # before resizing to it: a huge --size would not fit even as a photo
            check_apply_memory(model.settings, args.size, args.size, choice.device)
        images = [open_image(c, size=args.size) for c in args.contents]  # every input is checked before any work
        for image in images:
            check_apply_memory(model.settings, *image.shape[-2:], choice.device)
    except (ImageError, SizeTooLarge, ValueError) as err:
        raise UserError(str(err)) from err
    if not model.pretrained:
        print(f"WARNING: {model.note}", flush=True)
    for content, image, target in zip(args.contents, images, targets, strict=True):
        start = time.perf_counter()
        styled = apply(model, image.to(choice.device), precision=how.precision).cpu()
        seconds = time.perf_counter() - start
        try:
            save_image(styled, target, overwrite=args.overwrite)
        except (FileExistsError, ImageError) as err:
            raise UserError(str(err)) from err
        h, w = styled.shape[-2:]
        flag = "" if model.pretrained else " [UNTRAINED loss network: not a meaningful result]"
        print(f"wrote {target} ({w}x{h}) from {content} in the style of {model.style_name}: {seconds:.2f} s on "
              f"{choice.device} in {how.precision}{flag}")
    return 0


# --- export and info -------------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from nstlab.fast import DeployUnavailable, export_coreml, export_onnx, onnx_max_difference

    model = _load(args.model)
    suffix = {"onnx": ".onnx", "coreml": ".mlpackage"}[args.format]
    if args.output.suffix.lower() != suffix:
        raise UserError(f"{args.output}: a {args.format} file must end in {suffix}; for example "
                        f"{args.output.with_suffix(suffix)}.")
    if args.output.exists() and not args.overwrite:
        raise UserError(f"{args.output} already exists; choose another name or pass --overwrite.")
    _refuse_unwritable(args.output.parent / ".probe", "-o")
    try:
        if args.format == "onnx":
            path = export_onnx(model, args.output, overwrite=args.overwrite)
            sizes = ((64, 64), (96, 128))
            difference = onnx_max_difference(model, path, sizes=sizes)
            checked = ", ".join(f"{w}x{h}" for h, w in sizes)
            print(f"wrote {path}: ONNX with dynamic batch, height and width; onnxruntime matches torch within "
                  f"{difference:.1e} (max abs difference at {checked})")
            if difference > 1e-4:
                raise UserError(f"{path}: onnxruntime differs from torch by {difference:.2e} (> 1e-4); do not "
                                "deploy it, and report this with your torch and onnxruntime versions.")
        else:
            path = export_coreml(model, args.output, overwrite=args.overwrite)
            print(f"wrote {path}: Core ML program, input 'image' (1, 3, H, W) in [0, 1] with H, W from 8 to 8192; "
                  "converted here, it runs on macOS or iOS only, so it was not run here")
    except (DeployUnavailable, FileExistsError, ValueError) as err:
        raise UserError(str(err)) from err
    if not model.pretrained:
        print(f"WARNING: {model.note}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import torch

    from nstlab.fast import describe_model

    model = _load(args.model)
    data = torch.load(args.model, map_location="cpu", weights_only=True)  # loaded and checked above
    print(f"{args.model}: nstlab fast-style model, format {data['format']}, {args.model.stat().st_size / 2**20:.1f} "
          f"MiB, weights SHA-256 {data['checksum'][:16]}...")
    print(describe_model(model))
    return 0
