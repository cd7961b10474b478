"""The ``nstlab`` command line.

Each subcommand lives in its own module in this package and exposes two functions:

* ``add_parser(subparsers)``: registers its ``argparse`` sub-parser, and
* ``run(args) -> int``: does the work and returns the exit status.

Errors that a user can fix (a missing file, a bad option, no network) are raised as :class:`UserError` and
printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The subcommands, in the order ``nstlab --help`` lists them; each names a module in this package.
COMMANDS = ("doctor", "course", "lab", "weights", "stylize", "fast", "present", "dream")


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits with status 2."""


def load_network(arch: str, *, untrained: bool, seed: int, what: str):
    """The pretrained backbone, or the untrained one when ``--untrained`` was given, with a warning printed;
    missing weights become a :class:`UserError` that names the remedy and ``--untrained``. ``what`` ends the
    sentence "Or pass --untrained to ...", e.g. "run on a random network (the result will not be meaningful)"."""
    from nstlab.weights import WeightsUnavailable, load_backbone

    try:
        backbone = load_backbone(arch, fallback="untrained" if untrained else None, seed=seed)
    except WeightsUnavailable as err:
        raise UserError(f"{err} Or pass --untrained to {what}.") from err
    if not backbone.pretrained:
        print(f"WARNING: {backbone.note}", flush=True)
    return backbone


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="nstlab",
        description="nstlab: a course from the perceptron to neural style transfer, and its tools.",
    )
    from nstlab import __version__

    parser.add_argument("--version", action="version", version=f"nstlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"nstlab.cli.{name}")
        except Exception as err:  # noqa: BLE001 -- a broken install must not take `nstlab doctor` down with it
            _add_unavailable(subparsers, name, err)
            continue
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def _add_unavailable(subparsers: argparse._SubParsersAction, name: str, err: Exception) -> None:
    """Register a command whose module failed to import; running it explains why instead of a traceback."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__

    def run(args: argparse.Namespace) -> int:
        raise UserError(f"unavailable because an import failed ({reason}); run `nstlab doctor` for the fix")

    sub = subparsers.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
    sub.add_argument("rest", nargs=argparse.REMAINDER)
    sub.set_defaults(_run=run)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nstlab`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_passes_unknown_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"nstlab {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nstlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
