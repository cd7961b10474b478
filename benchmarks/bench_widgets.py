"""How fast each lecture demo answers a change of one of its controls, on the CPU.

A lecturer clicks or drags a control and waits for the figure; the course's aim is an answer within a second
on a laptop without a GPU. For each demo and control this times the Python side of one change (the widget's
callback: computing and drawing the new figure), median of ``--repeats`` changes after one untimed change; the
browser's own drawing of the PNG adds a few milliseconds on top. The feature browser and style panel use the
untrained network (the weights do not change the speed); the style panel shows a precomputed grid on a CPU,
so the grid is computed first (not timed) in a temporary folder.

Run:
    .venv/bin/python benchmarks/bench_widgets.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable

import torch

from nstlab import data, fast
from nstlab.weights import untrained_backbone
from nstlab.widgets.backprop_stepper import backprop_stepper
from nstlab.widgets.conv_playground import conv_playground
from nstlab.widgets.dream_explorer import GridSpec as DreamGrid
from nstlab.widgets.dream_explorer import compute_grid as compute_dreams
from nstlab.widgets.dream_explorer import dream_explorer
from nstlab.widgets.fast_slider import MODEL_SUFFIX, fast_slider
from nstlab.widgets.feature_browser import feature_browser
from nstlab.widgets.gd_explorer import gd_explorer
from nstlab.widgets.perceptron_stepper import perceptron_stepper
from nstlab.widgets.style_panel import GridSpec, compute_grid, style_panel

from measure import median_seconds


def toggling(widget, values: tuple) -> Callable[[], None]:
    """An action that sets ``widget.value`` to the next of ``values`` on each call."""
    state = {"k": 0}

    def action() -> None:
        state["k"] += 1
        widget.value = values[state["k"] % len(values)]

    return action


def cases(folder: str):
    """(demo, control, action) for every demo's main controls, at the sizes the notebooks use in lectures."""
    p = perceptron_stepper()
    yield "perceptron stepper", "step", p.step_button.click
    yield "perceptron stepper", "epoch", p.epoch_button.click
    yield "perceptron stepper", "gate", toggling(p.gate, ("or", "and"))
    g = gd_explorer(epochs=200)
    yield "gradient-descent explorer (200 epochs)", "learning rate", toggling(g.eta, (2e-3, 1e-3))
    yield "gradient-descent explorer (200 epochs)", "batch / SGD", toggling(g.method, ("sgd", "batch"))
    b = backprop_stepper()
    yield "backprop stepper", "next stage", b.next_button.click
    c = conv_playground(size=256)
    yield "convolution playground (256 px)", "kernel", toggling(c.preset, ("sharpen", "Sobel x (vertical edges)"))
    yield "convolution playground (256 px)", "stride", toggling(c.stride, (2, 1))
    yield "convolution playground (256 px)", "photo", toggling(c.image, tuple(data.list_images()))
    f = feature_browser(size=128, backbone=untrained_backbone("vgg19"))
    yield "feature browser (128 px, VGG19)", "layer", toggling(f.layer, ("relu3_1", "relu1_1"))
    yield "feature browser (128 px, VGG19)", "channel", toggling(f.channel, (5, 0))
    # Each photo's features are kept once computed, so time photos not shown before: the slow case.
    yield "feature browser (128 px, VGG19)", "new photo", toggling(f.image, tuple(n for n in data.list_images()
                                                                                 if n != f.image.value))
    spec = GridSpec(steps=1)
    backbone = untrained_backbone("vgg19")
    compute_grid(spec, backbone=backbone, cache_dir=folder, show_progress=False)
    s = style_panel(spec, live=False, backbone=backbone, cache_dir=folder)
    yield "style panel (precomputed grid, 64 px)", "style weight", toggling(s.ratio, (1e4, 1e2))
    yield "style panel (precomputed grid, 64 px)", "layers", toggling(s.layers, spec.layer_choices[:2])
    yield "style panel (precomputed grid, 64 px)", "init", toggling(s.init, spec.inits[1::-1])
    # The dream explorer on a CPU shows its precomputed grid; a small grid (not timed) has every control.
    dreams = DreamGrid(image="astronaut", size=64, steps=1, layers=("relu1_1", "relu3_1"), channels=(None, 0), octaves=(1, 2))
    compute_dreams(dreams, backbone=backbone, cache_dir=folder, show_progress=False)
    d = dream_explorer(dreams, live=False, backbone=backbone, cache_dir=folder)
    yield "dream explorer (precomputed grid, 64 px)", "layer", toggling(d.layer, dreams.layers[::-1])
    yield "dream explorer (precomputed grid, 64 px)", "channel", toggling(d.channel, ("0", "all"))
    yield "dream explorer (precomputed grid, 64 px)", "octaves", toggling(d.octaves, (1, 2))
    # The before/after slider applies a trained network to the photo: two tiny models (speed does not depend
    # on the weights; the lecture's are the small network, so train that size for two steps, not timed).
    vgg16 = untrained_backbone("vgg16")
    for style, seed in (("mosaic", 0), ("swirl", 1)):
        config = fast.fast_config("fast", steps=2, seed=seed)
        result = fast.train(style, None, config, backbone=vgg16, fallback="untrained", progress=False)
        fast.save_model(result.model, f"{folder}/{style}{MODEL_SUFFIX}")
    f = fast_slider(folder, size=256)
    yield "before/after slider (256 px, small network)", "split", toggling(f.split, (0.2, 0.8))
    yield "before/after slider (256 px, small network)", "style", toggling(f.style_picker, ("swirl", "mosaic"))
    # Each (style, photo) result is kept once computed; time a pair not shown before (one forward pass).
    next_photo = toggling(f.photo_picker, tuple(f.photo_picker.options)[::-1])

    def new_photo() -> None:
        f.cache.clear()
        next_photo()

    yield "before/after slider (256 px, small network)", "a photo not stylised before", new_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, python {platform.python_version()}, "
          f"torch {torch.__version__}; median of {args.repeats} changes")
    print("| demo | control | ms per change |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for demo, control, action in cases(folder):
            print(f"| {demo} | {control} | {1000 * median_seconds(action, repeats=args.repeats):.0f} |", flush=True)


if __name__ == "__main__":
    main()
