"""``nstlab dream IMAGE -o OUT``: DeepDream from the command line (Mordvintsev et al., 2015).

IMAGE (and a --guide) is an image file or a built-in image by name (``nstlab.data.list_images()``: astronaut,
chelsea, ..., mosaic, swirl). The settings start from the active profile's (``nstlab.dream.dream_config``:
256 px, 4 octaves of 10 steps on a CPU); every option given overrides them. Early layers (relu1_1, relu2_1)
amplify edges and textures, late ones (relu4_2, relu5_1) parts of objects; --channel picks one filter.

OUT is never overwritten without --overwrite; a folder that cannot take it is refused before the run starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nstlab.cli import UserError, load_network
from nstlab.cli.stylize import _refuse_unwritable

# Option name on the command line -> DreamConfig field.
OVERRIDES = ("layer", "channel", "objective", "octaves", "octave_scale", "steps", "step_size", "jitter",
             "guide_weight", "seed", "size", "arch", "precision")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nstlab dream``."""
    p = subparsers.add_parser("dream", help="DeepDream: amplify what a layer of VGG sees in an image",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="the image to dream on: a file or a built-in name")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT", help="where to write the dream (.png, .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--layer", help="the VGG layer to amplify (default relu4_2)")
    p.add_argument("--channel", type=int, metavar="K", help="amplify channel K of the layer only")
    p.add_argument("--objective", choices=("mean", "l2"), help="mean of the activations (default) or half their squared L2 norm")
    p.add_argument("--octaves", type=int, help="image sizes, coarse to fine (default: the profile's, 4 on a CPU)")
    p.add_argument("--octave-scale", type=float, help="ratio between octave sizes (default 1.4)")
    p.add_argument("--steps", type=int, help="ascent steps per octave (default: the profile's, 10 on a CPU)")
    p.add_argument("--step-size", type=float, help="step in units of the mean absolute gradient (default 0.01)")
    p.add_argument("--jitter", type=int, help="largest random shift in pixels before each step (default 32; 0: none)")
    p.add_argument("--guide", metavar="IMAGE", help="a guide image: amplify what resembles its features")
    p.add_argument("--guide-weight", type=float, help="share of the guide in the objective, 0..1 (default 1)")
    p.add_argument("--size", type=int, help="long side of the result in pixels (default: the profile's, 256 on a CPU)")
    p.add_argument("--seed", type=int, help="seed of the jitter (and of the untrained network)")
    p.add_argument("--arch", choices=("vgg19", "vgg16"), help="network")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or mps (default: the best available)")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"),
                   help="precision of the network passes (default auto: bf16 where the device computes it natively, "
                        "else fp32; or NSTLAB_PRECISION)")
    p.add_argument("--untrained", action="store_true",
                   help="use a random network if the pretrained weights are unavailable (results are not meaningful)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _config(args: argparse.Namespace):
    from nstlab.dream import dream_config

    return dream_config(**{name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None})


def run(args: argparse.Namespace) -> int:
    """Run ``nstlab dream``; returns the exit status."""
    from nstlab.data import open_image
    from nstlab.device import channels_last, choose_device, choose_precision
    from nstlab.dream import dream, octave_sizes
    from nstlab.images import ImageError, save_image
    from nstlab.memory import SizeTooLarge, check_memory
    from nstlab.vgg import VGGFeatures

    out: Path = args.output
    if out.exists() and not out.is_dir() and not args.overwrite:
        raise UserError(f"{out} already exists; choose another name or pass --overwrite.")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{out}: unknown image format {out.suffix!r}; use .png or .jpg.")
    _refuse_unwritable(out, "-o")  # before any work: a result that cannot be saved would be lost
    try:
        config = _config(args)
        choice = choose_device(args.device)
        how = choose_precision(config.precision, device=choice.device)
        image = open_image(args.image)
        guide = open_image(args.guide) if args.guide is not None else None
        long = config.size or max(image.shape[-2:])
        h, w = image.shape[-2:]
        hw = (max(1, round(h * long / max(h, w))), max(1, round(w * long / max(h, w))))
        sizes = octave_sizes(*hw, octaves=config.octaves, scale=config.octave_scale)
    except (ImageError, ValueError, TypeError) as err:
        raise UserError(str(err)) from err

    what = config.layer + (f", channel {config.channel}" if config.channel is not None else "")
    guided = f", guided by {args.guide}" if guide is not None else ""
    print(f"dream: {args.image} on {what} ({config.objective}){guided}; {hw[1]}x{hw[0]} px, {len(sizes)} octave(s) x "
          f"{config.steps} steps, step size {config.step_size:g}, jitter {config.jitter}, seed {config.seed}; "
          f"device {choice}; precision {how}", flush=True)
    try:  # before loading 550 MB of weights: refuse a size that cannot fit
        check_memory(hw, arch=config.arch, device=choice.device, optimizer="adam", layers=(config.layer,))
    except SizeTooLarge as err:
        raise UserError(str(err)) from err
    backbone = load_network(config.arch, untrained=args.untrained, seed=config.seed,
                            what="run on a random network (the result will not be meaningful)")
    extractor = channels_last(VGGFeatures([config.layer], arch=config.arch, backbone=backbone).to(choice.device))
    try:
        result = dream(image.to(choice.device), extractor, config,
                       guide=guide.to(choice.device) if guide is not None else None, progress=not args.no_progress)
    except (ImageError, ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    try:
        save_image(result.image, out, overwrite=args.overwrite)
    except (FileExistsError, ImageError) as err:
        raise UserError(str(err)) from err
    h, w = result.image.shape[-2:]
    trained = "" if result.pretrained else " [UNTRAINED network: not a meaningful result]"
    print(f"wrote {out} ({w}x{h}): {len(result.history)} steps in {result.seconds:.1f} s "
          f"({result.seconds_per_step:.2f} s/step), objective {result.history[0]:.4g} -> {result.history[-1]:.4g}"
          f"{trained}")
    return 0
