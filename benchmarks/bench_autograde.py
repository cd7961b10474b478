"""Benchmark: autograding a class, ``nstlab course autograde A --jobs N``, for several N.

In a private copy of the course (``copy_course`` from tests/conftest.py, in a temporary folder) this generates
the assignment, writes K submissions that are copies of the instructor's solution
(``course/submitted/student-<i>/<A>/<A>.ipynb``), then times ``nstlab.course.autograde(A, jobs=N)`` for each N,
removing ``course/autograded`` and ``course/reports`` before each run. Every run is checked: all K
submissions graded (``Autograded.graded``), every student at full marks with status "graded" in
``nbgrader export``, and no nbgrader process exited non-zero (with ``--jobs`` > 1, failed parallel processes
would leave the final process to grade everything alone). Each kernel runs in the grading sandbox
(bubblewrap), as in a real grading session.

Run from the repository root::

    .venv/bin/python benchmarks/bench_autograde.py [--assignment 00-welcome] [--submissions 6] [--jobs 1 2]
                                                   [--repeats 1]

With ``--repeats`` > 1 the median wall time is reported (no warm-up run: each run starts fresh nbgrader
processes and kernels, which is the cost being measured). The load average is printed before and after
each run, and how many cores the whole machine kept busy during it, since grading on a shared machine
competes with everything else. ``autograde`` is called with ``quiet=True`` unless ``--nbgrader-log`` asks
for ``quiet=False``, the command line's way. Exit status 2 when no sandbox can be made here, 1 when a
grading process failed or a submission was not graded or lost marks.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import nbgrader
import torch

from nstlab import course
from nstlab.course import sandbox

from measure import cpu_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import copy_course  # noqa: E402 -- tests/ is put on sys.path just above


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat: every process, not only ours."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


class FailedProcesses:
    """Records every nbgrader process that ``nstlab.course`` starts and that exits non-zero.

    ``autograde --jobs N`` grades in N nbgrader processes and then records grades in one more, which reuses
    their executed notebooks; if the N processes fail, that last one quietly grades everything alone and the
    timing says nothing about ``--jobs``. Wrapping the module's ``nbgrader`` function makes such runs visible.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._nbgrader = course.nbgrader

    def __enter__(self) -> FailedProcesses:
        def watched(*args, **kwargs):
            result = self._nbgrader(*args, **kwargs)
            if result.returncode != 0:
                log = (result.stderr or "").strip().splitlines() or ["no log captured"]
                who = next((a for a in args if a.startswith("--student=")), "all students")
                self.failures.append(f"`nbgrader {args[0]}` ({who}) exited {result.returncode}: {log[-1][:300]}")
            return result

        course.nbgrader = watched
        return self

    def __exit__(self, *exc) -> None:
        course.nbgrader = self._nbgrader


