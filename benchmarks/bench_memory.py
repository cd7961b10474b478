"""Peak memory of a style-transfer run on the CPU, against the estimate that ``nstlab stylize`` refuses sizes by.

Each measurement runs in a fresh Python process: after torch is imported, the process's peak resident set
(Linux's ``VmHWM``) is reset; then the network is built and ``nstlab.stylize.stylize`` runs a few steps at
the given size with the paper's layers. The growth of the peak over the resident size before the network was
built is what the run itself needed (weights, activations, gradients, optimiser state, images), which is what
:func:`nstlab.memory.estimate_memory` estimates. The weights do not change the memory, so the untrained
fallback is used and no download is needed.

Run:
    .venv/bin/python benchmarks/bench_memory.py [--sizes 256 512] [--optimizers lbfgs adam lbfgsb] [--steps 22]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MIB = 2**20

CHILD = r"""
import json, sys
import torch
torch.set_num_threads(1)
from nstlab import data
from nstlab.memory import estimate_memory
from nstlab.stylize import PRESETS, stylize
from nstlab.weights import untrained_backbone
from dataclasses import replace


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


size, optimizer, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
config = replace(PRESETS["gatys"], size=size, steps=steps, optimizer=optimizer, pool="max")
photo, painting = data.builtin_image("astronaut", size=size), data.builtin_image("mosaic", size=size)
backbone = untrained_backbone("vgg19", seed=0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current resident size
before = status("VmRSS")
result = stylize(photo, painting, config, backbone=backbone, show_progress=False)
peak = status("VmHWM")
layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
estimate = estimate_memory(size, optimizer=optimizer, layers=layers).needed_bytes
print(json.dumps({"size": size, "optimizer": optimizer, "steps": result.steps, "before": before, "peak": peak,
                  "estimate": estimate}))
"""


def measure(size: int, optimizer: str, steps: int) -> dict:
    """One run in a fresh process; returns its sizes in bytes."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(size), optimizer, str(steps)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam", "lbfgsb"])
    # More steps than L-BFGS remembers (nstlab.optimise.LBFGS_HISTORY = 20), so that its history is full.
    parser.add_argument("--steps", type=int, default=22)
    args = parser.parse_args()
    print("| image | optimiser | peak growth (measured) | estimate | estimate / measured |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for optimizer in args.optimizers:
            r = measure(size, optimizer, args.steps)
            growth = r["peak"] - r["before"]
            print(f"| {size} x {size} | {optimizer} | {growth / MIB:.0f} MiB | {r['estimate'] / MIB:.0f} MiB "
                  f"| {r['estimate'] / growth:.2f} |", flush=True)


if __name__ == "__main__":
    main()
