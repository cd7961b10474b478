"""Feedback for notebooks 05 and 06: each typical wrong answer to a new exercise gets the message that names it.

One real kernel per assignment runs the solution notebook's set-up cells and every exercise's solution, then,
for each wrong answer below, a cell that redefines the exercise with it, followed by a copy of that exercise's
visible check cell, and the solution again. The first error each check copy shows must be a ``CheckFailed`` whose
message says what the bug is (a later check of the same cell firing first, or a crash, fails the test).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from feedback_helpers import grade_id as _grade_id
from feedback_helpers import with_body
from nbclient import NotebookClient

from conftest import ROOT

# assignment -> [(exercise grade_id, what the wrong answer gets wrong, its body, what the message must say)]
BUGS = {
    "05-features-transfer": [
        ("reconstruct", "starts from the photo", """
with torch.no_grad():
    target = extractor(image)[layer]
x = image.clone().requires_grad_(True)
optimiser = torch.optim.Adam([x], lr=eta)
for _ in range(steps):
    loss = content_loss(extractor(x)[layer], target)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        x.clamp_(0, 1)
return x.detach()
""", "the search starts from the photo itself, not from noise"),
        ("reconstruct", "never clamps", """
with torch.no_grad():
    target = extractor(image)[layer]
x = torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)).to(image).requires_grad_(True)
optimiser = torch.optim.Adam([x], lr=eta)
for _ in range(steps):
    loss = content_loss(extractor(x)[layer], target)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
return x.detach()
""", r"outside \[0, 1\]: after every step, clamp x in place"),
        ("reconstruct", "a new Adam in every step", """
with torch.no_grad():
    target = extractor(image)[layer]
x = torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)).to(image).requires_grad_(True)
for _ in range(steps):
    optimiser = torch.optim.Adam([x], lr=eta)
    loss = content_loss(extractor(x)[layer], target)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        x.clamp_(0, 1)
return x.detach()
""", "a new one in every step forgets its running averages"),
        ("reconstruct", "returns x without detaching", """
with torch.no_grad():
    target = extractor(image)[layer]
x = torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)).to(image).requires_grad_(True)
optimiser = torch.optim.Adam([x], lr=eta)
for _ in range(steps):
    loss = content_loss(extractor(x)[layer], target)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        x.clamp_(0, 1)
return x
""", r"still requires gradients .*return x.detach\(\)"),
        ("finetune", "one learning rate for all", """
