r"""Lecture demo: a before/after slider over a photo, for each trained fast-style network.

Johnson et al.'s transform network stylises a photo in one forward pass (:mod:`nstlab.fast`), fast enough to
do live in a lecture on a laptop's CPU. The demo shows one photo split in two: the original on the left of the
split, the stylised version on the right; dragging the slider moves the split. Two pickers choose the style
(every model file in the models folder, :func:`nstlab.fast.default_models_dir` by default) and the photo (the
built-in photos, or one uploaded by the lecturer).

* Each (model, photo) pair is stylised once, at :data:`PHOTO_SIZE` pixels on the long side, and cached; moving
  the split only recomposes two images already in memory.
* With no model in the folder, the demo shows no picture but a message saying how to make one
  (``nstlab fast train`` for one style, ``nstlab present --prepare`` or :func:`prepare` for the lecture's
  default styles).
* A model trained against the untrained stand-in of VGG16 says so in its file; its results carry a red
  "UNTRAINED" strip and the banner repeats why.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ipywidgets as widgets
import torch

from nstlab import data, fast
from nstlab.images import ImageError, load_image
from nstlab.progress import progress as progress_bar
from nstlab.widgets._images import image_png, to_uint8

# The lecture's default styles, trained by prepare(): two built-in paintings that look unlike each other.
DEFAULT_STYLES = ("mosaic", "swirl")
# Long side of the photos the demo stylises (the 256 px: one forward pass well under a second on a CPU).
PHOTO_SIZE = 256
# Width in pixels at which the composite is shown.
DISPLAY_WIDTH = 512
# Colour of the line drawn at the split.
SPLIT_COLOUR = (255, 255, 255)
# What `nstlab fast train` writes: one model per file with this suffix.
MODEL_SUFFIX = ".pt"


def find_models(models_dir: str | Path | None = None) -> tuple[dict[str, fast.FastModel], list[str]]:
    """Load every fast-style model in a folder (not its subfolders).

    Args:
        models_dir: the folder; default :func:`nstlab.fast.default_models_dir`.

    Returns:
        ``(models, problems)``: style name (the file's stem) -> model, sorted by name; and one line for each
        file with the model suffix that could not be loaded (damaged, or from a newer nstlab).

    Example:
        >>> find_models(tempfile.mkdtemp())
        ({}, [])
    """
    folder = Path(models_dir) if models_dir is not None else fast.default_models_dir()
    models, problems = {}, []
    if not folder.is_dir():
        return models, problems
    for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            models[path.stem] = fast.load_model(path)
        except (fast.ModelFileError, OSError) as err:
            problems.append(f"{path.name}: {err}")
    return models, problems


def composite(before: torch.Tensor, after: torch.Tensor, split: float) -> torch.Tensor:
    """The before/after picture: ``before`` left of the split, ``after`` right of it, a line at the split.

    Args:
        before, after: uint8 images of the same shape (1, 3, H, W).
        split: where the split is, as a fraction of the width in [0, 1] (0: all ``after``, 1: all ``before``).

    Returns:
        A uint8 image (1, 3, H, W).

    Example:
        >>> a, b = torch.zeros(1, 3, 2, 4, dtype=torch.uint8), torch.full((1, 3, 2, 4), 9, dtype=torch.uint8)
        >>> composite(a, b, 0.5)[0, 0, 0].tolist()  # the line (255) is drawn on the first column of `after`
        [0, 0, 255, 9]
    """
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must have the same shape.")
    W = before.shape[-1]
    x = round(min(max(float(split), 0.0), 1.0) * W)  # the first column of `after`
    out = after.clone()
    out[..., :x] = before[..., :x]
    if 0 < x < W:
        out[..., x] = torch.tensor(SPLIT_COLOUR, dtype=torch.uint8).view(1, 3, 1)
    return out


def _png(image: torch.Tensor, *, untrained: bool) -> bytes:
    """PNG bytes of a (1, 3, H, W) image at the demo's width, with a red strip if the network is untrained."""
    return image_png(image, width=DISPLAY_WIDTH, banner="UNTRAINED loss network: not meaningful" if untrained else None, smooth=True)


class FastSlider(widgets.VBox):
    """The demo's container. Its state is public for tests and curious students: ``models`` (name -> model),
    ``photos`` (name -> (1, 3, H, W) float image), ``style`` and ``photo`` (the names shown), ``stylised``
    (uint8 result of the current pair, or ``None`` without models), ``image`` (the composite shown, or
    ``None``), ``pretrained`` (of the current model), ``seconds`` (the last forward pass's time, 0 when it
    came from the cache) and ``cache`` ((style, photo) -> uint8 result)."""

    def __init__(self, models_dir: str | Path | None, photos: tuple[str, ...], size: int):
        self.models_dir = Path(models_dir) if models_dir is not None else fast.default_models_dir()
        self.size = size
        self.models, self.problems = find_models(self.models_dir)
        self.photos = {name: data.builtin_image(name, size=size) for name in photos}
        self.cache: dict[tuple[str, str], torch.Tensor] = {}
        self.stylised = self.image = None
        self.pretrained, self.seconds = True, 0.0
        self.style_picker = widgets.Dropdown(options=list(self.models), description="style")
        self.photo_picker = widgets.Dropdown(options=list(self.photos), description="photo")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload a photo")
        self.split = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="split",
                                         readout_format=".0%", continuous_update=True)
        self.banner, self.status = widgets.HTML(), widgets.HTML()
        self.view = widgets.Image(format="png", width=DISPLAY_WIDTH)
        self.style_picker.observe(lambda _: self.refresh(), names="value")
        self.photo_picker.observe(lambda _: self.refresh(), names="value")
        self.split.observe(lambda _: self.redraw(), names="value")
        self.upload.observe(lambda change: self._uploaded(change["new"]), names="value")
        controls = widgets.HBox([self.style_picker, self.photo_picker, self.upload])
        super().__init__([controls, self.split, self.banner, self.view, self.status])
        self.refresh()

    @property
    def style(self) -> str | None:
        return self.style_picker.value

    @property
    def photo(self) -> str:
        return self.photo_picker.value

    def add_photo(self, name: str, image: torch.Tensor) -> None:
        """Offer another photo, (1, 3, H, W) in [0, 1] (resized to the demo's size), and show it."""
        from nstlab.images import resize_long_side

        self.photos[name] = resize_long_side(image, self.size)
        self.cache = {key: value for key, value in self.cache.items() if key[1] != name}  # a new photo, same name
        self.photo_picker.options = list(self.photos)
        self.photo_picker.value = name
        self.refresh()

    def _uploaded(self, files) -> None:
        """Read an uploaded photo through nstlab.images (EXIF rotation, modes) and show it."""
        if not files:
            return
        upload = files[0]
        name = f"upload: {upload['name']}"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(upload["name"]).name
            path.write_bytes(bytes(upload["content"]))
            try:
                image = load_image(path, size=self.size)
            except ImageError as err:
                self.status.value = f"<p style='color:#b00'>{err}</p>"
                return
        self.add_photo(name, image)

    def refresh(self) -> None:
        """Stylise the chosen photo with the chosen model (once per pair, then from the cache) and redraw."""
        if not self.models:
            self.stylised = self.image = None
            self.view.value = b""
            self.banner.value = ""
            lines = [f"<p><b>No trained style model in {self.models_dir}.</b> Train the lecture's default styles "
                     "with <code>nstlab present --prepare</code>, or one style with <code>nstlab fast train STYLE "
                     f"-o {self.models_dir}/STYLE{MODEL_SUFFIX}</code> (a few minutes on a CPU each), then run "
                     "this cell again.</p>"]
            lines += [f"<p style='color:#b00'>not loaded: {problem}</p>" for problem in self.problems]
            self.status.value = "".join(lines)
            return
        model = self.models[self.style]
        self.pretrained = model.pretrained
        key = (self.style, self.photo)
        if key in self.cache:
            self.seconds = 0.0
        else:
            start = time.perf_counter()
            with torch.no_grad():
                self.cache[key] = to_uint8(fast.apply(model, self.photos[self.photo]))
            self.seconds = time.perf_counter() - start
        self.stylised = self.cache[key]
        took = f"one forward pass, {1000 * self.seconds:.0f} ms" if self.seconds else "from the cache"
        H, W = self.stylised.shape[-2:]
        self.status.value = f"<p>{self.style} on {self.photo} ({W}x{H} px): {took}.</p>" + "".join(
            f"<p style='color:#b00'>not loaded: {problem}</p>" for problem in self.problems)
        self.banner.value = "" if self.pretrained else (
            f"<p style='color:#b00;font-weight:bold'>style '{self.style}': {model.note}; see "
            "<code>nstlab weights status</code>.</p>")
        self.redraw()

    def redraw(self) -> None:
        """Recompose the shown picture at the current split (no forward pass)."""
        if self.stylised is None:
            return
        self.image = composite(to_uint8(self.photos[self.photo]), self.stylised, self.split.value)
        self.view.value = _png(self.image, untrained=not self.pretrained)


