"""Benchmark: nstlab's style transfer (channels-last, fp32 or bf16) against a tutorial-style loop, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/bench_precision.py per-eval            # CPU s per evaluation, 256/512 px, 1/2 threads
    .venv/bin/python benchmarks/bench_precision.py to-loss             # seconds to the tutorial loop's final loss
    .venv/bin/python benchmarks/bench_precision.py to-loss --variants  # ... and the optimisation's own options
    .venv/bin/python benchmarks/bench_precision.py others              # feature browser and transfer learning
    .venv/bin/python benchmarks/bench_precision.py network             # the bare network in five settings

Both loops minimise the same function: the paper's layers (relu1_1 ... relu5_1 style, relu4_2 content), max
pooling, the Gatys et al. loss convention with alpha = 1, beta = 1e3, content ``astronaut`` and style
``mosaic`` (built in), on the CPU; the script checks that their losses agree on the content image before it
times anything. The tutorial-style loop (``tutorial_loop.py``) runs float32 in the default memory layout with
torch's L-BFGS defaults; nstlab runs :func:`nstlab.stylize.stylize` with ``precision="fp32"`` (channels-last
alone) and ``"auto"`` (bf16 if the CPU has native bf16, the line printed first says which; stylize's bf16
runs the forward pass in float32 and the backward pass in bf16, :class:`nstlab.device.Bf16Backward`).
``per-eval`` also times bf16 autocast for the whole network (forward and backward), what stylize's bf16 was
before: faster per evaluation, but it stops short of the float32 loss (docs/benchmarks.md).

``per-eval``: the process's CPU seconds (``time.process_time``, which waiting behind other processes does not
inflate) per evaluation of loss and gradient, optimiser included, median over ``--evals`` evaluations after
``--warmup``; with 2 threads the CPU seconds add both threads' work, so the wall-clock median is printed too.

``network``: one forward and backward pass of VGG19 up to relu5_1 (gradient with respect to the image only),
CPU seconds on one thread, contiguous and channels-last, float32 and bf16 autocast, and channels-last with
the forward pass in float32 and the backward in bf16 (stylize's bf16): what the layout and the precision
can gain at most, with no loss computed.

``others``: the feature browser's latency for a new photo (before: a contiguous float32 pass) and the CPU
seconds of :func:`nstlab.transfer.transfer` with the frozen body in fp32 and in auto.

``to-loss``: the tutorial loop runs ``--tutorial-steps`` evaluations (its "steps") at ``--size`` px on one
thread; its final image's loss, evaluated in float32, is the target. Each nstlab run then stops at the first
step whose image (clamped to [0, 1], as returned) has a float32 loss at or below the target; the CPU seconds
of those float32 checks are not counted. ``--histories 20 50 100`` runs stylize in auto with those L-BFGS
history sizes instead (nstlab's default is 20). With ``--variants`` the same is measured for other starting images,
a coarse-to-fine schedule, L-BFGS history sizes and the strong-Wolfe line search (run through the same
objective as :func:`stylize`).

The network is the untrained VGG19 fallback when the pretrained weights are not cached (the output says
which): the time per evaluation does not depend on the weights, the number of steps to a loss does.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(__file__))
import tutorial_loop  # noqa: E402  (a sibling script)

from nstlab import optimise  # noqa: E402
from nstlab import stylize as st  # noqa: E402
from nstlab.data import open_image  # noqa: E402
from nstlab.device import channels_last, choose_precision  # noqa: E402
from nstlab.style_config import StyleConfig  # noqa: E402
from nstlab.vgg import VGGFeatures  # noqa: E402
from nstlab.weights import load_backbone  # noqa: E402

from measure import cpu_name  # noqa: E402

BASE = StyleConfig(init="content", optimizer="lbfgs", pool="max")  # the paper's layers, alpha=1, beta=1e3


def header(backbone) -> str:
    load = os.getloadavg()
    return (f"# {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, load average {load[0]:.2f} "
            f"{load[1]:.2f} {load[2]:.2f}; python {platform.python_version()}, torch {torch.__version__}; "
            f"precision auto here = {choose_precision('auto', profile='fast')}; {backbone.note}")


def images(size: int):
    return open_image("astronaut", size=size), open_image("mosaic", size=size)


def tutorial_per_eval(backbone, content, style, evals: int, warmup: int) -> tuple[float, float]:
    cpu, wall = [], []

    def on_evaluation(run, loss, seconds):
        cpu.append(seconds)
        wall.append(time.perf_counter())

    cnn = tutorial_loop.frozen_vgg19_features(backbone)
    tutorial_loop.run_style_transfer(cnn, content, style, content.clone(), num_steps=warmup + evals - 1,
                                     on_evaluation=on_evaluation)
    return _medians(cpu, wall, warmup)


def _features_under_autocast(extractor, x, precision="fp32"):
    """stylize's network pass as it was before Bf16Backward: the whole pass, forward too, under autocast."""
    from nstlab.device import autocast

    with autocast(precision, x.device):
        out = extractor(channels_last(x))
    return {name: f.float() for name, f in out.items()}


