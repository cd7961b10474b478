"""The student copy of a graded course: the release and the library, without solutions or hidden tests.

This repository is the instructor's: ``course/source/`` and ``solutions/`` hold every solution and every
hidden test. Students of a graded course get the folder :func:`publish` writes instead:

* ``notebooks/``: the release, as nbgrader generated it (stubs, visible checks, no hidden tests);
* ``nstlab/``: the library, ``nstlab/course/`` included, so that ``nstlab course start`` works there;
* ``pyproject.toml`` and ``environment.yml``, as here;
* ``Makefile``: the same two commands, ``make lab``, and ``make test`` running the student tests;
* ``README.md``: written for students, from this README's student sections;
* ``tests/``: library tests that need neither solutions nor grading (:data:`STUDENT_TESTS`);
* ``docs/glossary.md``: the names and symbols the notebooks use;
* ``.gitignore``: the environment and caches, not ``work/``, which holds the student's own answers;
* ``course/STUDENT_COPY``: marks the course root (see :mod:`nstlab.course`).

Nothing of grading is published, not even ``course/nbgrader_config.py``: it is meaningless without
``solutions/`` and a gradebook, and it grows with the grading machinery (sandbox, limits), so keeping it
out means none of that can leak either. ``course/STUDENT_COPY`` lets ``nstlab`` find the course there, and
the grading commands refuse in one line.

Before anything is written, every file to publish is searched for the text of every hidden-test region and
every solution region of ``solutions/*.ipynb``; one found refuses the publication. The one exception is a
solution found in the library, ``nstlab/``: it is the reference implementation the exercises re-implement,
published and read by design, so an exercise's one-line answer may be a line of it (``return (z >
0).to(z.dtype)`` is both ``perceptron.step`` and the answer to its exercise). Hidden tests have no exception.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nstlab.course import STUDENT_COPY, CourseError, assignments, course_root, is_student_copy, solution_path

# Library tests that run anywhere the course is installed (a student's laptop): no solutions, no
# course/source, no nbgrader, no browser, about half a minute on a CPU. `make test` runs them there.
STUDENT_TESTS = (
    "conftest.py", "test_checks.py", "test_data.py", "test_images.py", "test_perceptron.py", "test_linear.py",
    "test_mlp.py", "test_gradcheck.py", "test_cnn.py", "test_losses.py", "test_vgg.py", "test_transfer.py",
    "test_optimise.py", "test_weights.py", "test_profiles_and_device.py", "test_packaging.py",
)
COPIED_FILES = ("pyproject.toml", "environment.yml", "docs/glossary.md")
# Folders publish owns as a whole: `--force` replaces them, so a file removed from the course disappears
# from the copy too. Every other file publish writes is replaced one by one; anything else stays.
OWNED_FOLDERS = ("notebooks", "nstlab", "tests")
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
REGIONS = {
    "hidden tests": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
}
# The sections of this README that speak to students, copied into theirs under these headings.
README_SECTIONS = {
    "The notebooks": "The notebooks",
    "For students": "Working through the notebooks",
    "Pretrained weights and working offline": "Pretrained weights and working offline",
    "Troubleshooting": "Troubleshooting",
}

MARKER_TEXT = """\
This folder is a student copy of the nstlab course, made by `nstlab course publish`: the released notebooks
and the library, without solutions or hidden tests. Grading runs in the instructor's repository.
nstlab finds the course by this file.
"""

GITIGNORE = """\
# made by `make`, Python, Jupyter and pytest
.venv/
__pycache__/
*.egg-info/
.pytest_cache/
.ipynb_checkpoints/
build/
dist/
# outputs of the command line (nstlab stylize ...) when run here
/outputs/
# work/ is not ignored: it holds your answers. Commit it if you keep your work in git.
"""

MAKEFILE_HEAD = """\
# The two commands of the course. Both create the virtual environment when it is missing.
#   make lab    install if needed, copy new notebooks into work/ (never overwriting yours), start JupyterLab
#   make test   install if needed, check that the library works on this machine
"""
MAKEFILE_TARGETS = """\
.PHONY: lab test clean-venv

lab: $(STAMP)
\t$(BIN)/nstlab lab

test: $(STAMP)
\t$(BIN)/python -m pytest tests

clean-venv:
\trm -rf $(VENV)
"""

README_START = """\
This folder is your copy of the course: the notebooks, the library behind them and a test of your
installation. The solutions are not in it; in a graded course your instructor grades the notebooks you hand in.

## Two commands

```bash
make lab     # install if needed, copy new notebooks into work/, open JupyterLab
make test    # install if needed, check that the library works on this machine
```

