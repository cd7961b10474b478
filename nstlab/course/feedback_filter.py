"""Feedback a student may read: which check failed and why, never the grader's secrets.

nbgrader makes feedback from the autograded notebook, which holds the hidden tests, and an error's traceback
quotes the lines it passed through: hidden tests, the library's source, folders of the grading machine.
These preprocessors (``c.GenerateFeedback.preprocessors`` in ``course/nbgrader_config.py``) keep the check's
message and drop the rest.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor
from traitlets import Integer

from nstlab.course.grading import MAX_OUTPUT_BYTES

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _scrub_paths(text: str) -> str:
    """Replace folders of the grading machine by neutral names."""
    import nstlab

    places = {str(Path(nstlab.__file__).resolve().parent): "<nstlab>", sys.prefix: "<python>",
              sys.base_prefix: "<python>", os.path.expanduser("~"): "~"}
    try:
        from nstlab.course import course_root

        places[str(course_root())] = "<course>"
    except Exception:  # noqa: BLE001 -- feedback without a course root still gets the other replacements
        pass
    for path, name in sorted(places.items(), key=lambda item: -len(item[0])):
        if len(path) > 1:
            text = text.replace(path, name)
    return re.sub(r"/tmp/nstlab-kernel-\w+", "<sandbox>", text)


NOT_GRADED_YET = ("**Not graded yet.** Your instructor grades this answer by hand; until then it counts 0 of its "
                  "{points:g} points in the scores on this page.")


class GetGradesSayingWhatWaits(GetGrades):
    """nbgrader's scores for the feedback, and a line under each answer still waiting for grading by hand.

    nbgrader shows such an answer as "Score: 0.0" like a wrong one, which a student cannot tell apart from a
    verdict; feedback is often made right after autograding, before the instructor has read the answers.
    """

    def _get_score(self, cell, resources) -> None:
        super()._get_score(cell, resources)
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"], self.notebook_id,
                                          self.assignment_id, self.student_id)
        if grade.needs_manual_grade and grade.manual_score is None:
            cell.source = cell.source.rstrip() + "\n\n" + NOT_GRADED_YET.format(points=grade.max_score)


class ClearHiddenTestsOfChecks(ClearHiddenTests):
    """nbgrader's removal of hidden tests, from the check cells only.

    A student's own cell that merely mentions the hidden-tests marker (in a string, say) would otherwise make
    nbgrader refuse that student's feedback.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and meta.get("locked")):
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


class SanitizeFeedback(NbGraderPreprocessor):
    """Feedback a student may see: an error's message, never its traceback; no paths of the grading machine."""

    max_output_bytes = Integer(MAX_OUTPUT_BYTES, help="bytes of output kept per cell").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        kept, used = [], 0
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                evalue = _scrub_paths(_ANSI.sub("", str(out.get("evalue", ""))))
                out.evalue = evalue
                out.traceback = [f"{out.ename}: {evalue}"]
            elif out.output_type == "stream":
                out.text = _scrub_paths(out.text)
            size = len(json.dumps(out, default=str))
            if used + size > self.max_output_bytes:
                kept.append(nbformat.v4.new_output("stream", name="stdout",
                                                   text="[more output was cut from this feedback]\n"))
                break
            used += size
            kept.append(out)
        cell.outputs = kept
        return cell, resources
