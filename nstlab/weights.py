r"""Pretrained VGG weights: where they live, checking them, importing them, and working offline.

The weights come through torchvision's weights API: ``VGG19_Weights.IMAGENET1K_V1`` (Gatys et al.) and
``VGG16_Weights.IMAGENET1K_V1`` (Johnson et al.'s loss network) name the file, its address and its size.
torchvision's file names carry the first hex digits of the file's SHA-256 (``vgg19-dcbb9e9d.pth``); every
file is checked against that prefix when it is downloaded, imported, or first loaded in a process.

Files are cached where torch caches them, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``,
by default ``~/.cache/torch/hub/checkpoints``), unless ``NSTLAB_WEIGHTS_DIR`` names another folder.

Offline, :func:`load_state_dict` fails within seconds with :class:`WeightsUnavailable`, whose message names
the file, its size and checksum, and the remedies (``nstlab weights import FILE``, the cache folder, the
environment variables). ``NSTLAB_OFFLINE=1`` skips the network altogether (tests and classrooms use it).

An untrained network replaces the pretrained one only when the caller asks, with ``fallback="untrained"``;
the :class:`Backbone` then says so in ``pretrained=False`` and in its ``note``, which plots and command
lines print.

``normalised=True`` returns the normalised network of :mod:`nstlab.vgg` (Gatys et al.'s, or the untrained
stand-in rescaled per layer); the mean activations it needs are cached in the same folder as the weights,
as ``{arch}-activation-means-{fingerprint}.pt``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nstlab.profiles import GRADER_ENV_VAR

ARCHS = ("vgg16", "vgg19")
DIR_ENV_VAR = "NSTLAB_WEIGHTS_DIR"
OFFLINE_ENV_VAR = "NSTLAB_OFFLINE"
# How long to wait for the download server to answer before calling the machine offline: long enough for a
# slow network, short enough that an offline student gets the remedies at once.
CONNECT_TIMEOUT_S = 3.0
# Once connected, how long a read may stall before the download is abandoned.
READ_TIMEOUT_S = 60.0
# Exact sizes of torchvision's files, in bytes (their weights metadata gives megabytes, rounded).
_KNOWN_SIZES = {"vgg16-397923af.pth": 553_433_881, "vgg19-dcbb9e9d.pth": 574_673_361}


class WeightsUnavailable(RuntimeError):
    """Pretrained weights could not be found, downloaded or verified; the message says how to get them."""


@dataclass(frozen=True)
class WeightsSpec:
    """Which file holds an architecture's weights, where to download it, and how to check it.

    Attributes:
        arch: ``"vgg16"`` or ``"vgg19"``.
        url: the download address (``https://``, ``http://`` or ``file://``).
        filename: the cached file's name, e.g. ``"vgg19-dcbb9e9d.pth"``.
        sha256_prefix: the hex digits the file's SHA-256 must start with.
        size_bytes: the file's expected size.
    """

    arch: str
    url: str
    filename: str
    sha256_prefix: str
    size_bytes: int


@dataclass(frozen=True)
class WeightsStatus:
    """Whether an architecture's weights are in the cache.

    Attributes:
        arch, filename, sha256_prefix, size_bytes, url: as in :class:`WeightsSpec`.
        path: where the file is (or would be) cached.
        present: whether a file is at ``path`` (its checksum is verified when it is loaded).
    """

    arch: str
    filename: str
    path: Path
    present: bool
    size_bytes: int
    sha256_prefix: str
    url: str


@dataclass(frozen=True)
class Backbone:
    """The convolutional part of a VGG and where its weights came from.

    Attributes:
        features: torchvision's ``vgg.features``, frozen (eval mode, no weight gradients).
        arch: ``"vgg16"`` or ``"vgg19"``.
        pretrained: ``True`` for the ImageNet weights, ``False`` for a random initialisation.
        note: one line for banners and logs; starts with ``"UNTRAINED"`` when ``pretrained`` is ``False``.
        normalised: whether the filters were rescaled to a mean activation of 1 on natural images
            (:func:`nstlab.vgg.normalise_backbone`; Gatys et al.'s normalised VGG).
    """

    features: nn.Sequential
    arch: str
    pretrained: bool
    note: str
    normalised: bool = False


def _check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHS)}.")
    return arch


def weights_spec(arch: str) -> WeightsSpec:
    """The file that holds ``arch``'s pretrained weights, from torchvision's weights API.

    Example:
        >>> weights_spec("vgg19").filename
        'vgg19-dcbb9e9d.pth'
    """
    from torchvision.models import VGG16_Weights, VGG19_Weights

    weights = {"vgg16": VGG16_Weights.IMAGENET1K_V1, "vgg19": VGG19_Weights.IMAGENET1K_V1}[_check_arch(arch)]
    filename = weights.url.rsplit("/", 1)[-1]
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]  # torch.hub's convention: name-<sha256 prefix>.ext
    size = _KNOWN_SIZES.get(filename, round(weights.meta.get("_file_size", 0) * 2**20))
    return WeightsSpec(arch, weights.url, filename, prefix, size)


def weights_dir() -> Path:
    """The folder that holds cached weights: ``$NSTLAB_WEIGHTS_DIR``, else ``torch.hub.get_dir()/checkpoints``.

    Example:
        >>> weights_path("vgg19").parent == weights_dir()
        True
    """
    configured = os.environ.get(DIR_ENV_VAR, "").strip()
    return Path(configured).expanduser() if configured else Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(arch: str) -> Path:
    """Where ``arch``'s weights are (or would be) cached.

    Example:
        >>> weights_path("vgg16").name
        'vgg16-397923af.pth'
    """
    return weights_dir() / weights_spec(arch).filename


def status() -> list[WeightsStatus]:
    """The cache status of every architecture's weights (cheap: nothing is read or hashed).

    Example:
        >>> [s.arch for s in status()]
        ['vgg16', 'vgg19']
    """
    out = []
    for arch in ARCHS:
        spec, path = weights_spec(arch), weights_path(arch)
        out.append(WeightsStatus(arch, spec.filename, path, path.is_file(), spec.size_bytes,
                                 spec.sha256_prefix, spec.url))
    return out


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, as hex, read in chunks so that large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remedies(spec: WeightsSpec) -> str:
    return (f"Remedies: (1) download {spec.url} on a machine with internet and run "
            f"`nstlab weights import FILE`; (2) or copy it as {spec.filename} into {weights_dir()}; (3) or set "
            f"{DIR_ENV_VAR} (or TORCH_HOME) to a folder that holds it; (4) or pass fallback='untrained' to "
            "continue with a random network, whose results are marked UNTRAINED.")


def _describe(spec: WeightsSpec) -> str:
    return (f"{spec.arch} weights {spec.filename} ({spec.size_bytes / 2**20:.0f} MiB, {spec.size_bytes:,} bytes, "
            f"SHA-256 starting {spec.sha256_prefix})")


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def _reachable(url: str, timeout: float) -> str | None:
    """``None`` if the server of ``url`` (or the proxy for it) accepts a connection in time, else why not."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy if proxy and not urllib.request.proxy_bypass(parts.hostname or "")
                                   else url)
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as err:
            result.append(f"cannot reach {host}:{port} ({err})")

    # A thread bounds the name lookup too, which socket timeouts do not cover.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else f"no answer from {host}:{port} within {timeout:g} s"


def download(spec: WeightsSpec, *, directory: str | os.PathLike | None = None, progress: bool | None = None,
             timeout: float = CONNECT_TIMEOUT_S) -> Path:
    """Download ``spec``'s file into ``directory`` (default :func:`weights_dir`), checking its SHA-256.

    This is the path torchvision's ``Weights.get_state_dict`` takes (``torch.hub.download_url_to_file`` with
    the hash prefix from the file name), preceded by a quick check that the server answers at all. It says
    what it downloads, and shows a progress bar (``progress=None``: except while nbgrader grades).

    Raises:
        WeightsUnavailable: offline, on a failed download, or if the file's checksum does not match.
    """
    directory = Path(directory) if directory is not None else weights_dir()
    if _offline():
        raise WeightsUnavailable(f"{_describe(spec)} is not in {directory} and {OFFLINE_ENV_VAR} is set, so "
                                 f"nothing is downloaded. {_remedies(spec)}")
    problem = _reachable(spec.url, timeout)
    if problem:
        raise WeightsUnavailable(f"cannot download {_describe(spec)}: {problem}; this machine seems to be "
                                 f"offline. {_remedies(spec)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsUnavailable(f"cannot create the cache folder {directory} ({err}); set {DIR_ENV_VAR} to a "
                                 "folder you can write to.") from err
    target = directory / spec.filename
    if progress is None:
        progress = not os.environ.get(GRADER_ENV_VAR)
    if not spec.url.startswith("file:"):  # say so whenever something comes over the network
        print(f"nstlab: downloading {_describe(spec)} from {spec.url} into {directory}", flush=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT_S)  # torch.hub's urlopen has no timeout of its own
    try:
        torch.hub.download_url_to_file(spec.url, str(target), hash_prefix=spec.sha256_prefix, progress=progress)
    except (OSError, RuntimeError, ValueError) as err:
        raise WeightsUnavailable(f"downloading {_describe(spec)} from {spec.url} failed: {err}. "
                                 f"{_remedies(spec)}") from err
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _spec_for_file(file: Path, candidates: list[WeightsSpec]) -> WeightsSpec:
    """The spec among ``candidates`` whose checksum ``file`` matches."""
    digest = sha256_of(file)
    for spec in candidates:
        if digest.startswith(spec.sha256_prefix):
            return spec
    expected = ", ".join(f"{s.filename} (SHA-256 starting {s.sha256_prefix})" for s in candidates)
    raise WeightsUnavailable(f"{file} ({file.stat().st_size:,} bytes, SHA-256 {digest}) matches none of "
                             f"{expected}; it is corrupt, truncated or a different file. Download it again "
                             "from the address `nstlab weights status` shows.")


def import_weights(file: str | os.PathLike, *, arch: str | None = None, spec: WeightsSpec | None = None) -> Path:
    """Verify a downloaded weights file and copy it into the cache under torchvision's name.

    Args:
        file: a ``.pth`` file, e.g. ``vgg19-dcbb9e9d.pth`` downloaded on another machine (any name will do:
            the checksum says which architecture it is).
        arch: insist on this architecture.
        spec: insist on this file (a mirror's, or a test's) instead of torchvision's.

    Returns:
        The cached file's path.

    Raises:
        FileNotFoundError: if ``file`` does not exist.
        WeightsUnavailable: if its checksum matches no known file.
    """
    file = Path(file).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist or is not a file; give the path of a downloaded .pth.")
    candidates = [spec] if spec else [weights_spec(arch)] if arch else [weights_spec(a) for a in ARCHS]
    spec = _spec_for_file(file, candidates)
    target = weights_dir() / spec.filename
    if target.exists() and target.resolve() == file.resolve():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(file, partial)
    os.replace(partial, target)  # atomic: never leaves a half-copied file under the real name
    return target


# Files whose checksum was verified in this process, keyed by (path, size, mtime): hashing 550 MB takes a
# second, so it is done once per process and again only if the file changes.
_VERIFIED: set[tuple[str, int, int]] = set()


def load_state_dict(arch: str = "vgg19", *, spec: WeightsSpec | None = None, download_missing: bool = True,
                    progress: bool | None = None, timeout: float = CONNECT_TIMEOUT_S) -> dict[str, torch.Tensor]:
    """The pretrained state dict of ``arch``, from the cache or downloaded into it, checksum verified.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        spec: another file to use (a mirror, or a test's file); default :func:`weights_spec(arch)`.
        download_missing: download the file if it is not cached.
        progress: show a progress bar while downloading (``None``: except under nbgrader).
        timeout: seconds to wait for the server before giving up as offline.

    Raises:
        WeightsUnavailable: if the file is missing and cannot be downloaded, or is corrupt.
    """
    spec = spec or weights_spec(arch)
    path = weights_dir() / spec.filename
    if not path.is_file():
        if not download_missing:
            raise WeightsUnavailable(f"{_describe(spec)} is not in {path.parent}. {_remedies(spec)}")
        path = download(spec, directory=path.parent, progress=progress, timeout=timeout)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        digest = sha256_of(path)
        if not digest.startswith(spec.sha256_prefix):
            raise WeightsUnavailable(f"{path} ({stat.st_size:,} bytes, SHA-256 {digest}) is not {_describe(spec)}; "
                                     f"it is corrupt or truncated: delete it. {_remedies(spec)}")
        _VERIFIED.add(key)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: read only what is used
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same remedy
        raise WeightsUnavailable(f"{path} could not be read as a state dict ({err}). {_remedies(spec)}") from err


def _vgg_features(arch: str) -> nn.Sequential:
    """torchvision's ``vgg16().features`` / ``vgg19().features``, built without the 120-million-weight
    classifier, which feature extraction does not use."""
    from torchvision.models.vgg import cfgs, make_layers

    config = cfgs[{"vgg16": "D", "vgg19": "E"}[_check_arch(arch)]]
    with torch.random.fork_rng(devices=[]):  # the layers' default initialisation must not move the global RNG
        return make_layers(config, batch_norm=False)


def _freeze(features: nn.Sequential) -> nn.Sequential:
    features.requires_grad_(False)
    return features.eval()


def untrained_backbone(arch: str = "vgg19", *, seed: int = 0, normalised: bool = False) -> Backbone:
    """A randomly initialised VGG (torchvision's initialisation, seeded), marked as untrained.

    The initialisation is He et al.'s (2015) for ReLU networks, Gaussian weights with variance
    2 / (9 C_out), as torchvision initialises VGG, and zero biases. Random-weight networks of this kind can
    still synthesise textures and transfer style once their activations are scaled sensibly (He, Wang &
    Hopcroft 2016; Ustyuzhaninov et al. 2017): ``normalised=True`` scales each layer to a mean activation of 1
    on the built-in images (:func:`nstlab.vgg.normalise_backbone`), which also makes He's choice of variance
    irrelevant. The global random state is left as it was.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``.
        seed: the seed of the weights.
        normalised: rescale the layers as described (a few seconds the first time, then cached).

    Example:
        >>> backbone = untrained_backbone("vgg16", seed=1)
        >>> backbone.pretrained, backbone.note.startswith("UNTRAINED"), backbone.normalised
        (False, True, False)
    """
    features = _vgg_features(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in features:
            if isinstance(module, nn.Conv2d):  # torchvision's initialisation of VGG's convolutions
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(module.bias, 0)
    note = (f"UNTRAINED {arch.upper()} (random weights, seed {seed}): the pretrained weights were not used, "
            "so features and stylised images are not meaningful; see `nstlab weights status`.")
    backbone = Backbone(_freeze(features), arch, False, note)
    if normalised:
        from nstlab.vgg import normalise_backbone  # nstlab.vgg imports this module

        backbone = normalise_backbone(backbone)
    return backbone


def load_backbone(arch: str = "vgg19", *, fallback: str | None = None, seed: int = 0,
                  spec: WeightsSpec | None = None, normalised: bool = False) -> Backbone:
    """The frozen convolutional part of a pretrained VGG, or an untrained one if asked for as a fallback.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``.
        fallback: ``None`` to raise when the pretrained weights are unavailable, or ``"untrained"`` to
            return :func:`untrained_backbone` instead (``pretrained=False``, and a ``note`` saying so).
        seed: the seed of the untrained fallback.
        spec: another weights file to use (see :func:`load_state_dict`).
        normalised: return the normalised network (:func:`nstlab.vgg.normalise_backbone`): Gatys et al.'s
            normalised VGG for pretrained weights, one factor per layer for the untrained fallback.

    Raises:
        WeightsUnavailable: without a fallback, when the pretrained weights are unavailable.

    Example:
        >>> missing = WeightsSpec("vgg16", "file:///nonexistent/vgg16-0000.pth", "vgg16-0000.pth", "0000", 0)
        >>> backbone = load_backbone("vgg16", fallback="untrained", spec=missing)
        >>> backbone.pretrained, backbone.note.split()[:2]
        (False, ['UNTRAINED', 'VGG16'])
    """
    if fallback not in (None, "untrained"):
        raise ValueError(f"fallback must be None or 'untrained', got {fallback!r}.")
    try:
        state = load_state_dict(_check_arch(arch), spec=spec)
    except WeightsUnavailable:
        if fallback == "untrained":
            return untrained_backbone(arch, seed=seed, normalised=normalised)
        raise
    features = _vgg_features(arch)
    # The classifier's weights (most of the file) are not needed: load only those of `features`.
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
    filename = (spec or weights_spec(arch)).filename
    backbone = Backbone(_freeze(features), arch, True, f"pretrained {arch.upper()} ImageNet weights ({filename})")
    if normalised:
        from nstlab.vgg import normalise_backbone  # nstlab.vgg imports this module

        backbone = normalise_backbone(backbone)
    return backbone
