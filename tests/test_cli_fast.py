"""Tests of ``nstlab fast``: train, info, apply and export end to end on built-in images in the grade profile with
the untrained VGG16 asked for explicitly (every output says UNTRAINED), --resume continuing a checkpoint, and every
bad input getting one line and exit status 2, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nstlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

GRADE = ["--profile", "grade", "--untrained", "--no-progress"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may touch the network, and no pretrained weights may be found by chance."""
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(tmp_path / "no-weights"))


@pytest.fixture(scope="module")
def backbone():
    from nstlab.weights import untrained_backbone

    return untrained_backbone("vgg16")


@pytest.fixture
def quick_backbone(monkeypatch, backbone):
    """Reuse one untrained VGG16 instead of building one per command (1-2 s each); the extractor copies it."""
    import nstlab.weights

    def load_backbone(arch="vgg16", *, fallback=None, seed=0, spec=None):
        assert fallback == "untrained" and arch == "vgg16"
        return backbone

    monkeypatch.setattr(nstlab.weights, "load_backbone", load_backbone)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, backbone):
    """A grade-profile model trained by the library against the untrained VGG16 (the CLI's own run is tested below)."""
    from nstlab.fast import fast_config, save_model, train

    result = train("mosaic", config=fast_config("grade"), backbone=backbone, progress=False)
    return save_model(result.model, tmp_path_factory.mktemp("model") / "mosaic.pt")


