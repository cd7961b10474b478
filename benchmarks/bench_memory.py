"""Peak memory of a style-transfer run on the CPU, against the estimate that ``nstlab stylize`` refuses sizes by.

Each measurement runs in a fresh Python process (this script with ``--child``): once torch is imported and
the images and network are ready, the process's peak resident set (Linux's ``VmHWM``) is reset; then
``nstlab.stylize.stylize`` runs a few steps at the given size with the paper's layers. The growth of the
peak over the resident size at the reset is what the run itself needed (activations, gradients, optimiser
state, images), which is what :func:`nstlab.memory.estimate_memory` estimates. The weights' values do not
change the memory, so the untrained fallback is used.

Run:
    .venv/bin/python benchmarks/bench_memory.py [--sizes 256 512] [--optimizers lbfgs adam lbfgsb] [--steps 22]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace

import torch

from nstlab import data
from nstlab.memory import estimate_memory
from nstlab.stylize import PRESETS, stylize
from nstlab.weights import untrained_backbone

from measure import memory_mib, reset_peak_memory


def child(size: int, optimizer: str, steps: int) -> None:
    """One run in this fresh process; prints its figures in MiB as JSON."""
    torch.set_num_threads(1)
    config = replace(PRESETS["gatys"], size=size, steps=steps, optimizer=optimizer, pool="max")
    photo, painting = data.builtin_image("astronaut", size=size), data.builtin_image("mosaic", size=size)
    backbone = untrained_backbone("vgg19", seed=0)
    reset_peak_memory()
    before = memory_mib("VmRSS")
    result = stylize(photo, painting, config, backbone=backbone, show_progress=False)
    layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
    estimate = estimate_memory(size, optimizer=optimizer, layers=layers).needed_bytes / 2**20
    print(json.dumps({"steps": result.steps, "before_mib": before, "peak_mib": memory_mib("VmHWM"),
                      "estimate_mib": estimate}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam", "lbfgsb"])
    # More steps than L-BFGS remembers (nstlab.optimise.LBFGS_HISTORY = 20), so that its history is full.
    parser.add_argument("--steps", type=int, default=22)
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "OPTIMIZER", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], int(args.child[2]))
        return
    print("| image | optimiser | peak growth (measured) | estimate | estimate / measured |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for optimizer in args.optimizers:
            out = subprocess.run([sys.executable, __file__, "--child", str(size), optimizer, str(args.steps)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            growth = r["peak_mib"] - r["before_mib"]
            print(f"| {size} x {size} | {optimizer} | {growth:.0f} MiB | {r['estimate_mib']:.0f} MiB "
                  f"| {r['estimate_mib'] / growth:.2f} |", flush=True)


if __name__ == "__main__":
    main()
