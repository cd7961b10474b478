"""Milliseconds per loss-and-gradient evaluation of style transfer on a GPU, in three numeric modes.

One evaluation is what each optimisation step of :func:`nstlab.stylize.stylize` costs: the forward pass of
VGG19 up to relu5_1, the Gatys losses (content at relu4_2, five Gram matrices), and the gradient with respect
to the image. Modes:

- ``fp32``: float32 throughout, TF32 off (the reference);
- ``tf32``: float32 tensors, TF32 tensor cores allowed in convolutions and matrix products;
- ``bf16-cl``: bf16 autocast for the whole network pass, channels-last convolutions, Gram matrices and
  losses in float32 (what the feature browser, transfer learning and fast style transfer do in bf16);
- ``bf16-bwd-cl``: what ``stylize`` does in bf16: the forward pass in float32 (torch's default cuDNN
  settings, which allow TF32 in convolutions), the backward pass through the convolutions in bf16
  (:class:`nstlab.device.Bf16Backward`), channels-last.

The weights do not change the speed, so the untrained network is used. Timings are CUDA-synchronised medians
after a warm-up. On a machine without a GPU, ``--device cpu --size 64`` runs the same code (every mode but
``tf32`` on the CPU) as a check that the script works.

Run:
    .venv/bin/python benchmarks/bench_gpu.py [--size 512] [--repeats 50] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import platform

import torch

from nstlab import losses
from nstlab.device import Bf16Backward
from nstlab.style_config import PAPER_CONTENT, PAPER_STYLE
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone

from measure import median_seconds

LAYERS = PAPER_CONTENT + PAPER_STYLE


@contextlib.contextmanager
def tf32(allowed: bool):
    """Allow or forbid TF32 in CUDA matrix products and convolutions, restoring the settings afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def evaluation(extractor, x, P, A, *, bf16: bool, bf16_backward: bool = False) -> float:
    """One loss-and-gradient evaluation; returns the total loss (a float, which also synchronises)."""
    x = x.detach().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16), \
            (Bf16Backward() if bf16_backward else contextlib.nullcontext()):
        out = extractor(x)
    features = {name: f.float() for name, f in out.items()}  # Grams and losses in float32
    parts = losses.total_loss(features, P, A, alpha=1.0, beta=1e3)
    parts.total.backward()
    return parts.total.item()


def time_mode(mode: str, *, size: int, repeats: int, device: torch.device) -> float:
    """Median milliseconds per evaluation in ``mode``."""
    bf16, bf16_backward, channels_last = mode == "bf16-cl", mode == "bf16-bwd-cl", mode.endswith("-cl")
    extractor = VGGFeatures(LAYERS, backbone=untrained_backbone("vgg19", seed=0)).to(device)
    g = torch.Generator().manual_seed(0)
    photo, painting, x = (torch.rand(1, 3, size, size, generator=g).to(device) for _ in range(3))
    if channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
        photo, painting, x = (t.contiguous(memory_format=torch.channels_last) for t in (photo, painting, x))
    # bf16-bwd-cl keeps torch's own TF32 settings, as stylize does; the other modes set them.
    settings = contextlib.nullcontext if bf16_backward else (lambda: tf32(mode == "tf32"))
    with settings(), torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        P = {name: f.float() for name, f in extractor(photo).items() if name in PAPER_CONTENT}
        A = {name: losses.gram_matrix(f.float()) for name, f in extractor(painting).items() if name in PAPER_STYLE}
    with settings():
        # Five warm-up runs: cuDNN picks its algorithms, the allocator settles. evaluation() ends with .item(),
        # which waits for the GPU, so each timing covers the whole evaluation.
        def once():
            return evaluation(extractor, x, P, A, bf16=bf16, bf16_backward=bf16_backward)

        return 1000 * median_seconds(once, repeats=repeats, warmup=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--modes", nargs="+", default=["fp32", "tf32", "bf16-cl", "bf16-bwd-cl"])
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: torch sees no CUDA GPU; run it where one is, or pass --device cpu --size 64.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"{name}; python {platform.python_version()}, torch {torch.__version__}; {args.size} x {args.size}, "
          f"VGG19 to relu5_1, Gatys losses; median of {args.repeats}")
    print("| mode | ms per evaluation |")
    print("|---|---|")
    for mode in args.modes:
        if mode == "tf32" and device.type != "cuda":
            continue  # TF32 exists on NVIDIA GPUs only
        print(f"| {mode} | {time_mode(mode, size=args.size, repeats=args.repeats, device=device):.2f} |", flush=True)


if __name__ == "__main__":
    main()
