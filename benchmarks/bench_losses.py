"""Benchmark: one loss-and-gradient evaluation of style transfer versus a bare pass through the network.

Run from the repository root::

    .venv/bin/python benchmarks/bench_losses.py          # prints Markdown for docs/benchmarks.md

Both timings use the same truncated, frozen VGG19 (:class:`nstlab.vgg.VGGFeatures` tapping the Gatys layers
relu1_1, relu2_1, relu3_1, relu4_1, relu4_2, relu5_1, so it ends at relu5_1) on one image:

* **bare**: forward, then the gradient of the sum of the tapped activations with respect to the image;
* **loss + gradient**: forward, :func:`nstlab.losses.total_loss` (content at relu4_2, five Gram matrices
  and style layers, L2 total variation), then its gradient with respect to the image — what one step of
  the optimisation loop costs.

A third timing, the losses alone on precomputed features, estimates the losses' share with less noise.
The two main timings are interleaved (bare, loss, bare, loss, ...) so that load from other processes hits
both alike; the median of each is reported, in wall-clock time and in the process's CPU time (which waiting
behind other processes does not inflate; with ``--threads 1`` it is close to the work done). Weights are
random: speed does not depend on their values.

Peak memory is measured in a fresh process per size and kind (Linux's peak resident set size, ``VmHWM``,
reset once the network and the targets are ready), and reported both as the process's peak and as the
increase over the resident size at that moment.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import time

import torch
import torchvision

from nstlab.losses import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, gram_matrix, total_loss
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone

from measure import cpu_name, memory_mib, reset_peak_memory

LAYERS = GATYS_STYLE_LAYERS + GATYS_CONTENT_LAYERS


def setup(size: int):
    """The extractor, an image to optimise, and the content and style targets at ``size`` pixels."""
    extractor = VGGFeatures(LAYERS, backbone=untrained_backbone("vgg19", seed=0))
    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 1, 3, size, size, generator=gen)
    with torch.no_grad():
        P = {name: extractor(content)[name] for name in GATYS_CONTENT_LAYERS}
        style_features = extractor(style)
        A = {name: gram_matrix(style_features[name]) for name in GATYS_STYLE_LAYERS}
    x = content.clone().requires_grad_()
    return extractor, x, P, A


def bare(extractor, x, P, A) -> torch.Tensor:
    out = extractor(x)
    return torch.autograd.grad(sum(f.sum() for f in out.values()), x)[0]


def loss_and_gradient(extractor, x, P, A) -> torch.Tensor:
    parts = total_loss(extractor(x), P, A, image=x, tv_weight=1e-3)
    return torch.autograd.grad(parts.total, x)[0]


def losses_only(features, x, P, A) -> tuple[torch.Tensor, ...]:
    """The losses and their gradient with respect to precomputed features: the part the network does not do."""
    parts = total_loss(features, P, A, image=x, tv_weight=1e-3)
    return torch.autograd.grad(parts.total, [x, *features.values()])


def child(size: int, kind: str) -> None:
    """Run one evaluation in this fresh process and print its memory figures as JSON."""
    args = setup(size)
    gc.collect()
    reset_peak_memory()  # so that setup's own peak does not count
    before = memory_mib("VmRSS")
    {"bare": bare, "loss": loss_and_gradient}[kind](*args)
    print(json.dumps({"before_mib": before, "peak_mib": memory_mib("VmHWM")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side for the timing")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each kind (median reported)")
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, {platform.machine()}; "
          f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    state = setup(args.size)
    for fn in (bare, loss_and_gradient):  # warm-up: oneDNN picks its kernels on the first call
        fn(*state)
    times: dict[str, list[float]] = {"bare": [], "loss": []}
    cpu: dict[str, list[float]] = {"bare": [], "loss": []}
    for _ in range(args.repeats):
        for kind, fn in (("bare", bare), ("loss", loss_and_gradient)):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(*state)
            times[kind].append(time.perf_counter() - start)
            cpu[kind].append(time.process_time() - start_cpu)
    t_bare, t_loss = statistics.median(times["bare"]), statistics.median(times["loss"])
    c_bare, c_loss = statistics.median(cpu["bare"]), statistics.median(cpu["loss"])
    # The losses alone, on detached features: a low-noise estimate of what they add to the network's cost.
    extractor, x, P, A = state
    with torch.no_grad():
        features = {name: f.detach().requires_grad_() for name, f in extractor(x).items()}
    losses_only(features, x, P, A)
    t_losses = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        losses_only(features, x, P, A)
        t_losses.append(time.perf_counter() - start)
    t_only = statistics.median(t_losses)
    print()
    print(f"| {args.size} × {args.size}, VGG19 to relu5_1, CPU | median of {args.repeats} | all runs (s) |")
    print("|---|---|---|")
    print(f"| bare forward + backward | {t_bare:.3f} s | {', '.join(f'{t:.2f}' for t in times['bare'])} |")
    print(f"| loss + gradient (`total_loss`) | {t_loss:.3f} s | {', '.join(f'{t:.2f}' for t in times['loss'])} |")
    print(f"| ratio loss + gradient / bare | **{t_loss / t_bare:.3f}** | |")
    print(f"| CPU time (all threads): bare / loss + gradient / ratio | {c_bare:.3f} s / {c_loss:.3f} s / "
          f"**{c_loss / c_bare:.3f}** | |")
    print(f"| the losses alone, on precomputed features | {t_only:.3f} s | "
          f"{', '.join(f'{t:.3f}' for t in t_losses)} |")
    print(f"| (bare + losses alone) / bare | {(t_bare + t_only) / t_bare:.3f} | |")

    print()
    print("| image | kind | peak RSS | increase during the evaluation |")
    print("|---|---|---|---|")
    for size in args.memory_sizes:
        for kind in ("bare", "loss"):
            result = subprocess.run([sys.executable, __file__, "--child", str(size), kind], check=True,
                                    capture_output=True, text=True)
            mem = json.loads(result.stdout.strip().splitlines()[-1])
            label = "bare forward + backward" if kind == "bare" else "loss + gradient"
            print(f"| {size} × {size} | {label} | {mem['peak_mib']:.0f} MiB | "
                  f"{mem['peak_mib'] - mem['before_mib']:.0f} MiB |")


if __name__ == "__main__":
    main()
