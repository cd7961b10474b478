"""Shared fixtures: the repository, its assignments, throw-away copies of the course, one torch thread."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

# Tests never touch the network: pretrained-weight loading fails at once instead of probing for a connection.
# Set before anything runs, so notebooks executed by nbgrader in subprocesses inherit it too.
os.environ["NSTLAB_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted(p.stem for p in (ROOT / "course" / "source").glob("*.py"))


def copy_course(target: Path) -> Path:
    """Copy what nbgrader needs (config, sources, solutions, release) into ``target``; return it."""
    (target / "course").mkdir(parents=True)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", target / "course")
    shutil.copytree(ROOT / "course" / "source", target / "course" / "source")
    for folder in ("solutions", "notebooks"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, target / folder)
    return target


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    """A private copy of the course: grading it never touches the repository's course/ folder."""
    return copy_course(tmp_path / "repo")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as the notebooks use: on a busy 2-core machine two threads wait for each other on
    small tensors and run up to ten times slower. Restores torch's setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
