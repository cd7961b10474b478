"""Notebook 03's visible checks name the bug: for each typical wrong answer, the check cell says what it is.

One real kernel runs the solution notebook top to bottom (grade profile). Then, for each bug, the exercise
cell is run again with the wrong answer in its solution region, followed by the exercise's visible check
cell, whose error must be a ``CheckFailed`` with the named message; the solution cell is run once more
afterwards, so that the next bug meets correct answers everywhere else (``train`` calls ``backward``).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from feedback_helpers import grade_id as _grade_id
from feedback_helpers import with_body
from nbclient import NotebookClient

from conftest import ROOT

NAME = "03-backprop"

# (exercise grade_id, a wrong answer's body, what the visible check's message must say)
BUGS = [
    ("backward", """
zs, activations = forward(params, X, activation=activation)
delta = output_delta(zs[-1], activations[-1], T)
grads = []
for l in range(len(params), 0, -1):
    grads.append((delta.T @ activations[l - 1] / len(X), delta.mean(0)))
    if l > 1:
        delta = hidden_delta(delta, params[l - 1][0], zs[l - 2], activation=activation)
return grads[::-1]
""", "a mean over the batch where E, and so its gradient, is a sum"),
    ("backward", """
zs, activations = forward(params, X, activation=activation)
delta = output_delta(zs[-1], activations[-1], T)
grads = []
for l in range(len(params), 0, -1):
    grads.append((delta.T @ activations[l - 1], delta.sum(0)))
    if l > 1:
        delta = hidden_delta(delta, params[l - 1][0], zs[l - 2], activation=activation)
return grads
""", r"return them in layer order 1, \.\.\., L"),
    ("backward", """
zs, activations = forward(params, X)
delta = output_delta(zs[-1], activations[-1], T)
grads = []
for l in range(len(params), 0, -1):
    grads.append((delta.T @ activations[l - 1], delta.sum(0)))
    if l > 1:
        delta = hidden_delta(delta, params[l - 1][0], zs[l - 2])
return grads[::-1]
""", "pass activation on to forward and hidden_delta"),
    ("train", """
N = X.shape[0]
losses = []
for epoch in range(epochs):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch))
    for start in range(0, N, batch_size):
        batch = order[start : start + batch_size]
        params = mlp.update(params, backward(params, X[batch], T[batch], activation=activation), eta=eta)
    losses.append(float(mlp.loss(params, X, T, activation=activation)) / N)
return params, losses
""", "each step uses the batch's summed gradient with η"),
    ("train", """
N = X.shape[0]
losses = []
for epoch in range(epochs):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch))
    for start in range(0, N, batch_size):
        batch = order[start : start + batch_size]
        params = mlp.update(params, backward(params, X[batch], T[batch], activation=activation), eta=eta / len(batch))
    losses.append(float(mlp.loss(params, X, T, activation=activation)))
return params, losses
""", r"E where the losses are E / N"),
    ("train", """
N = X.shape[0]
losses = []
for epoch in range(epochs):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed + epoch))
    for start in range(0, N, batch_size):
        batch = order[start : start + batch_size]
        params = mlp.update(params, backward(params, X[batch], T[batch], activation=activation), eta=eta / batch_size)
    losses.append(float(mlp.loss(params, X, T, activation=activation)) / N)
return params, losses
""", "the last batch holds only 2: divide by its size"),
    ("softmax", "return torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)", "e\\^1000 overflows"),
    ("softmax", "e = torch.exp(z - z.max())\nreturn e / e.sum(dim=1, keepdim=True)", "each row's own largest score"),
    ("softmax", "e = torch.exp(z - z.amax(dim=0, keepdim=True))\nreturn e / e.sum(dim=0, keepdim=True)",
     "each column sums to 1 instead of each row"),
    ("softmax", "e = torch.exp(z - z.amax(dim=1))\nreturn e / e.sum(dim=1)", "keepdim=True"),
    ("cross_entropy", "return -(T * torch.log(mlp.softmax(z))).sum()", r"ln 0 = -inf"),
    ("cross_entropy", """
m = z.amax(dim=1, keepdim=True)
return -(T * (z - m - torch.log(torch.exp(z - m).sum(dim=1, keepdim=True)))).sum(dim=1).mean()
""", "a mean over the 2 examples"),
    ("cross_entropy", """
import numpy as np
a = z.detach().numpy()
m = a.max(axis=1, keepdims=True)
return torch.tensor(-(T.numpy() * (a - m - np.log(np.exp(a - m).sum(axis=1, keepdims=True)))).sum())
""", "carries no gradient back to its input"),
    ("hidden_delta", "return delta_next @ W_next", r"this mistake gives: f'\(z\) left out"),
]


def _with_body(cell, body: str):
    """A copy of an exercise cell whose solution region holds ``body`` (indented into the function)."""
    copy = nbformat.from_dict(dict(cell))
    copy.source = with_body(cell.source, body, where=_grade_id(cell))
    copy.outputs = []
    return copy


@pytest.mark.slow
def test_each_bug_of_notebook_03_gets_the_message_that_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    nb = nbformat.read(ROOT / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)
    cells = nb.cells
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    wrong = []
    with client.setup_kernel():
        for index, cell in enumerate(cells):
            client.execute_cell(cell, index)
        failed = [f"cell {i}: {o.evalue}" for i, c in enumerate(cells) for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert not failed, f"the solution notebook raised: {failed}"
        for grade_id, body, message in BUGS:
            index = next(i for i, c in enumerate(cells) if _grade_id(c) == grade_id)
            check_index = next(i for i in range(index + 1, len(cells))
                               if cells[i].cell_type == "code" and cells[i].metadata.get("nbgrader", {}).get("grade"))
            client.execute_cell(_with_body(cells[index], body), index)
            check = nbformat.from_dict(dict(cells[check_index]))
            check.outputs = []
            client.execute_cell(check, check_index)
            client.execute_cell(cells[index], index)  # the solution again, for the next bug
            errors = [out for out in check.outputs if out.output_type == "error"]
            if not errors:
                wrong.append(f"{grade_id} / {message}: the wrong answer passed the visible check")
            elif errors[0].ename != "CheckFailed" or not re.search(message, errors[0].evalue):
                wrong.append(f"{grade_id} / {message}: the check said {errors[0].ename}: {errors[0].evalue}")
    assert not wrong, "\n".join(wrong)
