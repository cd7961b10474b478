"""The grading round trip, with nbgrader's real commands, database and a real kernel, for every assignment.

For each assignment in ``course/source/`` a private copy of the course is released with ``nbgrader
generate_assignment`` and four submissions are autograded in one batch:

* ``solution``  the instructor's notebook: must score full marks, and run top to bottom without an error;
* ``blank``     the untouched student release: must score zero, without stopping the batch;
* ``looping``   the solution with an infinite loop in its first exercise: loses that exercise's points only;
* ``broken``    a file that is not a notebook at all: fails alone, the others are still graded.

The scores are read back through ``nbgrader export``, as an instructor would. Written answers (``[written]``
cells) are graded by hand: "full marks" means every autograded point, with the solution's written answers
waiting for the instructor in the gradebook (nbgrader's ``needs_manual_grade``), and the blank release's
unanswered ones scored 0 by nbgrader ("No response."). A small assignment made here (``99-written``) follows
written answers through autograde, manual grading and feedback.
"""

from __future__ import annotations

import csv
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from nstlab import course
from nstlab.course.batch import awaiting_manual_grade

from conftest import ASSIGNMENTS, ROOT, copy_course

# Assignments graded at the same time: one nbgrader batch keeps one core busy (its kernel runs one torch
# thread), and these round trips are most of the suite's time.
PARALLEL_GRADINGS = 2
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
    written: dict[str, int]  # grade id -> points of each written answer (graded by hand)
    by_hand: dict[str, list[str]]  # student -> grade ids the gradebook marks as needing a manual grade


def _points(nb: nbformat.NotebookNode) -> int:
    return sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


def _written(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Grade id -> points of the written answers: markdown cells that are both solution and grade cells."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")
            and c.metadata["nbgrader"].get("solution")}


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
    by_hand = awaiting_manual_grade(assignment, root=root)
    return Graded(root, assignment, scores, loop_points, seconds, status, _written(solution), by_hand)


@pytest.fixture(scope="module")
def gradings(request, tmp_path_factory):
    """The round trips of the assignments this session's tests use, :data:`PARALLEL_GRADINGS` at a time, in
    the order the tests ask for them; assignment -> future of its :class:`Graded`."""
    wanted = [name for name in ASSIGNMENTS if any(
        getattr(item, "callspec", None) and item.callspec.params.get("graded") == name for item in request.session.items)]
    folders = {name: tmp_path_factory.mktemp(name) for name in wanted}
    pool = ThreadPoolExecutor(max_workers=PARALLEL_GRADINGS)
    try:
        yield {name: pool.submit(lambda name=name: _grade(copy_course(folders[name] / "repo"), name)) for name in wanted}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, gradings, tmp_path_factory) -> Graded:
    if request.param in gradings:
        result = gradings[request.param].result()
    else:  # not foreseen when the batch started (a test asked for it by another route)
        result = _grade(copy_course(tmp_path_factory.mktemp(request.param) / "repo"), request.param)
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
    """Every autograded point; the written answers are not scored yet (nbgrader counts them as nothing)."""
    score, max_score = graded.scores["solution"]
    assert max_score > sum(graded.written.values())
    assert score == max_score - sum(graded.written.values()), _failed_cells(graded, "solution")


def test_written_answers_of_the_solution_await_manual_grading(graded: Graded):
    """The gradebook marks exactly the solution's written answers as needing the instructor: none is
    scored 0 or full by the autograder, and no autograded cell is left to the instructor."""
    assert graded.by_hand.get("solution", []) == list(graded.written), graded.by_hand
    assert graded.by_hand.get("looping", []) == list(graded.written), graded.by_hand


def test_blank_written_answers_score_zero_without_waiting(graded: Graded):
    """An unanswered written question (the release's stub, unchanged) is 0 at once: nothing waits."""
    assert "blank" not in graded.by_hand, graded.by_hand


def test_solution_runs_top_to_bottom_without_errors(graded: Graded):
    """Every cell of the solution executed in the grade profile, with a real kernel, raised nothing."""
    assert not _failed_cells(graded, "solution", graded_only=False)


def test_blank_release_scores_zero(graded: Graded):
    score, max_score = graded.scores["blank"]
    assert max_score > 0 and score == 0, _failed_cells(graded, "blank")


