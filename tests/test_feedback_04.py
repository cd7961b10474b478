"""Notebook 04's visible checks name the bugs a student is likely to make in its later exercises.

One real kernel (grade profile) runs notebook 04's set-up cell, every exercise answered by the solution and
the checks of the exercises below, which must all pass. Then, for each typical bug, it runs that exercise's
solution with the bug put in (a line of the solution replaced) followed by the exercise's check cell, which
must fail with the message that names the bug. Each bug is checked in its own copy of the check cell, so a
message can come only from that bug. The prose cells and demonstrations are left out: it takes about 30 s.
"""

from __future__ import annotations

import copy
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NAME = "04-cnn"

# (exercise grade_id, replacements (solution text, buggy text), what the check's message must say)
BUGS = [
    ("small_cnn", [("return self.fc2(a)  # (N, 10)", "return relu(self.fc2(a))")], "a ReLU after fc2"),
    ("small_cnn", [("return self.fc2(a)  # (N, 10)", "return self.fc2(a).softmax(dim=1)")], "a softmax after fc2"),
    ("small_cnn", [("a = relu(conv2d(x, self.conv1_1.weight, self.conv1_1.bias, padding=1))",
                    "a = relu(conv2d(x, self.conv1_1.weight, self.conv1_1.bias))")],
     r"raised: .* with padding=1 each convolution keeps the size"),
    ("sgd_momentum_step", [("v_new = mu * v + grad", "v_new = mu * v + (1 - mu) * grad")],
     "a running mean instead of the running sum"),
    ("sgd_momentum_step", [("v_new = mu * v + grad", "v_new = grad")], "plain gradient descent's steps"),
    ("sgd_momentum_step", [("return w - eta * v_new, v_new", "return w - eta * v, v_new")],
     "w did not move: update w with the new v"),
    ("adam_step", [("m_hat = m_new / (1 - beta1**t)", "m_hat = m_new"), ("v_hat = v_new / (1 - beta2**t)", "v_hat = v_new")],
     "Adam without the bias correction"),
    ("adam_step", [("m_new = beta1 * m + (1 - beta1) * grad", "m_new = m.mul_(beta1).add_((1 - beta1) * grad)")],
     "changed w, grad, m or v in place"),
    ("train_epoch", [("        optimiser.zero_grad()\n", "")],
     "gradients accumulated and each step used their sum: call optimiser.zero_grad()"),
    ("train_epoch", [("    model.train()\n    total", "    total")], r"in evaluation mode\. Call model\.train\(\)"),
    ("train_epoch", [("return total / len(y)", "model.eval()\n    return total / len(y)")],
     "After train_epoch the model is in evaluation mode; leave it in training mode"),
    ("train_epoch", [("        optimiser.zero_grad()\n", ""),
                     ("        loss.backward()\n", "        loss.backward()\n        optimiser.zero_grad()\n")],
     r"the weights did not change: is optimiser\.step\(\) missing, or does zero_grad\(\) run between"),
    ("train_epoch", [("total += loss.item() * len(batch)", "total += loss.item()"),
                     ("return total / len(y)", "return total / len(range(0, len(y), batch_size))")],
     "the plain mean of the batch losses: weight each by its number of images"),
    ("train_epoch", [("return total / len(y)", "return torch.tensor(total / len(y))")],
     r"train_epoch's result \(the epoch's mean loss, a Python float: loss\.item\(\)\) should be a float"),
]
EXERCISES = sorted({grade_id for grade_id, _, _ in BUGS})


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> tuple[nbformat.NotebookNode, dict[str, int], list[int]]:
    """The executed notebook, the index of each exercise's first check, and the index of each bug's check."""
    solution = nbformat.read(ROOT / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)
    cells = [next(c for c in solution.cells if c.cell_type == "code")]  # the set-up cell: imports, profile
    exercise, check, current = {}, {}, None
    for cell in solution.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            current = meta["grade_id"]
            exercise[current] = cell
            cells.append(cell)
        elif cell.cell_type == "code" and meta.get("grade") and current in EXERCISES and current not in check:
            check[current] = cell
            cells.append(cell)
    first = {grade_id: cells.index(check[grade_id]) for grade_id in EXERCISES}
    bug_checks = []
    for grade_id, replacements, _ in BUGS:
        bugged = copy.deepcopy(exercise[grade_id])
        for old, new in replacements:
            assert bugged.source.count(old) == 1, f"{grade_id}: {old!r} is not exactly once in the solution"
            bugged.source = bugged.source.replace(old, new)
        bugged_check = copy.deepcopy(check[grade_id])
        bugged.id, bugged_check.id = f"bug{len(bug_checks)}", f"bug{len(bug_checks)}-check"  # ids stay unique
        cells += [bugged, bugged_check]
        bug_checks.append(len(cells) - 1)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=solution.metadata)
    path = tmp_path_factory.mktemp("feedback04")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NSTLAB_PROFILE", "grade")
        NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(path)}}).execute()
    return nb, first, bug_checks


def _errors(cell) -> list:
    return [out for out in cell.outputs if out.output_type == "error"]


@pytest.mark.slow
def test_the_solutions_pass_the_checks_that_the_bugs_are_run_against(executed):
    """Without a bug, every check of these exercises passes: a message below comes from its bug."""
    nb, first, _ = executed
    assert not _errors(nb.cells[0]), "the set-up cell failed"
    for grade_id, index in first.items():
        assert not _errors(nb.cells[index]), f"{grade_id}: {_errors(nb.cells[index])[0].evalue}"
        assert "all checks passed" in "".join(o.get("text", "") for o in nb.cells[index].outputs), grade_id


@pytest.mark.slow
@pytest.mark.parametrize("k", range(len(BUGS)), ids=[f"{g}-{i}" for i, (g, _, _) in enumerate(BUGS)])
def test_each_named_bug_gets_a_message_that_names_it(executed, k):
    nb, _, bug_checks = executed
    grade_id, _, message = BUGS[k]
    errors = _errors(nb.cells[bug_checks[k]])
    assert errors, f"{grade_id}: the wrong answer passed the visible check"
    assert errors[0].ename == "CheckFailed", f"{grade_id}: {errors[0].ename}: {errors[0].evalue}"
    assert re.search(message, errors[0].evalue), f"{grade_id}: the message was: {errors[0].evalue}"
