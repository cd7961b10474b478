"""Trained fast-style models: in memory (:class:`FastModel`), applied to photos, and on disk as one checked file.

A model file is what a student hands to a friend or a lecturer opens in the demo, so it must be self-contained
and safe to open:

* **one file**, written by ``torch.save`` and holding only plain types (numbers, strings, lists, dicts and
  tensors), so it loads with ``torch.load(weights_only=True)``: opening a model never runs code from it;
* the network's **weights** and **settings** (width, blocks), enough to rebuild it;
* the **style** image's name and a small thumbnail (at most 64 px), for pickers and ``nstlab fast info``;
* the **training summary**: steps, losses, seconds, device, the settings used, the training images, and
  whether the loss network was the pretrained VGG16. A model trained against the untrained stand-in says so
  in ``pretrained=False`` forever, and every output made from it repeats it;
* a **format version** (newer files are refused with a clear line, not misread) and a SHA-256 **checksum**
  of the weights, so a damaged file is refused rather than producing noise.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from nstlab.device import autocast, channels_last, choose_precision
from nstlab.fast.network import MIN_SIDE, TransformNet

# What a model file says it is, and the layout version this nstlab writes (and the newest it reads).
KIND = "nstlab-fast-style-model"
FORMAT_VERSION = 1
# Where the lecture demo finds trained models unless this variable names another folder.
MODELS_ENV_VAR = "NSTLAB_FAST_MODELS"
# Long side of the style thumbnail kept in the file: enough for a picker, small next to the weights.
THUMBNAIL_SIDE = 64
# The note every output of a model trained against the untrained VGG16 carries.
UNTRAINED_NOTE = ("UNTRAINED loss network: this model was trained against a random VGG16, not the pretrained one, "
                  "so its images are not meaningful style transfer")


class ModelFileError(ValueError):
    """A file that cannot be loaded as a fast-style model; the message is one line naming the file and the fix."""


@dataclass
class FastModel:
    """A trained transform network and what is known about it.

    Attributes:
        net: the :class:`nstlab.fast.TransformNet`.
        metadata: plain data: ``style`` (``name``, ``thumbnail`` as a uint8 (3, h, w) tensor), ``training``
            (``steps``, ``losses``, ``history``, ``seconds``, ``device``, ``pretrained``, ``loss_network``,
            ``config``, ``images``, ``skipped``) and ``nstlab_version``.

    Example:
        >>> model = FastModel(TransformNet(width=4, blocks=1), {"style": {"name": "mosaic"},
        ...                                                     "training": {"pretrained": False}})
        >>> model.style_name, model.pretrained, model.note.split()[0]
        ('mosaic', False, 'UNTRAINED')
    """

    net: TransformNet
    metadata: dict

    @property
    def style_name(self) -> str:
        """The style image's name (a built-in name or a file name)."""
        return str(self.metadata.get("style", {}).get("name", "unknown style"))

    @property
    def pretrained(self) -> bool:
        """Whether the loss network was the pretrained VGG16 (``False``: the untrained stand-in)."""
        return bool(self.metadata.get("training", {}).get("pretrained", False))

    @property
    def note(self) -> str:
        """One line for banners and logs; starts with ``UNTRAINED`` when ``pretrained`` is ``False``."""
        if not self.pretrained:
            return UNTRAINED_NOTE
        return "trained against the pretrained VGG16 loss network"

    @property
    def settings(self) -> dict:
        """The network's settings, ``dict(width=..., blocks=...)``."""
        return dict(self.net.settings)


def default_models_dir() -> Path:
    """Where trained models are kept for the lecture demo: ``$NSTLAB_FAST_MODELS``, else the torch cache's nstlab folder.

    By default ``~/.cache/torch/nstlab/fast_models`` (under ``TORCH_HOME`` when it is set), never the repository.

    Example:
        >>> default_models_dir().parts[-2:] if not os.environ.get(MODELS_ENV_VAR) else ('nstlab', 'fast_models')
        ('nstlab', 'fast_models')
    """
    configured = os.environ.get(MODELS_ENV_VAR, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(torch.hub.get_dir()).parent / "nstlab" / "fast_models"


def apply(model: FastModel, image: torch.Tensor, *, precision: str = "fp32") -> torch.Tensor:
    """Stylise images with a trained model: one forward pass, without gradient.

    The model's network is moved to the images' device if it is elsewhere, and runs channels-last (the network
    is converted once, the image once per call).

    Args:
        model: a :class:`FastModel` (or a bare :class:`nstlab.fast.TransformNet`).
        image: photos of shape (N, 3, H, W) in [0, 1], at least 8 pixels on each side.
        precision: ``"fp32"`` (the default: the reference that exports are checked against), ``"bf16"`` or
            ``"auto"`` (:func:`nstlab.device.choose_precision`).

    Returns:
        Stylised images of the same shape, in [0, 1], on the same device, float32.

    Example:
        >>> model = FastModel(TransformNet(width=4, blocks=1), {})
        >>> apply(model, torch.rand(1, 3, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """
    net = model.net if isinstance(model, FastModel) else model
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must have shape (N, 3, H, W) in [0, 1], got {got}; add a batch dimension with "
                         "image[None], or load it with nstlab.images.load_image.")
    if min(image.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"image is {image.shape[-1]}x{image.shape[-2]} pixels; the network needs at least "
                         f"{MIN_SIDE} on each side. Use a larger image.")
    how = choose_precision(precision, device=image.device).precision
    if next(net.parameters()).device != image.device:
        net.to(image.device)
    if image.device.type in ("cpu", "cuda"):
        channels_last(net)  # converts the parameters the first time; later calls find them converted
    with torch.no_grad(), autocast(how, image.device):
        return net(channels_last(image.float())).float().contiguous()


