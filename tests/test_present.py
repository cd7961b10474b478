"""Lecture mode: `nstlab present` serves each lecture through Voilà, and a real (headless) Chromium checks it.

For every lecture in course/lectures/: every demo renders (no broken image), no code is shown, moving one
control of each demo changes what it shows, no request leaves the machine, and the page's kernel is gone once
the page is closed. The lectures run in the ``grade`` profile (small widgets) on tiny grids made by
`nstlab present --prepare` in a private cache (and two tiny fast-style networks trained for the test). Browser tests need Debian's ``chromium`` and are skipped with a
reason without it; the command's own errors are checked without a browser.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from browser_helpers import (
    CHROMIUM,
    DEMO_SELECTOR,
    IMAGES_LOADED_JS,
    NO_CHROMIUM,
    OFFLINE_CHROMIUM_ARGS,
    demo_state,
    free_port,
    kernel_processes,
    operate,
    wait_for_change,
)

from nstlab.cli import main
from nstlab.present import find_lecture, list_lectures
from nstlab.present.server import voila_command

from conftest import ROOT

LECTURES = list_lectures(ROOT)
# One control per demo, in the order the demos appear in each lecture (see browser_helpers.operate).
DEMOS = {
    "part1-perceptron-to-backprop": [("button", "step"), ("slider", "η"), ("button", "next stage")],
    "part2-convolution-and-features": [("select", "kernel"), ("select", "layer")],
    "part3-style-transfer": [("button", "noise")],
    "part4-fast-style": [("select", "photo")],
    "part5-dreams-and-statistics": [("select", "layer")],
}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TRAIN_FAST_MODELS = """
from nstlab import fast
from nstlab.weights import untrained_backbone
from nstlab.widgets.fast_slider import DEFAULT_STYLES, MODEL_SUFFIX
folder = fast.default_models_dir()
folder.mkdir(parents=True, exist_ok=True)
for style in DEFAULT_STYLES:
    result = fast.train(style, None, fast.fast_config("grade", steps=2), backbone=untrained_backbone("vgg16"),
                        progress=False)
    fast.save_model(result.model, folder / f"{style}{MODEL_SUFFIX}")
