"""Grading an instructor can trust: a batch of hostile and honest submissions, graded for real.

One class of 00-welcome is autograded with ``nstlab course autograde --jobs 2`` (nbgrader's real commands,
the real gradebook, real kernels, each in the bubblewrap sandbox), then feedback and export are made. Each
hostile student tries one thing seen in practice; the tests prove what it could not do:

=================  =====================================================================================
honest             the solution: 4 of 4 (its file is also the target of ``overwriter``)
half               right first exercise, wrong second: 2 of 4
blank              the untouched release: 0, and no "edited" report (checksums compared with the release)
overwriter         rewrites honest's submission and the gradebook from its kernel
deleter            deletes solutions/ and course/source/ files
reader             looks for hidden tests: solutions/, course/source/, its own graded notebook
detached           leaves a setsid process writing to a file, outlives its kernel?
network            connects to a server on the grader's loopback
hog                allocates far more memory than the limit (second exercise right: 2 of 4)
forker             starts as many processes as it can
reassign           replaces the check helpers from inside its function
subclass           returns a tensor whose comparisons always succeed
reference          answers luminance with the library's own function (policy: 0 for it, 2 of 4)
swallow            a loop that ignores KeyboardInterrupt in the first exercise (2 of 4, not 0)
exit               os._exit in the first exercise (2 of 4, not 0)
damaged            correct, with a check cell's nbgrader metadata damaged (repaired: 4 of 4)
tamper             wrong answer and an edited check cell (restored: 0 for it, reported)
huge               correct, prints 20 MB, 200 times the cap (4 of 4; graded notebook and feedback stay small)
repoint            answers a written question and gives it 100 points (restored, reported; it waits for
                   the instructor)
ungrade            answers a written question and removes its grade flag (repaired, reported; it waits)
broken             not a notebook: "not graded: <reason>" in the summary and the export
=================  =====================================================================================

Written answers are graded by hand: the export's scores are the autograded points, and the summary lists
every answered written question as waiting for the instructor (honest's model answers included).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from nstlab import course
from nstlab.course import sandbox

from conftest import copy_course

pytestmark = pytest.mark.skipif(sandbox.sandbox_problem() is not None,
                                reason=f"no grading sandbox here: {sandbox.sandbox_problem()}")

A = "00-welcome"
TIMEOUT = 10  # seconds per cell while grading this batch
MARKER = "nstlab-detached-marker"


def _solution_code(nb, grade_id: str) -> str:
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return cell.source


WRITTEN = ["written_luminance_weights", "written_hidden_tests"]  # 00-welcome's written questions, in order


def _with(release, **bodies) -> nbformat.NotebookNode:
    """The release with the given exercises' bodies replaced (``grade_id=code``) and cells edited."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in bodies and cell.cell_type == "markdown":  # a written answer: the whole cell is the student's
            cell.source = bodies[gid]
        elif gid in bodies:
            body = "\n".join("    " + line for line in bodies[gid].strip("\n").splitlines())
            cell.source = cell.source.replace("    # YOUR CODE HERE\n    raise NotImplementedError()", body)
    return nb


RIGHT_A2T = """
x = torch.from_numpy(array.astype(np.float32) / 255.0)
return x.permute(2, 0, 1).unsqueeze(0)
"""
RIGHT_LUM = """
w = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
return (image * w).sum(dim=1, keepdim=True)
"""
WRONG_LUM = "return image.mean(dim=1, keepdim=True)"


@dataclass
class Batch:
    root: Path
    summary: str
    scores: dict[str, float]
    status: dict[str, str]
    notes: dict[str, str]
    reports: dict[str, object]
    before: dict[str, str]  # file -> sha256 of the course files student code must not change
    honest_bytes: bytes
    connections: list
    feedback: dict[str, str]  # student -> visible text of the feedback page
    seconds: float


