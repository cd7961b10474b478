"""nbgrader configuration of the nstlab course.

The course root is the repository: instructor notebooks live in ``solutions/``, the student release is
written to ``notebooks/``, and everything made while grading (submissions, autograded copies, feedback and
the gradebook database) stays under ``course/``, which git ignores. Run nbgrader through ``nstlab course
...`` from anywhere, or with this folder as the working directory.
"""

from pathlib import Path

c = get_config()  # noqa: F821 -- provided by traitlets when nbgrader loads this file

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "nstlab"
c.CourseDirectory.root = str(HERE.parent)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "course/submitted"
c.CourseDirectory.autograded_directory = "course/autograded"
c.CourseDirectory.feedback_directory = "course/feedback"
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}"

# The student release keeps no outputs and no execution counts (solutions/ are committed that way too).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A graded notebook runs in the tiny "grade" profile in well under a minute; a cell that needs more than
# three minutes is almost certainly an infinite loop. A timeout costs that cell its points, not the batch.
c.Execute.timeout = 180
c.Execute.interrupt_on_timeout = True

# nbgrader gives zero to a test cell that writes anything to stderr. torch and numpy warn on stderr
# (deprecations, "TF32 is enabled", ...) even when the answer is right, so outputs that are warnings are
# dropped before grading. Errors are outputs of another type and still cost the points.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\w*Warning\b"


# Student code is untrusted (see nstlab/course/grading.py and sandbox.py). Before running, damaged metadata
# is repaired and locked cells are restored, reporting only cells the student really edited; each kernel
# runs in a sandbox with the library guarded, and a dead kernel costs only the cells it could not run;
# exercises answered with the library's own function score 0; every submission leaves a report that
# `nstlab course autograde` summarises and the export's status column shows.
RELEASE = str(HERE.parent / "notebooks")
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nstlab.course.grading.RepairMetadata",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nstlab.course.grading.RestoreCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "nstlab.course.grading.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nstlab.course.policy.LibraryPolicy",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nstlab.course.grading.WriteReport",
]
for name in ("RepairMetadata", "RestoreCells", "SandboxedExecute", "LibraryPolicy"):
    c[name].release_directory = RELEASE

# Feedback is made from the autograded notebooks, which carry the hidden tests; remove them again, and show
# each error as its message only (a traceback would quote hidden-test lines, library source and paths).
c.GenerateFeedback.preprocessors = [
    "nstlab.course.feedback_filter.GetGradesSayingWhatWaits",  # nbgrader's GetGrades, and what awaits grading
    "nstlab.course.feedback_filter.ClearHiddenTestsOfChecks",
    "nstlab.course.feedback_filter.SanitizeFeedback",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# A student may open feedback without a network, often from disk: MathJax goes into the HTML file itself
# instead of being loaded from a CDN (see nstlab/course/mathjax.py).
c.GenerateFeedback.exporter_class = "nstlab.course.mathjax.OfflineHTMLExporter"

# The export adds a status column: "not graded: <reason>" instead of a bare 0, and what was flagged.
c.ExportApp.plugin_class = "nstlab.course.reports.StatusCsvExport"
