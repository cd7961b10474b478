"""Tests of nstlab.stylize and nstlab.colour: the optimisation loop, its options, resumption and its refusals.

Tiny images (32 px) and a shallow, untrained VGG19 keep the whole file to seconds; the properties checked
(loss decreases, resumption equals an uninterrupted run, colour statistics match) do not need trained weights.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nstlab import losses, memory, statistics
from nstlab import stylize as st
from nstlab.colour import luminance_image, luminance_transfer, match_colours, rgb_to_yiq, yiq_to_rgb
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

LAYERS = ("relu1_1", "relu2_1", "relu3_1")
# float32 network passes: these tests compare the run's losses with nstlab.losses on float32 activations
# (bfloat16 is tested in test_precision.py).
SMALL = st.StyleConfig(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1", "relu3_1"),
                       size=32, steps=4, init="content", optimizer="adam", lr=0.02, precision="fp32")


@pytest.fixture(scope="module")
def extractor() -> VGGFeatures:
    return VGGFeatures(LAYERS, backbone=untrained_backbone("vgg19", seed=0))


def images(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + seed)  # not the seeds of the initial noise
    return torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)


def run(extractor, config=SMALL, **kwargs) -> st.StyleResult:
    photo, painting = images()
    return st.stylize(photo, kwargs.pop("styles", painting), config, extractor=extractor, show_progress=False, **kwargs)


# --- presets and config -----------------------------------------------------------------------------------------


def test_presets_carry_the_classic_settings():
    """The three presets reproduce the settings the issue names: paper, deeplearning.ai course, Caffe-era code."""
    gatys, dlai, caffe = st.PRESETS["gatys"], st.PRESETS["deeplearning_ai"], st.PRESETS["caffe"]
    assert gatys.content_layers == ("relu4_2",)  # the paper's conv4_2, rectified in place by Caffe
    assert gatys.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert gatys.style_layer_weights is None and gatys.optimizer == "lbfgs"
    assert (dlai.alpha, dlai.beta, dlai.optimizer, dlai.convention) == (10.0, 40.0, "adam", "deeplearning_ai")
    assert dlai.lr == pytest.approx(2.0 / 255) and dlai.init == "mix" and dlai.init_mix == (0.4, 0.0, 0.6)
    assert caffe.init_mix == (0.95, 0.05, 0.0) and caffe.optimizer == "lbfgsb"
    assert (caffe.beta / caffe.alpha, caffe.size, caffe.steps) == (1e5, 512, 512)


@pytest.mark.parametrize("change, words", [
    ({"style_layers": ("relu9_9",)}, "unknown layer"),
    ({"content_layers": ("conv4_2x",)}, "unknown layer"),
    ({"alpha": -1.0}, "alpha"),
    ({"beta": float("nan")}, "beta"),
    ({"style_layer_weights": (1.0, -1.0, 1.0)}, "style_layer_weights"),
    ({"style_layer_weights": (1.0,)}, "one weight per style layer"),
    ({"style_blend": (1.0, -0.5)}, "style_blend"),
    ({"scales": (1.0, 0.5)}, "scales"),
    ({"scales": (0.5, 1.0), "scale_steps": (3,)}, "scale_steps"),
    ({"init": "zeros"}, "init"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"size": 8}, "size"),
    ({"alpha": 0.0, "beta": 0.0}, "nothing to optimise"),
])
def test_config_refuses_bad_settings_naming_the_field(change, words):
    """A bad setting is a ValueError whose message names the field or the problem."""
    with pytest.raises(ValueError, match=words):
        replace(SMALL, **change)


def test_config_accepts_lists_and_stores_tuples():
    """Lists become tuples, so a config stays hashable and comparable."""
    config = replace(SMALL, style_layers=["relu1_1"], scales=[0.5, 1.0])
    assert config.style_layers == ("relu1_1",) and hash(config) == hash(replace(config))


# --- initialisation ---------------------------------------------------------------------------------------------


def test_initial_image_is_the_weighted_mix_of_content_style_and_noise():
    """x0 = c p + s a + n u with the shares normalised; noise is seeded locally and leaves global RNG alone."""
    photo, painting = images()
    assert torch.equal(st.initial_image(photo, painting, init="content"), photo)
    state = torch.random.get_rng_state()
    noise = st.initial_image(photo, painting, init="noise", seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(noise, st.initial_image(photo, painting, init="noise", seed=3))
    mixed = st.initial_image(photo, painting, init="mix", mix=(0.6, 0.2, 0.2), seed=3)
    torch.testing.assert_close(mixed, 0.6 * photo + 0.2 * painting + 0.2 * noise)


# --- the loop -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", 1.0), ("lbfgsb", 1.0), ("adam", 0.02)])
def test_every_optimiser_lowers_the_loss(extractor, optimizer, lr):
    """Starting from noise, each optimiser ends clearly below where it started, with one record per step."""
    result = run(extractor, replace(SMALL, optimizer=optimizer, lr=lr, init="noise", steps=6))
    totals = [h.total for h in result.losses]
    assert [h.step for h in result.losses] == list(range(1, 7)) and result.steps == 6
    assert totals[-1] < 0.8 * totals[0]
    assert result.image.shape == (1, 3, 32, 32) and 0 <= result.image.min() and result.image.max() <= 1


def test_lbfgsb_keeps_the_pixels_within_bounds_while_lbfgs_may_leave_them(extractor, tmp_path):
    """The raw optimisation variable (saved in the checkpoint) stays in [0, 1] under L-BFGS-B."""
    config = replace(SMALL, optimizer="lbfgsb", init="noise", beta=1e6, steps=5)
    run(extractor, config, checkpoint=tmp_path / "b.ckpt")
    raw = torch.load(tmp_path / "b.ckpt", weights_only=True)["image"]
    assert raw.min() >= 0 and raw.max() <= 1


def test_same_seed_gives_the_same_image(extractor):
    """A run is a function of its inputs and config (seeded noise, no global state)."""
    config = replace(SMALL, init="noise", seed=5)
    torch.manual_seed(1)
    a = run(extractor, config).image
    torch.manual_seed(2)
    b = run(extractor, config).image
    assert torch.equal(a, b)


def test_inputs_are_left_untouched(extractor):
    """stylize never modifies the caller's images."""
    photo, painting = images()
    copies = photo.clone(), painting.clone()
    st.stylize(photo, painting, replace(SMALL, preserve_colour="match"), extractor=extractor, show_progress=False)
    assert torch.equal(photo, copies[0]) and torch.equal(painting, copies[1])


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", 1.0), ("adam", 0.02)])
def test_channels_last_images_give_the_same_result_as_contiguous_ones(extractor, optimizer, lr):
    """Images stored channels-last (a permuted view, as HWC arrays give them) run, and the layout changes nothing.

    L-BFGS views the pixels' gradient as one flat vector, which fails on the strides such an image passes on.
    """
    photo, painting = images()
    config = replace(SMALL, optimizer=optimizer, lr=lr)
    want = run(extractor, config).image
    permuted = [t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) for t in (photo, painting)]  # (1, 3, H, W)
    assert not permuted[0].is_contiguous()
    got = st.stylize(permuted[0], permuted[1], config, extractor=extractor, show_progress=False).image
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_multiscale_runs_coarse_to_fine_and_ends_at_full_size(extractor):
    """scales (0.5, 1) run `steps` steps at 16 px then at 32 px, warm-started, numbered continuously."""
    result = run(extractor, replace(SMALL, scales=(0.5, 1.0), steps=3))
    assert [(h.step, h.scale) for h in result.losses] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1)]
    assert result.image.shape == (1, 3, 32, 32)
    uneven = run(extractor, replace(SMALL, scales=(0.5, 1.0), scale_steps=(3, 1)))
    assert [(h.step, h.scale) for h in uneven.losses] == [(1, 0), (2, 0), (3, 0), (4, 1)]


