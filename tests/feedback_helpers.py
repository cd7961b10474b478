"""What the feedback tests share: finding an exercise cell and putting a wrong answer in its solution region.

Each test (test_feedback_messages, _03, _04, _0506) runs a solution notebook in a real kernel with wrong
answers put in and reads the message of the visible check that follows; these are the pieces they all need.
"""

from __future__ import annotations

import re

SOLUTION = re.compile(r"(### BEGIN SOLUTION\n)(.*?)(\n\s*### END SOLUTION)", re.S)


def grade_id(cell) -> str | None:
    """The nbgrader id of a cell, or ``None`` for a cell nbgrader does not know."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def with_body(source: str, body: str, *, where: str = "") -> str:
    """``source`` of an exercise cell with its solution region replaced by ``body``, indented into the function."""
    indented = "\n".join("    " + line for line in body.strip("\n").splitlines())
    replaced, count = SOLUTION.subn(lambda m: m.group(1) + indented + m.group(3), source)
    assert count == 1, f"{where}: no solution region"
    return replaced