import copy
last, head = copy.deepcopy(last).requires_grad_(True), copy.deepcopy(head).requires_grad_(True)
optimiser = torch.optim.Adam([*last.parameters(), *head.parameters()], lr=eta)
gen = torch.Generator().manual_seed(seed)
losses = []
for _ in range(epochs):
    total = 0.0
    for batch in torch.randperm(len(y), generator=gen).split(batch_size):
        loss = torch.nn.functional.cross_entropy(head(global_average_pool(last(h[batch]))), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(batch)
    losses.append(total / len(y))
return last, head, losses
""", "the block needs its own parameter group with lr=eta \\* backbone_factor"),
        ("finetune", "trains the caller's modules", """
last.requires_grad_(True)
optimiser = torch.optim.Adam([{"params": last.parameters(), "lr": eta * backbone_factor},
                              {"params": head.parameters(), "lr": eta}])
gen = torch.Generator().manual_seed(seed)
losses = []
for _ in range(epochs):
    total = 0.0
    for batch in torch.randperm(len(y), generator=gen).split(batch_size):
        loss = torch.nn.functional.cross_entropy(head(global_average_pool(last(h[batch]))), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(batch)
    losses.append(total / len(y))
return last, head, losses
""", r"train copies \(copy.deepcopy"),
        ("finetune", "leaves the frozen block frozen", """
import copy
last, head = copy.deepcopy(last), copy.deepcopy(head)
optimiser = torch.optim.Adam([{"params": last.parameters(), "lr": eta * backbone_factor},
                              {"params": head.parameters(), "lr": eta}])
gen = torch.Generator().manual_seed(seed)
losses = []
for _ in range(epochs):
    total = 0.0
    for batch in torch.randperm(len(y), generator=gen).split(batch_size):
        loss = torch.nn.functional.cross_entropy(head(global_average_pool(last(h[batch]))), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(batch)
    losses.append(total / len(y))
return last, head, losses
""", r"the block did not change: make its copy trainable"),
    ],
    "06-style-transfer": [
        ("make_objective", "forgets to return the function", """
def objective(x):
    features = extractor(x)
    content = torch.stack([losses.content_loss(features[layer], P) for layer, P in content_targets.items()]).sum()
    style = losses.style_loss(features, style_grams)
    return losses.LossParts(content, style, torch.zeros_like(content), alpha * content + beta * style)
""", r"should return a function of the image, got NoneType"),
        ("make_objective", "only the first content layer", """
def objective(x):
    features = extractor(x)
    layer, P = next(iter(content_targets.items()))
    content = losses.content_loss(features[layer], P)
    style = losses.style_loss(features, style_grams)
    return losses.LossParts(content, style, torch.zeros_like(content), alpha * content + beta * style)
return objective
""", "only the first content layer counts"),
        ("make_objective", "alpha and beta swapped", """
def objective(x):
    features = extractor(x)
    content = torch.stack([losses.content_loss(features[layer], P) for layer, P in content_targets.items()]).sum()
    style = losses.style_loss(features, style_grams)
    return losses.LossParts(content, style, torch.zeros_like(content), beta * content + alpha * style)
return objective
""", "alpha and beta swapped"),
        ("make_objective", "the total through a Python float", """
def objective(x):
    features = extractor(x)
    content = torch.stack([losses.content_loss(features[layer], P) for layer, P in content_targets.items()]).sum()
    style = losses.style_loss(features, style_grams)
    total = torch.tensor(alpha * content.item() + beta * style.item(), dtype=content.dtype)
    return losses.LossParts(content, style, torch.zeros_like(content), total)
return objective
""", "carries no gradient back to its input"),
    ],
}


def _with_bugs(name: str, bugs: list[tuple[str, str, str, str]]) -> tuple[nbformat.NotebookNode, list[int]]:
    """The set-up cells and solutions of ``name``, then for each bug: buggy definition, check, solution again.

    Returns the notebook and the index of each bug's check cell."""
    solution = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    cells = solution.cells
    first = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution"))
    setup = [c for c in cells[:first] if c.cell_type == "code"]
    exercises = {_grade_id(c): i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution")
                 and c.cell_type == "code"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in setup])
    nb.cells += [nbformat.v4.new_code_cell(cells[i].source) for i in exercises.values()]
    where = []
    for grade_id, _, body, _ in bugs:
        index = exercises[grade_id]
        check = next(c for c in cells[index + 1:] if c.metadata.get("nbgrader", {}).get("grade"))
        buggy = with_body(cells[index].source, body, where=f"{name}/{grade_id}")
        nb.cells += [nbformat.v4.new_code_cell(buggy), nbformat.v4.new_code_cell(check.source)]
        where.append(len(nb.cells) - 1)
        nb.cells.append(nbformat.v4.new_code_cell(cells[index].source))
    return nb, where


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUGS))
def test_each_new_exercises_named_bug_gets_a_message_that_names_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NSTLAB_PROFILE", "grade")
    nb, where = _with_bugs(name, BUGS[name])
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for (grade_id, bug, _, message), index in zip(BUGS[name], where, strict=True):
        errors = [out for out in nb.cells[index].outputs if out.output_type == "error"]
        assert errors, f"{name}/{grade_id} ({bug}): the wrong answer passed the visible check"
        assert errors[0].ename == "CheckFailed", f"{name}/{grade_id} ({bug}): {errors[0].ename}: {errors[0].evalue}"
        assert re.search(message, errors[0].evalue), f"{name}/{grade_id} ({bug}): the message was: {errors[0].evalue}"
    # the solutions themselves pass every check they were put back for
    setup_errors = [out.evalue for c in nb.cells[:where[0] - 1] for out in c.get("outputs", [])
                    if out.output_type == "error"]
    assert not setup_errors, f"{name}: the set-up or a solution failed: {setup_errors}"
