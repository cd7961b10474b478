r"""Lecture demo: style transfer with three controls, the style weight, the style layers and the initial image.

Gatys et al. (2016) balance content and style with :math:`\beta/\alpha`, match Gram matrices over a set of
style layers, and start from the photo or from noise. The panel turns those three dials.

* On a CUDA GPU (``live=True``, the default there) each change runs a short optimisation with
  :func:`nstlab.stylize.stylize` and shows the result.
* On a CPU that takes too long for a lecture, so the panel shows images from a **precomputed grid** over the
  controls' values, made once by :func:`compute_grid` (a few minutes at the default small size) and cached
  under the user's cache folder (``~/.cache/torch/nstlab/style_grid`` by default, never in the repository),
  keyed by the settings. Once the grid exists, every change is a dictionary look-up (well under a second).
  Until it exists, the panel shows the photo and says how to make the grid (no empty result image).

The lecture (``nstlab present``) shows the grid of :func:`lecture_spec`, which :func:`prepare` (run by
``nstlab present --prepare``) computes once with a progress bar and an estimate of the time.

Every image made with the untrained fallback network carries a red "UNTRAINED" strip, and a banner above
the images repeats the network's ``note``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ipywidgets as widgets
import torch

from nstlab import data
from nstlab.losses import GATYS_STYLE_LAYERS
from nstlab.profiles import get_profile
from nstlab.progress import progress
from nstlab.stylize import INITS, StyleConfig, stylize
from nstlab.vgg import VGGFeatures
from nstlab.weights import Backbone, load_backbone
from nstlab.weights import status as weights_status
from nstlab.widgets import _grids
from nstlab.widgets._images import duration, image_png, to_uint8

# The style-layer choices offered, shallow to deep (the paper's conv1_1 ... conv5_1 are our relu1_1 ...).
LAYER_CHOICES: dict[str, tuple[str, ...]] = {
    "relu1_1": GATYS_STYLE_LAYERS[:1],
    "relu1_1 … relu2_1": GATYS_STYLE_LAYERS[:2],
    "relu1_1 … relu3_1": GATYS_STYLE_LAYERS[:3],
    "relu1_1 … relu4_1": GATYS_STYLE_LAYERS[:4],
    "relu1_1 … relu5_1 (paper)": GATYS_STYLE_LAYERS,
}
# Width in pixels at which the images are shown (nearest-neighbour enlargement of the small results).
DISPLAY_WIDTH = 256


@dataclass(frozen=True)
class GridSpec:
    r"""The settings of a precomputed grid: the images, the run, and the values of each control.

    Attributes:
        content, style: built-in image names (:func:`nstlab.data.list_images`).
        size: long side of the results in pixels.
        steps: optimiser steps per result.
        ratios: the values of :math:`\beta/\alpha` (with :math:`\alpha = 1`).
        layer_choices: keys of :data:`LAYER_CHOICES`.
        inits: initial images, from :data:`nstlab.stylize.INITS`.
        optimizer: the optimiser of every run.
        seed: seed of the noise and of the untrained fallback network.
    """

    content: str = "chelsea"
    style: str = "mosaic"
    size: int = 64
    steps: int = 20
    ratios: tuple[float, ...] = (1e1, 1e2, 1e3, 1e4, 1e5)
    layer_choices: tuple[str, ...] = tuple(LAYER_CHOICES)
    inits: tuple[str, ...] = INITS
    optimizer: str = "lbfgs"
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.layer_choices if c not in LAYER_CHOICES]
        if unknown:
            raise ValueError(f"unknown layer choice(s) {unknown}; use keys of LAYER_CHOICES: {list(LAYER_CHOICES)}.")
        bad = [i for i in self.inits if i not in INITS]
        if bad:
            raise ValueError(f"unknown init(s) {bad}; use some of {INITS}.")
        if not self.ratios or any(not math.isfinite(r) or r <= 0 for r in self.ratios):
            raise ValueError(f"ratios {self.ratios} must be positive numbers (beta/alpha).")

    def config(self, ratio: float, layers: str, init: str) -> StyleConfig:
        """The :class:`nstlab.stylize.StyleConfig` of one cell of the grid."""
        return StyleConfig(alpha=1.0, beta=float(ratio), style_layers=LAYER_CHOICES[layers], init=init,
                           optimizer=self.optimizer, steps=self.steps, size=self.size, seed=self.seed)


def grid_key(ratio: float, layers: str, init: str) -> str:
    """The key of one grid entry, e.g. ``"1e+03|relu1_1|content"``.

    Example:
        >>> grid_key(1000.0, "relu1_1", "noise")
        '1e+03|relu1_1|noise'
    """
    return f"{ratio:.0e}|{layers}|{init}"


def default_cache_dir() -> Path:
    """The user's cache folder for grids: ``<torch cache>/nstlab/style_grid`` (``~/.cache/torch/...``).

    Example:
        >>> default_cache_dir().parts[-2:]
        ('nstlab', 'style_grid')
    """
    return _grids.default_cache_dir("style_grid")


def grid_path(spec: GridSpec, *, pretrained: bool, cache_dir: str | Path | None = None) -> Path:
    """Where the grid of ``spec`` is cached; the name holds a hash of the settings and whether the network
    was pretrained, so a grid made offline is not shown as pretrained once the weights arrive.

    Example:
        >>> grid_path(GridSpec(), pretrained=False, cache_dir="/tmp").name.startswith("untrained-")
        True
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _grids.grid_file(spec, pretrained=pretrained, folder=folder)


