"""Students' work is never lost, and the course commands work from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nstlab import course

from conftest import ASSIGNMENTS


def _nstlab(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nstlab.cli", *args], cwd=cwd, text=True, capture_output=True,
                          env={**os.environ, **(env or {})})


def test_start_copies_the_release_into_work(course_copy: Path):
    started = course.start("00-welcome", root=course_copy)
    target = course_copy / "work" / "00-welcome" / "00-welcome.ipynb"
    assert started.copied == [target]
    assert target.read_bytes() == (course_copy / "notebooks" / "00-welcome" / "00-welcome.ipynb").read_bytes()


def test_start_never_overwrites_a_students_notebook(course_copy: Path):
    course.start("00-welcome", root=course_copy)
    mine = course_copy / "work" / "00-welcome" / "00-welcome.ipynb"
    mine.write_text("my answers", encoding="utf-8")
    # A course update changes the release; starting again must leave the student's copy alone.
    release = course_copy / "notebooks" / "00-welcome" / "00-welcome.ipynb"
    release.write_text(release.read_text(encoding="utf-8").replace("Welcome", "Welcome back"), encoding="utf-8")
    started = course.start("00-welcome", root=course_copy)
    assert started.copied == [] and started.kept == [mine]
    assert mine.read_text(encoding="utf-8") == "my answers"


def test_start_restores_a_deleted_notebook_only(course_copy: Path):
    course.start("00-welcome", root=course_copy)
    mine = course_copy / "work" / "00-welcome" / "00-welcome.ipynb"
    mine.unlink()
    assert course.start("00-welcome", root=course_copy).copied == [mine]


def test_start_rejects_an_unknown_assignment_by_name(course_copy: Path):
    with pytest.raises(course.CourseError, match="no assignment called '99-nope'.*00-welcome"):
        course.start("99-nope", root=course_copy)


def test_course_commands_find_the_course_from_a_subfolder(course_copy: Path):
    sub = course_copy / "work" / "deep"
    sub.mkdir(parents=True)
    result = _nstlab("course", "list", cwd=sub, env={"NSTLAB_COURSE_ROOT": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ASSIGNMENTS


def test_cli_start_reports_kept_files_and_exits_zero(course_copy: Path):
    first = _nstlab("course", "start", "00-welcome", cwd=course_copy)
    second = _nstlab("course", "start", "--all", cwd=course_copy)
    assert first.returncode == 0 and "copied" in first.stdout
    assert second.returncode == 0 and "kept" in second.stdout and "not overwritten" in second.stdout


def test_cli_with_a_wrong_course_root_says_what_is_wrong_in_one_line(tmp_path: Path):
    result = _nstlab("course", "list", cwd=tmp_path, env={"NSTLAB_COURSE_ROOT": str(tmp_path)})
    assert result.returncode == 2
    assert "NSTLAB_COURSE_ROOT" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_autograde_before_generate_says_to_generate_first_in_one_line(course_copy: Path):
    """An instructor who autogrades before `generate` learns the fix, not nbgrader's database traceback."""
    result = _nstlab("course", "autograde", "00-welcome", cwd=course_copy, env={"NSTLAB_COURSE_ROOT": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nstlab course generate 00-welcome" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_work_and_grading_folders_are_ignored_by_git():
    from conftest import ROOT

    ignored = (ROOT / ".gitignore").read_text()
    for folder in ("work/", "course/submitted/", "course/autograded/", "course/feedback/", "course/gradebook.db"):
        assert folder in ignored


def test_nbgrader_config_follows_the_course_layout():
    from traitlets.config.loader import PyFileConfigLoader

    from conftest import ROOT

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "course")).load_config()
    assert Path(config.CourseDirectory.root) == ROOT
    assert config.CourseDirectory.source_directory == "solutions"
    assert config.CourseDirectory.release_directory == "notebooks"
    assert config.CourseDirectory.db_url.endswith("course/gradebook.db")
    assert 60 <= config.Execute.timeout <= 600
    assert config.IgnorePattern.enabled


def test_the_course_functions_are_not_shadowed_by_its_modules():
    """Importing every module of nstlab.course leaves course.feedback, .autograde ... the functions."""
    import importlib
    import pkgutil

    import nstlab.course

    for info in pkgutil.iter_modules(nstlab.course.__path__):
        importlib.import_module(f"nstlab.course.{info.name}")
    for name in ("feedback", "autograde", "export", "generate", "start", "build", "assignments"):
        assert callable(getattr(nstlab.course, name)), f"nstlab.course.{name} is a module, not the function"