def _digest(root: Path) -> dict[str, str]:
    files = [*root.glob("solutions/**/*"), *root.glob("course/source/*"), *root.glob("notebooks/**/*"),
             root / "course" / "nbgrader_config.py"]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def _submissions(root: Path, port: int) -> dict[str, object]:
    release = nbformat.read(root / "notebooks" / A / f"{A}.ipynb", as_version=4)
    solution = nbformat.read(root / "solutions" / A / f"{A}.ipynb", as_version=4)
    honest_file = root / "course" / "submitted" / "honest" / A / f"{A}.ipynb"
    gradebook = root / "course" / "gradebook.db"
    right = {"array_to_tensor": RIGHT_A2T, "luminance": RIGHT_LUM}
    subs: dict[str, object] = {
        "honest": solution,
        "half": _with(release, array_to_tensor=RIGHT_A2T, luminance=WRONG_LUM),
        "blank": release,
        "overwriter": _with(release, array_to_tensor=f"""
import sqlite3
for target in [{str(honest_file)!r}, "../honest/{A}/{A}.ipynb", "../../honest/{A}/{A}.ipynb"]:
    try:
        open(target, "w").write("overwritten")
        print("WROTE", target)
    except OSError as err:
        print("blocked:", type(err).__name__)
try:
    db = sqlite3.connect({str(gradebook)!r})
    db.execute("CREATE TABLE pwned (x)")
    db.execute("UPDATE grade SET auto_score = 0")
    db.commit()
    print("WROTE gradebook")
except Exception as err:
    print("blocked:", type(err).__name__)
return None
"""),
        "deleter": _with(release, array_to_tensor=f"""
import shutil, os
shutil.rmtree({str(root / "solutions")!r}, ignore_errors=True)
for f in [{str(root / "course" / "source" / f"{A}.py")!r}, {str(root / "course" / "nbgrader_config.py")!r}]:
    try:
        os.remove(f)
        print("DELETED", f)
    except OSError as err:
        print("blocked:", type(err).__name__)
return None
"""),
        "reader": _with(release, array_to_tensor=f"""
import glob, os
found = []
for pattern in [{str(root / "solutions" / "**" / "*.ipynb")!r}, {str(root / "course" / "source" / "*.py")!r},
                "*.ipynb", "../**/*.ipynb", "/tmp/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            if "BEGIN HIDDEN TESTS" in open(path).read() or "HIDDEN" in open(path).read():
                found.append(path)
        except OSError:
            pass
print("HIDDEN FOUND" if found else "no hidden tests visible", found)
return None
"""),
        "detached": _with(release, array_to_tensor=f"""
import subprocess
subprocess.Popen(["setsid", "sh", "-c", "exec -a {MARKER} sleep 600"])
return None
""", luminance=RIGHT_LUM),
        "network": _with(release, array_to_tensor=f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"leak")
    print("CONNECTED")
except OSError as err:
    print("blocked:", type(err).__name__)
return None
""", luminance=RIGHT_LUM),
        "hog": _with(release, array_to_tensor="""
hog = bytearray(64 * 2**30)  # 64 GiB: more than this machine has
return hog
""", luminance=RIGHT_LUM),
        "forker": _with(release, array_to_tensor="""
import subprocess
started = []
try:
    for _ in range(300):
        started.append(subprocess.Popen(["sleep", "60"]))
except OSError as err:
    print("stopped after", len(started), type(err).__name__)
print("STARTED", len(started))
return None
""", luminance=RIGHT_LUM),
        "reassign": _with(release, array_to_tensor="""
for name in ("check_close", "check_shape", "check_dtype", "check_type", "check_true"):
    setattr(checks, name, lambda *a, **k: None)
checks.check_close = lambda *a, **k: None
checks.CheckFailed._render_traceback_ = None  # IPython then shows no error output for a failed check
return None
""", luminance="""
checks.check_close = checks.check_shape = lambda *a, **k: None
return image[:, :1] * 0
"""),
        "subclass": _with(release, array_to_tensor="""
class Always(torch.Tensor):
    def __eq__(self, other):
        return True
    __ne__ = lambda self, other: False
return torch.zeros(1, 3, *array.shape[:2]).as_subclass(Always)
""", luminance="""
class Always(torch.Tensor):
    def __eq__(self, other):
        return True
return torch.zeros(image.shape[0], 1, *image.shape[2:]).as_subclass(Always)
"""),
        "reference": _with(release, array_to_tensor=RIGHT_A2T, luminance="return images.luminance(image)"),
        "swallow": _with(release, array_to_tensor="""
import time
while True:
    try:
        time.sleep(0.1)
    except KeyboardInterrupt:
        pass
""", luminance=RIGHT_LUM),
        "exit": _with(release, array_to_tensor="""
import os
os._exit(3)
""", luminance=RIGHT_LUM),
        "damaged": _with(release, **right),
        "tamper": _with(release, array_to_tensor="return None", luminance=RIGHT_LUM),
        "huge": _with(release, array_to_tensor="print('x' * 20_000_000)\n" + RIGHT_A2T, luminance=RIGHT_LUM),
        "repoint": _with(release, written_luminance_weights="They sum to 1."),
        "ungrade": _with(release, written_hidden_tests="A hard-coded answer."),
        "broken": "{ this is not a notebook",
    }
    for student, grade_id, change in (("repoint", "written_luminance_weights", {"points": 100}),
                                      ("ungrade", "written_hidden_tests", {"grade": False})):
        cell = next(c for c in subs[student].cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        cell.metadata["nbgrader"].update(change)
    damaged = subs["damaged"]
    check = next(c for c in damaged.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "check_luminance")
    check.metadata["nbgrader"] = {"grade": "yes", "points": "lots"}  # invalid: would fail validation
    tamper = subs["tamper"]
    for cell in tamper.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "check_array_to_tensor":
            cell.source = "checks.passed('array_to_tensor')"
    return subs


def _serve(port_holder: list, connections: list, stop: threading.Event) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port_holder.append(server.getsockname()[1])
    while not stop.is_set():
        try:
            conn, _ = server.accept()
            connections.append(conn.recv(100))
            conn.close()
        except OSError:
            pass
    server.close()


def _visible_text(page: str) -> str:
    import html

    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S | re.I)  # stylesheets name "Traceback"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    root = copy_course(tmp_path_factory.mktemp("integrity") / "repo")
    course.generate([A], root=root, quiet=True)
    connections: list = []
    port: list = []
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(port, connections, stop), daemon=True)
    server.start()
    while not port:
        time.sleep(0.01)
    # The server answers this machine: a connection from the grader itself arrives (so a silent one would
    # mean the sandbox blocked it, not that the server was deaf).
    socket.create_connection(("127.0.0.1", port[0]), timeout=3).sendall(b"grader")
    for student, content in _submissions(root, port[0]).items():
        folder = root / "course" / "submitted" / student / A
        folder.mkdir(parents=True)
        if isinstance(content, str):
            (folder / f"{A}.ipynb").write_text(content)
        else:
            nbformat.write(content, folder / f"{A}.ipynb")
    before = _digest(root)
    honest_bytes = (root / "course" / "submitted" / "honest" / A / f"{A}.ipynb").read_bytes()
    start = time.perf_counter()
    done = course.autograde(A, root=root, timeout=TIMEOUT, jobs=2, quiet=True)
    seconds = time.perf_counter() - start
    time.sleep(1)
    stop.set()
    course.feedback(A, root=root, quiet=True)
    export = course.export(root / "grades.csv", root=root, quiet=True)
    with export.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["assignment"] == A]
    feedback = {}
    for page in (root / "course" / "feedback").glob(f"*/{A}/{A}.html"):
        feedback[page.parent.parent.name] = _visible_text(page.read_text())
    print(f"\n{done.summary()}\nbatch of {len(done.reports)} graded in {seconds:.0f} s")
    return Batch(root, done.summary(), {r["student_id"]: float(r["score"] or "nan") for r in rows},
                 {r["student_id"]: r["status"] for r in rows}, {r["student_id"]: r["notes"] for r in rows},
                 {r.student: r for r in done.reports}, before, honest_bytes, connections[1:], feedback, seconds)


def _outputs(batch: Batch, student: str) -> str:
    nb = nbformat.read(batch.root / "course" / "autograded" / student / A / f"{A}.ipynb", as_version=4)
    return "\n".join(o.get("text", "") + str(o.get("ename", "")) + str(o.get("evalue", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.parametrize("student, expected", [
    ("honest", 4), ("half", 2), ("blank", 0), ("damaged", 4), ("huge", 4), ("hog", 2), ("swallow", 2),
    ("exit", 2), ("detached", 2), ("network", 2), ("forker", 2), ("reference", 2), ("tamper", 2),
    ("reassign", 0), ("subclass", 0), ("overwriter", 0), ("deleter", 0), ("reader", 0), ("repoint", 0),
    ("ungrade", 0),
])
def test_every_graded_student_gets_exactly_the_points_their_answers_earn(batch: Batch, student, expected):
    assert batch.status[student] in ("graded", "flagged"), batch.summary
    assert batch.scores[student] == expected, f"{student}: {batch.scores[student]}\n{batch.summary}"


def test_student_code_cannot_touch_the_course_or_other_submissions(batch: Batch):
    """Solutions, sources, release and config are byte for byte as before; honest's file is untouched."""
    assert _digest(batch.root) == batch.before
    assert (batch.root / "course" / "submitted" / "honest" / A / f"{A}.ipynb").read_bytes() == batch.honest_bytes
    for student in ("overwriter", "deleter"):
        text = _outputs(batch, student)
        assert "WROTE" not in text and "DELETED" not in text and "blocked" in text, text[:500]


def test_student_code_cannot_write_the_gradebook(batch: Batch):
    import sqlite3

    with sqlite3.connect(batch.root / "course" / "gradebook.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "pwned" not in tables
    assert "WROTE gradebook" not in _outputs(batch, "overwriter")


def test_hidden_tests_are_not_readable_from_the_kernel(batch: Batch):
    text = _outputs(batch, "reader")
    assert "no hidden tests visible" in text and "HIDDEN FOUND" not in text, text[:500]


def test_no_connection_leaves_the_sandbox(batch: Batch):
    assert batch.connections == []
    assert "CONNECTED" not in _outputs(batch, "network")


def test_processes_are_limited_and_none_outlives_grading(batch: Batch):
    started = int(re.search(r"STARTED (\d+)", _outputs(batch, "forker"))[1])
    assert started < sandbox.Limits().processes
    leftovers = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "a detached process outlived its kernel"


def test_a_memory_hog_is_stopped_by_the_limit(batch: Batch):
    assert "MemoryError" in _outputs(batch, "hog")


def test_a_dead_or_deaf_kernel_costs_only_its_cells_and_is_reported(batch: Batch):
    for student in ("exit", "swallow"):
        kinds = [e["kind"] for e in batch.reports[student].events]
        assert "kernel" in kinds, batch.reports[student].events
        assert batch.status[student] == "flagged"


def test_damaged_metadata_is_repaired_and_reported(batch: Batch):
    assert any(e["kind"] == "repaired" for e in batch.reports["damaged"].events)


def test_only_really_edited_locked_cells_are_reported(batch: Batch):
    """The untouched release reports nothing; the edited check cell is named."""
    assert not [e for e in batch.reports["blank"].events if e["kind"] == "tampered"]
    assert not [e for e in batch.reports["honest"].events if e["kind"] == "tampered"]
    assert any("check_array_to_tensor" in e["message"] for e in batch.reports["tamper"].events
               if e["kind"] == "tampered")
    assert "check_array_to_tensor" in batch.notes["tamper"]


def test_the_library_reference_scores_zero_with_the_reason_in_the_feedback(batch: Batch):
    assert any(e["kind"] == "policy" for e in batch.reports["reference"].events)
    assert "write it yourself" in batch.feedback["reference"]


def test_attempts_on_the_grader_are_flagged(batch: Batch):
    for student in ("reassign", "subclass"):
        assert batch.status[student] == "flagged", batch.summary


def test_huge_output_is_capped_in_the_graded_notebook_and_the_feedback(batch: Batch):
    graded = batch.root / "course" / "autograded" / "huge" / A / f"{A}.ipynb"
    page = batch.root / "course" / "feedback" / "huge" / A / f"{A}.html"
    assert graded.stat().st_size < 2_000_000
    assert page.stat().st_size < 2_000_000


def test_the_unreadable_submission_is_reported_not_zeroed(batch: Batch):
    assert batch.status["broken"].startswith("not graded: ")
    assert "not a readable notebook" in batch.status["broken"]
    assert math_isnan(batch.scores["broken"])
    assert "not graded  broken" in batch.summary


def math_isnan(x: float) -> bool:
    return x != x


def test_feedback_shows_no_hidden_test_source_and_no_path_of_the_grading_machine(batch: Batch):
    solution = nbformat.read(batch.root / "solutions" / A / f"{A}.ipynb", 4)
    hidden = [ln.strip() for c in solution.cells if "### BEGIN HIDDEN TESTS" in c.source
              for ln in c.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].splitlines()
              if len(ln.strip()) > 20]
    visible = " ".join(" ".join(c.source.split("### BEGIN HIDDEN TESTS")[0].split()) for c in solution.cells)
    hidden = [line for line in hidden if " ".join(line.split()) not in visible]  # repeated visible code is no secret
    assert hidden
    paths = [str(batch.root), str(Path(sys.prefix)), str(Path(course.__file__).resolve().parents[1]), "/tmp/",
             os.path.expanduser("~") + "/"]
    assert len(batch.feedback) >= 15
    for student, text in batch.feedback.items():
        leaked = [line for line in hidden if " ".join(line.split()) in text]
        assert not leaked, f"{student}: hidden test lines in feedback: {leaked[:2]}"
        own = batch.root / "course" / "submitted" / student / A / f"{A}.ipynb"
        for cell in nbformat.read(own, as_version=4).cells:  # a student's own code may name any path
            text = text.replace(" ".join(cell.source.split()), "")
        shown = [p for p in paths if p in text]
        assert not shown, f"{student}: feedback shows {shown}"
        assert "Traceback" not in text and "checks.py" not in text


def test_the_class_was_executed_in_parallel_jobs_and_recorded_by_one_process(batch: Batch):
    """With --jobs 2 every submission ran in a parallel job; the final nbgrader run only recorded grades."""
    executed = {r.student: r.executed for r in batch.reports.values() if r.status == "graded"}
    assert set(executed.values()) == {"parallel job"}, executed


def test_autograde_summary_counts_graded_failed_and_flagged(batch: Batch):
    first = batch.summary.splitlines()[0]
    assert "21 submissions" in first and "20 graded, 1 not graded" in first


def test_a_student_cannot_grade_their_own_written_answer(batch: Batch):
    """A written cell given 100 points, or no grade flag, is restored and flagged like any other tampering;
    the answer still waits for the instructor, with the release's points."""
    assert any(e["kind"] == "tampered" and "written_luminance_weights" in e["message"] and "points" in e["message"]
               for e in batch.reports["repoint"].events), batch.reports["repoint"].events
    assert any(e["kind"] == "repaired" and "written_hidden_tests" in e["message"]
               for e in batch.reports["ungrade"].events), batch.reports["ungrade"].events
    assert batch.status["repoint"] == "flagged" and batch.status["ungrade"] == "flagged"
    assert "by hand     repoint: written_luminance_weights" in batch.summary
    assert "by hand     ungrade: written_hidden_tests" in batch.summary
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{batch.root / 'course' / 'gradebook.db'}") as db:
        grade = db.find_grade("written_luminance_weights", A, A, "repoint")
        assert grade.max_score == 1 and grade.auto_score is None and grade.needs_manual_grade


def test_the_summary_leaves_answered_written_questions_to_the_instructor(batch: Batch):
    """honest's model answers wait for grading by hand; blank's unanswered ones are 0 and do not wait."""
    assert f"by hand     honest: {', '.join(WRITTEN)}" in batch.summary, batch.summary
    assert "by hand     blank" not in batch.summary
    assert "await grading by hand" in batch.summary and "Formgrader" in batch.summary
