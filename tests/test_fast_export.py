"""Tests of nstlab.fast's export: the ONNX file runs in onnxruntime within 1e-4 of torch at several sizes, batch
sizes and odd sides; Core ML conversion writes a package with a flexible input (running it needs macOS); a missing
coremltools names the extra to install."""

from __future__ import annotations

import sys

import pytest
import torch

from nstlab.fast import (
    SMALL,
    DeployUnavailable,
    FastModel,
    TransformNet,
    export_coreml,
    export_onnx,
    onnx_max_difference,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def model():
    """The small network with weights moved off their initialisation, so that every layer matters."""
    torch.manual_seed(0)
    net = TransformNet(**SMALL)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return FastModel(net, {"style": {"name": "test"}})


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "small.onnx")


def test_onnx_matches_torch_within_1e_4_at_several_sizes(model, onnx_file):
    difference = onnx_max_difference(model, onnx_file, sizes=((64, 64), (96, 128), (50, 77), (8, 9)), batch=3)
    assert difference <= 1e-4


def test_onnx_graph_has_dynamic_batch_height_and_width(onnx_file):
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    (image,) = graph.input
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3])), dims
    assert [o.name for o in graph.output] == ["stylised"]


def test_onnx_export_refuses_to_overwrite_and_wrong_suffixes(model, onnx_file, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(model, onnx_file)
    with pytest.raises(ValueError, match=r"must end in \.onnx"):
        export_onnx(model, tmp_path / "net.pt")


def test_coreml_conversion_writes_a_flexible_package(tmp_path):
    ct = pytest.importorskip("coremltools", reason="the deploy extra (coremltools) is not installed")
    net = TransformNet(width=4, blocks=1)
    path = export_coreml(FastModel(net, {}), tmp_path / "net.mlpackage")
    assert path.is_dir() and (path / "Manifest.json").exists()
    spec = ct.utils.load_spec(str(path))
    (image,) = spec.description.input
    assert image.name == "image"
    ranges = image.type.multiArrayType.shapeRange.sizeRanges
    assert [(r.lowerBound, r.upperBound) for r in ranges][2:] == [(8, 8192), (8, 8192)]
    with pytest.raises(FileExistsError):
        export_coreml(net, path)


def test_missing_coremltools_names_the_deploy_extra(monkeypatch, tmp_path):
    """With coremltools unimportable (as on an install without the extra): one error naming the pip command."""
    monkeypatch.setitem(sys.modules, "coremltools", None)  # makes `import coremltools` raise ImportError
    with pytest.raises(DeployUnavailable, match=r"pip install 'nstlab\[deploy\]'.*macOS"):
        export_coreml(TransformNet(width=4, blocks=1), tmp_path / "net.mlpackage")