def test_a_scale_too_small_for_the_network_is_refused(extractor):
    """A coarse scale below what the deepest layer needs fails before optimising, naming the scale."""
    with pytest.raises(ValueError, match="scale 0.1"):
        run(extractor, replace(SMALL, scales=(0.1, 1.0)))


def test_blending_with_weight_one_on_a_style_equals_that_style_alone(extractor):
    """Gram matrices are mixed by style_blend: weights (1, 0) give exactly the single-style run."""
    photo, painting = images()
    other = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(9))
    alone = run(extractor, SMALL, styles=painting)
    blended = run(extractor, replace(SMALL, style_blend=(1.0, 0.0)), styles=[painting, other])
    mixed = run(extractor, replace(SMALL, style_blend=(0.5, 0.5)), styles=[painting, other])
    torch.testing.assert_close(blended.image, alone.image)
    assert not torch.allclose(mixed.image, alone.image)
    with pytest.raises(ValueError, match="one per style"):
        run(extractor, replace(SMALL, style_blend=(1.0, 1.0, 1.0)), styles=[painting, other])


def test_luminance_only_transfer_keeps_the_content_colours(extractor):
    """With preserve_colour='luminance' the result carries the photo's I and Q channels."""
    photo = 0.3 + 0.4 * images()[0]  # mid-tones: putting the colour back clips nothing
    result = st.stylize(photo, images()[1], replace(SMALL, preserve_colour="luminance"), extractor=extractor,
                        show_progress=False)
    torch.testing.assert_close(luminance_transfer(result.image, photo), result.image, atol=2e-3, rtol=0)


