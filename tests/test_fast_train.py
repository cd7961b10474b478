"""Tests of nstlab.fast's training: a short run lowers the loss on held-out crops, a killed run resumes from its
checkpoint and ends exactly where an uninterrupted run ends, NaN stops with the step, the untrained fallback is
used only when asked for and is recorded, photo folders skip what they cannot read. Networks are tiny (width 4,
one block) and crops 32 px, with one torch thread."""

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

from nstlab.fast import (
    FastConfig,
    NoTrainingImages,
    TrainingDiverged,
    TrainingImages,
    TransformNet,
    fast_config,
    find_images,
    perceptual_loss,
    style_targets,
    train,
)
from nstlab.vgg import VGGFeatures
from nstlab.weights import WeightsUnavailable, untrained_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY = dict(width=4, blocks=1, size=32, style_size=64, batch_size=2)


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg16")


def style(seed=0):
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_a_short_run_lowers_the_loss_on_held_out_crops(backbone):
    """The perceptual loss of crops never trained on falls after 16 steps, against the same initial network."""
    from nstlab.data import open_image

    painting = open_image("mosaic", size=64)
    config = fast_config("grade", steps=16, lr=3e-3, style_weight=50.0, **TINY)
    result = train(painting, config=config, backbone=backbone, progress=False)
    extractor = VGGFeatures(config.layers, backbone=backbone)
    grams = style_targets(extractor, painting, layers=config.style_layers)
    held_out = TrainingImages(None, size=32, seed=99).batch(0, 4)
    torch.manual_seed(config.seed)
    initial = TransformNet(width=4, blocks=1)  # train() initialises with the same seed

    def loss(net):
        with torch.no_grad():
            return perceptual_loss(extractor(net(held_out)), extractor(held_out)[config.content_layer], grams,
                                   style_weight=config.style_weight)[0].item()

    before, after = loss(initial), loss(result.model.net)
    assert after < 0.9 * before, (before, after)
    assert result.steps == 16 and [h.step for h in result.history] == list(range(1, 17))
    assert result.model.metadata["training"]["history"].shape == (16, 3)


def test_training_is_reproducible_from_the_seed(backbone):
    config = fast_config("grade", steps=2, **TINY)
    a = train(style(), config=config, backbone=backbone, progress=False)
    b = train(style(), config=config, backbone=backbone, progress=False)
    assert [h.total for h in a.history] == [h.total for h in b.history]