def test_infinite_loop_costs_only_its_exercise(graded: Graded):
    score, max_score = graded.scores["looping"]
    assert graded.loop_points > 0
    assert score == max_score - graded.loop_points - sum(graded.written.values()), _failed_cells(graded, "looping")


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
    visible = [" ".join(ln.split()) for c in solution.cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")  # check cells
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


# ------------------------------------------------------------------------------------- written answers

WRITTEN = "99-written"
WRITTEN_SOURCE = '''\
# %% [markdown]
# # 99 · Written answers

# %%
from nstlab import checks

# %% [solution] id=double
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %% [check] id=check_double points=1
checks.check_true(double(2) == 4, "double(2) should be 4")
### BEGIN HIDDEN TESTS
assert double(3) == 6
### END HIDDEN TESTS

# %% [markdown]
# **Question.** Why is doubling linear?

# %% [written] id=why_linear points=2
# Because double(a x + b y) = 2 a x + 2 b y = a double(x) + b double(y).
'''


@dataclass
class WrittenClass:
    root: Path
    done: object  # nstlab.course.Autograded
    events: dict[str, list[dict]]  # student -> events of their report
    scores: dict[str, tuple[float, float]]
    printed: str  # what `nstlab course feedback` printed
    exported: dict[str, dict]  # student -> their row of `nstlab course export` before any grading by hand


def _with_answer(release: nbformat.NotebookNode, answer: str, *, code: str = "return x + x", cell: str = "why_linear",
                 **meta) -> nbformat.NotebookNode:
    """The release with an answer to each question, and nbgrader metadata of ``cell`` changed to ``meta``."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    for each in nb.cells:
        grade_id = each.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "double":
            each.source = each.source.replace("# YOUR CODE HERE\n    raise NotImplementedError()", code)
        if grade_id == "why_linear":
            each.source = answer
        if grade_id == cell:
            each.metadata["nbgrader"].update(meta)
            if meta.get("grade") is False:
                del each.metadata["nbgrader"]["points"]  # as nbgrader's toolbar does: a valid non-graded cell
    return nb


def _without(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


def _scores(root: Path, assignment: str) -> dict[str, tuple[float, float]]:
    export = course.export(root / "grades.csv", root=root, quiet=True)
    with export.open(newline="") as f:
        return {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)
                if row["assignment"] == assignment and row["score"]}


@pytest.fixture(scope="module")
def written_class(tmp_path_factory) -> WrittenClass:
    """99-written graded with `nstlab course autograde`: the solution, the blank release, an honest answer,
    and two students who try to keep their written answer out of the instructor's hands."""
    from nstlab.course import reports, sandbox

    root = copy_course(tmp_path_factory.mktemp("written") / "repo")
    (root / "course" / "source" / f"{WRITTEN}.py").write_text(WRITTEN_SOURCE, encoding="utf-8")
    course.generate([WRITTEN], root=root, quiet=True)
    solution = nbformat.read(root / "solutions" / WRITTEN / f"{WRITTEN}.ipynb", as_version=4)
    release = nbformat.read(root / "notebooks" / WRITTEN / f"{WRITTEN}.ipynb", as_version=4)
    answer = "It scales and adds: double of a sum is the sum of the doubles."
    for student, nb in {
        "solution": solution,
        "blank": release,
        "answered": _with_answer(release, answer),
        "ungraded": _with_answer(release, answer, grade=False),  # "not a graded cell, nothing to grade"
        "repointed": _with_answer(release, answer, points=100),
        # A failing check made ungraded would be left to the instructor's grading, as if it were written.
        "unchecked": _with_answer(release, answer, code="return x", cell="check_double", grade=False),
        "deleted": _without(_with_answer(release, answer, code="return x"), "check_double"),  # its failing check
    }.items():
        folder = root / "course" / "submitted" / student / WRITTEN
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{WRITTEN}.ipynb")
    done = course.autograde(WRITTEN, root=root, timeout=TEST_TIMEOUT, quiet=True,
                            unsafe=sandbox.sandbox_problem() is not None)
    events = {r.student: reports.read_report(root / "course", WRITTEN, r.student).events for r in done.reports}
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        course.feedback(WRITTEN, root=root)
    scores = _scores(root, WRITTEN)
    with (root / "grades.csv").open(newline="") as f:
        exported = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == WRITTEN}
    return WrittenClass(root, done, events, scores, printed.getvalue(), exported)


def test_release_of_a_written_answer_is_nbgraders_stub(written_class: WrittenClass):
    release = nbformat.read(written_class.root / "notebooks" / WRITTEN / f"{WRITTEN}.ipynb", as_version=4)
    [stub] = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "why_linear"]
    assert stub.source == "YOUR ANSWER HERE"


def test_autograde_scores_the_code_and_leaves_written_answers_to_the_instructor(written_class: WrittenClass):
    """Blank: 0 of 3, nothing waits. Every answered written question waits, whatever its metadata said."""
    scores = written_class.scores
    assert scores["blank"] == (0, 3) and scores["solution"] == (1, 3) and scores["answered"] == (1, 3), scores
    assert written_class.done.by_hand == {**{s: ["why_linear"] for s in ("answered", "repointed", "solution",
                                                                          "unchecked", "ungraded")},
                                          "deleted": ["check_double", "why_linear"]}


