r"""Lecture demo: DeepDream with four controls, the layer, the channel, the number of octaves and the step size.

DeepDream (Mordvintsev et al., 2015; :mod:`nstlab.dream`) amplifies what one layer of VGG19, or one channel of
it, responds to, by normalised gradient ascent on the pixels over octaves. The explorer turns those dials.

* On a CUDA GPU (``live=True``, the default there) each change runs :func:`nstlab.dream.dream` and shows the
  result.
* On a CPU that takes too long for a lecture, so the explorer shows images from a **precomputed grid** over
  the controls' values, made once by :func:`compute_grid` and cached under the user's cache folder
  (``~/.cache/torch/nstlab/dream_grid`` by default, never in the repository), keyed by the settings. Once
  the grid exists, every change is a dictionary look-up (well under a second). Until it exists, the
  explorer shows the photo and says how to make the grid (no empty result image).

By default the explorer shows the grid of :func:`lecture_spec`, which :func:`prepare` (run by ``nstlab
present --prepare``) computes once with an estimate of the time and a progress bar.

Every image made with the untrained fallback network carries a red "UNTRAINED" strip, and a banner above
the images repeats the network's ``note``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import ipywidgets as widgets
import torch

from nstlab import data
from nstlab.dream import MIN_OCTAVE_SIDE, DreamConfig, dream, octave_sizes
from nstlab.profiles import get_profile
from nstlab.progress import progress
from nstlab.vgg import VGGFeatures
from nstlab.weights import Backbone, load_backbone
from nstlab.weights import status as weights_status
from nstlab.widgets import _grids
from nstlab.widgets._images import duration, image_png, to_uint8

# The layers offered, shallow to deep: from colours and edges to object parts (with pretrained weights).
DREAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
# The channel control's label for "the whole layer" (channel=None in nstlab.dream).
ALL_CHANNELS = "all"
# Width in pixels at which the images are shown (nearest-neighbour enlargement of the small results).
DISPLAY_WIDTH = 256


@dataclass(frozen=True)
class GridSpec:
    r"""The settings of a precomputed grid: the image, the run, and the values of each control.

    Attributes:
        image: a built-in image name (:func:`nstlab.data.list_images`).
        size: long side of the results in pixels.
        steps: ascent steps per octave.
        layers: the layer choices, names of VGG19 layers.
        channels: the channel choices: ``None`` (the whole layer) or channel indices valid in every layer.
        octaves: the choices of the number of octaves.
        step_sizes: the choices of the step size :math:`\eta`.
        octave_scale: the ratio between octave sizes.
        jitter: the largest random shift in pixels.
        seed: seed of the jitter and of the untrained fallback network.
    """

    image: str = "chelsea"
    size: int = 128
    steps: int = 8
    layers: tuple[str, ...] = DREAM_LAYERS
    channels: tuple[int | None, ...] = (None, 0, 1)
    octaves: tuple[int, ...] = (1, 3)
    step_sizes: tuple[float, ...] = (0.01, 0.03)
    octave_scale: float = 1.4
    jitter: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("layers", "channels", "octaves", "step_sizes"):
            if not getattr(self, name):
                raise ValueError(f"GridSpec.{name} is empty; give at least one value.")
        if self.image not in data.list_images():
            raise ValueError(f"unknown image {self.image!r}; use one of {', '.join(data.list_images())}.")
        for layer in self.layers:  # DreamConfig checks the layer names, channels, octaves and step sizes
            for channel in self.channels:
                self.config(layer, channel, self.octaves[0], self.step_sizes[0])
        for octaves in self.octaves:
            for step_size in self.step_sizes:
                self.config(self.layers[0], self.channels[0], octaves, step_size)
        # An octave whose short side would fall below 32 px is skipped by nstlab.dream, so a choice of more
        # octaves than fit would silently show the same dream as a smaller one.
        height, width = data.builtin_image(self.image, size=self.size).shape[-2:]
        fit = len(octave_sizes(height, width, octaves=max(self.octaves), scale=self.octave_scale))
        if max(self.octaves) > fit:
            raise ValueError(f"octaves={max(self.octaves)} do not fit the {width}x{height} px {self.image!r}: only {fit} "
                             f"octave(s) keep a short side of at least {MIN_OCTAVE_SIDE} px; raise size or offer fewer "
                             "octaves.")

    def config(self, layer: str, channel: int | None, octaves: int, step_size: float) -> DreamConfig:
        """The :class:`nstlab.dream.DreamConfig` of one cell of the grid."""
        return DreamConfig(layer=layer, channel=channel, octaves=octaves, step_size=float(step_size),
                           steps=self.steps, size=self.size, octave_scale=self.octave_scale, jitter=self.jitter,
                           seed=self.seed)


def grid_key(layer: str, channel: int | None, octaves: int, step_size: float) -> str:
    """The key of one grid entry, e.g. ``"relu4_1|all|3|0.01"``.

    Example:
        >>> grid_key("relu4_1", None, 3, 0.01), grid_key("relu1_1", 7, 1, 0.03)
        ('relu4_1|all|3|0.01', 'relu1_1|7|1|0.03')
    """
    return f"{layer}|{ALL_CHANNELS if channel is None else channel}|{octaves}|{step_size:g}"


def default_cache_dir() -> Path:
    """The user's cache folder for grids: ``<torch cache>/nstlab/dream_grid`` (``~/.cache/torch/...``).

    Example:
        >>> default_cache_dir().parts[-2:]
        ('nstlab', 'dream_grid')
    """
    return _grids.default_cache_dir("dream_grid")


def grid_path(spec: GridSpec, *, pretrained: bool, cache_dir: str | Path | None = None) -> Path:
    """Where the grid of ``spec`` is cached; the name holds a hash of the settings and whether the network
    was pretrained, so a grid made offline is not shown as pretrained once the weights arrive.

    Example:
        >>> grid_path(GridSpec(), pretrained=False, cache_dir="/tmp").name.startswith("untrained-")
        True
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _grids.grid_file(spec, pretrained=pretrained, folder=folder)