Both create a virtual environment in `.venv/` the first time (Python 3.11–3.13; about 5 GB, mostly
PyTorch, and a few minutes). Nothing else needs to be installed beforehand. Then `.venv/bin/nstlab doctor`
tells you whether everything is in order. With conda instead: `conda env create -f environment.yml`,
`conda activate nstlab`, `pip install -e . --no-deps`, then `nstlab lab`.
"""
README_GRADING = """\
## Handing in your work

Your instructor says how to hand in; what you hand in is `work/<assignment>/<assignment>.ipynb`. The grader
runs it again from the top in the small `grade` profile and adds hidden tests (other sizes, seeds and
properties) to the visible checks. It runs in a sandbox without network and without access to other files,
so code that reads files outside the notebook's folder or downloads anything fails there. An exercise
re-implements the library function of the same name: calling the library's own implementation of that
function (`images.luminance` inside your `luminance`) scores 0 for that exercise, and the feedback says why;
every other library function is yours to use. Notebook `00-welcome` shows how checks and grading work.

## What is in this folder

```
notebooks/   the notebooks as released (the course's copy; yours are in work/)
work/        your notebooks, made by `make lab`; course updates never overwrite them
nstlab/      the library the notebooks use, one course idea per module
tests/       the check that the library works on this machine (`make test`)
docs/        glossary.md: the names and symbols the notebooks use
course/      STUDENT_COPY: marks this folder as a copy of the course
```
"""


@dataclass(frozen=True)
class Secret:
    """Text of the instructor's that must never reach students: a hidden-test or solution region."""

    kind: str  # "hidden tests" or "solution"
    origin: str  # the solution notebook and cell it comes from
    text: str  # normalised by _normalise


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did: the folder, its assignments, how many files it wrote and what it replaced."""

    folder: Path
    assignments: list[str]
    files: int
    replaced: list[str]


def _normalise(text: str) -> str:
    r"""Lines stripped and blank lines dropped, so indentation or line endings cannot hide a copy.

    >>> _normalise("    x = 1\r\n\n    y = 2\n")
    'x = 1\ny = 2'
    """
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _readable_text(path: str, data: bytes) -> str:
    """A file's text as a reader sees it; a notebook's cells and outputs, not its JSON escapes."""
    text = data.decode("utf-8", errors="replace")
    if not path.endswith(".ipynb"):
        return text
    try:
        tree = json.loads(text)
    except ValueError:
        return text
    strings: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(tree)
    return "\n".join(strings)


def secrets(root: Path) -> list[Secret]:
    """Every hidden-test region and every solution region of the assignments' solution notebooks."""
    found = []
    for name in assignments(root):
        notebook = solution_path(name, root)
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            origin = f"{notebook.relative_to(root)}, cell {cell.get('id', '?')}"
            for kind, (begin, end) in REGIONS.items():
                for match in re.finditer(re.escape(begin) + "(.*?)" + re.escape(end), source, re.S):
                    found.append(Secret(kind, origin, _normalise(match[1])))
            # nbgrader replaces a written-answer cell without markers as a whole.
            is_answer = cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)
            if cell["cell_type"] == "markdown" and is_answer and REGIONS["solution"][0] not in source:
                found.append(Secret("solution", origin, _normalise(source)))
    return [secret for secret in found if secret.text]


def leaks(files: dict[str, bytes], secret_texts: list[Secret]) -> list[str]:
    r"""One line per file that holds a secret's text, naming both; empty when nothing leaks.

    Args:
        files: file contents by path in the student copy (``notebooks/...``, ``nstlab/...``).
        secret_texts: what must not appear, from :func:`secrets`.

    Example:
        >>> hidden = Secret("hidden tests", "solutions/a/a.ipynb, cell check", "assert f(2) == 4")
        >>> leaks({"tests/test_a.py": b"def test():\n    assert f(2) == 4\n"}, [hidden])
        ['tests/test_a.py holds the hidden tests of solutions/a/a.ipynb, cell check']
        >>> leaks({"notebooks/a/a.ipynb": b'{"cells": [{"source": ["f(1)"]}]}'}, [hidden])
        []
    """
    found = []
    for path, data in sorted(files.items()):
        text = _normalise(_readable_text(path, data))
        for secret in secret_texts:
            library_line = secret.kind == "solution" and path.startswith("nstlab/")
            if secret.text in text and not library_line:
                found.append(f"{path} holds the {secret.kind} of {secret.origin}")
    return found