@contextmanager
def whole_pass_autocast():
    """Inside this block stylize's objectives and targets run the whole network pass under autocast, as they
    did before :class:`nstlab.device.Bf16Backward` (a network whose weights were cast with ``frozen_weights_in``
    needs it: the split pass computes its forward pass in float32)."""
    saved, st._features = st._features, _features_under_autocast
    try:
        yield
    finally:
        st._features = saved


def nstlab_per_eval(backbone, content, style, precision: str, evals: int, warmup: int, *,
                    whole_autocast: bool = False) -> tuple[float, float]:
    """CPU s (and wall s) per evaluation of stylize; ``whole_autocast`` runs its passes fully under autocast."""
    cpu, wall = [], []

    def callback(step, image, losses):
        cpu.append(time.process_time())
        wall.append(time.perf_counter())

    config = replace(BASE, size=max(content.shape[-2:]), steps=warmup + evals, precision=precision)
    extractor = None
    if whole_autocast:  # as stylize ran it then: its own channels-last copy, the weights cast to bf16 once
        from nstlab.device import frozen_weights_in

        layers = tuple(dict.fromkeys(BASE.content_layers + BASE.style_layers))
        extractor = frozen_weights_in(channels_last(VGGFeatures(layers, pool=BASE.pool, backbone=backbone)),
                                      choose_precision(precision, profile="fast"))
    with whole_pass_autocast() if whole_autocast else nullcontext():
        st.stylize(content, style, config, backbone=backbone, extractor=extractor, callback=callback,
                   show_progress=False)
    return _medians(cpu, wall, warmup)


def _medians(cpu: list[float], wall: list[float], warmup: int) -> tuple[float, float]:
    dc = [b - a for a, b in zip(cpu[warmup - 1:], cpu[warmup:], strict=False)]
    dw = [b - a for a, b in zip(wall[warmup - 1:], wall[warmup:], strict=False)]
    return statistics.median(dc), statistics.median(dw)


def check_same_objective(backbone, content, style) -> float:
    """The tutorial's loss and nstlab's on the content image; raise if they differ."""
    ours = st.stylize(content, style, replace(BASE, size=max(content.shape[-2:]), steps=1, precision="fp32"),
                      backbone=backbone, show_progress=False).losses[0].total
    theirs = tutorial_loop.loss_at(tutorial_loop.frozen_vgg19_features(backbone), content, style, content,
                                   style_weight=BASE.beta)
    if abs(ours - theirs) > 1e-4 * abs(theirs):
        raise SystemExit(f"the loops minimise different functions: nstlab {ours:.6g}, tutorial {theirs:.6g}")
    return ours