def test_callback_is_called_every_k_steps_and_can_stop_the_run(extractor):
    """callback(step, image, losses) every k steps; returning True stops and the result says so."""
    calls = []

    def callback(step, image, losses):
        calls.append((step, tuple(image.shape), losses.step))
        return step == 4

    result = run(extractor, replace(SMALL, steps=10), callback=callback, callback_every=2)
    assert calls == [(2, (1, 3, 32, 32), 2), (4, (1, 3, 32, 32), 4)]
    assert (result.steps, result.stopped, len(result.losses)) == (4, "callback", 4)


def test_save_every_writes_intermediate_images(extractor, tmp_path):
    """Images are saved every save_every steps into out_dir."""
    run(extractor, replace(SMALL, save_every=2), out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00002.png", "step_00004.png"]


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.02), ("lbfgs", 1.0)])
def test_resuming_gives_the_same_image_as_an_uninterrupted_run(extractor, tmp_path, optimizer, lr):
    """Image, optimiser state and step are saved, so stop-and-resume equals running straight through."""
    config = replace(SMALL, optimizer=optimizer, lr=lr, init="noise", steps=6)
    straight = run(extractor, config)
    ckpt = tmp_path / "run.ckpt"
    first = run(extractor, config, checkpoint=ckpt, checkpoint_every=1, callback=lambda step, *_: step == 3)
    assert first.steps == 3
    resumed = run(extractor, config, checkpoint=ckpt, resume=True)
    assert resumed.start_step == 3 and [h.step for h in resumed.losses] == list(range(1, 7))
    torch.testing.assert_close(resumed.image, straight.image)


