"""The library-reference policy and the feedback filter, on small notebooks (no kernel needed)."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from nstlab.course.feedback_filter import SanitizeFeedback
from nstlab.course.grading import EVENTS
from nstlab.course.policy import LibraryPolicy


def _solution(grade_id: str, source: str):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": grade_id,
                                 "schema_version": 3}
    return cell


def _check(grade_id: str, source: str, points: int = 2):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True, "grade_id": grade_id,
                                 "points": points, "schema_version": 3}
    return cell


def _policy(nb) -> tuple[nbformat.NotebookNode, dict]:
    resources = {"nbgrader": {"assignment": "a", "notebook": "a", "student": "s", "db_url": "sqlite:///x.db"}}
    return LibraryPolicy().preprocess(nb, resources)


def _zeroed(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if any(o.get("ename") == "LibraryReferenceUsed" for o in c.get("outputs", []))]


def test_an_exercise_that_calls_the_library_function_of_its_own_name_scores_zero_for_its_checks():
    nb = new_notebook(cells=[
        new_code_cell("from nstlab import images, perceptron"),
        _solution("luminance", "def luminance(image):\n    return images.luminance(image)"),
        _check("check_luminance", "checks.check_close(luminance(x), images.luminance(x))"),
        _check("check_luminance_more", "checks.check_close(luminance(y), images.luminance(y))"),
        _solution("step", "def step(z):\n    return (z > 0).float()"),
        _check("check_step", "checks.check_close(step(z), perceptron.step(z))"),
    ])
    nb, resources = _policy(nb)
    assert _zeroed(nb) == ["check_luminance", "check_luminance_more"]
    assert any("write it yourself" in e["message"] for e in resources[EVENTS] if e["kind"] == "policy")


def test_other_library_functions_remain_usable_in_an_exercise():
    """predict may call the library's step: only step itself must be written by hand."""
    nb = new_notebook(cells=[
        new_code_cell("from nstlab import perceptron"),
        _solution("step", "def step(z):\n    return (z > 0).float()"),
        _check("check_step", "pass"),
        _solution("predict", "def predict(X, w, b):\n    return perceptron.step(X @ w + b)"),
        _check("check_predict", "pass"),
    ])
    nb, _ = _policy(nb)
    assert _zeroed(nb) == []


def test_every_way_of_reaching_the_reference_counts():
    for body in ("from nstlab.images import luminance as lum\n    return lum(image)",
                 "import nstlab.images\n    return nstlab.images.luminance(image)",
                 "return getattr(images, 'luminance')(image)",
                 "import importlib\n    return importlib.import_module('nstlab.images').luminance(image)"):
        nb = new_notebook(cells=[
            new_code_cell("from nstlab import images"),
            _solution("luminance", f"def luminance(image):\n    {body}"),
            _check("check_luminance", "pass"),
        ])
        nb, _ = _policy(nb)
        assert _zeroed(nb) == ["check_luminance"], body


def test_rebinding_the_exercise_name_to_the_reference_in_another_cell_counts():
    nb = new_notebook(cells=[
        new_code_cell("from nstlab import images"),
        _solution("luminance", "def luminance(image):\n    return image"),
        _check("check_luminance", "pass"),
        new_code_cell("luminance = images.luminance"),
    ])
    nb, _ = _policy(nb)
    assert _zeroed(nb) == ["check_luminance"]


def test_code_reaching_into_the_grader_is_flagged_but_not_zeroed():
    nb = new_notebook(cells=[
        new_code_cell("from nstlab import checks\nimport torch"),
        _solution("luminance", "class Lie(torch.Tensor):\n    pass\ndef luminance(image):\n"
                               "    checks.check_close = print\n    get_ipython()\n    return image"),
        _check("check_luminance", "pass"),
    ])
    nb, resources = _policy(nb)
    flags = " ".join(e["message"] for e in resources[EVENTS] if e["kind"] == "flagged")
    assert "checks.check_close" in flags and "get_ipython" in flags and "subclass of torch.Tensor" in flags
    assert _zeroed(nb) == []


def test_feedback_shows_an_errors_message_without_traceback_or_paths():
    import nstlab

    cell = new_code_cell("x")
    library = str(nstlab.__file__)
    cell.outputs = [new_output("error", ename="CheckFailed", evalue=f"x differs (see {library})",
                               traceback=["Traceback", "  File /secret/solutions/a.py, line 3", "hidden_line()"]),
                    new_output("stream", name="stdout", text="y" * 300_000)]
    nb = new_notebook(cells=[cell])
    nb, _ = SanitizeFeedback().preprocess(nb, {})
    error, *rest = nb.cells[0].outputs
    assert error.traceback == [f"CheckFailed: {error.evalue}"]
    assert library not in error.evalue and "<nstlab>" in error.evalue
    assert len(rest) == 1 and "cut" in rest[0].text


def test_damaged_metadata_without_a_match_becomes_an_ordinary_cell_and_is_flagged():
    """No release to match against: the cell is graded as ordinary code, the notebook still validates."""
    from nbgrader.nbgraderformat import MetadataValidator

    from nstlab.course.grading import RepairMetadata

    damaged = new_code_cell("print('hello')")
    damaged.metadata["nbgrader"] = {"grade": "yes", "points": "lots"}
    nb = new_notebook(cells=[_solution("f", "def f():\n    return 1"), damaged])
    nb, resources = RepairMetadata().preprocess(nb, {"nbgrader": {"assignment": "a", "notebook": "a"}})
    assert "nbgrader" not in nb.cells[1].metadata
    assert [e["kind"] for e in resources[EVENTS]] == ["flagged"]
    MetadataValidator().validate_nb(nb)
