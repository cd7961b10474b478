"""Autograding a class: every submission in its sandbox, in parallel if asked, and a report of each.

``nstlab course autograde`` runs here. It refuses to grade without a sandbox (unless told ``unsafe``),
records as "not graded" every submission it cannot even read, runs nbgrader's own ``autograde`` — in
``jobs`` parallel nbgrader processes with private copies of the gradebook, then once more to record every
grade from one process — and returns an :class:`Autograded` whose :meth:`~Autograded.summary` tells the
instructor how many were graded, not graded (and why) and flagged (and for what), and how many written answers
wait for the instructor's grading.

Written answers (``[written]`` cells, see :mod:`nstlab.course.authoring`) are nbgrader's manually graded
answers: autograding gives an unanswered one 0 ("No response.") and leaves an answered one without a score,
marked ``needs_manual_grade`` in the gradebook, until the instructor grades it in nbgrader's formgrader. Until
then nbgrader's totals count it as nothing, so :func:`awaiting_manual_grade` lists them and the summary and
``nstlab course feedback`` say so. nbgrader also leaves a check cell missing from a submission (deleted) for
manual grading; the summary lists such cells apart, as "unscored", so that they are not taken for answers.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nstlab.course import (
    CourseError,
    _check_assignment,
    _check_generated,
    _nbgrader_error,
    _refuse_in_student_copy,
    course_root,
    nbgrader,
)

# Where an instructor grades written answers: nbgrader's formgrader, a Jupyter server extension started from
# the folder that holds nbgrader_config.py (nbgrader 0.9 has no separate command for it).
HOW_TO_GRADE_BY_HAND = ("grade them in nbgrader's formgrader (`cd course && jupyter lab`, then Nbgrader > "
                        "Formgrader > Manual Grading), then run `nstlab course feedback {assignment}`")


def awaiting_manual_grade(name: str, *, root: Path | None = None) -> dict[str, list[str]]:
    """The graded cells of an assignment that wait for the instructor, per student, from the gradebook.

    Returns:
        ``{student: [grade_id, ...]}`` for every submission with a cell nbgrader marked ``needs_manual_grade``
        (an answered written question; also a check cell missing from the submission), in notebook order.
        Students with nothing to grade by hand are left out.
    """
    from nbgrader.api import Gradebook

    root = root or course_root()
    gradebook = root / "course" / "gradebook.db"
    if not gradebook.is_file():
        return {}
    order = _cell_order(root / "notebooks" / name / f"{name}.ipynb")
    waiting: dict[str, list[str]] = {}
    with Gradebook(f"sqlite:///{gradebook}") as db:
        for submission in db.assignment_submissions(name):  # none for an assignment the gradebook lacks
            ids = [grade.name for notebook in submission.notebooks for grade in notebook.grades
                   if grade.needs_manual_grade]
            if ids:
                waiting[submission.student_id] = sorted(ids, key=lambda i: (order.get(i, len(order)), i))
    return dict(sorted(waiting.items()))


def _cell_order(release: Path) -> dict[str, int]:
    """Position of each graded cell in the release, so that lists follow the notebook."""
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in _release_cells(release)]
    return {grade_id: i for i, grade_id in enumerate(ids) if grade_id}


def _release_cells(release: Path) -> list:
    import nbformat

    try:
        return nbformat.read(release, as_version=4).cells
    except (OSError, ValueError):
        return []


def written_answers(name: str, *, root: Path | None = None) -> list[str]:
    """Grade ids of an assignment's written answers (markdown cells graded by hand), in notebook order."""
    root = root or course_root()
    return [c.metadata["nbgrader"]["grade_id"] for c in _release_cells(root / "notebooks" / name / f"{name}.ipynb")
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def manual_grading_note(name: str, waiting: dict[str, list[str]], written: list[str]) -> str:
    """One line telling the instructor what waits for them and how to grade it ("" if nothing does).

    Written answers are expected to wait. Any other graded cell in ``waiting`` is one nbgrader could not
    score: a check cell missing from the submission (deleted), or one graded by hand in an earlier round.
    """
    answers = {who: [i for i in ids if i in written] for who, ids in waiting.items()}
    others = {who: [i for i in ids if i not in written] for who, ids in waiting.items()}
    parts = []
    if n := sum(map(len, answers.values())):
        parts.append(f"{_plural(n, 'written answer')} of {_plural(sum(map(bool, answers.values())), 'student')} "
                     f"await{'s' * (n == 1)} grading by hand (not in the scores until graded)")
    if n := sum(map(len, others.values())):
        parts.append(f"{_plural(n, 'other graded cell')} nbgrader could not score (missing from the submission, "
                     "or graded by hand before; 0 until graded)")
    return "; ".join(parts) + ": " + HOW_TO_GRADE_BY_HAND.format(assignment=name) if parts else ""


@dataclass
class Autograded:
    """What ``autograde`` did: a report per submission, and how long it took."""

    assignment: str
    reports: list  # of nstlab.course.reports.Report, one per submission
    seconds: float
    jobs: int
    by_hand: dict[str, list[str]] = field(default_factory=dict)  # student -> grade ids awaiting the instructor
    written: list[str] = field(default_factory=list)  # grade ids of the assignment's written answers

    @property
    def graded(self) -> list:
        return [r for r in self.reports if r.status == "graded"]

    @property
    def not_graded(self) -> list:
        return [r for r in self.reports if r.status != "graded"]

    @property
    def flagged(self) -> list:
        return [r for r in self.graded if r.flags]

    def summary(self) -> str:
        """The lines an instructor reads at the end of a run."""
        n = len(self.reports)
        lines = [f"autograde {self.assignment}: {n} submission{'s' * (n != 1)} in {self.seconds:.0f} s "
                 f"({self.seconds / max(n, 1):.1f} s each, {self.jobs} job{'s' * (self.jobs != 1)}): "
                 f"{len(self.graded)} graded, {len(self.not_graded)} not graded, {len(self.flagged)} flagged"]
        for report in self.not_graded:
            lines.append(f"  not graded  {report.student}: {report.reason}")
        for report in self.flagged:
            for flag in report.flags:
                lines.append(f"  flagged     {report.student}: {flag}")
        for student, ids in self.by_hand.items():
            if answers := [i for i in ids if i in self.written]:
                lines.append(f"  by hand     {student}: {', '.join(answers)}")
            if others := [i for i in ids if i not in self.written]:
                lines.append(f"  unscored    {student}: {', '.join(others)} (not in the submission?)")
        if self.by_hand:
            lines.append(manual_grading_note(self.assignment, self.by_hand, self.written))
        return "\n".join(lines)


def _submissions(name: str, root: Path, student: str | None) -> list[str]:
    import fnmatch

    folder = root / "course" / "submitted"
    found = sorted(p.parent.name for p in folder.glob(f"*/{name}") if p.is_dir()) if folder.is_dir() else []
    return [s for s in found if student is None or fnmatch.fnmatchcase(s, student)]


def _unreadable(name: str, root: Path, student: str) -> str | None:
    """Why a submission cannot be graded at all (missing or unreadable notebook), or None."""
    import nbformat

    path = root / "course" / "submitted" / student / name / f"{name}.ipynb"
    if not path.is_file():
        return f"no {path.name} in the submission folder"
    try:
        nbformat.validate(nbformat.read(path, as_version=4))
    except Exception as err:  # noqa: BLE001 -- whatever nbformat says is the reason
        return f"{path.name} is not a readable notebook ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    return None


def autograde(name: str, *, student: str | None = None, timeout: int | None = None, root: Path | None = None,
              quiet: bool = False, jobs: int = 1, unsafe: bool = False) -> Autograded:
    """Autograde the submissions of an assignment (all students, or those matching ``student``).

    Each submission lives in ``course/submitted/<student>/<assignment>/``. Its kernel runs in the grading
    sandbox (:mod:`nstlab.course.sandbox`); without one this refuses, unless ``unsafe``. With ``jobs`` > 1,
    submissions run in parallel sandboxes, each against a private copy of the gradebook, and one nbgrader
    process then writes every grade. A submission that cannot be graded is reported with the reason; the
    run raises only when nothing could be attempted.

    Raises:
        CourseError: unknown assignment, not generated yet, no submissions, or no sandbox without ``unsafe``.
    """
    from nstlab.course import reports, sandbox

    root = root or course_root()
    _refuse_in_student_copy(root)
    _check_assignment(name, root)
    _check_generated(name, root)
    if not unsafe and (problem := sandbox.sandbox_problem()):
        raise CourseError(f"refusing to grade without a sandbox: {problem}. Student code would run with your "
                          "rights (it could change the gradebook, other submissions or the course). Fix that, or "
                          "pass --unsafe to grade anyway, only submissions you trust")
    students = _submissions(name, root, student)
    if not students:
        raise CourseError(f"no submissions of {name} in {root / 'course' / 'submitted'}"
                          + (f" matching {student!r}" if student else "")
                          + "; collect them as course/submitted/<student>/<assignment>/<assignment>.ipynb")
    course = root / "course"
    start = time.perf_counter()
    failed = {}
    for who in students:
        (reports.reports_folder(course, name) / f"{who}.json").unlink(missing_ok=True)
        if (reason := _unreadable(name, root, who)) is not None:
            failed[who] = reason
    options = [f"--Execute.timeout={timeout}"] if timeout is not None else []
    options += ["--SandboxedExecute.unsafe=True"] if unsafe else []
    runnable = [who for who in students if who not in failed]
    jobs = max(1, min(jobs, len(runnable) or 1))
    with tempfile.TemporaryDirectory(prefix="nstlab-grading-") as scratch:
        if jobs > 1:
            _run_in_parallel(name, runnable, root, Path(scratch), jobs, options)
            options.append(f"--SandboxedExecute.reuse_directory={scratch}")
        args = ["autograde", name, "--force", *([f"--student={student}"] if student else []), *options,
                *(["--log-level=WARN"] if quiet else [])]
        result = nbgrader(*args, root=root, check=False, capture=True)
        if not quiet:
            print(result.stdout, result.stderr, sep="", end="")
    found = []
    for who in students:
        report = reports.read_report(course, name, who)
        if report is None:
            reason = failed.get(who) or f"nbgrader could not grade it ({_nbgrader_error(result.stderr, who)})"
            report = reports.Report(who, name, "not graded", reason)
            reports.write_report(course, report)
        found.append(report)
    graded = {r.student for r in found if r.status == "graded"}
    by_hand = {who: ids for who, ids in awaiting_manual_grade(name, root=root).items() if who in graded}
    return Autograded(name, found, time.perf_counter() - start, jobs, by_hand, written_answers(name, root=root))


def _run_in_parallel(name: str, students: list[str], root: Path, scratch: Path, jobs: int,
                     options: list[str]) -> None:
    """Execute the submissions in ``jobs`` nbgrader processes at once, each with its own sandboxes.

    Job k grades every k-th submission, from a copy of their folders, into ``scratch``, against a private
    copy of the gradebook, so no two processes write one database; the caller's single nbgrader run then
    reuses their executed notebooks and records the grades. One process per job, not per submission: an
    nbgrader process takes seconds to start.
    """
    from concurrent.futures import ThreadPoolExecutor

    gradebook = root / "course" / "gradebook.db"

    def grade_group(slot: int) -> None:
        submitted = scratch / f"submitted-{slot}"
        for who in students[slot::jobs]:
            shutil.copytree(root / "course" / "submitted" / who / name, submitted / who / name)
        private = scratch / f"gradebook-{slot}.db"
        shutil.copyfile(gradebook, private)
        nbgrader("autograde", name, "--force", f"--CourseDirectory.submitted_directory={submitted}",
                 f"--CourseDirectory.db_url=sqlite:///{private}",
                 f"--CourseDirectory.autograded_directory={scratch / 'autograded'}",
                 f"--SandboxKernelManager.slot={slot}", "--log-level=ERROR", *options,
                 root=root, check=False, capture=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(grade_group, range(jobs)))
