"""Benchmark: what the normalised VGG costs, once and per step.

Run from the repository root::

    .venv/bin/python benchmarks/bench_normalise.py          # prints Markdown for docs/benchmarks.md

Measured, on the CPU with one torch thread (as the notebooks run):

* **once per set of weights**: the mean activations on the eight built-in images at 128 px
  (:func:`nstlab.vgg.normalisation_means` with ``cache=False``), the untrained VGG19 standing in for the
  pretrained one (same network, same cost);
* **every later time**: :func:`nstlab.vgg.normalise_backbone` with the means cached (fingerprint, file, rescaled
  copy of the weights);
* **per step**: seconds of an L-BFGS step of style transfer at 128 px with the paper's layers, with the raw and
  with the normalised network (the same operations on other numbers, so no difference is expected).

Medians over ``--repeats``; wall-clock and this process's CPU seconds (waiting behind other processes does not
inflate the latter). The load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from nstlab.data import builtin_image
from nstlab.stylize import StyleConfig, stylize
from nstlab.vgg import VGGFeatures, normalisation_means, normalise_backbone
from nstlab.weights import untrained_backbone

from measure import cpu_name

LAYERS = ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``repeats`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="L-BFGS steps per style-transfer run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    raw = untrained_backbone("vgg19", seed=0)
    normalise_backbone(raw)  # fill the cache, so that the second line measures a cache hit
    once = timed(lambda: normalisation_means(raw, cache=False), args.repeats)
    cached = timed(lambda: normalise_backbone(raw), args.repeats)
    photo, painting = builtin_image("chelsea", size=128), builtin_image("mosaic", size=128)
    config = StyleConfig(size=128, steps=args.steps, pool="avg", precision="fp32")
    per_step = {}
    for name, backbone in (("raw", raw), ("normalised", normalise_backbone(raw))):
        extractor = VGGFeatures(LAYERS, backbone=backbone, pool="avg")
        wall, cpu = timed(lambda e=extractor: stylize(photo, painting, config, extractor=e, show_progress=False),
                          args.repeats)
        per_step[name] = (wall / args.steps, cpu / args.steps)
    load_after = os.getloadavg()
    print(f"CPU {cpu_name()}, {os.cpu_count()} cores, 1 torch thread; Python {platform.python_version()}, "
          f"torch {torch.__version__}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print()
    print("| what | wall s (median) | CPU s (median) |")
    print("|---|---|---|")
    print(f"| mean activations, 8 images at 128 px (once per set of weights) | {once[0]:.2f} | {once[1]:.2f} |")
    print(f"| normalise_backbone with the means cached | {cached[0]:.2f} | {cached[1]:.2f} |")
    for name, (wall, cpu) in per_step.items():
        print(f"| one L-BFGS step at 128 px, {name} network | {wall:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
