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
COMMANDS = ("doctor", "course", "lab", "weights")


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits with status 2."""


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
        module = importlib.import_module(f"nstlab.cli.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nstlab`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