def per_eval(args, backbone) -> None:
    print(header(backbone))
    print("| size | threads | tutorial loop CPU s (wall) | nstlab fp32 channels-last | ratio | nstlab auto | ratio | "
          "auto with the whole pass under bf16 autocast (before) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            content, style = images(size)
            check_same_objective(backbone, content, style)
            t = tutorial_per_eval(backbone, content, style, args.evals, args.warmup)
            f = nstlab_per_eval(backbone, content, style, "fp32", args.evals, args.warmup)
            a = nstlab_per_eval(backbone, content, style, "auto", args.evals, args.warmup)
            w = nstlab_per_eval(backbone, content, style, "auto", args.evals, args.warmup, whole_autocast=True)
            print(f"| {size} | {threads} | {t[0]:.3f} ({t[1]:.3f}) | {f[0]:.3f} ({f[1]:.3f}) | {f[0] / t[0]:.2f} | "
                  f"{a[0]:.3f} ({a[1]:.3f}) | {a[0] / t[0]:.2f} | {w[0]:.3f} ({w[1]:.3f}) | {w[0] / t[0]:.2f} |",
                  flush=True)
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


class Float32Loss:
    """The float32 objective of nstlab at an image, for deciding when a run has reached the target."""

    def __init__(self, backbone, content, style):
        layers = BASE.content_layers + BASE.style_layers
        self.extractor = VGGFeatures(layers, pool="max", backbone=backbone)
        self.P, self.A = st._targets(self.extractor, content, [style], [1.0], BASE, "fp32")
        self.seconds = 0.0  # CPU seconds spent here, to be left out of the runs' times

    def __call__(self, image: torch.Tensor) -> float:
        c0 = time.process_time()
        with torch.no_grad():
            total = st._objective(self.extractor, self.P, self.A, BASE, [], "fp32")(image).total.item()
        self.seconds += time.process_time() - c0
        return total


def run_stylize_to(target, f32, backbone, content, style, config, max_steps):
    """CPU s, steps and loss when stylize's image first reaches ``target`` (float32), or its last step."""
    seen = {}
    f32.seconds = 0.0

    def callback(step, image, losses):
        if step == 1:
            seen["c0"] = time.process_time()  # measured from the first step: targets are built before it
        last_scale = losses.scale == len(config.scales) - 1
        reached = last_scale and losses.total <= 1.05 * target and f32(image) <= target
        seen.update(cpu=time.process_time() - f32.seconds, step=step, loss=losses.total, reached=reached)
        return reached

    c_start = time.process_time()
    st.stylize(content, style, replace(config, steps=max_steps), backbone=backbone, callback=callback,
               show_progress=False)
    return seen["cpu"] - c_start, seen["step"], seen["reached"]


def run_lbfgs_to(target, f32, backbone, content, style, precision, max_steps, *, history, line_search):
    """Like :func:`run_stylize_to` with torch's L-BFGS configured here (one iteration per step)."""
    extractor = channels_last(VGGFeatures(BASE.content_layers + BASE.style_layers, pool="max", backbone=backbone))
    how = choose_precision(precision, profile="fast").precision
    f32.seconds = 0.0
    c_start = time.process_time()
    P, A = st._targets(extractor, content, [style], [1.0], BASE, how)
    objective = st._objective(extractor, P, A, BASE, [], how)
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=history, line_search_fn=line_search,
                            tolerance_grad=0.0, tolerance_change=0.0)
    evaluations = [0]

    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)  # projected, as nstlab's L-BFGS and the tutorial loop are
        opt.zero_grad(set_to_none=True)
        total = objective(x).total
        total.backward()
        evaluations[0] += 1
        return total

    for step in range(1, max_steps + 1):
        loss = opt.step(closure).item()
        if loss <= 1.05 * target and f32(x.detach().clamp(0, 1)) <= target:
            return time.process_time() - f32.seconds - c_start, step, True, evaluations[0]
    return time.process_time() - f32.seconds - c_start, max_steps, False, evaluations[0]


