"""Tests of nstlab.fast's model files and apply(): a round trip keeps outputs and metadata, the file holds only
plain types, and every bad file (missing, empty, text, another torch file, a checkpoint, a newer format, damaged
weights, truncated) gets one ModelFileError line."""

from __future__ import annotations

import pytest
import torch

from nstlab.fast import (
    FORMAT_VERSION,
    FastModel,
    ModelFileError,
    TransformNet,
    apply,
    default_models_dir,
    describe_model,
    load_model,
    save_model,
)
from nstlab.fast.model_file import KIND, thumbnail

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    metadata = {"style": {"name": "mosaic", "thumbnail": thumbnail(torch.rand(1, 3, 100, 80))},
                "training": {"steps": 3, "pretrained": True, "loss_network": "pretrained VGG16", "seconds": 1.5,
                             "device": "cpu", "losses": {"total": 1.0, "content": 0.5, "style": 0.1},
                             "config": {"size": 32, "batch_size": 1, "profile": "grade"}, "images": "built-in images",
                             "history": torch.rand(3, 3)}}
    return FastModel(net, metadata)


def test_a_saved_model_loads_back_with_the_same_outputs_and_metadata(tmp_path, model):
    path = save_model(model, tmp_path / "sub" / "m.pt")
    loaded = load_model(path)
    x = torch.rand(2, 3, 24, 20)
    torch.testing.assert_close(apply(loaded, x), apply(model, x), rtol=0, atol=0)
    assert loaded.settings == {"width": 4, "blocks": 1} and loaded.style_name == "mosaic" and loaded.pretrained
    assert loaded.metadata["style"]["thumbnail"].shape == (3, 64, 51)
    assert loaded.metadata["style"]["thumbnail"].dtype == torch.uint8
    torch.testing.assert_close(loaded.metadata["training"]["history"], model.metadata["training"]["history"])
    assert "style: mosaic" in describe_model(loaded) and "UNTRAINED" not in describe_model(loaded)


def test_the_file_holds_only_plain_types_with_version_and_checksum(tmp_path, model):
    data = torch.load(save_model(model, tmp_path / "m.pt"), weights_only=True)  # no code runs on loading
    assert data["kind"] == KIND and data["format"] == FORMAT_VERSION and len(data["checksum"]) == 64
    assert set(data) == {"kind", "format", "settings", "weights", "checksum", "metadata"}


def test_an_existing_file_is_not_overwritten_without_asking(tmp_path, model):
    path = tmp_path / "m.pt"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        save_model(model, path)
    assert path.read_bytes() == b"precious"
    save_model(model, path, overwrite=True)
    assert load_model(path).style_name == "mosaic"


def _damaged_weights(path):
    data = torch.load(path, weights_only=True)
    data["weights"]["out.1.bias"] += 1.0
    torch.save(data, path)


def _newer(path):
    data = torch.load(path, weights_only=True)
    data["format"] = FORMAT_VERSION + 1
    torch.save(data, path)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:3000])


BAD = {
    "missing": (lambda p: p.unlink(), "no such file"),
    "empty": (lambda p: p.write_bytes(b""), "the file is empty"),
    "text": (lambda p: p.write_text("a shopping list"), "not an nstlab fast-style model"),
    "another torch file": (lambda p: torch.save({"weights": torch.zeros(3)}, p), "not an nstlab fast-style model"),
    "a state dict": (lambda p: torch.save(TransformNet(width=4, blocks=1).state_dict(), p),
                     "not an nstlab fast-style model"),
    "a training checkpoint": (lambda p: torch.save({"kind": "nstlab-fast-style-checkpoint"}, p),
                              "training checkpoint: finish the run with `--resume`"),
    "a newer format": (_newer, f"made by a newer nstlab (model format {FORMAT_VERSION + 1}"),
    "damaged weights": (_damaged_weights, "do not match their checksum"),
    "truncated": (_truncated, "not an nstlab fast-style model"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_files_give_one_clear_line(tmp_path, model, case):
    path = save_model(model, tmp_path / "m.pt")
    spoil, words = BAD[case]
    spoil(path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert words in message and str(path) in message and "\n" not in message, message


def test_apply_keeps_size_range_and_device_and_refuses_wrong_shapes(model):
    x = torch.rand(1, 3, 30, 17)
    y = apply(model, x)
    assert y.shape == x.shape and y.device == x.device and 0 <= y.min() and y.max() <= 1
    assert not y.requires_grad
    with pytest.raises(ValueError, match=r"got \(3, 30, 17\).*image\[None\]"):
        apply(model, x[0])
    with pytest.raises(ValueError, match="at least 8"):
        apply(model, torch.rand(1, 3, 5, 30))


def test_untrained_models_say_so_in_every_description():
    model = FastModel(TransformNet(width=4, blocks=1), {"training": {"pretrained": False}})
    assert model.note.startswith("UNTRAINED") and "UNTRAINED" in describe_model(model)


def test_models_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NSTLAB_FAST_MODELS", str(tmp_path / "models"))
    assert default_models_dir() == tmp_path / "models"
    monkeypatch.delenv("NSTLAB_FAST_MODELS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert default_models_dir() == tmp_path / "torch" / "nstlab" / "fast_models"
