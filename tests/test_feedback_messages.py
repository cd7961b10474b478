"""Feedback a student can act on: for each bug the notebooks warn about, the visible check names that bug.

Each case runs an assignment's notebook in a real kernel (grade profile) with one exercise answered by a
typical wrong answer and every other exercise by the solution, then reads the error the exercise's visible
check cell showed. A check that fails for the wrong reason, or a later check firing first, fails the test.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from feedback_helpers import grade_id, with_body
from nbclient import NotebookClient

from conftest import ROOT

# assignment -> {exercise grade_id: (wrong answer's body, what the check's message must say)}
BUGS = {
    "01-perceptron": {
        "train": ("""
w = torch.zeros(X.shape[1], dtype=X.dtype)
b = torch.zeros((), dtype=X.dtype)
ws, bs, errors = [w], [b], []
for _ in range(epochs):
    during = 0
    for x_n, y_n in zip(X, y):
        during += int(perceptron.predict(x_n[None], w, b)[0] != y_n)
        w, b = perceptron.update(x_n, y_n, w, b, eta=eta)
    ws.append(w)
    bs.append(b)
    errors.append(during)
    if during == 0:
        break
return Run(w, b, torch.stack(ws), torch.stack(bs), errors)
""", "count the mistakes of the end-of-epoch weights"),
    },
    "02-linear-unit": {
        "loss": ("return ((y - (X @ w + b)) ** 2).mean()",
                 "times the expected value: a mean over the examples where E is ½ times their sum?"),
    },
    "03-backprop": {
        "hidden_delta": ("return delta_next @ W_next", r"this mistake gives: f'\(z\) left out"),
    },
    "04-cnn": {
        "relu": ("return x * (x >= 0)", r"the gradient of relu\(x\) differs"),
    },
    "05-features-transfer": {
        "global_average_pool": ("return torch.from_numpy(f.detach().numpy().mean(axis=(2, 3)))",
                                "carries no gradient back to its input"),
    },
    "06-style-transfer": {
        "content_loss": ("""
_, C, H, W = F.shape
factor = 0.5 if convention == "gatys" else 1 / (4 * C * H * W)
return 1 / (4 * C * H * W) * ((F - P) ** 2).sum() if convention == "gatys" else factor * ((F - P) ** 2).sum()
""", r"the other convention's 1/\(4 n_H n_W n_C\) instead of Gatys' ½"),
        "gram_matrix": ("""
N, C, H, W = F.shape
F_flat = F.reshape(C, -1)
G = F_flat @ F_flat.T
return G / (C * H * W) if normalize else G
""", "the images of the batch are mixed into one Gram matrix"),
    },
}


def _with_bugs(name: str, bugs: dict[str, tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if grade_id(cell) in bugs:
            cell.source = with_body(cell.source, bugs[grade_id(cell)][0], where=f"{name}/{grade_id(cell)}")
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUGS))
def test_each_named_bug_gets_a_message_that_names_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    bugs = BUGS[name]
    nb = _with_bugs(name, bugs)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = nb.cells
    for exercise, (_, message) in bugs.items():
        index = next(i for i, c in enumerate(cells) if grade_id(c) == exercise)
        check = next(c for c in cells[index + 1:] if c.metadata.get("nbgrader", {}).get("grade"))
        errors = [out for out in check.outputs if out.output_type == "error"]
        assert errors, f"{name}/{exercise}: the wrong answer passed the visible check"
        assert errors[0].ename == "CheckFailed", f"{name}/{exercise}: {errors[0].ename}: {errors[0].evalue}"
        assert re.search(message, errors[0].evalue), f"{name}/{exercise}: the message was: {errors[0].evalue}"