def _section(readme: str, heading: str) -> str:
    """The body of a ``## heading`` section of a README, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if not match:
        raise CourseError(f"README.md has no section '## {heading}', which the student README copies")
    return match[1].strip("\n")


def student_readme(root: Path) -> str:
    """The student README: this README's title, introduction and student sections, and how to hand in."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    title_and_intro = readme.split("\n## ", 1)[0].rstrip("\n")
    parts = [title_and_intro, README_START.rstrip("\n")]
    for heading, student_heading in README_SECTIONS.items():
        parts.append(f"## {student_heading}\n\n{_section(readme, heading)}")
        if heading == "For students":
            parts.append(README_GRADING.rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def student_makefile(root: Path) -> str:
    """This Makefile's variables and install rule, with ``lab`` and a ``test`` that runs the student tests."""
    paragraphs = (root / "Makefile").read_text(encoding="utf-8").split("\n\n")
    kept = [p.strip("\n") for p in paragraphs if p.startswith(("PYTHON ?=", "$(STAMP):"))]
    if len(kept) != 2:
        raise CourseError("the Makefile's variables (PYTHON ?= ...) or its $(STAMP) install rule were not found")
    return "\n\n".join([MAKEFILE_HEAD.rstrip("\n"), *kept, MAKEFILE_TARGETS])


def _tree(root: Path, folder: str) -> dict[str, bytes]:
    files = {}
    for path in sorted((root / folder).rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not SKIPPED_PARTS & set(rel.parts) and path.suffix != ".pyc":
            files[PurePosixPath(rel).as_posix()] = path.read_bytes()
    return files


def student_files(root: Path) -> dict[str, bytes]:
    """Every file of the student copy, by its path there.

    Raises:
        CourseError: an assignment has no release yet, or a file the copy needs is missing.
    """
    for name in assignments(root):
        if not (root / "notebooks" / name / f"{name}.ipynb").is_file():
            raise CourseError(f"notebooks/{name}/{name}.ipynb is missing; run `nstlab course generate {name}` first")
    files = {**_tree(root, "notebooks"), **_tree(root, "nstlab")}
    wanted = [*COPIED_FILES, *(f"tests/{name}" for name in STUDENT_TESTS)]
    for rel in wanted:
        if not (root / rel).is_file():
            raise CourseError(f"{root / rel} is missing, and the student copy needs it")
        files[rel] = (root / rel).read_bytes()
    files["README.md"] = student_readme(root).encode()
    files["Makefile"] = student_makefile(root).encode()
    files[".gitignore"] = GITIGNORE.encode()
    files[STUDENT_COPY.as_posix()] = MARKER_TEXT.encode()
    return files


def _check_destination(dest: Path, root: Path, *, force: bool) -> None:
    if dest == root or root in dest.parents or dest in root.parents:
        raise CourseError(f"{dest} is inside the course repository {root} (or holds it); publish into a folder "
                          f"outside it")
    if dest.exists() and not dest.is_dir():
        raise CourseError(f"{dest} is a file; name a new or empty folder")
    instructor = [p for p in ("solutions", "course/source", "course/nbgrader_config.py") if (dest / p).exists()]
    if instructor:
        raise CourseError(f"{dest} holds {instructor[0]}: it looks like an instructor's repository, and publishing "
                          f"there would leave it in; publish into a new folder")
    # A git repository of its own is how a copy is handed out and updated: its .git does not count.
    if dest.is_dir() and any(p.name != ".git" for p in dest.iterdir()) and not force:
        raise CourseError(f"{dest} is not empty; publish into a new or empty folder, or pass --force to replace what "
                          f"an earlier publish wrote there ({'/, '.join(OWNED_FOLDERS)}/ and the files it writes; "
                          f"work/, .git and anything else stay)")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def publish(dest: str | Path, *, root: Path | None = None, force: bool = False) -> Published:
    """Write a student copy of the course into ``dest``: no solutions, no hidden tests, nothing of grading.

    Args:
        dest: a new or empty folder outside the repository (with ``force``: an earlier student copy).
        root: the instructor's course (default: :func:`nstlab.course.course_root`).
        force: replace what an earlier publish wrote in ``dest`` (the folders in :data:`OWNED_FOLDERS` as a
            whole, the other files one by one); everything else there, ``work/`` and ``.git`` included, stays.

    Raises:
        CourseError: ``dest`` is not acceptable, the release is incomplete, or a file would leak a secret;
            nothing is written then.
    """
    root = (root or course_root()).resolve()
    if is_student_copy(root):
        raise CourseError("this is a student copy of the course: publish runs in the instructor's repository")
    dest = Path(dest).expanduser().resolve()
    _check_destination(dest, root, force=force)
    files = student_files(root)
    found = leaks(files, secrets(root))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CourseError(f"nothing published: {found[0]}{more}; regenerate the release with `nstlab course "
                          f"generate` or take that text out of the file")
    entries = sorted({*OWNED_FOLDERS, *(rel for rel in files if rel.split("/", 1)[0] not in OWNED_FOLDERS)})
    replaced = []
    for entry in entries:
        if (dest / entry).exists() or (dest / entry).is_symlink():
            _remove(dest / entry)
            replaced.append(f"{entry}/" if entry in OWNED_FOLDERS else entry)
    for rel, data in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return Published(dest, assignments(root), len(files), replaced)