"""
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


def _leaves_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob", "about") and parts.hostname not in LOCAL_HOSTS


@pytest.fixture(scope="module")
def lecture_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a lecture server: the grade profile, and a private torch cache holding the tiny
    grids of the style panel and the dream explorer, made by `nstlab present --prepare` (checked in
    test_prepare_...)."""
    env = dict(os.environ, NSTLAB_PROFILE="grade", TORCH_HOME=str(tmp_path_factory.mktemp("torch_home")))
    # The fast-style lecture's default styles need pretrained VGG16 to be prepared, which tests do not have:
    # train them here, tiny and against the untrained stand-in, where --prepare then finds them.
    subprocess.run([sys.executable, "-c", TRAIN_FAST_MODELS], cwd=ROOT, env=env, check=True, timeout=300)
    done = subprocess.run([sys.executable, "-m", "nstlab.cli", "present", "--prepare"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    env["_PREPARE_OUTPUT"] = done.stdout + done.stderr
    assert done.returncode == 0, env["_PREPARE_OUTPUT"]
    return env


def test_every_lecture_is_committed_without_outputs_and_sets_the_projector_theme():
    assert LECTURES == sorted(DEMOS), "every lecture needs its demos' controls listed in DEMOS"
    for name in LECTURES:
        nb = nbformat.read(ROOT / "course" / "lectures" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert "projector_theme()" in code[0].source, name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name


def test_prepare_builds_the_lectures_grids_each_with_an_estimate_first(lecture_env):
    out = lecture_env["_PREPARE_OUTPUT"]
    assert out.index("style panel: 8 images") < out.index("style_panel: ready at") and "about" in out
    assert "dream_explorer: ready at" in out and "fast_slider: ready at" in out
    for folder in ("style_grid", "dream_grid"):
        grids = list(Path(lecture_env["TORCH_HOME"]).rglob(f"{folder}/*.pt"))
        assert len(grids) == 1 and str(grids[0]) in out, folder


def test_prepare_finds_each_lectures_demos_from_its_imports(capsys):
    from nstlab.present.prepare import lecture_demos

    part1 = lecture_demos([ROOT / "course" / "lectures" / "part1-perceptron-to-backprop.ipynb"])
    assert part1 == [f"nstlab.widgets.{m}" for m in ("perceptron_stepper", "gd_explorer", "backprop_stepper")]
    assert main(["present", "part1", "--prepare"]) == 0
    assert "nothing to prepare" in capsys.readouterr().out


def test_prepare_says_which_demo_it_could_not_prepare_and_how_to_fix_it(tmp_path):
    """Offline with no pretrained VGG16, the fast-style networks cannot be trained: --prepare says so on one
    line with the remedies and exits 1, instead of a traceback."""
    env = dict(os.environ, NSTLAB_PROFILE="grade", TORCH_HOME=str(tmp_path), NSTLAB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "nstlab.cli", "present", "part4", "--prepare"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("fast_slider: not prepared:"))
    assert "vgg16" in line and "nstlab weights import" in line


def test_a_taken_port_is_one_line_naming_a_free_one(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["present", "--no-browser", f"--port={port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"port {port} is already in use" in err and "--port " in err


def test_missing_voila_is_one_line_with_the_install_command():
    code = ("import sys; sys.modules['voila'] = None\n"  # as if Voilà were not installed
            "from nstlab.cli import main; sys.exit(main(['present', '--no-browser']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Voilà is not installed" in done.stderr and "pip install 'voila" in done.stderr


def test_lectures_are_found_by_a_unique_beginning_and_unknown_names_list_them(capsys):
    assert find_lecture(ROOT, "part2") == "part2-convolution-and-features"
    assert main(["present", "nonsense", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert "no lecture 'nonsense'" in err and all(name in err for name in LECTURES)


def test_voila_serves_only_this_machine_with_the_offline_template():
    cmd = voila_command(ROOT / "course" / "lectures", port=8866)
    assert "--Voila.ip=127.0.0.1" in cmd and "--template=nstlab" in cmd and "--strip_sources=True" in cmd


@pytest.fixture
def served(request, lecture_env, tmp_path):
    """`nstlab present [LECTURE] --no-browser` on a free port; yields (the page's URL, the server's log)."""
    lecture, port, log = request.param, free_port(), tmp_path / "present.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "nstlab.cli", "present", *([lecture] if lecture else []),
                                   "--no-browser", f"--port={port}"], cwd=ROOT, env=lecture_env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline and server.poll() is None:
            for line in log.read_text().splitlines():
                if line.startswith(f"lecture {lecture} at http" if lecture else "lectures at http"):
                    url = line.split(" at ", 1)[1].split()[0]
            time.sleep(0.2)
        assert url, log.read_text()
        yield url, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize("served", LECTURES, indirect=True)
def test_lecture_renders_answers_every_demo_stays_offline_and_frees_its_kernel(served, tmp_path):
    from playwright.sync_api import sync_playwright

    url, log = served
    lecture = url.rsplit("/", 1)[1].removesuffix(".ipynb")
    controls = DEMOS[lecture]
    requests: list[str] = []
    with sync_playwright() as p:
        # Every request is recorded; names other than the local ones do not resolve, so the test itself never
        # reaches the network (not by routing requests, which would hold back the page's shutdown beacon).
        browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.on("request", lambda r: requests.append(r.url))
        context.on("websocket", lambda ws: requests.append(ws.url))
        page = context.new_page()
        try:
            page.goto(url, timeout=120_000)
            page.wait_for_function(f"n => document.querySelectorAll('{DEMO_SELECTOR}').length >= n",
                                   arg=len(controls), timeout=180_000)
            page.wait_for_function(IMAGES_LOADED_JS, arg=DEMO_SELECTOR, timeout=60_000)
            demos = page.query_selector_all(DEMO_SELECTOR)
            assert len(demos) == len(controls), f"{len(demos)} demos rendered, expected {len(controls)}"
            text = page.inner_text("body")
            assert not page.query_selector(".jp-CodeCell .jp-InputArea-editor, .cm-editor"), "code is shown"
            assert "import " not in text and "projector_theme" not in text and "(size=" not in text
            assert "Traceback" not in text, text[:2000]
            stderr = page.query_selector_all("[data-mime-type='application/vnd.jupyter.stderr']")
            assert not stderr, [e.inner_text()[:300] for e in stderr]
            for demo, control in zip(demos, controls, strict=True):
                before = demo_state(demo)
                operate(page, demo, control)
                assert wait_for_change(demo, before) < float("inf"), f"{control} changed nothing"
            kernel_id = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
            assert kernel_processes(kernel_id), "the page's kernel process was not found"
        finally:
            page.screenshot(path=str(tmp_path / f"{lecture}.png"))
        page.close(run_before_unload=True)
        deadline = time.monotonic() + 30
        while kernel_processes(kernel_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    assert not kernel_processes(kernel_id), "the kernel outlived its page:\n" + log.read_text()[-2000:]
    assert f"Kernel shutdown: {kernel_id}" in log.read_text()
    outside = sorted({u for u in requests if _leaves_machine(u)})
    assert not outside, f"requests that left the machine: {outside}"
    assert requests, "no request was recorded at all"


@needs_chromium
@pytest.mark.parametrize("served", [None], indirect=True)
def test_without_a_lecture_the_page_lists_every_lecture_offline(served):
    from playwright.sync_api import sync_playwright

    url, _ = served
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_CHROMIUM_ARGS)
        context = browser.new_context()
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.goto(url, timeout=60_000)
        for name in LECTURES:
            page.get_by_text(f"{name}.ipynb").first.wait_for(timeout=60_000)
        browser.close()
    assert requests and not [u for u in requests if _leaves_machine(u)]