def bwrap_version() -> str:
    bwrap = sandbox.find_bwrap()
    if bwrap is None:
        return "none"
    result = subprocess.run([bwrap, "--version"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def check(root: Path, assignment: str, result: course.Autograded, students: list[str]) -> list[str]:
    """What is wrong with a run: submissions not graded, or students without full marks in the export."""
    problems = []
    graded = {r.student for r in result.graded}
    for report in result.not_graded:
        problems.append(f"{report.student} not graded: {report.reason}")
    for who in students:
        if who not in graded and who not in {r.student for r in result.not_graded}:
            problems.append(f"{who}: no report")
    export = course.export(root / "grades.csv", root=root, quiet=True)
    with export.open(newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == assignment}
    for who in students:
        row = rows.get(who)
        if row is None:
            problems.append(f"{who}: not in the export")
            continue
        try:
            score, max_score = float(row["score"]), float(row["max_score"])
        except ValueError:
            problems.append(f"{who}: no score in the export (status {row.get('status')!r})")
            continue
        if max_score <= 0 or score != max_score:
            problems.append(f"{who}: {score:g} of {max_score:g} points (status {row.get('status')!r})")
        elif row.get("status", "graded") != "graded":
            problems.append(f"{who}: full marks but status {row['status']!r} ({row.get('notes', '')})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="00-welcome", help="the assignment to grade")
    parser.add_argument("--submissions", type=int, default=6, help="how many submissions (copies of the solution)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the --jobs values to time")
    parser.add_argument("--repeats", type=int, default=1, help="runs per --jobs value (median is reported)")
    parser.add_argument("--nbgrader-log", action="store_true",
                        help="call autograde(quiet=False), as `nstlab course autograde` does (nbgrader's log, "
                             "which it prints, is captured and dropped)")
    args = parser.parse_args()
    os.environ.setdefault("NSTLAB_OFFLINE", "1")  # as the tests: no probing for pretrained weights

    if problem := sandbox.sandbox_problem():
        print(f"no grading sandbox on this machine: {problem}")
        return 2

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {platform.machine()}; python "
          f"{platform.python_version()}, torch {torch.__version__}, nbgrader {nbgrader.__version__}, "
          f"{bwrap_version()}")
    a, k = args.assignment, args.submissions
    students = [f"student-{i}" for i in range(1, k + 1)]
    failures: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as tmp:
        root = copy_course(Path(tmp) / "repo")
        course.generate([a], root=root, quiet=True)
        solution = nbformat.read(root / "solutions" / a / f"{a}.ipynb", as_version=4)
        for who in students:
            folder = root / "course" / "submitted" / who / a
            folder.mkdir(parents=True)
            nbformat.write(solution, folder / f"{a}.ipynb")
        print(f"{a}: {k} submissions (the solution), grading sandbox on, "
              f"autograde(quiet={not args.nbgrader_log})")
        print()
        for jobs in args.jobs:
            times, busy, loads = [], [], []
            for run in range(args.repeats):
                for folder in ("autograded", "reports"):
                    shutil.rmtree(root / "course" / folder, ignore_errors=True)
                loads.append(loadavg())
                with FailedProcesses() as failed, contextlib.redirect_stdout(io.StringIO()):
                    busy_before, total_before = cpu_ticks()
                    start = time.perf_counter()
                    result = course.autograde(a, root=root, jobs=jobs, quiet=not args.nbgrader_log)
                    seconds = time.perf_counter() - start
                    busy_after, total_after = cpu_ticks()
                times.append(seconds)
                busy.append((busy_after - busy_before) / max(total_after - total_before, 1) * (os.cpu_count() or 1))
                problems = failed.failures + check(root, a, result, students)
                print(f"--jobs {jobs}, run {run + 1}: {seconds:.1f} s, {len(result.graded)} of {k} graded, "
                      f"{len(result.flagged)} flagged; machine busy {busy[-1]:.2f} cores; "
                      f"load {loads[-1]} before, {loadavg()} after"
                      + "".join(f"\n  PROBLEM {p}" for p in problems))
                failures += [f"--jobs {jobs}, run {run + 1}: {p}" for p in problems]
            rows.append((jobs, statistics.median(times), statistics.median(busy), loads))

    print()
    base = next((t for j, t, _, _ in rows if j == 1), None)
    print(f"| jobs | seconds ({k} submissions) | s / submission | speed-up vs jobs=1 | load before "
          f"| machine busy (cores, all processes) |")
    print("|---|---|---|---|---|---|")
    for jobs, seconds, cores, loads in rows:
        speedup = f"{base / seconds:.2f}×" if base else "—"
        print(f"| {jobs} | {seconds:.1f} | {seconds / k:.1f} | {speedup} | {'; '.join(loads)} | {cores:.2f} |")
    if args.repeats > 1:
        print(f"(median of {args.repeats} runs each)")
    if failures:
        print()
        print(f"{len(failures)} problem(s): a grading process failed, or a submission was not graded with full "
              "marks; the timings above do not measure what they say")
        return 1
    print()
    print(f"every run: all {k} submissions graded, every student at full marks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
