"""Tests of ``nstlab stylize``: it runs offline on built-in images with the untrained fallback and says so,
a killed run resumes from its checkpoint, and every bad input gets one line and exit status 2, never a
traceback. Images are 32-40 px and runs a few steps, so the file takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstlab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

FAST = ["--size", "32", "--steps", "3", "--untrained", "--no-progress"]


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


def stylize(*args: str | Path) -> list[str]:
    return ["stylize", *map(str, args)]


def test_runs_offline_on_builtin_images_and_says_the_network_is_untrained(tmp_path, capsys, quick_backbone):
    """Built-in names work; the output has a warning line and a closing line with time, steps/s and losses."""
    out = tmp_path / "out.png"
    assert main(stylize("astronaut", "hubble", "brick", "-o", out, "--style-blend", "2,1", *FAST)) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and Image.open(out).size == (32, 32)
    assert "WARNING: UNTRAINED VGG19" in stdout
    closing = stdout.strip().splitlines()[-1]
    assert closing.startswith(f"wrote {out} (32x32): step 3 in ") and "steps/s" in closing
    assert "content" in closing and "style" in closing and "UNTRAINED" in closing
    assert not (tmp_path / "out.png.ckpt").exists()  # the finished run's checkpoint is removed


def test_options_reach_the_config_and_intermediate_images_are_saved(tmp_path, capsys, quick_backbone):
    """Preset, layers, optimiser, scales, colour and save-every all take effect."""
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    status = main(stylize(content, style, "-o", out, "--preset", "caffe", "--scales", "0.5,1", "--save-every", "2",
                          "--style-layers", "relu1_1,relu2_1", "--style-layer-weights", "1,3", "--content-layers",
                          "relu2_1", "--preserve-colour", "luminance", "--seed", "3", "--device", "cpu", *FAST))
    assert status == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "lbfgsb" in stdout and "scales 0.5+1" in stdout
    assert sorted(p.name for p in (tmp_path / "out_steps").iterdir()) == ["step_00002.png", "step_00004.png",
                                                                          "step_00006.png"]


def truncated(path: Path) -> Path:
    png(path, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CASES = {
    "missing file": (lambda d: [d / "nope.png", png(d / "s.png")], [], "nope.png: no such file"),
    "not an image": (lambda d: [d / "notes.png", png(d / "s.png")], [], "not an image"),
    "truncated image": (lambda d: [truncated(d / "cut.png"), png(d / "s.png")], [], "damaged or truncated"),
    "a folder": (lambda d: [d, png(d / "s.png")], [], "is a folder"),
    "too small": (lambda d: [png(d / "tiny.png", (16, 16)), png(d / "s.png")], [], "too small"),
    "unknown layer": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--style-layers", "relu1_1,relu9_9"],
                      "unknown layer name(s) 'relu9_9'"),
    "negative beta": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--beta", "-1"], "beta=-1.0 must be"),
    "negative blend": (lambda d: [png(d / "c.png"), png(d / "s.png"), png(d / "t.png")], ["--style-blend", "1,-1"],
                       "style_blend"),
    "too few blend weights": (lambda d: [png(d / "c.png"), png(d / "s.png"), png(d / "t.png")],
                              ["--style-blend", "1"], "2 style images"),
    "NaN during optimisation": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--beta", "1e39"],
                                "the loss became inf"),
    "unknown device": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--device", "tpu"], "device 'tpu'"),
    "resume without checkpoint": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--resume"],
                                  "no checkpoint"),
    "too large for memory": (lambda d: [png(d / "c.png"), png(d / "s.png")], ["--size", "200000"],
                             "GiB are free"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_exit_status_2(tmp_path, capsys, case, quick_backbone):
    """Each bad input: exit status 2, one line on stderr that names the problem, no traceback, no output file."""
    (tmp_path / "notes.png").write_text("these are my notes, not a picture")
    make, extra, words = CASES[case]
    out = tmp_path / "out.png"
    status = main(stylize(*make(tmp_path), "-o", out, *FAST, *extra))
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("nstlab stylize: ") and words in err and err.count("\n") == 1, err
    assert "Traceback" not in err and not out.exists()


def test_an_existing_output_is_kept_without_overwrite(tmp_path, capsys, quick_backbone):
    """An existing OUT is refused before any work; --overwrite replaces it."""
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert main(stylize(content, style, "-o", out, *FAST)) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(stylize(content, style, "-o", out, *FAST, "--overwrite")) == 0
    assert Image.open(out).size == (32, 32)


# `nstlab`'s own main(), with only this command registered: importing every command's module (nbformat for
# `course`...) would take longer than the run itself on a busy machine.
ONLY_STYLIZE = "import sys, nstlab.cli as cli; cli.COMMANDS = ('stylize',); sys.exit(cli.main())"


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, capsys, quick_backbone):
    """SIGKILL a real run after a few steps; rerunning with --resume continues from the saved step, not 0.

    The killed run is a separate process using the real offline fallback (no network, no weights).
    """
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    ckpt = tmp_path / "out.png.ckpt"
    env = {**os.environ, "NSTLAB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # one thread: see one_thread()
    command = [sys.executable, "-c", ONLY_STYLIZE, "stylize", str(content), str(style), "-o", str(out), "--size", "32",
               "--untrained", "--no-progress", "--optimizer", "adam", "--lr", "0.01", "--checkpoint-every", "2"]
    proc = subprocess.Popen([*command, "--steps", "100000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and torch.load(ckpt, weights_only=True)["step"] >= 4:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    saved = torch.load(ckpt, weights_only=True)["step"]
    assert saved >= 4

    assert main(command[3:] + ["--steps", str(saved + 4)]) == 2  # a fresh start would lose the run
    assert "--resume" in capsys.readouterr().err

    # The rerun happens in this process (the same untrained VGG19, seed 0), saving a second start of torch.
    assert main(command[3:] + ["--steps", str(saved + 4), "--resume"]) == 0
    stdout = capsys.readouterr().out
    assert f"resumed from step {saved}" in stdout and f"step {saved + 4} in" in stdout
    assert out.exists() and not ckpt.exists()


def test_missing_weights_without_untrained_say_how_to_get_them(tmp_path, capsys, monkeypatch):
    """Offline without cached weights and without --untrained: one line with the remedies and --untrained."""
    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    assert main(stylize(content, style, "-o", out, "--size", "32", "--steps", "2", "--no-progress")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nstlab weights import" in err and "--untrained" in err


# --- folders that cannot take the result, and checkpoints that cannot be resumed ------------------------------


def _can_write_into(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
        (folder / "probe").unlink()
        return True
    except OSError:
        return False


@pytest.fixture
def locked_folder(tmp_path):
    """A folder in which no file can be created, root included.

    chmod 0555 stops an ordinary user but not root, so where it is not enough the folder is also made
    immutable (``chattr +i``, which root obeys). Skipped, with the reason, where neither works here.
    """
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _can_write_into(folder):
        try:
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        except OSError:  # no chattr on this machine
            pass
    try:
        if _can_write_into(folder):
            pytest.skip("cannot make an unwritable folder here: chmod 0555 does not stop this user (root) and "
                        "`chattr +i` is missing or refused on this file system")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the command gets as far as loading the network, which is where a run's work begins."""
    import nstlab.weights

    def load_backbone(*args, **kwargs):
        raise AssertionError("the run started although its output could not be written")

    monkeypatch.setattr(nstlab.weights, "load_backbone", load_backbone)


