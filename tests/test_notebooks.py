"""Static properties of every notebook: committed clean, every exercise checked, nothing leaked to students.

Executing the notebooks and grading them is in test_grading.py.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess

import nbformat
import pytest

import nstlab

from conftest import ASSIGNMENTS, ROOT

SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION(.*?)### END SOLUTION", re.S)


def _nb(folder: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / folder / name / f"{name}.ipynb", as_version=4)


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_every_assignment_has_a_solution_and_a_release():
    assert ASSIGNMENTS and ASSIGNMENTS[0] == "00-welcome"
    for name in ASSIGNMENTS:
        assert (ROOT / "solutions" / name / f"{name}.ipynb").is_file()
        assert (ROOT / "notebooks" / name / f"{name}.ipynb").is_file()


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    dirty = [path for path in tracked for cell in nbformat.read(ROOT / path, 4).cells
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
    assert not dirty, f"notebooks committed with outputs: {sorted(set(dirty))}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_exercise_is_followed_by_a_check_worth_points(name: str):
    cells = _nb("solutions", name).cells
    # Exercises are code; a markdown solution cell is a written answer, graded by hand (and worth points).
    exercises = [i for i, c in enumerate(cells) if _meta(c).get("solution") and c.cell_type == "code"]
    assert len(exercises) >= 2, "every assignment has graded exercises"
    for start, end in zip(exercises, [*exercises[1:], len(cells)], strict=True):
        checks = [c for c in cells[start + 1 : end] if _meta(c).get("grade") and c.cell_type == "code"]
        assert checks, f"exercise {_meta(cells[start])['grade_id']} has no check cell after it"
        assert all(_meta(c)["points"] > 0 and _meta(c)["locked"] for c in checks)
        assert any("### BEGIN HIDDEN TESTS" in c.source for c in checks), f"{_meta(cells[start])['grade_id']}: no hidden tests"
    assert all(_meta(c).get("points", 1) > 0 for c in cells if _meta(c).get("grade"))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_contains_no_solution_or_hidden_test(name: str):
    solution, release = _nb("solutions", name), _nb("notebooks", name)
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    elsewhere = "\n".join(SOLUTION_REGION.sub("", c.source) for c in solution.cells)
    for cell in solution.cells:
        for region in SOLUTION_REGION.findall(cell.source):
            for line in (ln.strip() for ln in region.splitlines()):
                if len(line) > 25 and line not in elsewhere:
                    assert line not in text, f"solution line leaked into the release: {line}"
        if "### BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            for line in (ln.strip() for ln in hidden.splitlines()):
                if len(line) > 25 and line not in visible:
                    assert line not in text, f"hidden test line leaked into the release: {line}"
    stubs = [c for c in release.cells if _meta(c).get("solution") and c.cell_type == "code"]
    assert stubs and all("raise NotImplementedError()" in c.source for c in stubs)
    written = [c for c in release.cells if _meta(c).get("solution") and c.cell_type == "markdown"]
    assert all(c.source == "YOUR ANSWER HERE" for c in written), "a written answer's model answer was released"


def _library_functions() -> dict[str, list[inspect.Signature]]:
    found: dict[str, list[inspect.Signature]] = {}
    for info in pkgutil.walk_packages(nstlab.__path__, "nstlab."):
        if ".cli" in info.name or ".widgets" in info.name or ".course" in info.name:
            continue
        module = importlib.import_module(info.name)
        for fname, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == info.name:
                found.setdefault(fname, []).append(inspect.signature(fn))
    return found


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_exercises_reimplement_a_library_function_with_the_same_signature(name: str):
    library = _library_functions()
    for cell in _nb("solutions", name).cells:
        if not _meta(cell).get("solution") or cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef):
                assert node.name in library, f"{node.name}: no library function of that name in nstlab"
                params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
                options = [[p.name for p in sig.parameters.values()] for sig in library[node.name]]
                assert params in options, f"{node.name}{params} differs from the library's {options}"