def png(path, size=(40, 40), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def test_train_info_apply_on_built_in_images_and_every_output_says_untrained(tmp_path, capsys, quick_backbone):
    model = tmp_path / "mosaic.pt"
    assert main(["fast", "train", "mosaic", "-o", str(model), *GRADE]) == 0
    stdout = capsys.readouterr().out
    assert "WARNING: UNTRAINED VGG16" in stdout and "profile grade" in stdout
    assert f"wrote {model}: step 3 in " in stdout and "UNTRAINED loss network" in stdout
    assert model.exists() and not (tmp_path / "mosaic.pt.ckpt").exists()  # the finished run's checkpoint is gone

    assert main(["fast", "info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "format 1" in info and "style: mosaic" in info and "width 8, 1 residual block" in info
    assert "3 steps on built-in images" in info and "UNTRAINED" in info

    out = tmp_path / "astronaut.png"
    assert main(["fast", "apply", str(model), "astronaut", "-o", str(out), "--size", "48"]) == 0
    stdout = capsys.readouterr().out
    assert Image.open(out).size == (48, 48) and "UNTRAINED" in stdout and "in the style of mosaic" in stdout

    folder = tmp_path / "many"
    photo = png(tmp_path / "photo.png", size=(48, 40))
    assert main(["fast", "apply", str(model), "chelsea", str(photo), "-o", str(folder), "--size", "48"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["chelsea.png", "photo.png"]
    assert Image.open(folder / "photo.png").size == (48, 40)


def test_export_onnx_checks_parity_and_coreml_names_the_extra_when_missing(tmp_path, capsys, model_file,
                                                                           monkeypatch):
    out = tmp_path / "mosaic.onnx"
    assert main(["fast", "export", str(model_file), "--format", "onnx", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and "onnxruntime matches torch within" in stdout and "UNTRAINED" in stdout
    assert main(["fast", "export", str(model_file), "--format", "onnx", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err

    monkeypatch.setitem(__import__("sys").modules, "coremltools", None)  # as without the deploy extra
    assert main(["fast", "export", str(model_file), "--format", "coreml", "-o", str(tmp_path / "m.mlpackage")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'nstlab[deploy]'" in err and err.count("\n") == 1


def test_resume_continues_a_checkpoint(tmp_path, capsys, backbone, quick_backbone):
    """A run stopped after 2 of 5 steps (its checkpoint saved) is continued by --resume to step 5."""
    from nstlab.fast import fast_config, train

    model = tmp_path / "m.pt"
    ckpt = tmp_path / "m.pt.ckpt"
    train("mosaic", config=fast_config("grade", steps=2), backbone=backbone, checkpoint=ckpt, progress=False)
    assert main(["fast", "train", "mosaic", "-o", str(model), *GRADE, "--steps", "5"]) == 2
    assert "--resume" in capsys.readouterr().err  # a fresh start would lose the run
    assert main(["fast", "train", "mosaic", "-o", str(model), *GRADE, "--steps", "5", "--resume"]) == 0
    stdout = capsys.readouterr().out
    assert "resumed from step 2" in stdout and "step 5 in" in stdout
    assert not ckpt.exists() and model.exists()


def test_missing_weights_without_untrained_say_how_to_get_them(tmp_path, capsys):
    assert main(["fast", "train", "mosaic", "-o", str(tmp_path / "m.pt"), "--profile", "grade", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nstlab weights import" in err and "--untrained" in err


def truncated(path):
    png(path, size=(64, 64))
    path.write_bytes(path.read_bytes()[:300])
    return path


def folder_of_notes(path):
    path.mkdir()
    (path / "a.txt").write_text("notes")
    return path


BAD = {
    "style not an image": (lambda d, m: ["train", str(d / "notes.png"), "-o", str(d / "m.pt"), *GRADE],
                           "not an image"),
    "style missing": (lambda d, m: ["train", "nosuchstyle", "-o", str(d / "m.pt"), *GRADE], "no such file"),
    "empty images folder": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--images",
                                          str(folder_of_notes(d / "photos")), *GRADE], "none of them an image"),
    "missing images folder": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--images", str(d / "nope"),
                                            *GRADE], "no such folder"),
    "crops too large for memory": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--size", "200000",
                                                 *GRADE], "GiB are free"),
    "bad setting": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--steps", "0", *GRADE],
                    "steps=0 must be an integer >= 1"),
    "unknown device": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--device", "tpu", *GRADE],
                       "device 'tpu'"),
    "resume without checkpoint": (lambda d, m: ["train", "mosaic", "-o", str(d / "m.pt"), "--resume", *GRADE],
                                  "no checkpoint"),
    "model not a model": (lambda d, m: ["apply", str(d / "notes.png"), "astronaut", "-o", str(d / "o.png")],
                          "not an nstlab fast-style model"),
    "model missing": (lambda d, m: ["info", str(d / "nope.pt")], "no such file"),
    "damaged model": (lambda d, m: ["info", str(truncated(d / "cut.pt"))], "not an nstlab fast-style model"),
    "content not an image": (lambda d, m: ["apply", str(m), str(d / "notes.png"), "-o", str(d / "o.png")],
                             "not an image"),
    "content truncated": (lambda d, m: ["apply", str(m), str(truncated(d / "cut.png")), "-o", str(d / "o.png")],
                          "damaged or truncated"),
    "content too large for memory": (lambda d, m: ["apply", str(m), "astronaut", "-o", str(d / "o.png"), "--size",
                                                   "150000"], "GiB are free"),
    "several contents into a file": (lambda d, m: ["apply", str(m), "astronaut", "chelsea", "-o",
                                                   str(png(d / "o.png"))], "need a folder"),
    "output not an image format": (lambda d, m: ["apply", str(m), "astronaut", "-o", str(d / "o.txt")],
                                   "unknown image format"),
    "export suffix": (lambda d, m: ["export", str(m), "--format", "onnx", "-o", str(d / "m.pt2")],
                      "must end in .onnx"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_one_line_and_exit_status_2(tmp_path, capsys, model_file, quick_backbone, case):
    (tmp_path / "notes.png").write_text("these are my notes, not a picture")
    make, words = BAD[case]
    status = main(["fast", *make(tmp_path, model_file)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("nstlab fast: ") and words in err and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "o.png").exists() or case.startswith("several")


def test_outputs_are_never_overwritten_without_asking(tmp_path, capsys, model_file):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    assert main(["fast", "apply", str(model_file), "astronaut", "-o", str(out), "--size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["fast", "apply", str(model_file), "astronaut", "-o", str(out), "--size", "32", "--overwrite"]) == 0
    assert Image.open(out).size == (32, 32)
    model = tmp_path / "m.pt"
    model.write_bytes(b"precious")
    assert main(["fast", "train", "mosaic", "-o", str(model), *GRADE]) == 2
    assert model.read_bytes() == b"precious"
    assert torch.load(model_file, weights_only=True)["kind"] == "nstlab-fast-style-model"
