"""Tests of ``nstlab dream``: it runs offline on a built-in image with the untrained fallback and says so, its
options reach the run, and every bad input gets one line and exit status 2, never a traceback, and never
an overwritten file. Images are 32-48 px and runs a few steps, so the file takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

FAST = ["--size", "48", "--steps", "2", "--octaves", "2", "--untrained", "--no-progress"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may touch the network: the weights module fails at once and the fallback is used."""
    monkeypatch.setenv("NSTLAB_OFFLINE", "1")


@pytest.fixture(scope="module")
def backbone():
    from nstlab.weights import untrained_backbone

    return untrained_backbone("vgg19")


@pytest.fixture
def quick_backbone(monkeypatch, backbone):
    """Reuse one untrained VGG19 instead of building one per command (1-2 s each); the extractor copies it."""
    import nstlab.weights

    def load_backbone(arch="vgg19", *, fallback=None, seed=0, spec=None):
        assert fallback == "untrained" and arch == "vgg19"
        return backbone

    monkeypatch.setattr(nstlab.weights, "load_backbone", load_backbone)


def png(path: Path, size: tuple[int, int] = (40, 40), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def dream(*args: str | Path) -> list[str]:
    return ["dream", *map(str, args)]


def test_dreams_offline_on_a_builtin_image_and_says_the_network_is_untrained(tmp_path, capsys, quick_backbone):
    """A built-in name works; a warning line, then a closing line with size, steps, time and the objective."""
    out = tmp_path / "dream.png"
    assert main(dream("astronaut", "-o", out, "--layer", "relu2_1", *FAST)) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and Image.open(out).size == (48, 48)
    assert "WARNING: UNTRAINED VGG19" in stdout
    assert "on relu2_1 (mean); 48x48 px, 2 octave(s) x 2 steps" in stdout
    closing = stdout.strip().splitlines()[-1]
    assert closing.startswith(f"wrote {out} (48x48): 4 steps in ") and "objective" in closing
    assert "UNTRAINED" in closing


def test_channel_guide_and_settings_reach_the_run(tmp_path, capsys, quick_backbone):
    image, guide, out = png(tmp_path / "in.png", (64, 48)), png(tmp_path / "guide.png", seed=1), tmp_path / "d.jpg"
    status = main(dream(image, "-o", out, "--layer", "relu3_1", "--channel", "7", "--objective", "l2", "--guide", guide,
                        "--guide-weight", "0.5", "--jitter", "4", "--step-size", "0.02", "--octave-scale", "1.3",
                        "--seed", "3", "--device", "cpu", *FAST))
    assert status == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "on relu3_1, channel 7 (l2), guided by" in stdout and "step size 0.02, jitter 4, seed 3" in stdout
    assert Image.open(out).size == (48, 36)


def test_the_same_seed_writes_the_same_dream(tmp_path, quick_backbone):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (a, b):
        assert main(dream("chelsea", "-o", out, "--seed", "5", "--layer", "relu2_1", *FAST)) == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


CASES = {
    "missing file": (lambda d: [d / "nope.png"], [], "nope.png: no such file"),
    "not an image": (lambda d: [d / "notes.png"], [], "not an image"),
    "a folder": (lambda d: [d], [], "is a folder"),
    "unknown built-in name or file": (lambda d: ["astronot"], [], "astronot: no such file"),
    "unknown layer": (lambda d: [png(d / "c.png")], ["--layer", "relu9_9"], "unknown layer name(s) 'relu9_9'"),
    "channel out of range": (lambda d: [png(d / "c.png")], ["--layer", "relu4_2", "--channel", "512"],
                             "channel 512 is out of range for relu4_2, which has 512 channels"),
    "negative channel": (lambda d: [png(d / "c.png")], ["--channel", "-3"], "channel -3 is out of range"),
    "guide not an image": (lambda d: [png(d / "c.png")], lambda d: ["--guide", d / "notes.png"], "not an image"),
    "size too small": (lambda d: [png(d / "c.png")], ["--size", "16"], "minimum of 32"),
    "octave scale 1": (lambda d: [png(d / "c.png")], ["--octave-scale", "1"], "above 1"),
    "negative step size": (lambda d: [png(d / "c.png")], ["--step-size", "-1"], "positive"),
    "unknown device": (lambda d: [png(d / "c.png")], ["--device", "tpu"], "device 'tpu'"),
    "unknown output format": (lambda d: [png(d / "c.png")], lambda d: ["-o", d / "out.txt"],
                              "unknown image format '.txt'"),
    "too large for memory": (lambda d: [png(d / "c.png")], ["--size", "200000"], "GiB are free"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_exit_status_2(tmp_path, capsys, case, quick_backbone):
    """Each bad input: exit status 2, one line on stderr that names the problem, no traceback, no output file."""
    (tmp_path / "notes.png").write_text("these are my notes, not a picture")
    make, extra, words = CASES[case]
    extra = extra(tmp_path) if callable(extra) else extra  # options that name files in tmp_path
    out = tmp_path / "out.png"
    status = main(dream(*make(tmp_path), "-o", out, *FAST, *extra))
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("nstlab dream: ") and words in err and err.count("\n") == 1, err
    assert "Traceback" not in err and not out.exists()


def test_an_existing_output_is_kept_without_overwrite(tmp_path, capsys, quick_backbone):
    """An existing OUT is refused before any work; --overwrite replaces it."""
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert main(dream("astronaut", "-o", out, *FAST)) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(dream("astronaut", "-o", out, *FAST, "--overwrite", "--layer", "relu1_1")) == 0
    assert Image.open(out).size == (48, 48)


def test_an_output_that_is_a_folder_is_refused_even_with_overwrite(tmp_path, capsys):
    out = tmp_path / "out.png"
    out.mkdir()
    assert main(dream("astronaut", "-o", out, *FAST, "--overwrite")) == 2
    assert f"{out} is a folder, not a file; give -o a file name" in capsys.readouterr().err


def test_missing_weights_without_untrained_say_how_to_get_them(tmp_path, capsys, monkeypatch):
    """Offline without cached weights and without --untrained: one line with the remedies and --untrained."""
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    out = tmp_path / "out.png"
    assert main(dream("astronaut", "-o", out, "--size", "48", "--steps", "1", "--no-progress")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nstlab weights import" in err and "--untrained" in err and not out.exists()
