"""``nstlab present [LECTURE]``: project a lecture's demos as a full-screen dashboard, offline.

Serves ``course/lectures/`` through Voilà on this machine only (127.0.0.1) and opens the browser at LECTURE
(a name or its unique beginning, e.g. ``part1``), or at the list of lectures when none is named. The page
shows the demos and figures without code, in large type; each open page has its own kernel, shut down when
the page closes. Nothing is loaded from the network. Stop with Ctrl-C.

``nstlab present --prepare [LECTURE]`` computes once what the demos of LECTURE (default: of every lecture)
look up, such as the style panel's grid, with an estimate of the time and a progress bar, so that no control
waits on a computation during the lecture.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import urllib.request
import webbrowser
from pathlib import Path

from nstlab import course, present
from nstlab.cli import UserError
from nstlab.present import server

# How long to wait for Voilà to answer before saying it did not start.
START_TIMEOUT_SECONDS = 60


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nstlab present``."""
    p = subparsers.add_parser("present", help="project a lecture's demos full-screen (Voilà, offline)",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lecture", metavar="LECTURE", nargs="?", help="the lecture to open (default: the list)")
    p.add_argument("--port", type=int, default=server.DEFAULT_PORT, help=f"port (default {server.DEFAULT_PORT})")
    p.add_argument("--no-browser", action="store_true", help="only print the address; do not open a browser")
    p.add_argument("--prepare", action="store_true", help="compute the demos' precomputed grids once, then exit")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        root = course.course_root()
    except course.CourseError as err:
        raise UserError(str(err)) from err
    folder = present.lectures_dir(root)
    if not present.list_lectures(root):
        raise UserError(f"no lecture notebooks in {folder}; run the command inside your copy of the course")
    try:
        lecture = present.find_lecture(root, args.lecture) if args.lecture else None
    except LookupError as err:
        raise UserError(str(err)) from err
    if args.prepare:
        names = [lecture] if lecture else present.list_lectures(root)
        return _prepare([folder / f"{name}.ipynb" for name in names])
    try:
        server.check_voila()
        server.check_port(args.port)
    except server.ServerError as err:
        raise UserError(str(err)) from err
    url = server.lecture_url(args.port, lecture)
    process = subprocess.Popen(server.voila_command(folder, port=args.port), env=server.voila_environment())
    try:
        _wait_until_serving(process, args.port, url)
        print(f"lecture{' ' + lecture if lecture else 's'} at {url} (Ctrl-C stops)", flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()  # Voilà shuts its kernels down on SIGTERM
        process.wait(timeout=30)
        print("nstlab present: stopped; every lecture kernel is shut down", flush=True)
        return 0


def _wait_until_serving(process: subprocess.Popen, port: int, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"Voilà stopped at start (exit status {process.returncode}); its messages are above")
        try:
            # The lecture list is cheap to fetch; a lecture's own page would start a kernel.
            urllib.request.urlopen(server.lecture_url(port, None), timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise UserError(f"Voilà did not answer at {url} within {START_TIMEOUT_SECONDS} s; its messages are above")


def _prepare(notebooks: list[Path]) -> int:
    """Prepare the demos of ``notebooks`` in their default cache folders, where the lectures look."""
    from nstlab.present.prepare import lecture_demos, prepare_demos  # imports torch: only when preparing

    results = prepare_demos(lecture_demos(notebooks))
    for done in results:
        demo = done.module.rsplit(".", 1)[1]
        print(f"{demo}: ready at {done.path}" if done.path else f"{demo}: not prepared: {done.skipped}")
    if not results:
        print("nothing to prepare: these lectures' demos all compute live")
    return 0 if all(done.path for done in results) else 1
