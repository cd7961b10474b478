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


def _nbgrader_error(log: str, student: str) -> str:
    """The last error nbgrader logged before giving up on ``student`` (its log names the student after it)."""
    lines = log.splitlines()
    marker = f"for student '{student}'"
    ends = [i for i, line in enumerate(lines) if marker in line and "error" in line.lower()]
    for line in reversed(lines[max(0, ends[0] - 40):ends[0]] if ends else []):
        if re.match(r"^\w+(\.\w+)*(Error|Exception|Exit)\b.*:", line.strip()):
            return line.strip()[:300]
    return "see the autograde log"


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
        from nstlab.course.batch import awaiting_manual_grade, manual_grading_note, written_answers

        if note := manual_grading_note(name, awaiting_manual_grade(name, root=root), written_answers(name, root=root)):
            print(f"feedback shows these answers without a score: {note}")
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


# The batch grader lives in its own module; imported last, since it uses the functions above.
from nstlab.course.batch import Autograded as Autograded  # noqa: E402
from nstlab.course.batch import autograde as autograde  # noqa: E402