def refused_line(capsys) -> str:
    """The single line a refused command printed on stderr; nothing may have been printed on stdout."""
    captured = capsys.readouterr()
    assert captured.out == "", captured.out  # not even the line announcing the run
    err = captured.err
    assert err.startswith("nstlab stylize: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_read_only_output_folder_is_refused_before_the_run_starts(tmp_path, capsys, locked_folder, no_run):
    """-o in a folder that refuses new files: exit 2 before any work, one line naming the folder and the fix."""
    content, style = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1)
    out = locked_folder / "out.png"
    assert main(stylize(content, style, "-o", out, *FAST)) == 2
    err = refused_line(capsys)
    assert f"cannot write {out}: {locked_folder} is not writable" in err and "choose a writable folder for -o" in err
    assert not out.exists()


def test_an_output_below_a_regular_file_is_refused_before_the_run_starts(tmp_path, capsys, no_run):
    """-o whose would-be folder is a file: refused up front, naming the file that is in the way."""
    content, style = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / "results" / "out.png"
    assert main(stylize(content, style, "-o", out, *FAST)) == 2
    err = refused_line(capsys)
    assert f"cannot write {out}: {tmp_path / 'notes.txt'} is a file, not a folder" in err and "for -o" in err


def test_an_output_that_is_a_folder_is_refused_even_with_overwrite(tmp_path, capsys, no_run):
    """--overwrite cannot replace a folder with an image; that would only fail once the work is done."""
    content, style = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1)
    out = tmp_path / "out.png"
    out.mkdir()
    assert main(stylize(content, style, "-o", out, *FAST, "--overwrite")) == 2
    assert f"{out} is a folder, not a file; give -o a file name" in refused_line(capsys)


