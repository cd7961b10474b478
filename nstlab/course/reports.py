"""What happened to each submission when it was graded, and the grade export that says so.

Every autograded submission leaves a report, ``course/reports/<assignment>/<student>.json``, written by
:class:`nstlab.course.grading.WriteReport` (graded) or by ``nstlab course autograde`` (not graded, with the
reason). A report holds a status and a list of events: ``repaired`` (damaged metadata restored),
``tampered`` (a locked cell was edited; restored), ``kernel`` (the kernel died or hung; restarted),
``policy`` (an exercise answered with the library's own function), ``flagged`` (code for the instructor to
look at) and ``unsafe`` (graded without the sandbox).

:class:`StatusCsvExport` is nbgrader's CSV export with three more columns: ``status`` and ``notes``, so
that a student who could not be graded reads "not graded: <reason>" and never a bare 0, and
``awaiting_hand_grading``, the cells whose points are not in the score yet because they wait for the instructor
(written answers; also a check cell missing from the submission).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.plugins.export import CsvExportPlugin

from nstlab.course.grading import course_folder

# Event kinds that make a graded submission "flagged" in the summary: worth an instructor's look.
FLAGGING = ("repaired", "tampered", "kernel", "policy", "flagged", "unsafe")


@dataclass
class Report:
    student: str
    assignment: str
    status: str  # "graded" or "not graded"
    reason: str = ""
    events: list[dict] = field(default_factory=list)
    executed: str = ""  # where its notebook ran: "this process" or "parallel job" (--jobs)

    @property
    def flags(self) -> list[str]:
        seen = dict.fromkeys(e["message"] for e in self.events if e.get("kind") in FLAGGING)
        return list(seen)


def reports_folder(course: Path, assignment: str) -> Path:
    return course / "reports" / assignment


def read_report(course: Path, assignment: str, student: str) -> Report | None:
    path = reports_folder(course, assignment) / f"{student}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return Report(student, assignment, data.get("status", "graded"), data.get("reason", ""), data.get("events", []),
                  data.get("executed", ""))


def write_report(course: Path, report: Report) -> Path:
    path = reports_folder(course, report.assignment) / f"{report.student}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"student": report.student, "assignment": report.assignment,
                                "status": report.status, "reason": report.reason, "events": report.events,
                                "executed": report.executed},
                               indent=1))
    return path


def status_text(report: Report | None) -> tuple[str, str]:
    """The ``status`` and ``notes`` columns of the export for one submission."""
    if report is None:
        return "graded", ""
    if report.status != "graded":
        return f"not graded: {report.reason}", ""
    return ("flagged" if report.flags else "graded"), "; ".join(report.flags)


def _submitted(gradebook, assignment: str, student: str) -> bool:
    from nbgrader.api import MissingEntry

    try:
        gradebook.find_submission(assignment, student)
    except MissingEntry:
        return False
    return True



class StatusCsvExport(CsvExportPlugin):
    """nbgrader's CSV export, plus ``status``, ``notes`` and ``awaiting_hand_grading``; a student not graded has
    no score, only the reason, and a score that still lacks answers graded by hand says which."""

    def export(self, gradebook) -> None:
        super().export(gradebook)
        dest = Path(self.to or "grades.csv")
        db_url = self.parent.coursedir.db_url if hasattr(self.parent, "coursedir") else str(gradebook.engine.url)
        course = course_folder(db_url)
        with dest.open(newline="") as f:
            rows = list(csv.DictReader(f))
        from nstlab.course.batch import awaiting_manual_grade  # batch imports this module

        extra = ["status", "notes", "awaiting_hand_grading"]
        keys = [*(rows[0].keys() if rows else []), *extra]
        waiting: dict[str, dict[str, list[str]]] = {}  # assignment -> student -> grade ids, in notebook order
        for row in rows:
            assignment, student = row["assignment"], row["student_id"]
            if assignment not in waiting:
                waiting[assignment] = awaiting_manual_grade(assignment, root=course.parent)
            row["awaiting_hand_grading"] = "; ".join(waiting[assignment].get(student, []))
            report = read_report(course, assignment, student)
            if report is None and not _submitted(gradebook, assignment, student):
                status, notes = "no submission", ""
            elif report is None:  # nbgrader knows the submission, the grading pipeline never finished it
                status, notes = "not graded: no record of its grading (see the autograde log)", ""
            else:
                status, notes = status_text(report)
            if status.startswith("not graded"):
                row["raw_score"] = row["score"] = row["awaiting_hand_grading"] = ""
            row["status"], row["notes"] = status, notes
        with dest.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys or extra)
            writer.writeheader()
            writer.writerows(rows)
