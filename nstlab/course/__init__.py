"""The course as nbgrader sees it, and the commands instructors and students run on it.

The repository is the nbgrader course root (see ``course/nbgrader_config.py``):

==================  ===========================================================================
``course/source/``  one percent-format file per assignment, the text the notebooks are built from
``solutions/``      nbgrader's source notebooks: solutions and hidden tests (built from the above)
``notebooks/``      the student release, made by ``nbgrader generate_assignment``; committed
``course/...``      submissions, autograded copies, feedback, gradebook (git-ignored)
``work/``           each student's own copies, made by :func:`start`, never overwritten (git-ignored)
==================  ===========================================================================

The functions here run nbgrader's real commands with the course configuration, from any working folder.

A student copy of the course, made by :mod:`nstlab.course.publish`, has no ``course/source/``, no
``solutions/`` and no grading configuration; ``course/STUDENT_COPY`` marks its root instead. There the
assignments are the released notebooks, :func:`start` works as here, and the grading commands refuse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV_VAR = "NSTLAB_COURSE_ROOT"
CONFIG = Path("course") / "nbgrader_config.py"
# A student copy holds nothing of grading, not even its configuration; this file marks the course root there.
STUDENT_COPY = Path("course") / "STUDENT_COPY"
STUDENT_COPY_REFUSAL = "this is a student copy of the course: grading runs in the instructor's repository"


class CourseError(RuntimeError):
    """The course folder is missing or a command failed; the message says which and what to do."""


def _is_course(folder: Path) -> bool:
    return (folder / CONFIG).is_file() or (folder / STUDENT_COPY).is_file()


def course_root() -> Path:
    """The repository folder that holds ``course/nbgrader_config.py`` (a student copy: ``course/STUDENT_COPY``).

    Looked for in ``NSTLAB_COURSE_ROOT``, then in the working folder and its parents, then beside the
    installed package (an editable install from a clone).

    Raises:
        CourseError: no course folder was found, with how to point at one.
    """
    if os.environ.get(ROOT_ENV_VAR):
        chosen = Path(os.environ[ROOT_ENV_VAR])
        if not _is_course(chosen):
            raise CourseError(f"{ROOT_ENV_VAR}={chosen} has no {CONFIG} or {STUDENT_COPY}; point it at your copy of "
                              f"the course or unset it")
        return chosen.resolve()
    candidates = []
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents]
    candidates.append(Path(__file__).resolve().parents[2])
    for folder in candidates:
        if _is_course(folder):
            return folder.resolve()
    raise CourseError(
        f"no nstlab course found (looked for {CONFIG} in the working folder, its parents and beside the package). "
        f"Run the command inside your copy of the course, or set {ROOT_ENV_VAR} to its folder."
    )


def assignments(root: Path | None = None) -> list[str]:
    """Names of the assignments, in course order (``00-welcome``, ``01-perceptron`` ...).

    They are the sources in ``course/source/``; where there are none (a student copy), the released
    notebooks ``notebooks/<name>/<name>.ipynb``.
    """
    root = root or course_root()
    sources = root / "course" / "source"
    if sources.is_dir():
        return sorted(p.stem for p in sources.glob("*.py"))
    return sorted(p.parent.name for p in (root / "notebooks").glob("*/*.ipynb") if p.stem == p.parent.name)


def is_student_copy(root: Path | None = None) -> bool:
    """Whether ``root`` is a student copy of the course (made by ``nstlab course publish``), not the instructor's."""
    return ((root or course_root()) / STUDENT_COPY).is_file()


def _refuse_in_student_copy(root: Path) -> None:
    """Grading needs the solutions and hidden tests, which a student copy does not have; say so in one line."""
    if is_student_copy(root):
        raise CourseError(STUDENT_COPY_REFUSAL)


def _check_assignment(name: str, root: Path) -> None:
    known = assignments(root)
    if name not in known:
        raise CourseError(f"no assignment called {name!r}; the course has {', '.join(known) or 'none'}")


def solution_path(name: str, root: Path | None = None) -> Path:
    """Where the nbgrader source notebook of an assignment lives."""
    root = root or course_root()
    return root / "solutions" / name / f"{name}.ipynb"


def build(names: list[str] | None = None, *, root: Path | None = None) -> list[Path]:
    """Build ``solutions/<name>/<name>.ipynb`` from ``course/source/<name>.py`` for each assignment."""
    from nstlab.course.authoring import build_notebook, write_notebook  # nbformat is slow to import; only needed here

    root = root or course_root()
    _refuse_in_student_copy(root)
    written = []
    for name in names or assignments(root):
        _check_assignment(name, root)
        nb = build_notebook(root / "course" / "source" / f"{name}.py")
        write_notebook(nb, solution_path(name, root))
        written.append(solution_path(name, root))
    return written


