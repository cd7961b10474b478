"""``nstlab lab``: open JupyterLab on the course, with the student's own copies in ``work/``.

Before starting, every released notebook that is not yet in ``work/`` is copied there (see
:func:`nstlab.course.start`); notebooks already in ``work/`` are the student's and are never touched, so
pulling a course update and running ``make lab`` again is always safe.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nstlab import course
from nstlab.cli import UserError


def lab_command(root: Path, extra: list[str]) -> list[str]:
    """The ``jupyter lab`` command line that serves ``root`` and opens ``work/``."""
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--ServerApp.root_dir={root}",
        "--LabApp.default_url=/lab/tree/work",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses to run as root without it (containers, lab machines)
    return command + extra


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "lab",
        help="copy new notebooks into work/ and start JupyterLab on the course",
        description="Copy released notebooks that are missing from work/ (never overwriting), then start "
        "JupyterLab with the course beside them. Extra options go to jupyter lab (e.g. --no-browser --port 8889).",
    )
    parser.set_defaults(_passes_unknown_options=True)  # everything unknown goes to jupyter lab
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        root = course.course_root()
        for name in course.assignments(root):
            if (root / "notebooks" / name).is_dir():
                started = course.start(name, root=root)
                for path in started.copied:
                    print(f"copied {path.relative_to(root)}")
    except course.CourseError as err:
        raise UserError(str(err)) from err
    command = lab_command(root, args.extra)
    print("starting JupyterLab: your notebooks are in work/, the course material beside them", flush=True)
    os.execv(command[0], command)
    return 0  # not reached: execv replaces this process