def compute_grid(spec: GridSpec | None = None, *, backbone: Backbone | None = None,
                 cache_dir: str | Path | None = None, overwrite: bool = False,
                 device: str | torch.device = "cpu", show_progress: bool | None = None) -> Path:
    """Dream once for every combination of ``spec``'s control values and cache the results in one file.

    Args:
        spec: the grid's settings; default :func:`lecture_spec`.
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
    spec = spec or lecture_spec()
    backbone = backbone or load_backbone("vgg19", fallback="untrained", seed=spec.seed)
    path = grid_path(spec, pretrained=backbone.pretrained, cache_dir=cache_dir)
    if path.exists() and not overwrite:
        return path
    photo = data.builtin_image(spec.image, size=spec.size).to(device)
    cells = [(layer, channel, octaves, step_size) for layer in spec.layers for channel in spec.channels
             for octaves in spec.octaves for step_size in spec.step_sizes]
    extractors: dict[str, VGGFeatures] = {}
    images = {}
    for layer, channel, octaves, step_size in progress(cells, desc="dream grid",
                                                       disable=None if show_progress is not False else True):
        if layer not in extractors:  # one extractor per layer, each stopping at its own layer
            extractors[layer] = VGGFeatures([layer], backbone=backbone).to(device)
        result = dream(photo, extractors[layer], spec.config(layer, channel, octaves, step_size), progress=False)
        images[grid_key(layer, channel, octaves, step_size)] = to_uint8(result.image)
    return _grids.save_grid({"spec": asdict(spec), "pretrained": backbone.pretrained, "note": backbone.note,
                             "original": to_uint8(photo), "images": images}, path)


def lecture_spec(profile_name: str | None = None) -> GridSpec:
    """The grid the explorer shows by default: :class:`GridSpec`'s defaults, or in the ``grade`` profile (tests,
    CI) a tiny grid with two values of each control, one step per octave at 48 pixels.

    Example:
        >>> lecture_spec("grade").size, len(lecture_spec("fast").layers)
        (48, 6)
    """
    if get_profile(profile_name).name == "grade":
        return replace(GridSpec(), image="astronaut", size=48, steps=1, layers=("relu1_1", "relu2_1"),
                       channels=(None, 3), octaves=(1, 2), jitter=4)
    return GridSpec()


def prepare(*, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Compute and cache the explorer's grid (:func:`lecture_spec`) once; return its path.

    The network is pretrained VGG19 when cached, else the untrained fallback (and then every image says so).
    One dream is timed first (after a warm-up run) to print an estimate of the whole grid's time; the grid
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
    say = print if progress else (lambda *_, **__: None)
    if path.exists():
        say(f"dream explorer: grid already prepared at {path}")
        return path
    cells = len(spec.layers) * len(spec.channels) * len(spec.octaves) * len(spec.step_sizes)
    # Time a middle layer with the most octaves: the grid's dreams average roughly that.
    layer = spec.layers[len(spec.layers) // 2]
    extractor = VGGFeatures([layer], backbone=backbone)
    photo = data.builtin_image(spec.image, size=spec.size)
    typical = spec.config(layer, spec.channels[0], max(spec.octaves), spec.step_sizes[0])
    dream(photo, extractor, typical, progress=False)  # warm-up: the first run is slower
    start = time.perf_counter()
    dream(photo, extractor, typical, progress=False)
    seconds = time.perf_counter() - start
    say(f"dream explorer: {cells} dreams of {spec.size} px, {spec.steps} step{'s' if spec.steps != 1 else ''} per "
        f"octave, on {'pretrained' if backbone.pretrained else 'UNTRAINED'} VGG19: about "
        f"{duration(seconds * cells)} (one dream at {layer} took {seconds:.1f} s)", flush=True)
    return compute_grid(spec, backbone=backbone, cache_dir=cache_dir, show_progress=progress)


def _channel_label(channel: int | None) -> str:
    return ALL_CHANNELS if channel is None else str(channel)


def _channel_value(label: str) -> int | None:
    return None if label == ALL_CHANNELS else int(label)


def _png(image: torch.Tensor, *, untrained: bool) -> bytes:
    """PNG bytes of a (1, 3, H, W) image at the demo's width, with a red strip if the network is untrained."""
    return image_png(image, width=DISPLAY_WIDTH, banner="UNTRAINED network: random filters" if untrained else None)


