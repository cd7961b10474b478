"""The ``nstlab`` command: help, the environment doctor, and ``nstlab lab`` serving the course."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_helpers import lab_environment

from nstlab.cli import main


def _run(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nstlab.cli", *args], cwd=cwd, text=True, capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "course", "lab"):
        assert command in out


def test_help_does_not_load_torch_or_nbformat():
    """`nstlab --help` answers at once: the heavy libraries load only when a command runs."""
    code = ("import sys; from nstlab.cli import build_parser; build_parser(); "
            "print(' '.join(m for m in ('torch', 'torchvision', 'nbformat', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True, check=True).stdout
    assert out.strip() == "", f"building the parser imported {out.strip()}"


def test_the_clis_choices_match_the_library():
    """The parser's copies of the library's names (kept so that help needs no torch) agree with the library."""
    from nstlab.cli import stylize as cli_stylize
    from nstlab.cli import weights as cli_weights
    from nstlab.stylize import INITS, OPTIMIZERS, PRESETS
    from nstlab.weights import ARCHS

    assert cli_weights.ARCHS == ARCHS
    assert set(cli_stylize.PRESET_NAMES) == set(PRESETS)
    parser = cli_stylize.add_parser(argparse.ArgumentParser().add_subparsers())
    choices = {a.dest: a.choices for a in parser._actions if a.choices}
    assert tuple(choices["init"]) == INITS and tuple(choices["optimizer"]) == OPTIMIZERS


def test_no_command_prints_help_and_succeeds(capsys):
    assert main([]) == 0
    assert "usage: nstlab" in capsys.readouterr().out


def test_doctor_reports_a_healthy_environment():
    result = _run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("python", "torch", "torchvision", "device", "profile", "nbgrader", "widgets"):
        assert any(line.split()[1:2] == [component] for line in result.stdout.splitlines()), component
    assert "compiled operators work" in result.stdout
    assert "healthy" in result.stdout


def test_doctor_fails_with_the_fix_when_torchvision_cannot_load_its_operators(tmp_path: Path):
    """A torchvision built for another torch fails like this on import; doctor must say so and exit 1."""
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n', encoding="utf-8"
    )
    result = _run("doctor", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "torchvision::nms does not exist" in result.stdout
    assert "reinstall a matching pair" in result.stdout
    assert "broken (torchvision" in result.stderr and "Traceback" not in result.stderr


def test_doctor_fails_on_an_unknown_profile_name():
    result = _run("doctor", env={"NSTLAB_PROFILE": "turbo"})
    assert result.returncode == 1
    assert "turbo" in result.stdout and "fast, full or grade" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_lab_serves_the_course_with_the_students_work_folder(course_copy: Path, tmp_path: Path):
    """`nstlab lab` (what `make lab` runs) copies the notebooks into work/ and serves them beside the course."""
    port, token = _free_port(), "nstlab-test-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "nstlab.cli", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}"],
        cwd=course_copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=lab_environment(tmp_path),
    )
    try:
        listing = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/api/contents/work?token={token}")
                listing = json.loads(body)
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, f"JupyterLab did not answer: {server.stdout.read() if server.poll() is not None else ''}"
        assert "00-welcome" in {item["name"] for item in listing["content"]}
        status, body = _get(f"http://127.0.0.1:{port}/api/contents?token={token}")
        top = {item["name"] for item in json.loads(body)["content"]}
        assert {"work", "notebooks", "course"} <= top
        status, page = _get(f"http://127.0.0.1:{port}/lab/tree/work?token={token}")
        assert status == 200 and b"JupyterLab" in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert (course_copy / "work" / "00-welcome" / "00-welcome.ipynb").is_file()
