"""Benchmark: convolution as loops versus vectorised (and torch's conv2d), and the digit CNN's training time.

Run from the repository root::

    .venv/bin/python benchmarks/bench_conv.py            # prints a Markdown table for docs/benchmarks.md

Each timing is the median of several runs. The problem is the one the issue names: one 28 × 28 image with
8 input channels and 8 output channels, 3 × 3 kernels, padding 1, stride 1, float32 on the CPU.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
import torch.nn.functional as F

from nstlab import cnn
from nstlab.data import digits

from measure import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per timing (median is reported)")
    parser.add_argument("--train-runs", type=int, default=3, help="training runs of the digit CNN")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1, as the notebook uses; tiny tensors gain nothing from more)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 28, 28, generator=gen)  # (N, C, H, W)
    w = torch.randn(8, 8, 3, 3, generator=gen)  # (D, C, kH, kW)
    b = torch.randn(8, generator=gen)
    loops = median_seconds(lambda: cnn.conv2d_loops(x, w, b, padding=1), repeats=args.repeats)
    vectorised = median_seconds(lambda: cnn.conv2d(x, w, b, padding=1), repeats=args.repeats * 20)
    torch_conv = median_seconds(lambda: F.conv2d(x, w, b, padding=1), repeats=args.repeats * 20)

    data = digits(seed=0)
    train = [cnn.train_cnn(data, show_progress=False) for _ in range(args.train_runs)]

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print()
    print("| convolution, 1 × 8 × 28 × 28, 8 kernels 3 × 3, padding 1 | median time | vs loops |")
    print("|---|---|---|")
    for name, t in [("`cnn.conv2d_loops`", loops), ("`cnn.conv2d` (unfold + einsum)", vectorised),
                    ("`torch.nn.functional.conv2d`", torch_conv)]:
        print(f"| {name} | {t * 1e3:.3f} ms | {loops / t:.0f}× faster |" if t != loops else
              f"| {name} | {t * 1e3:.1f} ms | 1× |")
    print()
    seconds = statistics.median(r.seconds for r in train)
    acc = [f"{r.test_accuracy[-1]:.1%}" for r in train]
    print(f"digit CNN (`cnn.train_cnn` defaults: 10 epochs, batch 32): median {seconds:.1f} s over "
          f"{len(train)} runs; test accuracy {', '.join(acc)}")


if __name__ == "__main__":
    main()