class DreamExplorer(widgets.VBox):
    """The explorer's container. Its state is public for tests and curious students: ``mode`` (``"live"`` or
    ``"grid"``), ``key`` (the settings shown), ``image`` (the shown dream, uint8 (1, 3, H, W), or ``None``
    when the grid is missing), ``pretrained``, ``note`` and ``grid_file``."""

    def __init__(self, spec: GridSpec, *, live: bool, backbone: Backbone | None, cache_dir: str | Path | None,
                 device: str | torch.device | None):
        self.spec, self.cache_dir = spec, cache_dir
        self.mode = "live" if live else "grid"
        self.device = torch.device(device) if device is not None else torch.device("cuda" if live else "cpu")
        self.layer = widgets.Dropdown(options=list(spec.layers), value=spec.layers[len(spec.layers) // 2],
                                      description="layer")
        # Labels as values: a Dropdown reads the value None as "nothing selected".
        self.channel = widgets.Dropdown(options=[_channel_label(c) for c in spec.channels],
                                        value=_channel_label(spec.channels[0]), description="channel")
        self.octaves = widgets.SelectionSlider(options=list(spec.octaves), value=spec.octaves[-1],
                                               description="octaves", continuous_update=False)
        self.step_size = widgets.SelectionSlider(options=[(f"{s:g}", s) for s in spec.step_sizes],
                                                 value=spec.step_sizes[0], description="step size",
                                                 continuous_update=False)
        self.banner, self.status = widgets.HTML(), widgets.HTML()
        self.original_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.result_view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.image, self.key, self.grid, self.grid_file = None, None, None, None
        if live:
            self.backbone = backbone or load_backbone("vgg19", fallback="untrained", seed=spec.seed)
            self.pretrained, self.note = self.backbone.pretrained, self.backbone.note
            self.extractors: dict[str, VGGFeatures] = {}
            self.photo = data.builtin_image(spec.image, size=spec.size).to(self.device)
            original = to_uint8(self.photo)
        else:
            # Which grid to show is decided by whether the weights are cached (cheap), not by loading them.
            on_disk = {s.arch: s.present for s in weights_status()}
            pretrained = backbone.pretrained if backbone is not None else on_disk["vgg19"]
            self.grid_file = grid_path(spec, pretrained=pretrained, cache_dir=cache_dir)
            self.pretrained = pretrained
            self.note = backbone.note if backbone is not None else (
                "pretrained VGG19" if pretrained else "UNTRAINED VGG19 (random weights): pretrained weights not in "
                "the cache, so the dreams show random filters, not what a trained network sees; see "
                "`nstlab weights status`.")
            original = to_uint8(data.builtin_image(spec.image, size=spec.size))
            self.reload()
        self.original_view.value = _png(original, untrained=False)
        self.compute_button = widgets.Button(description="compute grid now", layout={"display": "none"})
        self.compute_button.on_click(lambda _: self._compute())
        for control in (self.layer, self.channel, self.octaves, self.step_size):
            control.observe(lambda _: self.refresh(), names="value")
        controls = widgets.HBox([widgets.VBox([self.layer, self.channel]), widgets.VBox([self.octaves, self.step_size])])
        super().__init__([controls, self.banner, widgets.HBox([self.original_view, self.result_view]),
                          self.status, self.compute_button])
        self.refresh()

    def reload(self) -> None:
        """Read the grid file if it exists (after :func:`compute_grid`); its own record of the network wins."""
        if self.grid_file is not None and self.grid_file.exists():
            self.grid = torch.load(self.grid_file, weights_only=True)
            self.pretrained, self.note = bool(self.grid["pretrained"]), str(self.grid["note"])

    def _settings(self) -> tuple[str, int | None, int, float]:
        return self.layer.value, _channel_value(self.channel.value), self.octaves.value, self.step_size.value

    def refresh(self) -> None:
        """Show the dream for the current control values (a look-up on a CPU, a run on a GPU)."""
        self.key = grid_key(*self._settings())
        self.banner.value = "" if self.pretrained else f"<p style='color:#b00;font-weight:bold'>{self.note}</p>"
        if self.mode == "live":
            layer = self.layer.value
            if layer not in self.extractors:
                self.extractors[layer] = VGGFeatures([layer], backbone=self.backbone).to(self.device)
            result = dream(self.photo, self.extractors[layer], self.spec.config(*self._settings()), progress=False)
            self.image = to_uint8(result.image)
            self.status.value = (f"<p>live: {len(result.history)} ascent steps over {len(result.sizes)} octave(s) in "
                                 f"{result.seconds:.2f} s on {self.device} ({self.key}).</p>")
        elif self.grid is None:
            self.image = None
            self.result_view.value = b""
            self.result_view.layout.display = "none"  # an empty image would show as a broken-image icon
            self.compute_button.layout.display = None
            self.status.value = (f"<p>No precomputed grid yet at {self.grid_file}. Make it once with "
                                 "<code>nstlab present --prepare</code> or <code>from nstlab.widgets.dream_explorer "
                                 "import prepare; prepare()</code> (a few minutes on a CPU), or the button below, "
                                 "then change a control.</p>")
            return
        else:
            self.image = self.grid["images"][self.key]
            self.status.value = (f"<p>precomputed ({self.spec.steps} steps per octave at {self.spec.size} px): "
                                 f"{self.key}</p>")
        self.compute_button.layout.display = "none"
        self.result_view.layout.display = None
        self.result_view.value = _png(self.image, untrained=not self.pretrained)

    def _compute(self) -> None:
        self.status.value = "<p>computing the grid…</p>"
        compute_grid(self.spec, cache_dir=self.cache_dir, show_progress=False)
        self.reload()
        self.refresh()


def dream_explorer(spec: GridSpec | None = None, *, live: bool | None = None, backbone: Backbone | None = None,
                   cache_dir: str | Path | None = None, device: str | torch.device | None = None) -> DreamExplorer:
    """Build the dream explorer.

    Args:
        spec: the image, size, steps and control values; default :func:`lecture_spec` (the grid that
            :func:`prepare` makes).
        live: dream on each change; ``None``: only when a CUDA GPU is available.
        backbone: the network; ``None``: pretrained VGG19 if cached, else the untrained fallback.
        cache_dir: where grids are cached; default :func:`default_cache_dir`.
        device: where live runs compute; default CUDA when live.

    Example:
        >>> import tempfile
        >>> explorer = dream_explorer(GridSpec(size=48, layers=("relu1_1",), octaves=(1,)), live=False, cache_dir=tempfile.mkdtemp())
        >>> explorer.mode, explorer.image is None, "nstlab present --prepare" in explorer.status.value
        ('grid', True, True)
    """
    spec = spec or lecture_spec()
    live = torch.cuda.is_available() if live is None else live
    return DreamExplorer(spec, live=live, backbone=backbone, cache_dir=cache_dir, device=device)


__all__ = ["ALL_CHANNELS", "DREAM_LAYERS", "DreamExplorer", "GridSpec", "compute_grid", "default_cache_dir",
           "dream_explorer", "grid_key", "grid_path", "lecture_spec", "prepare"]
