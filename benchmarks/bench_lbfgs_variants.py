"""Benchmark: variants of nstlab's L-BFGS loop on bench_precision's to-loss problem, with the loss along the way.

Run from the repository root, e.g.::

    .venv/bin/python benchmarks/bench_lbfgs_variants.py --name fp32-history100 --switch 0 --history 100
    .venv/bin/python benchmarks/bench_lbfgs_variants.py --name bf16-then-fp32 --switch 150
    .venv/bin/python benchmarks/bench_lbfgs_variants.py --name coarse-to-fine --coarse 100
    .venv/bin/python benchmarks/bench_lbfgs_variants.py --name b5-bf16-then-fp32 --beta 1e5 --target 0.8466 --switch 100
    .venv/bin/python benchmarks/bench_lbfgs_variants.py --name b5-colour --beta 1e5 --target 0.8466 --switch 0 --init colour

The objective is that of ``bench_precision.py to-loss`` (256 px, the paper's layers, beta 1e3 or ``--beta``, from
the content image, untrained VGG19 where the weights are not cached). Torch's L-BFGS takes one evaluation per
step, the pixels clamped to [0, 1] before each (``--project 0`` leaves them free); the network runs in bf16 before
step ``--switch`` and in fp32 from it (0: fp32 throughout; the default, never: bf16 throughout), bf16 meaning
autocast for the whole pass, as ``stylize`` ran bf16 when these runs were measured
(``bench_precision.whole_pass_autocast``); ``--coarse N`` first takes N steps at half size and starts the full
size from that image, upsampled (``--residual``: from the sharp content image plus the half-size run's change,
upsampled); ``--init colour`` starts from the content image
with the style image's colour mean and covariance; ``--anchor K`` adds to every bf16 gradient fp32's gradient
minus bf16's at the last anchor, taken every K-th step. The float32 loss of the full-size start is logged, and
every 10 steps the float32 loss of the clamped image is computed (its CPU seconds are left out); the run stops
when it reaches ``--target`` (the tutorial loop's 300-step loss, measured by ``bench_precision.py to-loss``).
Prints one JSON line: whether it reached the target, the last (step, CPU s, loss), and every third logged point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import bench_precision as bp  # noqa: E402  (a sibling script)

from nstlab import stylize as st  # noqa: E402
from nstlab.colour import match_colours  # noqa: E402
from nstlab.device import channels_last, frozen_weights_in  # noqa: E402
from nstlab.vgg import VGGFeatures  # noqa: E402
from nstlab.weights import load_backbone  # noqa: E402


def half(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)


class Variant:
    """One run: the objectives in both precisions, the float32 judge, and the log of (step, CPU s, loss)."""

    def __init__(self, args, backbone, content, style):
        self.args, self.content, self.style = args, content, style
        layers = bp.BASE.content_layers + bp.BASE.style_layers
        self.networks = {"fp32": channels_last(VGGFeatures(layers, pool="max", backbone=backbone))}
        self.networks["bf16"] = frozen_weights_in(
            channels_last(VGGFeatures(layers, pool="max", backbone=backbone)), "bf16")
        self.judge = bp.Float32Loss(backbone, content, style)
        self.log: list[tuple[int, float, float]] = []
        self.c0 = time.process_time()

    def objectives(self, content, style):
        out = {}
        for precision, network in self.networks.items():
            with bp.whole_pass_autocast():  # for fp32 the same pass as stylize's
                P, A = st._targets(network, content, [style], [1.0], bp.BASE, precision)
            out[precision] = st._objective(network, P, A, bp.BASE, [], precision)
        return out

    def run(self, x0, content, style, steps: int, start: int, judged: bool):
        """Steps start + 1 .. start + steps; the image, and whether the float32 loss reached the target."""
        a = self.args
        objectives = self.objectives(content, style)
        x = x0.detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=a.history, tolerance_grad=0.0,
                                tolerance_change=0.0)
        correction: list[torch.Tensor] = []  # --anchor: fp32's gradient minus bf16's at the last anchor
        for step in range(start + 1, start + steps + 1):
            objective = objectives["bf16" if step < a.switch else "fp32"]
            anchored = a.anchor and step < a.switch and (step - start - 1) % a.anchor == 0

            def closure(objective=objective, anchored=anchored, bf16=step < a.switch):
                if a.project:
                    with torch.no_grad():
                        x.clamp_(0, 1)
                opt.zero_grad(set_to_none=True)
                with bp.whole_pass_autocast():  # for fp32 the same pass as stylize's
                    total = objective(x).total
                total.backward()
                if anchored:
                    correction[:] = [torch.autograd.grad(objectives["fp32"](x).total, x)[0] - x.grad]
                if correction and bf16:
                    x.grad.add_(correction[0])  # at an anchor: fp32's gradient itself
                return total

            opt.step(closure)
            if judged and (step % 10 == 0 or step == start + steps):
                loss = self.judge(x.detach().clamp(0, 1))  # its CPU seconds are in judge.seconds
                self.log.append((step, round(time.process_time() - self.c0 - self.judge.seconds, 1), loss))
                if loss <= a.target:
                    return x, True
        return x, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="variant")
    parser.add_argument("--switch", type=int, default=10**9, help="bf16 before this step, fp32 from it")
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--anchor", type=int, default=0,
                        help="bf16 steps take fp32's gradient at every K-th step minus bf16's there as a correction")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--project", type=int, default=1, help="1: clamp before each evaluation, 0: never")
    parser.add_argument("--coarse", type=int, default=0, help="steps at half size first")
    parser.add_argument("--residual", action="store_true",
                        help="with --coarse: add the half-size run's change, upsampled, to the sharp content image")
    parser.add_argument("--init", choices=["content", "colour"], default="content",
                        help="colour: the content image with the style image's colour mean and covariance")
    parser.add_argument("--target", type=float, default=0.02732,
                        help="the tutorial loop's 300-step loss for this beta (bench_precision.py to-loss)")
    parser.add_argument("--beta", type=float, default=1e3, help="the style weight (alpha = 1)")
    args = parser.parse_args()
    bp.BASE = replace(bp.BASE, beta=args.beta)  # the objectives and the float32 judge read it
    torch.set_num_threads(1)
    backbone = load_backbone("vgg19", fallback="untrained")
    content, style = bp.images(256)
    variant = Variant(args, backbone, content, style)
    x, start = (match_colours(content, style) if args.init == "colour" else content.clone()), 0
    if args.coarse:
        small, _ = variant.run(half(x), half(content), half(style), args.coarse, 0, judged=False)
        small = small.detach().clamp(0, 1)
        if args.residual:
            change = F.interpolate(small - half(x), size=content.shape[-2:], mode="bilinear", align_corners=False)
            x = (x + change).clamp(0, 1)
        else:
            x = F.interpolate(small, size=content.shape[-2:], mode="bilinear", align_corners=False)
        start = args.coarse
    variant.log.append((start, round(time.process_time() - variant.c0 - variant.judge.seconds, 1),
                        variant.judge(x.clamp(0, 1))))
    _, reached = variant.run(x, content, style, args.steps - start, start, judged=True)
    print(json.dumps({"name": args.name, "reached": reached, "last": variant.log[-1], "log": variant.log[::3]}))


if __name__ == "__main__":
    main()
