r"""Writing course notebooks as plain-text sources.

Each assignment is written as one percent-format Python file, ``course/source/<assignment>.py``, which
reviews and diffs like code. :func:`build_notebook` turns it into the nbgrader source notebook
``solutions/<assignment>/<assignment>.ipynb``; nbgrader then makes the student release in ``notebooks/``.

Cells start with a marker line::

    # %% [markdown]                      prose; every line starts with "# " (the "# " is removed)
    # %%                                 ordinary code
    # %% [solution] id=NAME              an exercise: code with ### BEGIN SOLUTION / ### END SOLUTION
    # %% [check] id=NAME points=P        a locked, graded check cell; may hold ### BEGIN HIDDEN TESTS
    # %% [written] id=NAME points=P      a written answer graded by hand: a markdown cell ("# " lines)
                                         whose body is the instructor's model answer

A ``[written]`` cell is nbgrader's "manually graded answer" (solution and grade, not locked). The question goes
in the markdown cell just above it. nbgrader's release replaces the whole model answer by its text stub
("YOUR ANSWER HERE"), so students never see it; autograding leaves the cell to the instructor, who grades it
in nbgrader's formgrader.

Everything is deterministic (cell ids come from the marker or the position), so building twice gives the
same bytes, and a test can prove that ``solutions/`` is up to date with ``course/source/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %%(?: \[(?P<kind>markdown|solution|check|written)\])?(?P<options>(?: \w+=\S+)*)\s*$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# nbgrader's cell metadata schema version that nbgrader 0.9 writes and expects.
SCHEMA_VERSION = 3


class SourceError(ValueError):
    """A notebook source file is malformed; the message gives the file and line."""


@dataclass
class _Cell:
    kind: str  # "markdown", "code", "solution", "check" or "written"
    line: int
    options: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def _split_cells(text: str, origin: str) -> list[_Cell]:
    cells: list[_Cell] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = MARKER.match(line)
        if match:
            options = dict(opt.split("=", 1) for opt in match["options"].split())
            cells.append(_Cell(match["kind"] or "code", number, options))
        elif line.startswith("# %%"):
            raise SourceError(f"{origin}:{number}: unknown cell marker {line!r}")
        elif cells:
            cells[-1].lines.append(line)
        elif line.strip() and not line.startswith("#"):
            raise SourceError(f"{origin}:{number}: code before the first '# %%' marker")
    return cells


def _body(cell: _Cell, origin: str) -> str:
    lines = list(cell.lines)
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if cell.kind in ("markdown", "written"):
        out = []
        for offset, line in enumerate(lines):
            if line == "#":
                out.append("")
            elif line.startswith("# "):
                out.append(line[2:])
            else:
                raise SourceError(f"{origin}:{cell.line + offset + 1}: markdown lines must start with '# '")
        lines = out
    return "\n".join(lines)


def _nbgrader_metadata(cell: _Cell, origin: str) -> dict | None:
    if cell.kind not in ("solution", "check", "written"):
        return None
    grade_id = cell.options.get("id")
    if not grade_id:
        raise SourceError(f"{origin}:{cell.line}: a [{cell.kind}] cell needs id=NAME")
    graded = cell.kind in ("check", "written")
    meta = {
        "grade": graded,
        "grade_id": grade_id,
        "locked": cell.kind == "check",
        "schema_version": SCHEMA_VERSION,
        # A written answer is a solution cell too: that is what makes nbgrader replace its body by the stub.
        "solution": cell.kind in ("solution", "written"),
        "task": False,
    }
    if graded:
        try:
            meta["points"] = int(cell.options["points"])
            if meta["points"] <= 0:
                raise ValueError
        except (KeyError, ValueError):
            raise SourceError(
                f"{origin}:{cell.line}: a [{cell.kind}] cell needs points=N (a whole number above 0)") from None
    return meta


def build_notebook(source: str | Path) -> nbformat.NotebookNode:
    """Build the nbgrader source notebook from a percent-format file.

    Args:
        source: path of ``course/source/<assignment>.py``.

    Returns:
        An nbformat 4.5 notebook without outputs, with nbgrader metadata on exercise, check and written cells.

    Raises:
        SourceError: a malformed marker, a missing id or points, an empty written answer, or a duplicated id.
    """
    source = Path(source)
    origin = str(source)
    cells = []
    seen: set[str] = set()
    for index, cell in enumerate(_split_cells(source.read_text(encoding="utf-8"), origin)):
        text = _body(cell, origin)
        meta = _nbgrader_metadata(cell, origin)
        cell_id = meta["grade_id"] if meta else f"cell-{index:03d}"
        if cell_id in seen:
            raise SourceError(f"{origin}:{cell.line}: id {cell_id!r} is used twice")
        seen.add(cell_id)
        if cell.kind in ("markdown", "written"):
            if cell.kind == "written" and not text.strip():
                raise SourceError(f"{origin}:{cell.line}: a [written] cell needs the model answer as its body")
            nb_cell = nbformat.v4.new_markdown_cell(text, id=cell_id)
        else:
            nb_cell = nbformat.v4.new_code_cell(text, id=cell_id)
        if meta:
            nb_cell.metadata["nbgrader"] = meta
            if meta["locked"]:
                nb_cell.metadata["deletable"] = False
                nb_cell.metadata["editable"] = False
        cells.append(nb_cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: str | Path) -> None:
    """Write a notebook the way nbgrader does (one-space indent, sorted keys, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