def fast_slider(models_dir: str | Path | None = None, *, photos: tuple[str, ...] | None = None,
                size: int = PHOTO_SIZE) -> FastSlider:
    """Build the before/after demo over every trained style in ``models_dir``.

    Args:
        models_dir: the folder of model files; default :func:`nstlab.fast.default_models_dir`.
        photos: built-in photo names offered; default every built-in content image.
        size: long side of the photos in pixels.

    Returns:
        A :class:`FastSlider` (an ``ipywidgets.VBox``).

    Example:
        >>> demo = fast_slider(tempfile.mkdtemp(), photos=("coffee",), size=64)
        >>> demo.image is None, "No trained style model" in demo.status.value
        (True, True)
    """
    return FastSlider(models_dir, tuple(photos) if photos is not None else tuple(data.list_images("content")), size)


def prepare(*, cache_dir: str | Path | None = None, progress: bool = True, styles: tuple[str, ...] = DEFAULT_STYLES,
            config: fast.FastConfig | None = None, fallback: str | None = None) -> Path:
    """Train the lecture's default styles into the models folder, each one only if its model is missing.

    Args:
        cache_dir: the models folder; default :func:`nstlab.fast.default_models_dir`.
        progress: show progress bars (over the styles, and of each training run).
        styles: built-in style images to train (default :data:`DEFAULT_STYLES`).
        config: the training settings; default the fast profile's (:func:`nstlab.fast.fast_config`).
        fallback: ``"untrained"`` to train against an untrained VGG16 when the pretrained weights are
            unavailable (the models then say so, and the demo marks them); ``None`` raises instead.

    Returns:
        The models folder.

    Raises:
        nstlab.weights.WeightsUnavailable: the pretrained VGG16 is unavailable and no fallback was asked for.
    """
    folder = Path(cache_dir) if cache_dir is not None else fast.default_models_dir()
    config = config or fast.fast_config("fast")
    missing = [style for style in styles if not (folder / f"{style}{MODEL_SUFFIX}").exists()]
    if not missing:
        return folder
    from nstlab.weights import load_backbone

    backbone = load_backbone("vgg16", fallback=fallback, seed=config.seed)
    folder.mkdir(parents=True, exist_ok=True)
    for style in progress_bar(missing, desc="lecture styles", disable=not progress):
        result = fast.train(style, None, config, backbone=backbone, progress=progress)
        fast.save_model(result.model, folder / f"{style}{MODEL_SUFFIX}")
    return folder


__all__ = ["DEFAULT_STYLES", "FastSlider", "composite", "fast_slider", "find_models", "prepare"]
