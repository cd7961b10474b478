"""Benchmark: seconds to reach a fixed loss, single- versus multi-scale and L-BFGS versus Adam.

Run from the repository root::

    .venv/bin/python benchmarks/bench_stylize.py          # prints Markdown for docs/benchmarks.md

Every run optimises the same 256 x 256 image (content ``astronaut``, style ``mosaic``, both built in) with the
paper's layers and weights (:data:`nstlab.stylize.PRESETS` ``"gatys"``: relu4_2 content, relu1_1 ... relu5_1
style, alpha/beta = 1e-3, average pooling) from the same seeded white noise, on the CPU. The fixed loss is
the one the reference (single-scale L-BFGS) reaches after ``--target-steps`` steps; each run then stops as
soon as its total loss at full size is at or below it (or after ``--max-steps`` steps). Multi-scale runs first
take ``--coarse-steps`` steps at half the size, then warm-start the full size from the upsampled result. Reported:
the median over ``--repeats`` of the wall-clock seconds and of the process's CPU seconds (which waiting
behind other processes does not inflate; with ``--threads 1`` it is close to the work done), and the steps.

The network is the pretrained VGG19 when its weights are cached and otherwise the untrained fallback (the
output says which): speed per step does not depend on the weights, but how many steps reach a loss does.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import torch

from nstlab.data import open_image
from nstlab.stylize import PRESETS, stylize
from nstlab.vgg import VGGFeatures
from nstlab.weights import load_backbone

RUNS = {  # name -> changes to the gatys preset
    "L-BFGS, single-scale (reference)": {"optimizer": "lbfgs"},
    "L-BFGS, multi-scale 0.5 + 1": {"optimizer": "lbfgs", "scales": (0.5, 1.0), "scale_steps": "coarse"},
    "L-BFGS-B (scipy, bounded), single-scale": {"optimizer": "lbfgsb"},
    "Adam lr 0.02, single-scale": {"optimizer": "adam", "lr": 0.02},
    "Adam lr 0.02, multi-scale 0.5 + 1": {"optimizer": "adam", "lr": 0.02, "scales": (0.5, 1.0),
                                          "scale_steps": "coarse"},
}


def time_to_target(content, style, config, extractor, target: float | None):
    """Run until the full-size loss is <= target; return (wall s, CPU s, steps, final loss, reached)."""
    last_scale = len(config.scales) - 1
    seen: dict = {}

    def callback(step, image, losses):
        if losses.scale == last_scale:
            seen.update(wall=time.perf_counter() - t0, cpu=time.process_time() - c0, step=step, loss=losses.total)
            return target is not None and losses.total <= target
        return False

    t0, c0 = time.perf_counter(), time.process_time()
    result = stylize(content, style, config, extractor=extractor, callback=callback, show_progress=False)
    reached = target is None or seen["loss"] <= target
    return seen["wall"], seen["cpu"], seen["step"], seen["loss"], reached, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--target-steps", type=int, default=40, help="reference L-BFGS steps that set the loss")
    parser.add_argument("--max-steps", type=int, default=120, help="cap on the steps at full size")
    parser.add_argument("--coarse-steps", type=int, default=40, help="steps at half size in multi-scale runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    backbone = load_backbone("vgg19", fallback="untrained")
    base = replace(PRESETS["gatys"], size=args.size, steps=args.max_steps, seed=0)
    extractor = VGGFeatures(base.content_layers + base.style_layers, pool=base.pool, backbone=backbone)
    content, style = open_image("astronaut", size=args.size), open_image("mosaic", size=args.size)

    print(f"# {platform.machine()}, {platform.processor() or 'cpu'}, {torch.get_num_threads()} thread(s), "
          f"python {platform.python_version()}, torch {torch.__version__}; {backbone.note}")
    # The reference fixes the loss to reach.
    reference = replace(base, steps=args.target_steps)
    *_, result = time_to_target(content, style, reference, extractor, None)
    target = result.losses[-1].total
    print(f"# target: total loss {target:.4g}, reached by single-scale L-BFGS after {args.target_steps} steps")
    print(f"| {args.size} x {args.size}, to loss {target:.4g} | wall s (median of {args.repeats}) | CPU s | "
          "steps at full size | reached |")
    print("|---|---|---|---|---|")
    for name, changes in RUNS.items():
        if changes.get("scale_steps") == "coarse":
            changes = {**changes, "scale_steps": (args.coarse_steps, args.max_steps)}
        rows = [time_to_target(content, style, replace(base, **changes), extractor, target)[:5]
                for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        step, loss, reached = rows[-1][2], rows[-1][3], rows[-1][4]
        multi = "scale_steps" in changes
        coarse = f" (after {args.coarse_steps} at half size)" if multi else ""
        steps = step - args.coarse_steps if multi else step
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {steps}{coarse} | "
              f"{'yes' if reached else f'no (loss {loss:.4g})'} |", flush=True)


if __name__ == "__main__":
    main()