def test_autograde_summary_says_how_many_answers_await_grading_and_how(written_class: WrittenClass):
    summary = written_class.done.summary()
    assert "by hand     answered: why_linear" in summary and "by hand     blank" not in summary
    assert "6 written answers of 6 students await grading by hand" in summary, summary
    assert "Formgrader" in summary and f"nstlab course feedback {WRITTEN}" in summary


def test_a_deleted_check_cell_is_not_mistaken_for_a_written_answer(written_class: WrittenClass):
    """nbgrader leaves a graded cell missing from the submission for manual grading too (0 meanwhile); the
    summary names it apart from the written answers."""
    summary = written_class.done.summary()
    assert "unscored    deleted: check_double" in summary and "by hand     deleted: why_linear" in summary
    assert "1 other graded cell nbgrader could not score" in summary, summary
    assert written_class.scores["deleted"] == (0, 3)


def test_a_student_cannot_take_their_written_answer_out_of_grading(written_class: WrittenClass):
    """A written cell without grade=true fails nbgrader's validation (a markdown answer must be graded) and is
    repaired from the release; changed points are restored from the gradebook. Both are flagged, like any
    other tampering, and the answer still waits for the instructor."""
    events = written_class.events
    assert any(e["kind"] == "repaired" and "why_linear" in e["message"] for e in events["ungraded"]), events
    assert any(e["kind"] == "tampered" and "why_linear" in e["message"] and "points" in e["message"]
               for e in events["repointed"]), events["repointed"]
    for student in ("ungraded", "repointed"):
        assert written_class.scores[student] == (1, 3)
        assert f"flagged     {student}" in written_class.done.summary()
    assert not [e for e in events["answered"] if e["kind"] in ("tampered", "repaired")]


def test_a_check_cell_made_ungraded_is_graded_all_the_same(written_class: WrittenClass):
    """nbgrader restores a check cell's source but not its grade flag: without the restore, a failing check
    would silently become a cell for the instructor to grade. It is graded (0 here) and reported."""
    events = written_class.events["unchecked"]
    assert any(e["kind"] == "tampered" and "check_double" in e["message"] and "grade" in e["message"]
               for e in events), events
    assert written_class.scores["unchecked"] == (0, 3)
    assert written_class.done.by_hand["unchecked"] == ["why_linear"]


def test_feedback_says_which_answers_are_not_graded_yet(written_class: WrittenClass):
    assert "6 written answers of 6 students await grading by hand" in written_class.printed, written_class.printed
    pages = {student: (written_class.root / "course" / "feedback" / student / WRITTEN / f"{WRITTEN}.html").read_text()
             for student in ("answered", "blank")}
    assert "Not graded yet." in pages["answered"] and "counts 0 of its 2 points" in pages["answered"]
    assert "Not graded yet." not in pages["blank"]  # an empty answer is scored 0 at once: nothing waits


def test_the_export_names_the_answers_whose_points_are_not_in_the_score_yet(written_class: WrittenClass):
    """A score of 1 of 3 reads differently when 2 points wait for the instructor: the CSV says which cells."""
    waiting = {student: row["awaiting_hand_grading"] for student, row in written_class.exported.items()}
    assert waiting["answered"] == waiting["solution"] == "why_linear", waiting
    assert waiting["deleted"] == "check_double; why_linear" and waiting["blank"] == "", waiting
    assert written_class.exported["answered"]["status"] == "graded"


def test_grades_given_by_hand_complete_the_score_and_nothing_waits(written_class: WrittenClass):
    """What the formgrader does (nbgrader's Gradebook: a manual score, needs_manual_grade cleared) gives the
    solution full marks, and the written answer is no longer reported."""
    from nbgrader.api import Gradebook

    root = written_class.root
    with Gradebook(f"sqlite:///{root / 'course' / 'gradebook.db'}") as db:
        grade = db.find_grade("why_linear", WRITTEN, WRITTEN, "solution")
        grade.manual_score = 2
        grade.needs_manual_grade = False
        db.db.commit()
    assert "solution" not in awaiting_manual_grade(WRITTEN, root=root)
    assert _scores(root, WRITTEN)["solution"] == (3, 3)
    with (root / "grades.csv").open(newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == WRITTEN}
    assert rows["solution"]["awaiting_hand_grading"] == "" and rows["answered"]["awaiting_hand_grading"] == "why_linear"