def thumbnail(image: torch.Tensor, side: int = THUMBNAIL_SIDE) -> torch.Tensor:
    """A small uint8 copy (3, h, w) of a (1, 3, H, W) image in [0, 1], long side at most ``side``.

    Example:
        >>> thumbnail(torch.rand(1, 3, 200, 100)).shape, thumbnail(torch.rand(1, 3, 200, 100)).dtype
        (torch.Size([3, 64, 32]), torch.uint8)
    """
    from nstlab.images import resize_long_side

    image = image.detach().float().cpu()
    if max(image.shape[-2:]) > side:
        image = resize_long_side(image, side)
    return (image[0].clamp(0, 1) * 255).round().to(torch.uint8)  # (3, h, w)


def weights_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """The SHA-256 (hex) of the weights: every tensor's name, dtype, shape and bytes, in name order.

    Example:
        >>> a = TransformNet(width=4, blocks=1).state_dict()
        >>> weights_checksum(a) == weights_checksum({k: v.clone() for k, v in a.items()})
        True
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_model(model: FastModel, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model`` to one file (see the module docstring for what it holds).

    Args:
        model: the model to save.
        path: the file to write (``.pt`` by convention); missing folders are created.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> p = save_model(FastModel(TransformNet(width=4, blocks=1), {}), Path(tempfile.mkdtemp()) / "m.pt")
        >>> load_model(p).settings
        {'width': 4, 'blocks': 1}
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as {path / 'style.pt'}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or pass overwrite=True (--overwrite).")
    weights = {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}
    payload = {"kind": KIND, "format": FORMAT_VERSION, "settings": dict(model.net.settings), "weights": weights,
               "checksum": weights_checksum(weights), "metadata": model.metadata}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves half a model under the real name
    return path


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> FastModel:
    """Load a model written by :func:`save_model`, checking its kind, format version and checksum.

    Args:
        path: the model file.
        map_location: where to put the weights.

    Returns:
        The :class:`FastModel`.

    Raises:
        ModelFileError: the file is missing, not a model, from a newer nstlab, or damaged; one line that says so.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; give the model file that `nstlab fast train` wrote.")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file.")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the file is empty, not an nstlab fast-style model.")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        raise ModelFileError(f"{path}: cannot be read ({err.strerror}).") from None
    except Exception:  # noqa: BLE001 - torch raises many kinds; its advice (weights_only=False) would be unsafe
        raise ModelFileError(f"{path}: not an nstlab fast-style model (not a torch file, or truncated or damaged); "
                             "train one with `nstlab fast train`.") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        other = " (it is a training checkpoint: finish the run with `--resume`)" if (
            isinstance(data, dict) and data.get("kind") == "nstlab-fast-style-checkpoint") else ""
        raise ModelFileError(f"{path}: not an nstlab fast-style model{other}; train one with `nstlab fast train`.")
    version = data.get("format")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: damaged nstlab fast-style model (no format version).")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: made by a newer nstlab (model format {version}; this nstlab reads up to "
                             f"{FORMAT_VERSION}); upgrade nstlab to use it.")
    try:
        weights, settings, metadata = data["weights"], data["settings"], data.get("metadata", {})
        if weights_checksum(weights) != data["checksum"]:
            raise ModelFileError(f"{path}: damaged nstlab fast-style model: its weights do not match their "
                                 "checksum; copy or train it again.")
        net = TransformNet(width=settings["width"], blocks=settings["blocks"])
        net.load_state_dict(weights)
    except ModelFileError:
        raise
    except Exception as err:  # noqa: BLE001 - missing keys, wrong shapes, wrong types: all mean a damaged file
        raise ModelFileError(f"{path}: damaged nstlab fast-style model ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:120] if str(err) else 'unreadable contents'}).") from None
    net.requires_grad_(False)
    return FastModel(net.to(map_location), metadata if isinstance(metadata, dict) else {})


def describe_model(model: FastModel) -> str:
    """A few lines about a model, for ``nstlab fast info`` and notebooks.

    Example:
        >>> print(describe_model(FastModel(TransformNet(width=4, blocks=1), {"style": {"name": "swirl"}})))
        ... # doctest: +ELLIPSIS
        style: swirl
        network: width 4, 1 residual block(s), ... parameters
        ...
    """
    t = model.metadata.get("training", {})
    lines = [f"style: {model.style_name}",
             f"network: width {model.settings['width']}, {model.settings['blocks']} residual block(s), "
             f"{sum(p.numel() for p in model.net.parameters()):,} parameters"]
    if t:
        losses = t.get("losses", {})
        loss = ", ".join(f"{k} {v:.4g}" for k, v in losses.items()) if losses else "none recorded"
        config = t.get("config", {})
        lines += [f"training: {t.get('steps', '?')} steps on {t.get('images', '?')} ({config.get('size', '?')}-px crops, "
                  f"batch {config.get('batch_size', '?')}, profile {config.get('profile', '?')}) in "
                  f"{t.get('seconds', 0):.1f} s on {t.get('device', '?')}",
                  f"final loss: {loss}",
                  f"loss network: {t.get('loss_network', '?')}"]
    lines.append(model.note if not model.pretrained else f"pretrained: yes ({model.note})")
    return "\n".join(lines)
