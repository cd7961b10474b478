"""How long a lecturer waits in lecture mode: from `nstlab present` to the first demo, and for each control.

For each lecture: ``nstlab present LECTURE --prepare`` first (timed; instant once cached), then
``nstlab present LECTURE --no-browser`` is started and headless Chromium opens the lecture. Timed:

* server: from starting the command to its "lecture ... at URL" line (Voilà answering);
* first demo: from starting the command to the first demo on the page with its image loaded (the kernel
  started and the lecture's cells ran up to the first demo);
* all demos: to every demo of the lecture rendered;
* each control: from the browser's click (or key press, or option chosen) to the demo showing a different
  picture or text, median of ``--repeats`` changes after one untimed change; this includes the trip through
  the kernel and the browser decoding the new PNG.

CPU seconds are the kernel process's own (user + system), per change, next to wall time, since the machine
may be busy with other work; the load average is printed before and after each lecture.

Run:
    .venv/bin/python benchmarks/bench_present.py [--profile fast] [--repeats 5] [--torch-home DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the page-driving helpers the browser tests use

from browser_helpers import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DEMO_SELECTOR,
    IMAGES_LOADED_JS,
    demo_state,
    free_port,
    kernel_processes,
    operate,
    wait_for_change,
)

from measure import cpu_name  # noqa: E402

# The controls timed: (the demo's place on the page, the actions done in turn; two alternate two values).
CONTROLS = {
    "part1-perceptron-to-backprop": [(0, [("button", "step")]), (1, [("slider", "η")]),
                                     (2, [("button", "next stage")])],
    "part2-convolution-and-features": [(0, [("select", "kernel", "sharpen"), ("select", "kernel", "emboss")]),
                                       (1, [("select", "layer")])],
    "part3-style-transfer": [(0, [("button", "noise"), ("button", "content")]), (0, [("select", "style layers")])],
    "part4-fast-style": [(0, [("select", "photo")]), (0, [("select", "style")]), (0, [("slider", "split")])],
    "part5-dreams-and-statistics": [(0, [("select", "layer")]), (0, [("select", "channel")])],
}
# The fast-style lecture needs trained networks, and --prepare needs pretrained VGG16 to train them. Without
# it, stand-ins are trained here: the profile's architecture, two steps against the untrained VGG16. A
# network's speed does not depend on its training, and every picture is marked UNTRAINED.
STAND_IN_MODELS = """
import sys
from nstlab import fast
from nstlab.weights import untrained_backbone
from nstlab.widgets.fast_slider import DEFAULT_STYLES, MODEL_SUFFIX
folder = fast.default_models_dir()
folder.mkdir(parents=True, exist_ok=True)
for style in DEFAULT_STYLES:
    if not (folder / f"{style}{MODEL_SUFFIX}").exists():
        result = fast.train(style, None, fast.fast_config(sys.argv[1], steps=2), backbone=untrained_backbone("vgg16"),
                            progress=False)
        fast.save_model(result.model, folder / f"{style}{MODEL_SUFFIX}")
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15 of stat)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def bench_lecture(lecture: str, env: dict[str, str], repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    if lecture == "part4-fast-style":
        subprocess.run([sys.executable, "-c", STAND_IN_MODELS, env["NSTLAB_PROFILE"]], cwd=ROOT, env=env, check=True)
    prepare_start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nstlab.cli", "present", lecture, "--prepare"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    prepare_s = time.perf_counter() - prepare_start
    port, log = free_port(), Path(tempfile.mkdtemp()) / "present.log"
    start = time.perf_counter()
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "nstlab.cli", "present", lecture, "--no-browser",
                                   f"--port={port}"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    result = {"lecture": lecture, "prepare_s": prepare_s, "controls": []}
    try:
        url = None
        while url is None:
            if server.poll() is not None:
                raise RuntimeError(log.read_text())
            for line in log.read_text().splitlines():
                if line.startswith(f"lecture {lecture} at http"):
                    url = line.split(" at ", 1)[1].split()[0]
            time.sleep(0.05)
        result["server_s"] = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url, timeout=300_000)
            page.wait_for_function(IMAGES_LOADED_JS, arg=DEMO_SELECTOR, timeout=300_000)
            result["first_demo_s"] = time.perf_counter() - start
            n_demos = max(place for place, _ in CONTROLS[lecture]) + 1
            page.wait_for_function(f"n => document.querySelectorAll('{DEMO_SELECTOR}').length >= n", arg=n_demos,
                                   timeout=300_000)
            page.wait_for_function(IMAGES_LOADED_JS, arg=DEMO_SELECTOR, timeout=300_000)
            result["all_demos_s"] = time.perf_counter() - start
            kernel_id = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
            kernel = kernel_processes(kernel_id)[0]
            demos = page.query_selector_all(DEMO_SELECTOR)
            for place, controls in CONTROLS[lecture]:
                demo = demos[place]
                times, cpu = [], []
                for i in range(repeats + 1):
                    control = controls[i % len(controls)]
                    before, cpu_before = demo_state(demo), cpu_seconds(kernel)
                    operate(page, demo, control)
                    seconds = wait_for_change(demo, before)
                    if i:  # the first change is a warm-up
                        times.append(seconds)
                        cpu.append(cpu_seconds(kernel) - cpu_before)
                result["controls"].append({"control": f"{controls[0][0]} '{controls[0][1]}'",
                                           "median_s": statistics.median(times), "max_s": max(times),
                                           "kernel_cpu_s": statistics.median(cpu)})
            page.close(run_before_unload=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="fast", help="NSTLAB_PROFILE of the lectures (default fast)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-home", type=Path, help="torch cache with the grids (default: a new temporary one)")
    parser.add_argument("--lectures", nargs="*", default=list(CONTROLS))
    args = parser.parse_args()
    import torch
    import voila

    torch_home = args.torch_home or Path(tempfile.mkdtemp())
    env = dict(os.environ, NSTLAB_PROFILE=args.profile, TORCH_HOME=str(torch_home), NSTLAB_OFFLINE="1")
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}, torch {torch.__version__}, "
          f"voila {voila.__version__}, {chromium}; profile {args.profile}; torch cache {torch_home}")
    for lecture in args.lectures:
        before = load()
        r = bench_lecture(lecture, env, args.repeats)
        print(f"\n{lecture}: prepare {r['prepare_s']:.1f} s, server {r['server_s']:.1f} s, first demo "
              f"{r['first_demo_s']:.1f} s, all demos {r['all_demos_s']:.1f} s (load {before} -> {load()})")
        for c in r["controls"]:
            print(f"  {c['control']:<24} median {c['median_s']:.3f} s, max {c['max_s']:.3f} s, "
                  f"kernel CPU {c['kernel_cpu_s']:.3f} s per change")


if __name__ == "__main__":
    main()