def to_loss(args, backbone) -> None:
    global BASE
    BASE = replace(BASE, beta=args.beta)  # every run, the tutorial's included, minimises this objective
    torch.set_num_threads(1)
    content, style = images(args.size)
    check_same_objective(backbone, content, style)
    print(header(backbone))
    f32 = Float32Loss(backbone, content, style)
    if args.target is None:
        c0 = time.process_time()
        cnn = tutorial_loop.frozen_vgg19_features(backbone)
        result = tutorial_loop.run_style_transfer(cnn, content, style, content.clone(), num_steps=args.tutorial_steps,
                                                  style_weight=BASE.beta)
        t_cpu = time.process_time() - c0
        target = f32(result.detach())
        print(f"# tutorial loop: {args.tutorial_steps} evaluations at {args.size} px, 1 thread: {t_cpu:.1f} CPU s, "
              f"final float32 loss {target:.6g}", flush=True)
    else:
        target, t_cpu = args.target, args.target_seconds
        print(f"# target given: loss {target:.6g} reached by the tutorial loop in {t_cpu:.1f} CPU s")
    print(f"| to loss {target:.4g} at {args.size} px, beta {BASE.beta:g}, 1 thread | CPU s | steps (evaluations) | reached | "
          "speed-up vs tutorial |")
    print("|---|---|---|---|---|")
    print(f"| tutorial-style loop (fp32, contiguous, LBFGS defaults) | {t_cpu:.1f} | {args.tutorial_steps} | yes | 1.0 |")
    runs = {} if args.only_variants or args.histories else {
        "nstlab defaults, auto": replace(BASE, precision="auto"),
        "nstlab defaults, fp32 (channels-last)": replace(BASE, precision="fp32")}
    for name, config in runs.items():
        cpu, step, reached = run_stylize_to(target, f32, backbone, content, style, config, args.max_steps)
        print(f"| {name} | {cpu:.1f} | {step} | {'yes' if reached else 'no'} | {t_cpu / cpu:.2f} |", flush=True)
    if args.histories:  # stylize itself, auto, with other L-BFGS history sizes than nstlab.optimise's default
        default = optimise.LBFGS_HISTORY
        try:
            for history in args.histories:
                optimise.LBFGS_HISTORY = history
                cpu, step, reached = run_stylize_to(target, f32, backbone, content, style,
                                                    replace(BASE, precision="auto"), args.max_steps)
                print(f"| nstlab, auto, L-BFGS history {history} | {cpu:.1f} | {step} | "
                      f"{'yes' if reached else 'no'} | {t_cpu / cpu:.2f} |", flush=True)
        finally:
            optimise.LBFGS_HISTORY = default
    if args.unprojected:  # L-BFGS as nstlab ran it before: pixels free during the run, clamped at the end
        optimise.PROJECT_LBFGS = False
        try:
            for precision in ("auto", "fp32"):
                cpu, step, reached = run_stylize_to(target, f32, backbone, content, style,
                                                    replace(BASE, precision=precision), args.max_steps)
                print(f"| {precision}, L-BFGS not projected (nstlab before) | {cpu:.1f} | {step} | "
                      f"{'yes' if reached else 'no'} | {t_cpu / cpu:.2f} |", flush=True)
        finally:
            optimise.PROJECT_LBFGS = True
    if args.variants or args.only_variants:
        # The optimiser's own options first (nstlab's defaults: history 20, no line search), then the schedule.
        for history, line_search in ((100, None), (20, "strong_wolfe"), (100, "strong_wolfe"), (5, None)):
            cpu, step, reached, evaluations = run_lbfgs_to(target, f32, backbone, content, style, "auto",
                                                           args.max_steps, history=history, line_search=line_search)
            print(f"| auto, L-BFGS history {history}, line search {line_search} | {cpu:.1f} | {step} ({evaluations}) | "
                  f"{'yes' if reached else 'no'} | {t_cpu / cpu:.2f} |", flush=True)
        for name, config in {
            "auto, 0.5 then 1.0 scale (50 coarse steps)": replace(BASE, precision="auto", scales=(0.5, 1.0),
                                                                  scale_steps=(50, args.max_steps)),
            "auto, noise init": replace(BASE, precision="auto", init="noise"),
        }.items():
            cpu, step, reached = run_stylize_to(target, f32, backbone, content, style, config, args.max_steps)
            print(f"| {name} | {cpu:.1f} | {step} | {'yes' if reached else 'no'} | {t_cpu / cpu:.2f} |", flush=True)
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def others(args, backbone) -> None:
    """The feature browser's new photo and transfer learning's training, one thread, CPU seconds (median)."""
    from nstlab import data
    from nstlab.transfer import patch_dataset, transfer
    from nstlab.vgg import LAYER_NAMES
    from nstlab.weights import untrained_backbone
    from nstlab.widgets.feature_browser import FeatureBrowser

    torch.set_num_threads(1)
    print(header(backbone))

    def cpu(fn, repeats):
        fn()
        times = []
        for _ in range(repeats):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
        return statistics.median(times)

    layers = tuple(name for name in LAYER_NAMES["vgg19"] if name.startswith("relu"))
    plain = VGGFeatures(layers, backbone=backbone)

    def before():  # what the browser did before: a contiguous float32 pass
        photo = data.builtin_image("chelsea", size=args.size)
        with torch.no_grad():
            return {layer: f[0] for layer, f in plain(photo).items()}

    rows = [("feature browser, new photo, contiguous fp32 (before)", cpu(before, args.repeats))]
    for precision in ("fp32", "auto"):
        browser = FeatureBrowser(size=args.size, backbone=backbone, precision=precision)

        def new_photo(browser=browser):
            browser._cache.clear()
            browser.features_of("chelsea")

        rows.append((f"feature browser, new photo, channels-last {browser.precision}", cpu(new_photo, args.repeats)))
    d = patch_dataset()
    vgg16 = untrained_backbone("vgg16")
    for precision in ("fp32", "auto"):
        rows.append((f"transfer() on the patch data set, channels-last, body in {precision}",
                     cpu(lambda p=precision: transfer(vgg16, d, precision=p), 1)))
    print(f"| {args.size} px photo, 1 thread | CPU s (median of {args.repeats}; transfer: 1) |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def network(args, backbone) -> None:
    """Forward and backward of VGG19 to relu5_1 at ``--size`` px, 1 thread, in five layouts and precisions."""
    from nstlab.device import Bf16Backward, autocast

    torch.set_num_threads(1)
    print(header(backbone))
    x0 = images(args.size)[0]
    rows = []
    for layout, precision in (("contiguous", "fp32"), ("contiguous", "bf16"), ("channels-last", "fp32"),
                              ("channels-last", "bf16"), ("channels-last", "fp32 forward, bf16 backward")):
        net = VGGFeatures(("relu5_1",), pool="max", backbone=backbone)
        if layout == "channels-last":
            net = channels_last(net)
        x = x0.clone().requires_grad_(True)

        def once(net=net, x=x, precision=precision, layout=layout):
            x.grad = None
            split = precision.startswith("fp32 forward")
            with autocast("fp32" if split else precision, "cpu"), (Bf16Backward() if split else nullcontext()):
                out = net(channels_last(x) if layout == "channels-last" else x)["relu5_1"]
            out.float().sum().backward()

        once()
        times = []
        for _ in range(args.repeats):
            c0 = time.process_time()
            once()
            times.append(time.process_time() - c0)
        rows.append((layout, precision, statistics.median(times)))
    base = rows[0][2]
    print(f"| VGG19 to relu5_1, {args.size} px, forward + backward, 1 thread | CPU s (median of {args.repeats}) | "
          "vs contiguous fp32 |")
    print("|---|---|---|")
    for layout, precision, seconds in rows:
        print(f"| {layout} {precision} | {seconds:.3f} | {seconds / base:.2f} |")
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("per-eval")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--evals", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    q = sub.add_parser("to-loss")
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--tutorial-steps", type=int, default=300)
    q.add_argument("--max-steps", type=int, default=400)
    q.add_argument("--beta", type=float, default=1e3, help="the style weight of both loops (alpha = 1)")
    q.add_argument("--unprojected", action="store_true", help="also L-BFGS without clamping before each evaluation")
    q.add_argument("--variants", action="store_true")
    q.add_argument("--histories", type=int, nargs="+", default=[],
                   help="instead of the default runs, stylize in auto with these L-BFGS history sizes")
    q.add_argument("--only-variants", action="store_true", help="skip the runs with nstlab's defaults")
    q.add_argument("--target", type=float, help="skip the tutorial run: its final loss, measured before")
    q.add_argument("--target-seconds", type=float, help="... and its CPU seconds")
    o = sub.add_parser("others")
    o.add_argument("--size", type=int, default=128, help="the feature browser's photo size (the fast profile's)")
    o.add_argument("--repeats", type=int, default=5)
    n = sub.add_parser("network")
    n.add_argument("--size", type=int, default=256)
    n.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    backbone = load_backbone("vgg19", fallback="untrained")
    print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    {"per-eval": per_eval, "to-loss": to_loss, "others": others, "network": network}[args.what](args, backbone)


if __name__ == "__main__":
    main()
