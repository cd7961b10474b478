"""``nstlab weights``: see, locate, import and download the pretrained VGG weights.

* ``nstlab weights status``: each file, whether it is cached, its size and checksum, and where it goes;
* ``nstlab weights path [ARCH]``: the cached file's path (or the cache folder), for scripts;
* ``nstlab weights import FILE``: verify a file downloaded elsewhere and copy it into the cache;
* ``nstlab weights download [ARCH]``: download into the cache (fails within seconds when offline).
"""

from __future__ import annotations

import argparse

from nstlab.cli import UserError

# nstlab.weights.ARCHS, repeated so that `nstlab --help` need not import torch (a test keeps them equal).
ARCHS = ("vgg16", "vgg19")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nstlab weights`` and its actions."""
    parser = subparsers.add_parser("weights", help="pretrained VGG weights: status, path, import, download",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("status", help="which weights are cached, their size and checksum (exit status 1 if "
                       "some are missing)")
    path = actions.add_parser("path", help="print the cached file's path (or the cache folder)")
    path.add_argument("arch", nargs="?", choices=ARCHS, help="vgg16 or vgg19; omit for the folder")
    imp = actions.add_parser("import", help="verify FILE's checksum and copy it into the cache")
    imp.add_argument("file", help="a .pth file downloaded elsewhere, e.g. vgg19-dcbb9e9d.pth")
    imp.add_argument("--arch", choices=ARCHS, help="insist on this architecture")
    down = actions.add_parser("download", help="download into the cache, checking the checksum")
    down.add_argument("arch", nargs="?", default="vgg19", choices=ARCHS)
    return parser


def _status_lines() -> list[str]:
    from nstlab import weights

    lines = [f"cache folder: {weights.weights_dir()}  (set {weights.DIR_ENV_VAR} or TORCH_HOME to move it)"]
    for s in weights.status():
        state = "present" if s.present else "MISSING"
        lines.append(f"{s.arch}: {state:7}  {s.filename}  {s.size_bytes / 2**20:.0f} MiB ({s.size_bytes:,} bytes)"
                     f"  sha256 {s.sha256_prefix}...  {s.path}")
        if not s.present:
            lines.append(f"       get it: download {s.url} and run `nstlab weights import FILE`")
    return lines


def run(args: argparse.Namespace) -> int:
    """Carry out ``nstlab weights ACTION``; returns the exit status (1 if some weights are missing)."""
    from nstlab import weights

    action = getattr(args, "action", None) or "status"
    if action == "status":
        print("\n".join(_status_lines()))
        return 0 if all(s.present for s in weights.status()) else 1
    if action == "path":
        print(weights.weights_path(args.arch) if args.arch else weights.weights_dir())
        return 0
    try:
        if action == "import":
            target = weights.import_weights(args.file, arch=args.arch)
            print(f"verified and cached: {target}")
        else:
            target = weights.download(weights.weights_spec(args.arch))
            print(f"downloaded and verified: {target}")
    except (FileNotFoundError, weights.WeightsUnavailable) as err:
        raise UserError(str(err)) from err
    return 0
