"""What a student sees of nbgrader in `nstlab lab`: the Validate button, not the instructor's panels; and in
both labs, an HTML export from the lab's own menu command that typesets its formulae with no network.

The student lab is a real JupyterLab in a real (headless) Chromium; `nstlab lab --instructor` is the same lab
with nbgrader whole, which shows that the test sees the panels where they are. Needs Debian's ``chromium``
(CI installs it); skipped with a reason where no Chromium is installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NO_CHROMIUM,
    free_port,
    lab_environment,
    open_offline,
    wait_for_http,
)

from nstlab.cli import lab as cli_lab

TOKEN = "nstlab-student-lab-test"
NOTEBOOK = "work/00-welcome/00-welcome.ipynb"
# Which of the given commands the running JupyterLab has, once every plugin has started.
COMMANDS_JS = """async (ids) => {
  await window.jupyterapp.restored;
  return ids.filter(id => window.jupyterapp.commands.hasCommand(id));
}"""
INSTRUCTOR_COMMANDS = {"nbgrader:open-formgrader", "nbgrader:open-formgrader-local", "nbgrader:open-create-assignment",
                       "nbgrader:open-course-list", "nbgrader:open-assignment-list"}


def test_student_config_disables_only_the_instructor_plugins(tmp_path: Path):
    """The files JupyterLab and Jupyter Server read: instructor plugins off, Validate not mentioned (so on)."""
    folder = cli_lab.student_config(tmp_path / "config")
    page = json.loads((folder / "labconfig" / "page_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(cli_lab.INSTRUCTOR_PLUGINS)
    assert not any("validate" in name for name in page["disabledExtensions"])
    server = json.loads((folder / "jupyter_server_config.d" / "nstlab-student-lab.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == dict.fromkeys(cli_lab.INSTRUCTOR_SERVER_EXTENSIONS, False)


def test_both_labs_configure_the_html_export_to_inline_mathjax(tmp_path: Path):
    """The server setting the lab's export reads, and the template it points to, for students and instructors."""
    for student in (True, False):
        folder = cli_lab.lab_config(tmp_path / str(student), student=student)
        server = json.loads((folder / "jupyter_server_config.json").read_text())
        [templates] = server["HTMLExporter"]["extra_template_basedirs"]
        assert "MathJax 2.7, inlined" in (Path(templates) / "lab" / "mathjax.html.j2").read_text()
        assert (folder / "labconfig" / "page_config.json").exists() == student


def test_lab_environment_puts_the_student_config_first_and_keeps_the_users_paths(tmp_path: Path):
    env = cli_lab.lab_environment(tmp_path, {"JUPYTER_CONFIG_PATH": "/etc/site-jupyter", "HOME": "/home/a"})
    assert env["JUPYTER_CONFIG_PATH"] == os.pathsep.join([str(tmp_path), "/etc/site-jupyter"])
    assert env["HOME"] == "/home/a"
    assert "JUPYTER_CONFIG_PATH" not in cli_lab.lab_environment(None, {"HOME": "/home/a"})


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(params=["student", "instructor"])
def running_lab(request, course_copy: Path, tmp_path: Path):
    """`nstlab lab` (or `nstlab lab --instructor`) on a private copy of the course; yields (kind, base URL)."""
    port = free_port()
    options = ["--instructor"] if request.param == "instructor" else []
    server = subprocess.Popen(
        [sys.executable, "-m", "nstlab.cli", "lab", *options, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True"],
        cwd=course_copy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=lab_environment(tmp_path),  # the lab's configuration and open tabs stay in tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:  # the server is stopped even when it never answers
        assert wait_for_http(f"{base}/api/status?token={TOKEN}"), "JupyterLab did not answer within 90 s"
        yield request.param, base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: Jupyter still shutting its kernels down
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_student_lab_shows_validate_and_hides_nbgraders_instructor_panels(running_lab, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    kind, base = running_lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}", timeout=90_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            validate = page.locator(".jp-NotebookPanel-toolbar:visible").get_by_role("button", name="Validate")
            validate.wait_for(timeout=30_000)
            validates = validate.count()
            report = ""
            if kind == "student":  # Validate works there: it runs the blank release, whose checks fail
                validate.click()
                dialog = page.locator(".jp-Dialog")
                dialog.get_by_text("Validation Results").wait_for(timeout=180_000)
                report = dialog.inner_text()
                dialog.get_by_role("button").last.click()
            # Every command a plugin registered (the app is exposed to the page for this test); once the app
            # is restored, its menus and side bars are there too.
            commands = page.evaluate(COMMANDS_JS, list(INSTRUCTOR_COMMANDS))
            menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
            sidebars = " ".join(page.locator(".jp-SideBar").all_inner_texts())  # "Create Assignment" is a tab
        finally:
            page.screenshot(path=str(tmp_path / f"{kind}-lab.png"))
            browser.close()
    assert validates == 1
    # File > Save and Export Notebook As > HTML opens this URL of the lab's server, which answers with the page.
    exported = tmp_path / f"{kind}-export.html"
    with urllib.request.urlopen(f"{base}/nbconvert/html/{NOTEBOOK}?download=true&token={TOKEN}", timeout=120) as page:
        exported.write_bytes(page.read())
    seen = open_offline(exported)  # from disk, every request but the file refused
    assert seen["requests"] == [exported.resolve().as_uri()] and seen["errors"] == [], seen
    assert seen["typeset"] >= 5 and seen["untypeset"] == [], seen
    formgrader = _status(f"{base}/formgrader?token={TOKEN}")
    if kind == "student":
        assert "failed" in report and "NotImplementedError" in report, report
        assert "Nbgrader" not in menus, menus
        assert "Create Assignment" not in sidebars, sidebars
        assert commands == [], commands
        assert formgrader == 404
    else:  # the same checks see the panels where nbgrader is whole
        assert "Nbgrader" in menus, menus
        assert "Create Assignment" in sidebars, sidebars
        assert set(commands) == INSTRUCTOR_COMMANDS, commands
        assert formgrader == 200