def test_resume_refuses_a_checkpoint_made_with_other_settings(extractor, tmp_path):
    """Resuming with another alpha (say) names the changed field; a missing or foreign file is refused too."""
    ckpt = tmp_path / "run.ckpt"
    run(extractor, SMALL, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"alpha \(1.0 -> 2.0\)"):
        run(extractor, replace(SMALL, alpha=2.0), checkpoint=ckpt, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(extractor, SMALL, checkpoint=tmp_path / "missing.ckpt", resume=True)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable nstlab checkpoint"):
        run(extractor, SMALL, checkpoint=tmp_path / "junk.ckpt", resume=True)


class Sabotaged(torch.nn.Module):
    """Wraps an extractor; from call `after` on, multiplies its features by `factor` (NaN or growing)."""

    def __init__(self, inner, *, after: int, factor: float, compound: bool = False):
        super().__init__()
        self.inner, self.after, self.factor, self.compound, self.calls = inner, after, factor, compound, 0
        self.layers, self.pretrained, self.note, self.min_size = inner.layers, False, "test", inner.min_size

    def forward(self, x):
        self.calls += 1
        scale = self.factor ** (self.calls - self.after) if self.compound else self.factor
        out = self.inner(x)
        return {k: v * scale for k, v in out.items()} if self.calls > self.after else out


def test_nan_during_optimisation_stops_with_what_to_change(extractor):
    """A NaN loss raises StyleDiverged naming the step and the settings to change."""
    sabotaged = Sabotaged(extractor, after=8, factor=float("nan"))
    with pytest.raises(st.StyleDiverged, match=r"step \d+: the loss became nan.*lower beta.*learning rate"):
        run(sabotaged, replace(SMALL, steps=10))


def test_an_exploding_loss_stops_as_divergence(extractor):
    """A loss that keeps climbing to a thousandfold its first value stops the run."""
    growing = Sabotaged(extractor, after=4, factor=10.0, compound=True)
    with pytest.raises(st.StyleDiverged, match="the loss grew from"):
        run(growing, replace(SMALL, steps=10))


def test_bad_images_and_extractors_are_refused(extractor):
    """Wrong shapes, values outside [0, 1], no styles, or an extractor lacking a layer: a clear error each."""
    photo, painting = images()
    with pytest.raises(ValueError, match=r"content must have shape \(1, 3, H, W\), got \(3, 32, 32\)"):
        st.stylize(photo[0], painting, SMALL, extractor=extractor)
    with pytest.raises(ValueError, match=r"style image 1 must hold finite values in \[0, 1\]"):
        st.stylize(photo, painting * 2, SMALL, extractor=extractor)
    with pytest.raises(TypeError, match="content must be an image tensor"):
        st.stylize("photo.png", painting, SMALL, extractor=extractor)
    with pytest.raises(ValueError, match="styles is empty"):
        st.stylize(photo, [], SMALL, extractor=extractor)
    with pytest.raises(ValueError, match="does not return layer"):
        st.stylize(photo, painting, replace(SMALL, style_layers=("relu4_1",)), extractor=extractor)


# --- memory -------------------------------------------------------------------------------------------------------


def test_memory_estimate_grows_with_the_pixels_and_the_optimiser_state():
    """The part of the estimate that grows with the image quadruples when the side doubles (a fixed part stays);
    L-BFGS-B's float64 memory costs more than Adam's."""
    tiny, small, large = st.estimate_memory(128), st.estimate_memory(256), st.estimate_memory(512)
    assert 3.9 < (large.needed_bytes - small.needed_bytes) / (small.needed_bytes - tiny.needed_bytes) < 4.1
    assert st.estimate_memory(256, optimizer="lbfgsb").needed_bytes > st.estimate_memory(256, optimizer="adam").needed_bytes
    assert st.estimate_memory((512, 256)).needed_bytes < large.needed_bytes


def test_a_size_that_cannot_fit_is_refused_with_one_that_would(extractor, monkeypatch):
    """With 2 GiB free, a 4096 px run is refused before any work, and the suggested size fits."""
    monkeypatch.setattr(memory, "_available_bytes", lambda device: 2 * 2**30)
    with pytest.raises(st.SizeTooLarge, match=r"use size \d+ \(--size \d+\)") as err:
        run(extractor, replace(SMALL, size=4096))
    fits = err.value.size_that_fits
    assert 256 <= fits < 4096 and fits % memory.SIZE_STEP == 0
    same = {"optimizer": SMALL.optimizer, "layers": LAYERS}
    assert st.estimate_memory(fits, **same).fits and not st.estimate_memory(fits + memory.SIZE_STEP, **same).fits


# --- what the result says ----------------------------------------------------------------------------------------


def test_an_untrained_network_is_declared_on_the_result_and_the_figure(extractor):
    """pretrained=False and an UNTRAINED note on the result; the figure carries it as a banner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    photo, painting = images()
    result = run(extractor)
    assert result.pretrained is False and result.note.startswith("UNTRAINED")
    fig = st.plot_result(result, content=photo, styles=[painting])
    assert "UNTRAINED" in fig._suptitle.get_text()
    plt.close(fig)


# --- colour -------------------------------------------------------------------------------------------------------


def test_yiq_round_trip_and_luminance_is_grey():
    """YIQ -> RGB inverts RGB -> YIQ; the luminance image has three equal channels matched to a reference."""
    x, ref = images(3)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-5, rtol=0)
    grey = luminance_image(x, like=0.2 + 0.5 * ref)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    Y_ref = rgb_to_yiq(0.2 + 0.5 * ref)[:, 0]
    assert abs(grey[:, 0].mean() - Y_ref.mean()) < 1e-3 and abs(grey[:, 0].std() - Y_ref.std()) < 1e-2


def test_match_colours_gives_the_reference_mean_and_covariance():
    """After matching, the pixels' mean and covariance are the reference's (float64 oracle)."""
    g = torch.Generator().manual_seed(4)
    image = 0.4 + 0.1 * torch.rand(1, 3, 32, 32, generator=g) * torch.tensor([1.0, 0.5, 0.2]).view(1, 3, 1, 1)
    mixing = torch.tensor([[1.0, 0.3, 0.0], [0.2, 0.6, 0.1], [0.0, 0.1, 0.4]])
    reference = 0.5 + 0.1 * torch.einsum("dc,nchw->ndhw", mixing, torch.rand(1, 3, 24, 24, generator=g) - 0.5)
    out = match_colours(image, reference)
    pix_out, pix_ref = out[0].reshape(3, -1).double(), reference[0].reshape(3, -1).double()
    torch.testing.assert_close(pix_out.mean(1), pix_ref.mean(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cov(pix_out), torch.cov(pix_ref), atol=1e-7, rtol=0)


# --- devices ------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda_with_autocast_and_returns_on_the_input_device():
    """On CUDA (bf16 autocast, float32 losses) the loss falls and the image stays on the GPU."""
    photo, painting = (t.cuda() for t in images())
    extractor = VGGFeatures(LAYERS, backbone=untrained_backbone()).cuda()
    result = st.stylize(photo, painting, replace(SMALL, init="noise", steps=6), extractor=extractor, show_progress=False)
    assert result.image.device.type == "cuda" and result.losses[-1].total < result.losses[0].total


# --- style from statistics: the style loss as a setting, and AdaIN targets ------------------------------------


def _first_step_losses(extractor, config):
    """The losses of step 1 of an Adam run from the content image: those of the photo itself."""
    return run(extractor, replace(config, steps=1)).losses[0]


@pytest.mark.parametrize("kind", statistics.STYLE_LOSSES)
def test_each_style_loss_is_the_statistic_it_names_and_the_run_lowers_it(extractor, kind):
    """Step 1's style term equals the named loss of the photo against the painting, computed here by hand;
    the run then lowers it."""
    config = replace(SMALL, style_loss=kind, steps=6, alpha=1e-6)
    photo, painting = images()
    with torch.no_grad():
        F, S = extractor(photo), extractor(painting)
    by_hand = sum(statistics.style_layer_loss(F[layer], statistics.style_target(S[layer], kind=kind), kind=kind)
                  for layer in config.style_layers) / len(config.style_layers)
    assert _first_step_losses(extractor, config).style == pytest.approx(by_hand.item(), rel=1e-5)
    result = run(extractor, config)
    assert result.losses[-1].style < result.losses[0].style


def test_the_gram_style_loss_is_the_default_and_still_that_of_nstlab_losses(extractor):
    photo, painting = images()
    with torch.no_grad():
        F, S = extractor(photo), extractor(painting)
    expected = losses.style_loss(F, {layer: losses.gram_matrix(S[layer]) for layer in SMALL.style_layers})
    assert SMALL.style_loss == "gram" and SMALL.content_target == "content"
    assert _first_step_losses(extractor, SMALL).style == pytest.approx(expected.item(), rel=1e-6)


def test_adain_content_target_carries_the_style_statistics_into_the_content_loss(extractor):
    """content_target='adain': step 1's content loss is 1/2 ||P - AdaIN(P, S)||^2, not 0 as with the photo."""
    photo, painting = images()
    with torch.no_grad():
        F, S = extractor(photo), extractor(painting)
    layer = SMALL.content_layers[0]
    expected = losses.content_loss(F[layer], statistics.adain(F[layer], S[layer]))
    assert _first_step_losses(extractor, SMALL).content == 0.0
    adain_run = _first_step_losses(extractor, replace(SMALL, content_target="adain", style_loss="mean_std"))
    assert adain_run.content == pytest.approx(expected.item(), rel=1e-5) and adain_run.content > 0
    result = run(extractor, replace(SMALL, content_target="adain", beta=0.0, steps=6, optimizer="lbfgs", lr=1.0))
    assert result.losses[-1].content < result.losses[0].content


@pytest.mark.parametrize("change, words", [({"style_loss": "cosine"}, "gram, mean_std, mmd_linear"), ({"content_target": "style"}, "adain")])
def test_config_refuses_an_unknown_style_loss_or_content_target(change, words):
    with pytest.raises(ValueError, match=words):
        replace(SMALL, **change)


def test_a_checkpoint_saved_before_the_style_loss_setting_existed_still_resumes(extractor, tmp_path):
    ckpt = tmp_path / "old.ckpt"
    run(extractor, SMALL, checkpoint=ckpt, callback=lambda step, *_: step == 2, checkpoint_every=1)
    saved = torch.load(ckpt, weights_only=True)
    for field in ("style_loss", "content_target"):
        del saved["config"][field]
    torch.save(saved, ckpt)
    assert run(extractor, SMALL, checkpoint=ckpt, resume=True).start_step == 2
    with pytest.raises(ValueError, match=r"style_loss \('gram' -> 'mean_std'\)"):
        run(extractor, replace(SMALL, style_loss="mean_std"), checkpoint=ckpt, resume=True)