def nbgrader(*args: str, root: Path | None = None, check: bool = True, capture: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with the course configuration, whatever the working folder.

    Raises:
        CourseError: nbgrader exited non-zero and ``check`` is true.
    """
    root = root or course_root()
    _refuse_in_student_copy(root)
    command = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader runs helper programs (alembic) by name: put this environment's scripts first on PATH even
    # when it was not activated, so the gradebook is migrated by the alembic that matches nbgrader.
    scripts = str(Path(sys.executable).parent)
    path = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    result = subprocess.run(
        command, cwd=root / "course", text=True, capture_output=capture,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    if check and result.returncode != 0:
        detail = f"\n{result.stderr[-3000:]}" if capture else ""
        raise CourseError(f"`nbgrader {' '.join(args)}` failed with exit status {result.returncode}{detail}")
    return result


def generate(names: list[str] | None = None, *, root: Path | None = None, quiet: bool = False) -> None:
    """Build the source notebooks and let nbgrader write the student release into ``notebooks/``."""
    root = root or course_root()
    _refuse_in_student_copy(root)
    names = names or assignments(root)
    build(names, root=root)
    for name in names:
        nbgrader("generate_assignment", name, "--force", *(["--log-level=WARN"] if quiet else []),
                 root=root, capture=quiet)


def _check_generated(name: str, root: Path) -> None:
    """nbgrader grades only assignments recorded in the gradebook, which ``generate`` does; say so up front."""
    import sqlite3

    gradebook = root / "course" / "gradebook.db"
    recorded: list[str] = []
    if gradebook.is_file():
        try:
            with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as db:
                recorded = [row[0] for row in db.execute("SELECT name FROM assignment")]
        except sqlite3.Error:
            return  # an unfamiliar gradebook: let nbgrader judge it
    if name not in recorded:
        raise CourseError(f"{name!r} is not in the gradebook ({gradebook}) yet; run `nstlab course generate "
                          f"{name}` first, which records the assignment and its tests, then autograde again")


@dataclass
class Autograded:
    """What ``autograde`` did: a report per submission, and how long it took."""

    assignment: str
    reports: list  # of nstlab.course.reports.Report, one per submission
    seconds: float
    jobs: int

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
    import tempfile
    import time

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
    return Autograded(name, found, time.perf_counter() - start, jobs)


def _nbgrader_error(log: str, student: str) -> str:
    """The last error nbgrader logged before giving up on ``student`` (its log names the student after it)."""
    lines = log.splitlines()
    marker = f"for student '{student}'"
    ends = [i for i, line in enumerate(lines) if marker in line and "error" in line.lower()]
    for line in reversed(lines[max(0, ends[0] - 40):ends[0]] if ends else []):
        if re.match(r"^\w+(\.\w+)*(Error|Exception|Exit)\b.*:", line.strip()):
            return line.strip()[:300]
    return "see the autograde log"


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
            shutil.copytree(root / "course" / "submitted" / who, submitted / who)
        private = scratch / f"gradebook-{slot}.db"
        shutil.copyfile(gradebook, private)
        nbgrader("autograde", name, "--force", f"--CourseDirectory.submitted_directory={submitted}",
                 f"--CourseDirectory.db_url=sqlite:///{private}",
                 f"--CourseDirectory.autograded_directory={scratch / 'autograded'}",
                 f"--SandboxKernelManager.slot={slot}", "--log-level=ERROR", *options,
                 root=root, check=False, capture=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(grade_group, range(jobs)))


def feedback(name: str, *, root: Path | None = None, quiet: bool = False) -> list[str]:
    """Write HTML feedback for every autograded submission of an assignment into ``course/feedback/``.

    Returns:
        ``"student: reason"`` for each autograded submission whose feedback could not be made (the others
        are written all the same).
    """
    root = root or course_root()
    _refuse_in_student_copy(root)
    _check_assignment(name, root)
    result = nbgrader("generate_feedback", name, "--force", *(["--log-level=WARN"] if quiet else []),
                      root=root, check=False, capture=True)
    if not quiet:
        print(result.stdout, result.stderr, sep="", end="")
    missing = []
    for graded in sorted((root / "course" / "autograded").glob(f"*/{name}/{name}.ipynb")):
        student = graded.parent.parent.name
        if not (root / "course" / "feedback" / student / name / f"{name}.html").is_file():
            missing.append(f"{student}: {_nbgrader_error(result.stderr, student)}")
    return missing


def export(to: str | Path, *, root: Path | None = None, quiet: bool = False) -> Path:
    """Export every grade in the gradebook to a CSV file; returns its path."""
    root = root or course_root()
    _refuse_in_student_copy(root)
    to = Path(to).resolve()
    nbgrader("export", f"--to={to}", *(["--log-level=WARN"] if quiet else []), root=root, capture=quiet)
    return to


@dataclass(frozen=True)
class Started:
    """What :func:`start` did: the files it copied and the ones it left alone because they exist."""

    folder: Path
    copied: list[Path]
    kept: list[Path]


def start(name: str, *, root: Path | None = None, work: Path | None = None) -> Started:
    """Copy an assignment's release into the student's working folder, never overwriting a file.

    A course update changes ``notebooks/`` only; the copy in ``work/<assignment>/`` is the student's and stays
    as it is. Files missing from the working copy (new in an update, or deleted) are copied.
    """
    root = root or course_root()
    _check_assignment(name, root)
    release = root / "notebooks" / name
    if not release.is_dir():
        raise CourseError(f"{release} is missing; run `nstlab course generate {name}` first")
    target = (work or root / "work") / name
    copied, kept = [], []
    for src in sorted(release.rglob("*")):
        if src.is_dir():
            continue
        dst = target / src.relative_to(release)
        if dst.exists():
            kept.append(dst)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Copy to a temporary name, then link into place: link() fails if dst appeared meanwhile, so a
        # file that exists is never replaced, even by two starts at once.
        tmp = dst.with_name(f".{dst.name}.copying")
        shutil.copyfile(src, tmp)
        try:
            os.link(tmp, dst)
            copied.append(dst)
        except FileExistsError:
            kept.append(dst)
        finally:
            tmp.unlink()
    return Started(target, copied, kept)
