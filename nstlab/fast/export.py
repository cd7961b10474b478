"""Exporting a trained fast-style network for deployment: ONNX (checked in onnxruntime) and Core ML.

The point of Johnson et al.'s method is that stylising is one forward pass, so the network can leave Python:

* **ONNX** (:func:`export_onnx`) runs in onnxruntime on servers, browsers (onnxruntime-web) and phones. The
  file takes any batch size, height and width. :func:`onnx_max_difference` runs it in onnxruntime next to the
  torch model on the same images and returns the largest difference of the outputs, which should be about
  1e-6 (the tests require at most 1e-4 on [0, 1] outputs).
* **Core ML** (:func:`export_coreml`) runs on iPhones, iPads and Macs, the deployment of the article this part
  of the course grew from ("under two seconds on a phone"). It needs the optional ``deploy`` extra
  (``pip install 'nstlab[deploy]'``, which installs coremltools). Converting works on Linux and Windows;
  *running* the converted ``.mlpackage`` needs macOS (or iOS), so it cannot be checked here.

Both take the images and give the stylised images as (N, 3, H, W) float32 in [0, 1], RGB, like the torch model.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from nstlab.fast.model_file import FastModel
from nstlab.fast.network import MIN_SIDE

# The largest side the exported graphs accept (their dynamic dimensions need a bound): 8192 px is far beyond
# what fits in a phone's memory anyway.
MAX_SIDE = 8192
MAX_BATCH = 64
# The names of the graph's input and output, which apps use to feed and read it.
INPUT_NAME, OUTPUT_NAME = "image", "stylised"
# Core ML's default input size, for apps that do not choose one (the range is MIN_SIDE..MAX_SIDE).
COREML_DEFAULT_SIDE = 512


class DeployUnavailable(RuntimeError):
    """An export needs a package that is not installed, or cannot work with the installed torch; says what to do."""


def _net(model: FastModel | torch.nn.Module) -> torch.nn.Module:
    net = model.net if isinstance(model, FastModel) else model
    return net.float().cpu().eval()


def _target(path: str | os.PathLike, suffix: str, overwrite: bool) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"{path}: the file name must end in {suffix}; for example {path.with_suffix(suffix)}.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or pass overwrite=True (--overwrite).")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def export_onnx(model: FastModel | torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False,
                opset: int | None = None) -> Path:
    """Export the network to an ONNX file whose batch size, height and width are dynamic.

    Args:
        model: a :class:`FastModel` or a :class:`nstlab.fast.TransformNet`.
        path: the ``.onnx`` file to write.
        overwrite: replace an existing file.
        opset: the ONNX opset; ``None`` lets torch choose (18 or later).

    Returns:
        The path written. Input ``image`` and output ``stylised``: (N, 3, H, W) float32 in [0, 1].

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.

    Example (not run as a doctest: an export takes several seconds; tests/test_fast_export.py runs it):
        >>> import tempfile
        >>> from nstlab.fast.network import TransformNet
        >>> net = TransformNet(width=4, blocks=1)
        >>> p = export_onnx(net, Path(tempfile.mkdtemp()) / "net.onnx")  # doctest: +SKIP
        >>> p.name  # doctest: +SKIP
        'net.onnx'

    """
    path = _target(path, ".onnx", overwrite)
    net = _net(model)
    # The torch.export-based exporter (dynamo=True), not the TorchScript one: torch deprecated the latter in 2.9
    # and warns it will be removed, while the former is its supported path and turns the network's crop back to
    # H x W (network.py) into a runtime check instead of freezing the sample's size. A sample whose sides
    # differ (and whose batch is not 1) keeps torch from specialising on H == W or N == 1.
    sample = torch.rand(2, 3, 64, 96)
    dims = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH),
            2: torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE),
            3: torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)}
    tmp = path.with_name(f".{path.name}.partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on guards are for torch developers, not users
        torch.onnx.export(net, (sample,), tmp, dynamo=True, verbose=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes={"x": dims},
                          external_data=False)
    os.replace(tmp, path)
    return path


def onnx_max_difference(model: FastModel | torch.nn.Module, onnx_path: str | os.PathLike,
                        sizes=((64, 64), (96, 128)), *, batch: int = 2, seed: int = 0) -> float:
    """The largest absolute difference between the ONNX file in onnxruntime and the torch model.

    Args:
        model: the torch model the file was exported from.
        onnx_path: the ``.onnx`` file.
        sizes: (H, W) of the random test images, one batch per size.
        batch: images per size.
        seed: seed of the images (uniform in [0, 1]).

    Returns:
        The maximum over all sizes, images, channels and pixels of ``|onnx - torch|``, as a float.

    Example (not run as a doctest: an export takes several seconds; tests/test_fast_export.py runs it):
        >>> import tempfile
        >>> from nstlab.fast.network import TransformNet
        >>> net = TransformNet(width=4, blocks=1)
        >>> p = export_onnx(net, Path(tempfile.mkdtemp()) / "n.onnx")  # doctest: +SKIP
        >>> onnx_max_difference(net, p) < 1e-4  # doctest: +SKIP
        True
    """
    import onnxruntime

    net = _net(model)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for H, W in sizes:
        x = torch.rand(batch, 3, H, W, generator=generator)
        with torch.no_grad():
            expected = net(x).numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        if got.shape != expected.shape:
            raise ValueError(f"{onnx_path}: gives shape {got.shape} for {tuple(x.shape)}, the torch model "
                             f"{expected.shape}; export it again with export_onnx.")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def _coremltools():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools
    except ImportError as err:
        raise DeployUnavailable("Core ML export needs coremltools, which is not installed: run "
                                "pip install 'nstlab[deploy]' (conversion works on Linux; running the model needs "
                                "macOS or iOS).") from err
    return coremltools


def export_coreml(model: FastModel | torch.nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Convert the network to a Core ML program (``.mlpackage``) with flexible height and width.

    Conversion runs anywhere coremltools installs (Linux included); running the converted model needs macOS or
    iOS, so its outputs cannot be compared with torch's on Linux.

    Args:
        model: a :class:`FastModel` or a :class:`nstlab.fast.TransformNet`.
        path: the ``.mlpackage`` folder to write.
        overwrite: replace an existing package.

    Returns:
        The path written. Input ``image``: (1, 3, H, W) float32 in [0, 1], H and W from 8 to 8192 (default
        512); output ``stylised`` of the same shape.

    Raises:
        DeployUnavailable: coremltools is not installed (the message names ``pip install 'nstlab[deploy]'``),
            or cannot convert with this torch.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    ct = _coremltools()
    path = _target(path, ".mlpackage", overwrite)
    net = _net(model)
    shape = ct.Shape(shape=(1, 3, ct.RangeDim(MIN_SIDE, MAX_SIDE, default=COREML_DEFAULT_SIDE),
                            ct.RangeDim(MIN_SIDE, MAX_SIDE, default=COREML_DEFAULT_SIDE)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # coremltools converts TorchScript reliably; a trace records the crop's sizes as operations on the
            # input's shape, so the flexible range holds.
            traced = torch.jit.trace(net, torch.rand(1, 3, 64, 96))
            mlmodel = ct.convert(traced, inputs=[ct.TensorType(name=INPUT_NAME, shape=shape)],
                                 outputs=[ct.TensorType(name=OUTPUT_NAME)], convert_to="mlprogram",
                                 minimum_deployment_target=ct.target.iOS16)
    except Exception as err:  # noqa: BLE001 - coremltools fails in many ways on torch versions it has not seen
        raise DeployUnavailable(f"coremltools {ct.__version__} could not convert this network with torch "
                                f"{torch.__version__} ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                                "install a torch version coremltools supports, or export to ONNX.") from err
    mlmodel.short_description = "nstlab fast style transfer (Johnson et al. 2016): image in [0, 1] -> stylised"
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    mlmodel.save(str(path))
    return path
