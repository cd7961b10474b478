"""Benchmark: fast style transfer (Johnson et al.) on this machine: forward passes, apply, the speed-up against
the optimisation method, and training.

Run from the repository root::

    .venv/bin/python benchmarks/bench_fast.py            # prints Markdown for docs/benchmarks.md
    .venv/bin/python benchmarks/bench_fast.py --quick    # fewer repeats and sizes, no fast-profile run
    .venv/bin/python benchmarks/bench_fast.py --sections apply --threads 2   # one table only

Measured, each as the median wall-clock time of ``--repeats`` runs after one warm-up, with the process's CPU
seconds beside it (waiting behind other processes inflates wall time, not CPU time):

1. the **forward pass** of the small network (width 16, 3 blocks) and the paper's (width 32, 5 blocks) on one
   image of 256, 512 and 1024 px, in torch float32, torch channels-last, torch with bfloat16 autocast (only
   where the CPU has native bf16: AVX512-BF16 or AMX), and onnxruntime (the file of ``export_onnx``);
2. ``nstlab.fast.apply`` at 512 and 1024 px with both networks (the article's "under two seconds");
3. the **speed-up** against ``nstlab.stylize`` (Gatys' layers, VGG19) at the same size with 500 evaluations of
   the loss and its gradient, as the paper compares: a few Adam steps (one evaluation each) are timed and the
   time per step multiplied by 500;
4. seconds per **training step** at 128 and 256 px (the small network at the fast profile's batch of 2, the
   paper's network at its batch of 4), and the fast profile's whole training run (``fast_config("fast")``);
5. (``--sections train-precision``) one training step as ``nstlab.fast.train`` takes it, channels-last in fp32
   and in bf16 autocast with the loss network's weights cast once, against the contiguous float32 step of
   ``train_step`` (the layout before channels-last): CPU seconds per step on one thread.

The networks' weights are random (speed does not depend on them); the loss networks are the pretrained VGGs
when cached, else the untrained stand-ins (the output says which).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from nstlab.device import channels_last, frozen_weights_in
from nstlab.fast import PAPER, SMALL, TransformNet, apply, count_parameters, export_onnx, fast_config, train
from nstlab.fast.loss import style_targets
from nstlab.fast.train import _step, train_step
from nstlab.vgg import VGGFeatures
from nstlab.weights import load_backbone

from measure import cpu_name, median_seconds


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, CPU seconds per call) of ``fn``, after one warm-up call."""
    c0 = time.process_time()
    wall = median_seconds(fn, repeats=repeats, warmup=1)
    return wall, (time.process_time() - c0) / (repeats + 1)