def compute_grid(spec: GridSpec = GridSpec(), *, backbone: Backbone | None = None,
                 cache_dir: str | Path | None = None, overwrite: bool = False,
                 device: str | torch.device = "cpu", show_progress: bool | None = None) -> Path:
    """Run every combination of ``spec``'s control values once and cache the results in one file.

    Args:
        spec: the grid's settings.
        backbone: the network; ``None`` loads pretrained VGG19, or the untrained fallback when the weights
            are unavailable (then every image is marked untrained).
        cache_dir: the folder of the cache; default :func:`default_cache_dir`.
        overwrite: recompute even if the file exists.
        device: where to compute.
        show_progress: ``None``: a progress bar except under nbgrader.

    Returns:
        The path of the cached file (a dict of uint8 images (1, 3, H, W) by :func:`grid_key`, plus the spec,
        ``pretrained`` and ``note``).
    """
    backbone = backbone or load_backbone("vgg19", fallback="untrained", seed=spec.seed)
    path = grid_path(spec, pretrained=backbone.pretrained, cache_dir=cache_dir)
    if path.exists() and not overwrite:
        return path
    layers = tuple(dict.fromkeys(StyleConfig().content_layers + GATYS_STYLE_LAYERS))
    extractor = VGGFeatures(layers, backbone=backbone).to(device)
    photo = data.builtin_image(spec.content, size=spec.size).to(device)
    painting = data.builtin_image(spec.style, size=spec.size).to(device)
    cells = [(r, layer, init) for r in spec.ratios for layer in spec.layer_choices for init in spec.inits]
    images = {}
    for ratio, layer, init in progress(cells, desc="style grid", disable=None if show_progress is not False else True):
        result = stylize(photo, painting, spec.config(ratio, layer, init), extractor=extractor, show_progress=False)
        images[grid_key(ratio, layer, init)] = to_uint8(result.image)
    return _grids.save_grid({"spec": asdict(spec), "pretrained": backbone.pretrained, "note": backbone.note,
                             "content": to_uint8(photo), "images": images}, path)


def lecture_spec(profile_name: str | None = None) -> GridSpec:
    """The grid a lecture shows: :class:`GridSpec`'s defaults, or in the ``grade`` profile (tests, CI) a tiny
    grid with two values of each control, one step at 48 pixels.

    Example:
        >>> lecture_spec("grade").size, len(lecture_spec("fast").ratios)
        (48, 5)
    """
    if get_profile(profile_name).name == "grade":
        return replace(GridSpec(), size=48, steps=1, ratios=(1e2, 1e4), layer_choices=tuple(LAYER_CHOICES)[:2],
                       inits=INITS[:2])
    return GridSpec()