# The child process: train "mosaic" for very many steps with a checkpoint every 2 steps, until it is killed.
CHILD = """
import sys, torch
torch.set_num_threads(1)
from nstlab.fast import fast_config, train
config = fast_config("grade", steps=100000, checkpoint_every=2, width=4, blocks=1, size=32, style_size=64,
                     batch_size=2)
train("mosaic", config=config, fallback="untrained", checkpoint=sys.argv[1], progress=False)
"""


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path, backbone):
    """SIGKILL a real training process after a few checkpoints; resuming continues from the saved step, finishes
    with the right step count, and its network equals that of a run that was never interrupted."""
    ckpt = tmp_path / "run.ckpt"
    env = {**os.environ, "NSTLAB_OFFLINE": "1", "NSTLAB_WEIGHTS_DIR": str(tmp_path / "no-weights"),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ckpt)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and torch.load(ckpt, weights_only=True)["step"] >= 4:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    saved = torch.load(ckpt, weights_only=True)["step"]
    assert saved >= 4 and saved % 2 == 0

    config = fast_config("grade", steps=saved + 3, checkpoint_every=2, **TINY)
    resumed = train("mosaic", config=config, backbone=backbone, checkpoint=ckpt, progress=False)
    assert resumed.start_step == saved and resumed.steps == saved + 3
    assert [h.step for h in resumed.history] == list(range(1, saved + 4))
    assert torch.load(ckpt, weights_only=True)["step"] == saved + 3  # the final state is saved too

    uninterrupted = train("mosaic", config=config, backbone=backbone, progress=False)
    for a, b in zip(resumed.model.net.state_dict().values(), uninterrupted.model.net.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([h.total for h in resumed.history], [h.total for h in uninterrupted.history],
                               rtol=1e-4)


def test_resuming_with_other_settings_is_refused(tmp_path, backbone):
    ckpt = tmp_path / "run.ckpt"
    train(style(), config=fast_config("grade", **TINY), backbone=backbone, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match=r"other settings: width \(4 -> 8\)"):
        train(style(), config=fast_config("grade", **{**TINY, "width": 8}), backbone=backbone, checkpoint=ckpt,
              progress=False)
    finished = train(style(), config=fast_config("grade", **TINY), backbone=backbone, checkpoint=ckpt,
                     progress=False)
    assert finished.start_step == finished.steps == 3  # a finished run returns at once


def test_a_nan_loss_stops_with_the_step_and_the_fix(backbone):
    nan_style = torch.full((1, 3, 64, 64), float("nan"))
    with pytest.raises(TrainingDiverged, match="at step 1 .*Lower the learning rate"):
        train(nan_style, config=fast_config("grade", **TINY), backbone=backbone, progress=False)


def test_missing_weights_raise_unless_the_fallback_is_asked_for(tmp_path, monkeypatch):
    """Offline without cached weights: an error naming the remedies; with fallback='untrained' the model, its
    saved file and its description say UNTRAINED."""
    from nstlab.fast import describe_model, load_model, save_model

    monkeypatch.setenv("NSTLAB_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    config = fast_config("grade", steps=1, **TINY)
    with pytest.raises(WeightsUnavailable, match="fallback='untrained'"):
        train(style(), config=config, progress=False)
    result = train(style(), config=config, fallback="untrained", progress=False)
    assert not result.pretrained and result.note.startswith("UNTRAINED")
    loaded = load_model(save_model(result.model, tmp_path / "m.pt"))
    assert loaded.pretrained is False and loaded.metadata["training"]["loss_network"].startswith("UNTRAINED")
    assert "UNTRAINED" in describe_model(loaded)


def test_preview_is_called_every_k_steps_and_can_stop_the_run(backbone):
    calls = []

    def preview(step, images):
        calls.append((step, tuple(images.shape), float(images.min()), float(images.max())))
        return step >= 4

    config = fast_config("grade", steps=10, preview_every=2, **TINY)
    result = train(style(), config=config, backbone=backbone, preview=preview, progress=False)
    assert [c[0] for c in calls] == [2, 4] and result.steps == 4
    assert all(c[1] == (2, 3, 32, 32) and 0 <= c[2] and c[3] <= 1 for c in calls)


def png(path: Path, size=(48, 40), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def test_a_photo_folder_is_searched_recursively_and_unreadable_files_are_skipped_and_counted(tmp_path, backbone):
    """Good photos in sub-folders (any name Pillow reads); notes, a truncated file and a tiny image are skipped."""
    folder = tmp_path / "photos"
    png(folder / "a.png")
    png(folder / "deep" / "er" / "b.photo", seed=1)  # Pillow reads it whatever its name
    (folder / "notes.txt").write_text("not a photo")
    cut = png(folder / "cut.png", size=(64, 64), seed=2)
    cut.write_bytes(cut.read_bytes()[:200])  # the header survives, the pixels do not
    png(folder / "tiny.png", size=(12, 12), seed=3)
    (folder / ".hidden.png").write_bytes(b"ignored")
    images, skipped = find_images(folder)
    assert sorted(p.name for p in skipped) == ["notes.txt"]
    assert sorted(p.name for p in images) == ["a.png", "b.photo", "cut.png", "tiny.png"]

    photos = TrainingImages(folder, size=32, seed=0)
    batches = [photos.batch(step, 2) for step in range(30)]  # draws every file many times over
    assert all(b.shape == (2, 3, 32, 32) and 0 <= b.min() and b.max() <= 1 for b in batches)
    assert sorted(p.name for p in photos.skipped) == ["cut.png", "notes.txt", "tiny.png"]

    result = train(style(), folder, config=fast_config("grade", **TINY), backbone=backbone, progress=False)
    assert result.skipped >= 1 and result.model.metadata["training"]["images"] == str(folder)


def test_an_empty_or_unreadable_folder_is_a_clear_error(tmp_path, backbone):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoTrainingImages, match="no files; put photos"):
        train(style(), tmp_path / "empty", config=fast_config("grade", **TINY), backbone=backbone)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("words")
    with pytest.raises(NoTrainingImages, match="1 file"):
        find_images(tmp_path / "notes")
    with pytest.raises(NoTrainingImages, match="no such folder"):
        find_images(tmp_path / "missing")


def test_built_in_crops_are_random_but_reproducible():
    photos = TrainingImages(None, size=32, seed=0)
    a, b = photos.batch(1, 4), photos.batch(2, 4)
    assert not torch.equal(a, b)
    assert torch.equal(a, TrainingImages(None, size=32, seed=0).batch(1, 4))
    assert not torch.equal(a, TrainingImages(None, size=32, seed=1).batch(1, 4))


def test_profiles_and_bad_settings():
    fast, full, grade = fast_config("fast"), fast_config("full"), fast_config("grade")
    assert (fast.width, fast.blocks, fast.size) == (16, 3, 128) and 100 <= fast.steps <= 500
    assert (full.width, full.blocks, full.size) == (32, 5, 256) and full.steps >= 10_000
    assert grade.steps <= 5 and grade.size <= 64
    assert fast_config("grade", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        fast_config("huge")
    with pytest.raises(ValueError, match="size=16 is below 32"):
        FastConfig(size=16)
    with pytest.raises(ValueError, match="lr=-1"):
        FastConfig(lr=-1)
    with pytest.raises(ValueError, match="unknown layer name"):
        FastConfig(style_layers=("relu9_9",))
    with pytest.raises(ValueError, match="both 0"):
        FastConfig(content_weight=0, style_weight=0)