def native_bf16() -> bool:
    """Whether the CPU does bfloat16 natively (AVX512-BF16 or AMX), so that autocast to bf16 is worth measuring."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def forward_table(sizes, repeats: int, tmp: Path) -> None:
    import onnxruntime

    bf16 = native_bf16()
    print(f"\n| network | size | torch fp32 | torch channels-last | torch bf16 autocast{'' if bf16 else ' (no native bf16)'}"
          " | onnxruntime |")
    print("|---|---|---|---|---|---|")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    for name, settings in (("small", SMALL), ("paper", PAPER)):
        torch.manual_seed(0)
        net = TransformNet(**settings).eval()
        session = onnxruntime.InferenceSession(str(export_onnx(net, tmp / f"{name}.onnx")), options,
                                               providers=["CPUExecutionProvider"])
        net_cl = TransformNet(**settings).eval().to(memory_format=torch.channels_last)
        net_cl.load_state_dict(net.state_dict())
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            reps = repeats if size <= 512 else max(1, repeats // 2)
            cells = []
            with torch.no_grad():
                cells.append(timed(lambda net=net, x=x: net(x), reps))
                x_cl = x.contiguous(memory_format=torch.channels_last)
                cells.append(timed(lambda net=net_cl, x=x_cl: net(x), reps))
                if bf16:
                    def run_bf16(net=net_cl, x=x_cl):
                        with torch.autocast("cpu", dtype=torch.bfloat16):
                            return net(x).float()
                    cells.append(timed(run_bf16, reps))
                else:
                    cells.append(None)
            feed = {"image": x.numpy()}
            cells.append(timed(lambda s=session, feed=feed: s.run(None, feed), reps))
            text = " | ".join("—" if c is None else f"{c[0]:.3f} s (CPU {c[1]:.2f} s)" for c in cells)
            print(f"| {name} ({count_parameters(net) / 1e6:.2f} M) | {size} | {text} |", flush=True)


def apply_and_speedup(sizes, repeats: int, evaluations: int, timed_steps: int) -> None:
    from dataclasses import replace

    from nstlab.data import open_image
    from nstlab.stylize import PRESETS, stylize

    backbone = load_backbone("vgg19", fallback="untrained")
    print(f"\n# stylize's network: {backbone.note}")
    torch.manual_seed(0)
    small, paper = TransformNet(**SMALL).eval(), TransformNet(**PAPER).eval()
    print(f"\n| size | fast.apply, small network | fast.apply, paper network | stylize, one evaluation (median of "
          f"{timed_steps} Adam steps) | stylize, {evaluations} evaluations (extrapolated) | speed-up, small / paper |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        content = open_image("astronaut", size=size)
        style = open_image("mosaic", size=size)
        small_wall, small_cpu = timed(lambda content=content: apply(small, content), repeats)
        fast_wall, fast_cpu = timed(lambda content=content: apply(paper, content), repeats)
        config = replace(PRESETS["gatys"], size=size, optimizer="adam", lr=0.02, steps=timed_steps, init="content")
        extractor = VGGFeatures(config.content_layers + config.style_layers, pool=config.pool, backbone=backbone)
        c0 = time.process_time()
        result = stylize(content, style, config, extractor=extractor, show_progress=False)
        per_step = result.loop_seconds / result.steps
        cpu_per_step = (time.process_time() - c0) / result.steps  # setup included: an upper bound
        total = per_step * evaluations
        print(f"| {size} | {small_wall:.3f} s (CPU {small_cpu:.2f} s) | {fast_wall:.3f} s (CPU {fast_cpu:.2f} s) | "
              f"{per_step:.2f} s (CPU <= {cpu_per_step:.2f} s) | {total:.0f} s | {total / small_wall:,.0f}x / "
              f"{total / fast_wall:,.0f}x |", flush=True)


def training_table(repeats: int) -> None:
    backbone = load_backbone("vgg16", fallback="untrained")
    print(f"\n# loss network: {backbone.note}")
    print("\n| network | crop | batch | seconds per step |")
    print("|---|---|---|---|")
    style = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    for name, settings, batch in (("small", SMALL, 2), ("small", SMALL, 4), ("paper", PAPER, 4)):
        for size in (128, 256):
            config = fast_config("fast", size=size, batch_size=batch, **settings)
            extractor = VGGFeatures(config.layers, backbone=backbone)
            grams = style_targets(extractor, style, layers=config.style_layers)
            net = TransformNet(**settings)
            optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
            x = torch.rand(batch, 3, size, size)
            def step(net=net, extractor=extractor, optimizer=optimizer, x=x, grams=grams, weight=config.style_weight):
                return train_step(net, extractor, optimizer, x, grams, style_weight=weight)

            wall, cpu = timed(step, repeats)
            print(f"| {name} | {size} | {batch} | {wall:.2f} s (CPU {cpu:.2f} s) |", flush=True)


def training_precision_table(repeats: int) -> None:
    """Seconds per training step in the layouts and precisions ``nstlab.fast.train`` can run, one thread."""
    backbone = load_backbone("vgg16", fallback="untrained")
    print(f"\n# loss network: {backbone.note}; {torch.get_num_threads()} thread(s), load {load()}")
    kinds = ["contiguous fp32", "channels-last fp32"] + (["channels-last bf16"] if native_bf16() else [])
    print(f"\n| network | crop | batch | {' | '.join(kinds)} | bf16 / contiguous fp32 |")
    print("|---|---|---|" + "---|" * (len(kinds) + 1))
    style = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    for name, settings, batch, size in (("small", SMALL, 2, 128), ("small", SMALL, 2, 256), ("paper", PAPER, 4, 256)):
        config = fast_config("fast", size=size, batch_size=batch, **settings)
        cpu = {}
        for kind in kinds:
            layout, precision = kind.split()
            extractor = VGGFeatures(config.layers, backbone=backbone)
            torch.manual_seed(0)
            net = TransformNet(**settings)
            x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
            if layout == "channels-last":  # as train() does: both networks and the batch converted once
                extractor, net, x = channels_last(extractor), channels_last(net), channels_last(x)
            grams = style_targets(extractor, channels_last(style) if layout == "channels-last" else style,
                                  layers=config.style_layers)
            extractor = frozen_weights_in(extractor, precision)
            optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

            def step(net=net, extractor=extractor, optimizer=optimizer, x=x, grams=grams, precision=precision,
                     config=config):
                return _step(net, extractor, optimizer, x, grams, content_layer=config.content_layer,
                             content_weight=config.content_weight, style_weight=config.style_weight,
                             precision=precision)

            _, cpu[kind] = timed(step, repeats)
        ratio = f"{cpu['channels-last bf16'] / cpu['contiguous fp32']:.2f}" if "channels-last bf16" in cpu else "-"
        print(f"| {name} | {size} | {batch} | " + " | ".join(f"{cpu[k]:.2f}" for k in kinds) + f" | {ratio} |",
              flush=True)


def fast_profile_run() -> None:
    config = fast_config("fast")
    c0 = time.process_time()
    result = train("mosaic", config=config, fallback="untrained", progress=False)
    cpu = time.process_time() - c0
    print(f"\nfast profile ({config.steps} steps, batch {config.batch_size}, {config.size}-px crops, width "
          f"{config.width}, {config.blocks} blocks): {result.seconds:.1f} s of training (CPU {cpu:.1f} s, loading "
          f"included), {result.seconds / result.steps:.2f} s per step; loss {result.history[0].total:.4g} -> "
          f"{result.history[-1].total:.4g}; {result.note[:40]}...")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--evaluations", type=int, default=500, help="stylize evaluations to compare with")
    parser.add_argument("--timed-steps", type=int, default=2, help="stylize steps actually timed per size")
    parser.add_argument("--quick", action="store_true", help="256 and 512 px only, one repeat, no profile run")
    parser.add_argument("--sections", default="forward,apply,train,profile",
                        help="comma-separated subset of forward, apply, train, profile, train-precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    sizes = (256, 512) if args.quick else (256, 512, 1024)
    repeats = 1 if args.quick else args.repeats
    print(f"# {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), python "
          f"{platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"load average at start {load()}")
    start = time.perf_counter()
    sections = set(args.sections.split(","))
    if "forward" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            forward_table(sizes, repeats, Path(tmp))
    if "apply" in sections:
        apply_and_speedup(sizes[1:] if args.quick else (512, 1024), repeats, args.evaluations, args.timed_steps)
    if "train" in sections:
        training_table(repeats)
    if "train-precision" in sections:
        training_precision_table(repeats)
    if "profile" in sections and not args.quick:
        fast_profile_run()
    print(f"\n# {time.perf_counter() - start:.0f} s in all; load average at the end {load()}")


if __name__ == "__main__":
    main()
