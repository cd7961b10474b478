"""The grading sandbox on its own, and autograde's refusal to grade without one unless told ``--unsafe``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nstlab import course
from nstlab.course import sandbox

NEEDS_SANDBOX = pytest.mark.skipif(sandbox.sandbox_problem() is not None,
                                   reason=f"no grading sandbox here: {sandbox.sandbox_problem()}")


@NEEDS_SANDBOX
def test_a_sandboxed_command_sees_its_folder_but_not_the_course_and_has_no_network(tmp_path: Path):
    work, runtime = tmp_path / "work", tmp_path / "runtime"
    work.mkdir()
    runtime.mkdir()
    (work / "mine.txt").write_text("mine")
    secret = Path(course.__file__).resolve().parents[2] / "course" / "nbgrader_config.py"
    probe = ("import os, socket\n"
             "print(open('mine.txt').read(), os.getcwd())\n"
             f"print('course visible' if os.path.exists({str(secret)!r}) else 'course hidden')\n"
             "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=2)\n"
             "except OSError as err:\n    print('no network', err.errno)\n")
    command = sandbox.wrap_command([sys.executable, "-c", probe], work=work, runtime=runtime,
                                   limits=sandbox.Limits(), uid=sandbox.FIRST_UID)
    if os.geteuid() == 0:
        os.chown(work, sandbox.FIRST_UID, sandbox.FIRST_UID)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"mine {sandbox.SANDBOX_WORK}" in result.stdout
    assert "course hidden" in result.stdout and "no network" in result.stdout


def test_the_private_copy_leaves_out_notebooks(tmp_path: Path):
    """The graded notebook holds the hidden tests; the kernel gets the folder without it."""
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "a.ipynb").write_text("{}")
    (folder / "data.csv").write_text("1,2")
    copy = sandbox.private_copy(folder, tmp_path / "copy")
    assert sorted(p.name for p in copy.iterdir()) == ["data.csv"]


def _generated_with_one_submission(course_copy: Path) -> Path:
    course.generate(["00-welcome"], root=course_copy, quiet=True)
    folder = course_copy / "course" / "submitted" / "alice" / "00-welcome"
    folder.mkdir(parents=True)
    solution = nbformat.read(course_copy / "solutions" / "00-welcome" / "00-welcome.ipynb", as_version=4)
    nbformat.write(solution, folder / "00-welcome.ipynb")
    return course_copy


def test_autograde_refuses_without_a_sandbox_and_grades_with_unsafe(course_copy: Path):
    """On a machine without bubblewrap (here: a PATH without it) autograde says why and what to do."""
    root = _generated_with_one_submission(course_copy)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "NSTLAB_COURSE_ROOT": str(root)}
    command = [sys.executable, "-m", "nstlab.cli", "course", "autograde", "00-welcome", "--timeout", "60"]
    refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode != 0
    assert "bubblewrap" in refused.stderr and "--unsafe" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (root / "course" / "autograded").exists()

    graded = subprocess.run([*command, "--unsafe"], capture_output=True, text=True, env=env, timeout=600)
    assert graded.returncode == 0, graded.stderr[-2000:]
    assert "1 graded, 0 not graded, 1 flagged" in graded.stdout
    assert "without the sandbox" in graded.stdout
    export = course.export(root / "grades.csv", root=root, quiet=True)
    with export.open(newline="") as f:
        row = next(csv.DictReader(f))
    # The solution's code earns all 4 autograded points; its 2 points of written answers wait for the instructor.
    assert (row["score"], row["max_score"], row["status"]) == ("4.0", "6.0", "flagged")
    assert "without the sandbox" in row["notes"]


@NEEDS_SANDBOX
@pytest.mark.parametrize("limit, code, expected", [
    ("file_mib", "open('big', 'wb').write(b'x' * (3 * 2**20))", "File too large"),
    ("cpu_seconds", "while True: pass", None),
    ("memory_mib", "bytearray(3 * 2**30)", "MemoryError"),
])
def test_each_resource_limit_stops_a_process_that_passes_it(tmp_path: Path, limit, code, expected):
    """File size and memory fail the offending call; CPU time ends the process (SIGXCPU, then SIGKILL)."""
    work, runtime = tmp_path / "work", tmp_path / "runtime"
    work.mkdir()
    runtime.mkdir()
    if os.geteuid() == 0:
        os.chown(work, sandbox.FIRST_UID, sandbox.FIRST_UID)
    limits = sandbox.Limits(**{limit: {"file_mib": 1, "cpu_seconds": 1, "memory_mib": 1024}[limit]})
    command = sandbox.wrap_command([sys.executable, "-c", code], work=work, runtime=runtime, limits=limits,
                                   uid=sandbox.FIRST_UID)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    if expected:
        assert expected in result.stderr, result.stderr[-500:]


@NEEDS_SANDBOX
def test_cached_weights_are_visible_read_only(tmp_path: Path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "vgg19.pth").write_bytes(b"weights")
    work, runtime = tmp_path / "work", tmp_path / "runtime"
    work.mkdir()
    runtime.mkdir()
    if os.geteuid() == 0:
        os.chown(work, sandbox.FIRST_UID, sandbox.FIRST_UID)
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(weights))
    probe = ("import os, pathlib\nd = pathlib.Path(os.environ['NSTLAB_WEIGHTS_DIR'])\n"
             "print((d / 'vgg19.pth').read_bytes())\n"
             "try:\n    (d / 'new').write_text('x')\nexcept OSError as err:\n    print('read-only', err.errno)\n")
    command = sandbox.wrap_command([sys.executable, "-c", probe], work=work, runtime=runtime,
                                   limits=sandbox.Limits(), uid=sandbox.FIRST_UID)
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert "b'weights'" in result.stdout and "read-only" in result.stdout, result.stderr[-500:]
    assert not (weights / "new").exists()
