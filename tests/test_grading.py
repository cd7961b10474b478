"""The grading round trip, with nbgrader's real commands, database and a real kernel, for every assignment.

For each assignment in ``course/source/`` a private copy of the course is released with ``nbgrader
generate_assignment`` and four submissions are autograded in one batch:

* ``solution``  the instructor's notebook: must score full marks, and run top to bottom without an error;
* ``blank``     the untouched student release: must score zero, without stopping the batch;
* ``looping``   the solution with an infinite loop in its first exercise: loses that exercise's points only;
* ``broken``    a file that is not a notebook at all: fails alone, the others are still graded.

The scores are read back through ``nbgrader export``, as an instructor would.
"""

from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from nstlab import course

from conftest import ASSIGNMENTS, ROOT, copy_course

# Seconds a cell may run while grading in these tests. The looping submission spends exactly this long in
# its first check cell; every cell of a solution in the grade profile must finish well inside it.
TEST_TIMEOUT = 20


@dataclass
class Graded:
    root: Path
    assignment: str
    scores: dict[str, tuple[float, float]]  # student -> (score, max_score), from nbgrader export
    loop_points: int  # points of the check cells of the exercise that loops
    seconds: float  # wall time of the autograde command
    status: dict[str, str]  # student -> the export's status column


def _points(nb: nbformat.NotebookNode) -> int:
    return sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


def _make_looping(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """Put an infinite loop into the first exercise; return the notebook and that exercise's points."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = nb.cells
    first = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    region = re.compile(r"(?P<indent>[ \t]*)### BEGIN SOLUTION.*?### END SOLUTION", re.S)
    cells[first].source = region.sub(lambda m: f"{m['indent']}while True:\n{m['indent']}    pass", cells[first].source)
    points = 0
    for cell in cells[first + 1 :]:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            break
        points += meta.get("points", 0) if meta.get("grade") else 0
    return nb, points


def _grade(root: Path, assignment: str) -> Graded:
    course.generate([assignment], root=root, quiet=True)
    solution = nbformat.read(root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    release = root / "notebooks" / assignment / f"{assignment}.ipynb"
    submitted = root / "course" / "submitted"
    looping, loop_points = _make_looping(solution)
    for student, write in {
        "solution": lambda p: nbformat.write(solution, p),
        "blank": lambda p: p.write_bytes(release.read_bytes()),
        "looping": lambda p: nbformat.write(looping, p),
        "broken": lambda p: p.write_text("{ this is not a notebook", encoding="utf-8"),
    }.items():
        folder = submitted / student / assignment
        folder.mkdir(parents=True)
        write(folder / f"{assignment}.ipynb")
    start = time.perf_counter()
    # nbgrader exits non-zero because the broken submission fails; the batch must still finish.
    course.nbgrader("autograde", assignment, "--force", f"--Execute.timeout={TEST_TIMEOUT}",
                    root=root, check=False, capture=True)
    seconds = time.perf_counter() - start
    export = root / "grades.csv"
    course.export(export, root=root, quiet=True)
    with export.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["assignment"] == assignment]
    scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in rows if row["score"]}
    status = {row["student_id"]: row["status"] for row in rows}
    return Graded(root, assignment, scores, loop_points, seconds, status)


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, tmp_path_factory) -> Graded:
    root = copy_course(tmp_path_factory.mktemp(request.param) / "repo")
    result = _grade(root, request.param)
    print(f"\nautograde of 4 submissions of {request.param}: {result.seconds:.1f} s")
    return result


def test_release_is_byte_identical_to_what_nbgrader_generates(graded: Graded):
    """notebooks/ in the repository is exactly what nbgrader makes from solutions/ now."""
    name = f"{graded.assignment}.ipynb"
    fresh = (graded.root / "notebooks" / graded.assignment / name).read_bytes()
    committed = (ROOT / "notebooks" / graded.assignment / name).read_bytes()
    assert fresh == committed, f"notebooks/{graded.assignment} is stale: run `make notebooks` and commit"


def test_solutions_are_built_from_their_source(graded: Graded):
    """solutions/ is up to date with course/source/ (the build is deterministic)."""
    name = f"{graded.assignment}.ipynb"
    fresh = (graded.root / "solutions" / graded.assignment / name).read_bytes()
    committed = (ROOT / "solutions" / graded.assignment / name).read_bytes()
    assert fresh == committed, f"solutions/{graded.assignment} is stale: run `make notebooks` and commit"


def test_solution_scores_full_marks(graded: Graded):
    score, max_score = graded.scores["solution"]
    assert max_score > 0
    assert score == max_score, _failed_cells(graded, "solution")


def test_solution_runs_top_to_bottom_without_errors(graded: Graded):
    """Every cell of the solution executed in the grade profile, with a real kernel, raised nothing."""
    assert not _failed_cells(graded, "solution", graded_only=False)


def test_blank_release_scores_zero(graded: Graded):
    score, max_score = graded.scores["blank"]
    assert max_score > 0 and score == 0, _failed_cells(graded, "blank")


def test_infinite_loop_costs_only_its_exercise(graded: Graded):
    score, max_score = graded.scores["looping"]
    assert graded.loop_points > 0
    assert score == max_score - graded.loop_points, _failed_cells(graded, "looping")


def test_broken_submission_does_not_stop_the_batch(graded: Graded):
    """The unreadable notebook gets no grade; the three others were all graded in the same run."""
    assert {"solution", "blank", "looping"} <= set(graded.scores)
    assert "broken" not in graded.scores and graded.status["broken"].startswith("not graded"), graded.status
    assert not (graded.root / "course" / "autograded" / "broken" / graded.assignment / f"{graded.assignment}.ipynb").exists()


def test_feedback_does_not_reveal_hidden_tests(graded: Graded):
    course.feedback(graded.assignment, root=graded.root, quiet=True)
    page = (graded.root / "course" / "feedback" / "blank" / graded.assignment / f"{graded.assignment}.html").read_text()
    text = _visible_text(page)
    solution = nbformat.read(graded.root / "solutions" / graded.assignment / f"{graded.assignment}.ipynb", 4)
    hidden = [c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
              for c in solution.cells if "### BEGIN HIDDEN TESTS" in c.source]
    assert hidden, "every assignment should have hidden tests"
    lines = [" ".join(ln.split()) for block in hidden for ln in block.splitlines() if len(ln.strip()) > 20]
    visible = [" ".join(ln.split()) for c in solution.cells if c.metadata.get("nbgrader", {}).get("grade")
               for ln in c.source.split("### BEGIN HIDDEN TESTS")[0].splitlines()]
    assert lines, "the hidden tests should have lines long enough to search for"
    assert all(line in text for line in visible if len(line) > 20), "feedback should show the visible checks"
    shown_anyway = " ".join(visible)  # a hidden line that repeats visible code is no secret
    leaked = [line for line in lines if line not in shown_anyway and line in text]
    assert not leaked, f"feedback shows hidden test lines: {leaked[:3]}"


def _visible_text(page: str) -> str:
    """The text of an HTML page as a reader sees it: tags removed, entities decoded, spaces collapsed."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def _failed_cells(graded: Graded, student: str, *, graded_only: bool = True) -> list[str]:
    """The cells that raised, with the error, to make a failing assertion readable."""
    path = graded.root / "course" / "autograded" / student / graded.assignment / f"{graded.assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    failed = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or (graded_only and not cell.metadata.get("nbgrader", {}).get("grade")):
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                failed.append(f"cell {index} ({cell.metadata.get('nbgrader', {}).get('grade_id', '')}): "
                              f"{out.ename}: {out.evalue[:300]}")
    return failed