def test_a_checkpoint_in_a_read_only_folder_is_refused_before_the_run_starts(tmp_path, capsys, locked_folder, no_run):
    """The checkpoint's own folder (--checkpoint elsewhere than OUT) is checked as well as OUT's."""
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    ckpt = locked_folder / "run.ckpt"
    assert main(stylize(content, style, "-o", out, "--checkpoint", ckpt, *FAST)) == 2
    err = refused_line(capsys)
    assert f"cannot write {ckpt}: {locked_folder} is not writable" in err and "for --checkpoint" in err


def test_a_steps_folder_that_is_a_file_is_refused_before_the_run_starts(tmp_path, capsys, no_run):
    """--save-every writes into OUT-STEM_steps/; a file of that name would stop the run at its first save."""
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    (tmp_path / "out_steps").write_text("in the way")
    assert main(stylize(content, style, "-o", out, "--save-every", "1", *FAST)) == 2
    assert f"{tmp_path / 'out_steps'} is a file, not a folder" in refused_line(capsys)


def _ours_with(**changes) -> dict:
    """The fields of a checkpoint of ours, with ``changes``."""
    fields = {"image": torch.rand(1, 3, 8, 8), "optimizer": {}, "step": 2, "scale": 0, "losses": [], "config": {}}
    return {**fields, **changes}


def _truncated_checkpoint(path: Path) -> None:
    torch.save(_ours_with(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


CORRUPT_CHECKPOINTS = {
    "truncated": (_truncated_checkpoint, "truncated, damaged or not a file torch can load"),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "truncated, damaged"),
    "empty": (lambda p: p.write_bytes(b""), "the file is empty"),
    "another torch file": (lambda p: torch.save({"a": 1}, p), "not a checkpoint of a style-transfer run (it lacks 'image'"),
    "damaged fields": (lambda p: torch.save(_ours_with(losses=[{"loss": 1.0}]), p), "its contents are damaged"),
}


@pytest.mark.parametrize("case", CORRUPT_CHECKPOINTS)
def test_a_corrupt_checkpoint_with_resume_gets_one_line_naming_the_file_and_the_fix(tmp_path, capsys, case,
                                                                                 quick_backbone):
    """No traceback and none of torch's advice to load with weights_only=False (unsafe for a file of unknown
    origin); the line names the file, what is wrong and the two ways on. The file itself is left alone."""
    content, style, out = png(tmp_path / "c.png"), png(tmp_path / "s.png", seed=1), tmp_path / "out.png"
    ckpt = tmp_path / "out.png.ckpt"
    write, problem = CORRUPT_CHECKPOINTS[case]
    write(ckpt)
    before = ckpt.read_bytes()
    assert main(stylize(content, style, "-o", out, *FAST, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nstlab stylize: {ckpt}: not a readable nstlab checkpoint: ") and err.count("\n") == 1, err
    assert problem in err and "Delete it, or start afresh without --resume" in err
    assert "weights_only" not in err and "Traceback" not in err
    assert ckpt.read_bytes() == before and not out.exists()


def test_style_loss_and_content_target_reach_the_run(tmp_path, capsys, quick_backbone, monkeypatch):
    """--style-loss and --content-target end up in the StyleConfig of the run and on the announcing line."""
    import nstlab.stylize

    seen = {}
    real = nstlab.stylize.stylize

    def spy(content, styles, config, **kwargs):
        seen["config"] = config
        return real(content, styles, config, **kwargs)

    monkeypatch.setattr(nstlab.stylize, "stylize", spy)
    out = tmp_path / "out.png"
    assert main(stylize("astronaut", "mosaic", "-o", out, "--style-loss", "mean_std", "--content-target", "adain",
                        "--beta", "10", *FAST)) == 0
    stdout = capsys.readouterr().out
    assert (seen["config"].style_loss, seen["config"].content_target, seen["config"].beta) == ("mean_std", "adain", 10.0)
    assert "style loss mean_std, AdaIN content target" in stdout and Image.open(out).size == (32, 32)


def test_an_unknown_style_loss_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(stylize("astronaut", "mosaic", "-o", tmp_path / "out.png", "--style-loss", "cosine", *FAST))
    assert info.value.code == 2 and "invalid choice: 'cosine'" in capsys.readouterr().err