WRITTEN_SOURCE = """\
# %% [markdown]
# # A written question
#
# **Question.** Why does the Gram matrix ignore where things are?

# %% [written] id=why-gram points=2
# The Gram matrix sums products of two channels over every position, so moving a pattern
# elsewhere in the picture leaves the sum unchanged.

# %%
print("after the answer")
"""


def test_written_cell_is_a_manually_graded_markdown_answer(tmp_path: Path):
    """A [written] cell becomes nbgrader's "manually graded answer": solution and grade, not locked, P points."""
    from nstlab.course.authoring import build_notebook

    source = tmp_path / "99-written.py"
    source.write_text(WRITTEN_SOURCE, encoding="utf-8")
    cell = next(c for c in build_notebook(source).cells if c.get("id") == "why-gram")
    assert cell.cell_type == "markdown"
    assert cell.metadata["nbgrader"] == {"grade": True, "grade_id": "why-gram", "locked": False, "points": 2,
                                         "schema_version": 3, "solution": True, "task": False}
    assert cell.source.startswith("The Gram matrix sums products") and "# " not in cell.source
    assert "editable" not in cell.metadata  # the student must be able to type the answer


@pytest.mark.parametrize("marker, problem", [
    ("# %% [written] points=2", "needs id=NAME"),
    ("# %% [written] id=why-gram", "needs points=N"),
    ("# %% [written] id=why-gram points=0", "needs points=N"),
])
def test_written_cell_without_id_or_points_names_the_line(tmp_path: Path, marker: str, problem: str):
    from nstlab.course.authoring import SourceError, build_notebook

    source = tmp_path / "99-written.py"
    source.write_text(WRITTEN_SOURCE.replace("# %% [written] id=why-gram points=2", marker), encoding="utf-8")
    with pytest.raises(SourceError, match=rf"99-written.py:6: .*{problem}"):
        build_notebook(source)


def test_written_cell_without_a_model_answer_is_refused(tmp_path: Path):
    from nstlab.course.authoring import SourceError, build_notebook

    source = tmp_path / "99-written.py"
    text = WRITTEN_SOURCE.split("# The Gram matrix")[0] + "\n# %%\nprint(1)\n"
    source.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError, match="99-written.py:6: .*model answer"):
        build_notebook(source)


def test_release_replaces_the_model_answer_by_nbgraders_stub(course_copy: Path):
    """`nstlab course generate` (nbgrader generate_assignment) gives students the stub, never the answer."""
    import nbformat

    (course_copy / "course" / "source" / "99-written.py").write_text(WRITTEN_SOURCE, encoding="utf-8")
    course.generate(["99-written"], root=course_copy, quiet=True)
    solution = nbformat.read(course_copy / "solutions" / "99-written" / "99-written.ipynb", as_version=4)
    release = nbformat.read(course_copy / "notebooks" / "99-written" / "99-written.ipynb", as_version=4)
    [answer] = [c for c in solution.cells if c.get("id") == "why-gram"]
    [stub] = [c for c in release.cells if c.get("id") == "why-gram"]
    assert "sums products" in answer.source
    assert stub.source == "YOUR ANSWER HERE"
    assert stub.metadata["nbgrader"]["grade"] and stub.metadata["nbgrader"]["points"] == 2
    assert "checksum" in stub.metadata["nbgrader"]  # nbgrader can tell a changed grade cell
    released_text = (course_copy / "notebooks" / "99-written" / "99-written.ipynb").read_text(encoding="utf-8")
    assert "sums products" not in released_text and "Why does the Gram matrix" in released_text


def test_no_model_answer_of_any_written_cell_reaches_the_release():
    """Every [written] cell of every assignment: its model answer appears nowhere in notebooks/."""
    import nbformat

    from conftest import ROOT

    found = 0
    for name in ASSIGNMENTS:
        solution = ROOT / "solutions" / name / f"{name}.ipynb"
        release = ROOT / "notebooks" / name / f"{name}.ipynb"
        if not solution.is_file() or not release.is_file():
            continue
        released = nbformat.read(release, as_version=4)
        released_text = "\n".join(c.source for c in released.cells)
        stubs = {c.get("id"): c.source for c in released.cells}
        for cell in nbformat.read(solution, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "markdown" and meta.get("solution") and meta.get("grade"):
                found += 1
                assert stubs.get(cell.get("id")) == "YOUR ANSWER HERE", f"{name}: {cell.get('id')} not stubbed"
                # Lines long enough to be the answer's own words (a short wrapped tail such as "batch size."
                # may well appear in the notebook's prose).
                for line in (line.strip() for line in cell.source.splitlines() if len(line.strip()) > 30):
                    assert line not in released_text, f"{name}: model answer of {cell.get('id')} released: {line}"
    assert found, "the course's notebooks ask written questions; none was found in solutions/"