def prepare(*, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Compute and cache the lecture's grid (:func:`lecture_spec`) once; return its path.

    The network is pretrained VGG19 when cached, else the untrained fallback (and then every image says so).
    One cell is timed first (after a warm-up run) to print an estimate of the whole grid's time; the grid
    then runs under a progress bar. An existing grid is returned at once.

    Args:
        cache_dir: the folder of the cache; default :func:`default_cache_dir`.
        progress: print the estimate and show a progress bar.

    Returns:
        The path of the cached grid, as :func:`compute_grid` returns it.
    """
    spec = lecture_spec()
    backbone = load_backbone("vgg19", fallback="untrained", seed=spec.seed)
    path = grid_path(spec, pretrained=backbone.pretrained, cache_dir=cache_dir)
    cells = len(spec.ratios) * len(spec.layer_choices) * len(spec.inits)
    say = print if progress else (lambda *_, **__: None)
    if path.exists():
        say(f"style panel: grid already prepared at {path}")
        return path
    extractor = VGGFeatures(tuple(dict.fromkeys(StyleConfig().content_layers + GATYS_STYLE_LAYERS)), backbone=backbone)
    photo, painting = (data.builtin_image(name, size=spec.size) for name in (spec.content, spec.style))
    first = spec.config(spec.ratios[0], spec.layer_choices[0], spec.inits[0])
    stylize(photo, painting, first, extractor=extractor, show_progress=False)  # warm-up: the first run is slower
    start = time.perf_counter()
    stylize(photo, painting, first, extractor=extractor, show_progress=False)
    seconds = time.perf_counter() - start
    say(f"style panel: {cells} images of {spec.size} px, {spec.steps} {spec.optimizer} step{'s' if spec.steps != 1 else ''} each, on "
        f"{'pretrained' if backbone.pretrained else 'UNTRAINED'} VGG19: about {duration(seconds * cells)} "
        f"(one image took {seconds:.1f} s)", flush=True)
    return compute_grid(spec, backbone=backbone, cache_dir=cache_dir, show_progress=progress)


def _png(image: torch.Tensor, *, untrained: bool) -> bytes:
    """PNG bytes of a (1, 3, H, W) image at the demo's width, with a red strip if the network is untrained."""
    return image_png(image, width=DISPLAY_WIDTH, banner="UNTRAINED network: not meaningful" if untrained else None)


class StylePanel(widgets.VBox):
    """The panel's container. Its state is public for tests and curious students: ``mode`` (``"live"`` or
    ``"grid"``), ``key`` (the settings shown), ``image`` (the shown result, uint8 (1, 3, H, W), or ``None``
    when the grid is missing), ``pretrained``, ``note`` and ``grid_file``."""

    def __init__(self, spec: GridSpec, *, live: bool, backbone: Backbone | None, cache_dir: str | Path | None,
                 device: str | torch.device | None):
        self.spec, self.cache_dir = spec, cache_dir
        self.mode = "live" if live else "grid"
        self.device = torch.device(device) if device is not None else torch.device("cuda" if live else "cpu")
        self.ratio = widgets.FloatLogSlider(value=1e3, base=10, min=math.log10(min(spec.ratios)),
                                            max=math.log10(max(spec.ratios)), step=1, description="β/α",
                                            readout_format=".0e", continuous_update=False)
        self.ratio.value = min(spec.ratios, key=lambda r: abs(math.log10(r) - 3))
        self.layers = widgets.Dropdown(options=list(spec.layer_choices), value=spec.layer_choices[-1],
                                       description="style layers")
        self.init = widgets.ToggleButtons(options=list(spec.inits), value=spec.inits[0], description="init")
        self.banner, self.status = widgets.HTML(), widgets.HTML()
        self.content_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.result_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.image, self.key, self.grid, self.grid_file = None, None, None, None
        if live:
            self.backbone = backbone or load_backbone("vgg19", fallback="untrained", seed=spec.seed)
            self.pretrained, self.note = self.backbone.pretrained, self.backbone.note
            layers = tuple(dict.fromkeys(StyleConfig().content_layers + GATYS_STYLE_LAYERS))
            self.extractor = VGGFeatures(layers, backbone=self.backbone).to(self.device)
            self.photo = data.builtin_image(spec.content, size=spec.size).to(self.device)
            self.painting = data.builtin_image(spec.style, size=spec.size).to(self.device)
            content = to_uint8(self.photo)
        else:
            # Which grid to show is decided by whether the weights are cached (cheap), not by loading them.
            on_disk = {s.arch: s.present for s in weights_status()}
            pretrained = backbone.pretrained if backbone is not None else on_disk["vgg19"]
            self.grid_file = grid_path(spec, pretrained=pretrained, cache_dir=cache_dir)
            self.pretrained = pretrained
            self.note = backbone.note if backbone is not None else (
                "pretrained VGG19" if pretrained else "UNTRAINED VGG19 (random weights): pretrained weights not in "
                "the cache, so the images are not meaningful; see `nstlab weights status`.")
            content = to_uint8(data.builtin_image(spec.content, size=spec.size))
            self.reload()
        self.content_view.value = _png(content, untrained=False)
        self.compute_button = widgets.Button(description="compute grid now", layout={"display": "none"})
        self.compute_button.on_click(lambda _: self._compute())
        for control in (self.ratio, self.layers, self.init):
            control.observe(lambda _: self.refresh(), names="value")
        controls = widgets.HBox([self.ratio, self.layers, self.init])
        super().__init__([controls, self.banner, widgets.HBox([self.content_view, self.result_view]),
                          self.status, self.compute_button])
        self.refresh()

    def reload(self) -> None:
        """Read the grid file if it exists (after :func:`compute_grid`); its own record of the network wins."""
        if self.grid_file is not None and self.grid_file.exists():
            self.grid = torch.load(self.grid_file, weights_only=True)
            self.pretrained, self.note = bool(self.grid["pretrained"]), str(self.grid["note"])

    def _nearest_ratio(self) -> float:
        return min(self.spec.ratios, key=lambda r: abs(math.log10(r) - math.log10(self.ratio.value)))

    def refresh(self) -> None:
        """Show the result for the current control values (a look-up on a CPU, a short run on a GPU)."""
        self.key = grid_key(self._nearest_ratio(), self.layers.value, self.init.value)
        self.banner.value = "" if self.pretrained else f"<p style='color:#b00;font-weight:bold'>{self.note}</p>"
        if self.mode == "live":
            config = self.spec.config(self._nearest_ratio(), self.layers.value, self.init.value)
            result = stylize(self.photo, self.painting, config, extractor=self.extractor, show_progress=False)
            self.image = to_uint8(result.image)
            self.status.value = (f"<p>live: {result.steps} {config.optimizer} steps in {result.loop_seconds:.2f} s on "
                                 f"{self.device} ({self.key}).</p>")
        elif self.grid is None:
            self.image = None
            self.result_view.value = b""
            self.result_view.layout.display = "none"  # an empty image would show as a broken-image icon
            self.compute_button.layout.display = None
            self.status.value = (f"<p>No precomputed grid yet at {self.grid_file}. Make it once with "
                                 "<code>nstlab present --prepare</code> in a terminal (a few minutes on a CPU) and reload this "
                                 "page, or press the button below; in a notebook: <code>from "
                                 "nstlab.widgets.style_panel import compute_grid; compute_grid()</code>.</p>")
            return
        else:
            self.image = self.grid["images"][self.key]
            self.status.value = f"<p>precomputed ({self.spec.steps} steps at {self.spec.size} px): {self.key}</p>"
        self.compute_button.layout.display = "none"
        self.result_view.layout.display = None
        self.result_view.value = _png(self.image, untrained=not self.pretrained)

    def _compute(self) -> None:
        self.status.value = "<p>computing the grid…</p>"
        compute_grid(self.spec, cache_dir=self.cache_dir, show_progress=False)
        self.reload()
        self.refresh()


def style_panel(spec: GridSpec | None = None, *, live: bool | None = None, backbone: Backbone | None = None,
                cache_dir: str | Path | None = None, device: str | torch.device | None = None) -> StylePanel:
    """Build the style-transfer panel.

    Args:
        spec: the images, size, steps and control values; default :class:`GridSpec`.
        live: run the optimisation on each change; ``None``: only when a CUDA GPU is available.
        backbone: the network; ``None``: pretrained VGG19 if cached, else the untrained fallback.
        cache_dir: where grids are cached; default :func:`default_cache_dir`.
        device: where live runs compute; default CUDA when live.

    Example:
        >>> import tempfile
        >>> panel = style_panel(GridSpec(size=48, ratios=(1e3,)), live=False, cache_dir=tempfile.mkdtemp())
        >>> panel.mode, panel.image is None, "No precomputed grid" in panel.status.value
        ('grid', True, True)
    """
    spec = spec or GridSpec()
    live = torch.cuda.is_available() if live is None else live
    return StylePanel(spec, live=live, backbone=backbone, cache_dir=cache_dir, device=device)


__all__ = ["LAYER_CHOICES", "GridSpec", "StylePanel", "compute_grid", "default_cache_dir", "grid_key", "grid_path",
           "lecture_spec", "prepare", "style_panel"]
