"""The student copy of the course holds no solution and no hidden test, and works on its own.

Every test publishes the real course (``solutions/``, ``notebooks/``, the library) into a temporary folder;
the commands and the student tests then run in that copy, on its own copy of the library.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nstlab import course
from nstlab.course.publish import STUDENT_TESTS, Secret, leaks, publish, secrets

from conftest import ASSIGNMENTS, ROOT

REFUSAL = "this is a student copy of the course: grading runs in the instructor's repository"


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A student copy of the real course, in a folder of its own."""
    publish(tmp_path / "students", root=ROOT)
    return tmp_path / "students"


def _in_copy(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in the copy: ``-m`` puts the copy first on sys.path, so its own library runs."""
    env = {**os.environ, "NSTLAB_COURSE_ROOT": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=copy, text=True, capture_output=True, env=env, timeout=300)


def _regions(notebook: Path) -> list[tuple[str, str]]:
    """(kind, text) of every hidden-test and solution region of a solution notebook, read independently of
    the code under test."""
    found = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        for kind in ("HIDDEN TESTS", "SOLUTION"):
            for body in re.findall(rf"### BEGIN {kind}\n(.*?)### END {kind}", source, re.S):
                found.append((kind, body))
    return found


def _plain(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def test_the_copy_has_the_release_the_library_and_the_two_commands(published: Path):
    for name in ASSIGNMENTS:
        release = ROOT / "notebooks" / name / f"{name}.ipynb"
        assert (published / "notebooks" / name / f"{name}.ipynb").read_bytes() == release.read_bytes()
    for rel in ("nstlab/course/__init__.py", "nstlab/cli/course.py", "pyproject.toml", "environment.yml",
                "README.md", ".gitignore", "course/STUDENT_COPY", "tests/conftest.py"):
        assert (published / rel).is_file(), rel
    assert (published / "pyproject.toml").read_bytes() == (ROOT / "pyproject.toml").read_bytes()
    makefile = (published / "Makefile").read_text()
    assert re.search(r"^lab: ", makefile, re.M) and re.search(r"^test: ", makefile, re.M)
    dry_run = subprocess.run(["make", "-n", "lab", "test"], cwd=published, capture_output=True, text=True)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "nstlab lab" in dry_run.stdout and "pytest tests" in dry_run.stdout


def test_nothing_of_grading_or_of_the_instructors_repository_is_published(published: Path):
    paths = {p.relative_to(published).as_posix() for p in published.rglob("*")}
    top = {p.split("/")[0] for p in paths}
    assert top == {"notebooks", "nstlab", "tests", "docs", "course", "pyproject.toml", "environment.yml",
                   "Makefile", "README.md", ".gitignore"}
    assert {p for p in paths if p.startswith("course/")} == {"course/STUDENT_COPY"}
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc") or "checkpoints" in p]
    assert not [p for p in paths if Path(p).name in ("nbgrader_config.py", "gradebook.db", "source", "solutions")]
    assert sorted(p.removeprefix("tests/") for p in paths if p.startswith("tests/")) == sorted(STUDENT_TESTS)


def test_no_published_file_holds_a_hidden_test_or_a_solution(published: Path):
    """Every file, notebooks read cell by cell; the one exception is the library, which is the reference
    implementation: an exercise's one-line answer may be a line of it (and that library is exactly ours)."""
    regions = [(nb, kind, _plain(text)) for nb in sorted(ROOT.glob("solutions/*/*.ipynb")) for kind, text in _regions(nb)]
    assert len({nb for nb, _, _ in regions}) == len(ASSIGNMENTS)
    assert sum(kind == "HIDDEN TESTS" for _, kind, _ in regions) >= len(ASSIGNMENTS)
    in_library = set()
    for path in sorted(p for p in published.rglob("*") if p.is_file()):
        rel = path.relative_to(published).as_posix()
        raw = path.read_text(encoding="utf-8", errors="replace")
        readable = raw
        if rel.endswith(".ipynb"):
            readable = "\n".join("".join(cell["source"]) for cell in json.loads(raw)["cells"])
        text = _plain(readable) + "\n" + _plain(raw)
        for notebook, kind, region in regions:
            if region in text:
                assert kind == "SOLUTION" and rel.startswith("nstlab/"), f"{rel} holds {kind} of {notebook.name}"
                assert path.read_bytes() == (ROOT / rel).read_bytes()
                in_library.add(region)
    assert all("\n" not in region for region in in_library), in_library


def test_publish_refuses_a_file_that_would_leak_a_hidden_test():
    notebook = ROOT / "solutions" / "01-perceptron" / "01-perceptron.ipynb"
    found = leaks({"notebooks/01-perceptron/01-perceptron.ipynb": notebook.read_bytes(),
                   "tests/test_copied.py": (ROOT / "course" / "source" / "01-perceptron.py").read_bytes()},
                  secrets(ROOT))
    assert found and all("01-perceptron.ipynb" in line for line in found)
    for rel in ("notebooks/", "tests/"):
        assert any("hidden tests" in line and line.startswith(rel) for line in found), rel
    assert leaks({"nstlab/perceptron.py": (ROOT / "nstlab" / "perceptron.py").read_bytes()}, secrets(ROOT)) == []
    hidden = Secret("hidden tests", "x", "assert f(2) == 4")
    assert leaks({"nstlab/x.py": b"    assert f(2) == 4\n"}, [hidden]) == ["nstlab/x.py holds the hidden tests of x"]


def test_the_student_readme_has_what_students_need_and_nothing_for_instructors(published: Path):
    readme = (published / "README.md").read_text()
    for needed in ("make lab", "make test", "## The notebooks", "**Profiles.**", "NSTLAB_OFFLINE",
                   "nstlab weights import", "## Troubleshooting", "scores 0", "sandbox", *ASSIGNMENTS):
        assert needed in readme, needed
    for instructor in ("For instructors", "solutions/", "course/source", "autograde", "nstlab course generate",
                       "nstlab course publish", "gradebook", "keep this repository private"):
        assert instructor not in readme, instructor


def test_course_list_and_start_work_in_the_copy_and_grading_refuses_in_one_line(published: Path):
    listed = _in_copy(published, "-m", "nstlab.cli", "course", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ASSIGNMENTS
    started = _in_copy(published, "-m", "nstlab.cli", "course", "start", "00-welcome")
    assert started.returncode == 0, started.stderr
    mine = published / "work" / "00-welcome" / "00-welcome.ipynb"
    assert mine.read_bytes() == (published / "notebooks" / "00-welcome" / "00-welcome.ipynb").read_bytes()
    for command in (["autograde", "00-welcome"], ["generate", "00-welcome"], ["feedback", "00-welcome"]):
        refused = _in_copy(published, "-m", "nstlab.cli", "course", *command)
        assert refused.returncode == 2 and refused.stderr.strip() == f"nstlab course: {REFUSAL}", refused.stderr
    library = _in_copy(published, "-c", "import nstlab; print(nstlab.__file__)")
    assert Path(library.stdout.strip()).is_relative_to(published), "the commands ran the repository's library"


def test_the_copy_finds_its_course_and_lists_the_release_without_course_source(published: Path, monkeypatch):
    monkeypatch.setenv("NSTLAB_COURSE_ROOT", str(published))
    assert course.course_root() == published.resolve()
    assert course.assignments() == ASSIGNMENTS
    assert course.is_student_copy() and not course.is_student_copy(ROOT)
    with pytest.raises(course.CourseError, match=re.escape(REFUSAL)):
        course.export(published / "grades.csv")


def test_the_student_tests_pass_in_the_copy(published: Path):
    result = _in_copy(published, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def test_publish_refuses_a_non_empty_folder_and_force_replaces_only_what_it_writes(tmp_path: Path):
    dest = tmp_path / "students"
    (dest / "work" / "00-welcome").mkdir(parents=True)
    mine = dest / "work" / "00-welcome" / "00-welcome.ipynb"
    mine.write_text("my answers")
    with pytest.raises(course.CourseError, match="not empty.*--force"):
        publish(dest, root=ROOT)
    assert sorted(p.name for p in dest.iterdir()) == ["work"]
    (dest / "nstlab").mkdir()
    (dest / "nstlab" / "removed_from_the_course.py").write_text("")
    (dest / "notes.txt").write_text("mine too")
    done = publish(dest, root=ROOT, force=True)
    assert done.replaced == ["nstlab/"]
    assert mine.read_text() == "my answers" and (dest / "notes.txt").read_text() == "mine too"
    assert not (dest / "nstlab" / "removed_from_the_course.py").exists()
    assert (dest / "nstlab" / "course" / "publish.py").is_file()


def test_a_git_repository_of_its_own_counts_as_empty(tmp_path: Path):
    (tmp_path / "students" / ".git").mkdir(parents=True)
    (tmp_path / "students" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    publish(tmp_path / "students", root=ROOT)
    assert (tmp_path / "students" / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert course.is_student_copy(tmp_path / "students")


@pytest.mark.parametrize("inside", ["students", "notebooks/students", "."])
def test_publish_refuses_a_folder_inside_the_repository_and_writes_nothing(inside: str):
    dest = ROOT / inside
    existed = dest.exists()
    with pytest.raises(course.CourseError, match="inside the course repository"):
        publish(dest, root=ROOT, force=True)
    assert dest.exists() == existed


def test_publish_refuses_an_instructors_repository_even_with_force(tmp_path: Path):
    (tmp_path / "other" / "solutions").mkdir(parents=True)
    with pytest.raises(course.CourseError, match="holds solutions.*instructor"):
        publish(tmp_path / "other", root=ROOT, force=True)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["solutions"]


def test_publish_from_a_student_copy_is_refused(published: Path, tmp_path: Path):
    with pytest.raises(course.CourseError, match="student copy"):
        publish(tmp_path / "again", root=published)
