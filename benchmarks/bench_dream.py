"""Benchmark: seconds per DeepDream step at 256 and 512 px, with one and two torch threads, on the CPU.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dream.py          # prints Markdown for docs/benchmarks.md

A step is what :func:`nstlab.dream.dream` does ``steps`` times per octave: roll the image, one forward and
backward pass through VGG19 up to the layer (relu4_2 by default), the normalised update, roll back. Each
row times :func:`~nstlab.dream.dream` itself with one octave at the full size, so every step is at that size;
the steps of a smaller octave cost roughly in proportion to its pixels. Reported: the median over
``--repeats`` runs of the wall-clock and the process's CPU seconds per step (CPU time is not inflated by
waiting behind other processes; with one thread it is close to the work done), the peak resident memory, and
the load average before and after, since the machine may be shared. A last row times a whole default dream
(the ``fast`` profile: 4 octaves of 10 steps at 256 px) for scale.

The network is the pretrained VGG19 when its weights are cached and otherwise the untrained fallback (the
output says which): the time of a step does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from nstlab.data import open_image
from nstlab.dream import DreamConfig, dream, dream_config
from nstlab.vgg import VGGFeatures
from nstlab.weights import load_backbone

from measure import cpu_name, memory_mib, reset_peak_memory


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def timed(image, extractor, config) -> tuple[float, float, int]:
    """One dream: (wall s, CPU s, steps)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = dream(image, extractor, config, progress=False)
    return time.perf_counter() - t0, time.process_time() - c0, len(result.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layer", default="relu4_2")
    parser.add_argument("--no-whole", action="store_true", help="skip the whole default dream")
    args = parser.parse_args()

    backbone = load_backbone("vgg19", fallback="untrained")
    extractor = VGGFeatures([args.layer], backbone=backbone)
    print(f"# {cpu_name()}, {os.cpu_count()} cores, {platform.machine()}, python {platform.python_version()}, "
          f"torch {torch.__version__}; {backbone.note}")
    print(f"| size | threads | wall s / step (median of {args.repeats}) | CPU s / step | peak RSS MiB | "
          "load before / after (1/5/15 min) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        image = open_image("astronaut", size=size)
        config = DreamConfig(layer=args.layer, octaves=1, steps=args.steps, size=size)
        for threads in args.threads:
            torch.set_num_threads(threads)
            before = load()
            dream(image, extractor, replace(config, steps=1), progress=False)  # warm-up: kernels, allocator
            reset_peak_memory()
            runs = [timed(image, extractor, config) for _ in range(args.repeats)]
            wall = statistics.median(w / n for w, _, n in runs)
            cpu = statistics.median(c / n for _, c, n in runs)
            print(f"| {size} | {threads} | {wall:.2f} | {cpu:.2f} | {memory_mib('VmHWM'):.0f} | {before} / {load()} |",
                  flush=True)
    if not args.no_whole:
        torch.set_num_threads(1)
        config = dream_config("fast", layer=args.layer)
        before = load()
        wall, cpu, n = timed(open_image("astronaut", size=config.size), extractor, config)
        print(f"\nwhole default dream (fast profile: {config.size} px, {config.octaves} octaves x {config.steps} steps "
              f"= {n} steps, 1 thread): {wall:.1f} s wall, {cpu:.1f} s CPU; load {before} / {load()}")


if __name__ == "__main__":
    main()
