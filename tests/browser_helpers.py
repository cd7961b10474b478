"""What the browser tests share: Debian's Chromium, flags for running it headless and offline, free ports."""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "needs a Chromium browser (apt-get install chromium)"

# Flags for a root, offline, headless Chromium: no sandbox (root), no background calls to the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# Chromium that cannot reach the network: every host name but the local ones fails to resolve. Use it rather
# than Playwright's request routing where a page's last requests matter: a routed request waits for the test's
# answer, and the beacon a page sends as it closes (Voila's kernel shutdown) is then held until the browser exits.
OFFLINE_CHROMIUM_ARGS = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_environment(home: Path) -> dict[str, str]:
    """The environment a test's `nstlab lab` runs in: its configuration and JupyterLab's workspaces in ``home``.

    JupyterLab saves the open tabs to a workspace file in the user's home and reopens them at the next start, so
    a lab that shares it opens whatever an earlier test left open (00-welcome beside the notebook under test).
    """
    return {**os.environ, "XDG_CACHE_HOME": str(home / "cache"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}


def wait_for_http(url: str, *, timeout: float = 90) -> bool:
    """Poll ``url`` until it answers (any status below 500); whether it did within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


# --- Opening an exported HTML page with no network ----------------------------------------------------------

# What MathJax 2 leaves in the page once a formula is typeset (MathML output).
TYPESET = ".MathJax_MathML math"
# MathJax has finished: its queue is empty and the startup is over.
DONE_JS = "() => window.MathJax && MathJax.Hub && MathJax.isReady && MathJax.Hub.queue.pending === 0"


def open_offline(html: Path) -> dict:
    """Open ``html`` from disk in headless Chromium, refusing every request that is not for a local file.

    Returns what the page showed: ``typeset`` (number of typeset formulae), ``text`` (the page's text),
    ``requests`` (every URL asked for), ``errors`` (console errors and failed requests), ``bold`` (the
    font weight of each symbol set in bold) and ``untypeset`` (text of markdown that still shows TeX).
    """
    from playwright.sync_api import sync_playwright

    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            # Everything goes through here: a request for anything but a file:// URL is recorded and refused.
            context.route("**/*", lambda route: (requests.append(route.request.url),
                                                 route.continue_() if route.request.url.startswith("file://")
                                                 else route.abort()))
            page = context.new_page()
            page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
            page.on("requestfailed", lambda req: errors.append(f"{req.url}: {req.failure}"))
            page.goto(html.resolve().as_uri())
            page.wait_for_function(DONE_JS, timeout=60_000)
            typeset = page.locator(TYPESET).count()
            bold = page.eval_on_selector_all(f"{TYPESET} [mathvariant^=bold]",
                                             "els => els.map(e => getComputedStyle(e).fontWeight)")
            text = page.inner_text("body")
            # Markdown text that still holds a TeX delimiter: a formula MathJax left alone.
            untypeset = page.eval_on_selector_all(
                ".jp-MarkdownOutput, .text_cell_render",
                r"els => els.map(e => e.innerText).filter(t => /\$|\\\(|\\\[|\\begin\{/.test(t))")
        finally:
            browser.close()
    return {"typeset": typeset, "text": text, "requests": requests, "errors": errors, "bold": bold,
            "untypeset": untypeset}


# --- Driving a lecture page served by `nstlab present` -----------------------------------------------------

# A demo on a lecture page: a widget box that is a cell's whole output.
DEMO_SELECTOR = ".jp-OutputArea-output > .widget-vbox"

# What a demo shows, as one string: a digest of every image's bytes and the text of every HTML widget. Image
# bytes, not image URLs, since ipywidgets makes a new blob URL even for the same picture.
DEMO_STATE_JS = """async (demo) => {
  const parts = [];
  for (const img of demo.querySelectorAll('img')) {
    if (!img.src) { parts.push('-'); continue; }
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    parts.push(Array.from(digest.slice(0, 8)).join('.'));
  }
  for (const html of demo.querySelectorAll('.widget-html-content')) parts.push(html.innerText);
  return parts.join('|');
}"""

# Every image on the page that is shown and has loaded: a broken image has naturalWidth 0.
IMAGES_LOADED_JS = """(selector) => {
  const demos = Array.from(document.querySelectorAll(selector));
  return demos.length > 0 && demos.every(d => {
    const shown = Array.from(d.querySelectorAll('img')).filter(i => i.offsetParent !== null);
    return shown.length > 0 && shown.every(i => i.complete && i.naturalWidth > 0);
  });
}"""


def demo_state(demo) -> str:
    """What a demo (a Playwright element handle) shows now, see :data:`DEMO_STATE_JS`."""
    return demo.evaluate(DEMO_STATE_JS)


def operate(page, demo, control: tuple) -> None:
    """Move one control of ``demo``: ``("button", text)`` clicks it, ``("select", label)`` picks the next
    option of a dropdown (``("select", label, value)`` that option), ``("slider", label)`` presses the right
    arrow on the slider's handle."""
    kind, label, *value = control
    if kind == "button":
        demo.query_selector(f"button:has-text('{label}')").click()
    elif kind == "select":
        select = demo.query_selector(f".widget-dropdown:has(label:text-is('{label}')) select")
        options = select.evaluate("s => Array.from(s.options).map(o => o.value)")
        current = select.evaluate("s => s.value")
        select.select_option(value[0] if value else options[(options.index(current) + 1) % len(options)])
    elif kind == "slider":
        handle = demo.query_selector(f".widget-slider:has(label:text-is('{label}')) .noUi-handle")
        handle.focus()
        page.keyboard.press("ArrowRight")
    else:
        raise ValueError(f"unknown control kind {kind!r}")


def wait_for_change(demo, before: str, *, timeout: float = 60) -> float:
    """Seconds until ``demo`` shows something other than ``before``; ``inf`` if it did not within ``timeout``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if demo_state(demo) != before:
            return time.perf_counter() - start
        time.sleep(0.02)
    return float("inf")


def kernel_processes(kernel_id: str) -> list[int]:
    """Process ids whose command line names the kernel ``kernel_id`` (its connection file)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if kernel_id.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
