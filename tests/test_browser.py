"""What a lecturer sees: a lecture demo running in JupyterLab in a real (headless) Chromium.

`nstlab lab` serves the course; the browser opens a notebook, runs it, and clicks a widget's button; the
widget must render (the ipywidgets JupyterLab extension works) and answer the click through the kernel.
Needs Debian's ``chromium`` (CI installs it); skipped with a reason where no Chromium is installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, lab_environment, wait_for_http
from browser_helpers import free_port as _free_port

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


@pytest.fixture
def lab(course_copy: Path, tmp_path: Path):
    """A running `nstlab lab` on a private copy of the course; yields (base URL, token, course root)."""
    port, token = _free_port(), "nstlab-browser-test"
    server = subprocess.Popen(
        [sys.executable, "-m", "nstlab.cli", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}"],
        cwd=course_copy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=lab_environment(tmp_path),
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/api/status?token={token}")
    try:
        yield base, token, course_copy
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_perceptron_stepper_renders_and_answers_a_click_in_jupyterlab(lab, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from nstlab.widgets.perceptron_stepper import perceptron_stepper\nperceptron_stepper(gate='and')"
    )])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "work" / "demo.ipynb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{base}/lab/tree/work/demo.ipynb?token={token}", timeout=90_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected.
            page.get_by_text("| Idle").wait_for(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            epoch = page.get_by_role("button", name="epoch")
            epoch.wait_for(timeout=90_000)
            rendered = page.locator(".jp-OutputArea-output img")
            rendered.first.wait_for(timeout=30_000)
            before = page.locator(".widget-html").first.inner_text()
            epoch.click()
            page.wait_for_function(
                "before => document.querySelector('.widget-html').innerText !== before", arg=before, timeout=30_000
            )
            after = page.locator(".widget-html").first.inner_text()
        finally:
            page.screenshot(path=str(tmp_path / "lab.png"))
            browser.close()
    assert "epoch" in after.lower() and after != before, (before, after)
