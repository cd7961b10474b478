"""Precision (fp32 | bf16 | auto) and the channels-last layout: the choice per device, overrides and refusals,
the layout converted once per network pass, the bf16 quality guard, and graded checks kept in float32."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nstlab import checks, device, profiles
from nstlab import stylize as st
from nstlab.vgg import VGGFeatures
from nstlab.weights import untrained_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


@pytest.fixture(autouse=True)
def no_precision_settings(monkeypatch):
    """Each test starts from the automatic choices: no NSTLAB_PRECISION, profile or grader in the environment."""
    for name in ("NSTLAB_PRECISION", "NSTLAB_PROFILE", "NBGRADER_EXECUTION", "NSTLAB_DEVICE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def backbone():
    return untrained_backbone("vgg19", seed=0)


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (the oracle for native bf16), or an empty set."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith(("flags", "Features"))
            for flag in line.split(":", 1)[1].split()}


def images(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    photo = torch.rand(1, 3, size, size, generator=g)
    # A smoother painting: stripes plus a little noise, so the style has structure at every layer.
    ramp = torch.linspace(0, 6.28 * 4, size)
    painting = (0.5 + 0.4 * torch.sin(ramp[None, :] + ramp[:, None] * torch.tensor([1.0, 0.5, 0.2])[:, None, None]))
    painting = (painting[None] + 0.1 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)
    return photo, painting


# --- the choice -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux's /proc/cpuinfo as the oracle")
def test_auto_on_this_cpu_is_bf16_exactly_when_linux_reports_native_bf16():
    """auto = bf16 iff the CPU has AVX512-BF16 or AMX (x86) or BF16 (ARM), as /proc/cpuinfo lists them."""
    flags = cpu_flags()
    native = bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    choice = device.choose_precision("auto", device="cpu", profile="fast")
    assert choice.precision == ("bf16" if native else "fp32")
    assert choice.reason.startswith("auto: ") and choice.dtype == (torch.bfloat16 if native else torch.float32)


def test_a_cpu_without_native_bf16_gets_fp32_from_auto_but_bf16_when_asked(monkeypatch):
    """Without AVX512-BF16/AMX (the probes answer no), auto is fp32; an explicit bf16 still runs, marked slower."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(device.platform, "machine", lambda: "x86_64")
    auto = device.choose_precision(device="cpu", profile="fast")
    assert auto.precision == "fp32" and "no native bf16" in auto.reason
    asked = device.choose_precision("bf16", device="cpu", profile="fast")
    assert asked.precision == "bf16" and "emulated and slower" in asked.reason


@pytest.mark.parametrize(("avx512_bf16", "amx", "named"), [(True, False, "AVX512-BF16"), (False, True, "AMX"),
                                                         (True, True, "AVX512-BF16 and AMX")])
def test_auto_names_the_cpus_bf16_units(monkeypatch, avx512_bf16, amx, named):
    """The reason doctor and the notebooks print names every unit found: AMX is where bf16 gains most."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    auto = device.choose_precision(device="cpu", profile="fast")
    assert auto.precision == "bf16" and auto.reason == f"auto: this CPU has {named}"


def test_cuda_auto_follows_the_gpu_and_mps_stays_fp32():
    """On CUDA auto is bf16 only where the GPU supports it; nstlab never picks bf16 on MPS by itself."""
    cuda = device.choose_precision(device="cuda", profile="full")
    expected = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    assert cuda.precision == expected
    assert device.choose_precision(device="mps", profile="fast").precision == "fp32"


def test_argument_beats_environment_which_beats_auto(monkeypatch):
    monkeypatch.setenv("NSTLAB_PRECISION", "fp32")
    assert device.choose_precision(profile="fast") == device.PrecisionChoice("fp32", "set by NSTLAB_PRECISION")
    assert device.choose_precision("auto", profile="fast").reason == "set by NSTLAB_PRECISION"
    monkeypatch.setenv("NSTLAB_PRECISION", "bf16")
    assert device.choose_precision(profile="fast").precision == "bf16"
    assert device.choose_precision("fp32", profile="fast").reason == "requested by the caller"
    monkeypatch.setenv("NSTLAB_PRECISION", "auto")
    assert device.choose_precision(profile="fast").reason.startswith("auto: ")


def test_bad_precision_names_the_input_and_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"the caller asks for precision 'half'; use one of fp32, bf16, auto"):
        device.choose_precision("half")
    monkeypatch.setenv("NSTLAB_PRECISION", "fp16")
    with pytest.raises(ValueError, match=r"the environment variable NSTLAB_PRECISION asks for precision 'fp16'; "
                                         r"use one of fp32, bf16, auto"):
        device.choose_precision()
    with pytest.raises(ValueError, match=r"precision='float16'; use one of fp32, bf16, auto"):
        st.StyleConfig(precision="float16")
    with pytest.raises(ValueError, match="resolve 'auto' with choose_precision first"):
        device.autocast("auto", "cpu")


def test_the_grade_profile_and_checks_compute_in_float32(monkeypatch):
    """Under nbgrader (grade profile) auto and NSTLAB_PRECISION give fp32; inside a check even bf16 does."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("NSTLAB_PRECISION", "bf16")
    graded = device.choose_precision(device="cpu")
    assert graded.precision == "fp32" and "grade profile" in graded.reason
    with checks.no_tf32():
        inside = device.choose_precision("bf16")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert inside.precision == "fp32" and "checks compute in float32" in inside.reason
    assert device.choose_precision("bf16").precision == "bf16"  # the block ends, the caller's choice is back
    monkeypatch.setenv("NSTLAB_PROFILE", "fast")  # grading with another profile's sizes is still float32
    assert device.choose_precision(device="cpu").precision == "fp32"
    assert "nbgrader is grading" in device.choose_precision(device="cpu").reason


def test_autocast_runs_convolutions_in_the_chosen_dtype_and_fp32_switches_an_outer_autocast_off():
    x, w = torch.rand(1, 2, 5, 5), torch.rand(3, 2, 3, 3)
    with device.autocast("bf16", "cpu"):
        assert torch.nn.functional.conv2d(x, w).dtype == torch.bfloat16
        with device.autocast("fp32", "cpu"):
            assert torch.nn.functional.conv2d(x, w).dtype == torch.float32


def test_the_first_notebook_line_names_profile_device_and_precision(monkeypatch):
    """describe() says which profile, which device and which precision, each with its reason."""
    line = profiles.describe(profiles.get_profile("fast"), device="cpu", precision="fp32")
    assert line.startswith("profile fast (requested by the caller) · device cpu (requested by the caller) · "
                           "precision fp32 (requested by the caller): image_size=256")
    auto = device.choose_precision(device="cpu", profile="grade")
    assert f"· precision {auto}:" in profiles.describe(profiles.get_profile("grade"))


# --- channels-last, converted once ----------------------------------------------------------------------------


class LayoutCopies(TorchDispatchMode):
    """Counts the copies torch makes into the channels-last layout: of tensors (``x.contiguous(memory_format=...)``,
    a ``clone``) in ``count``, of a module's parameters and buffers (``module.to(memory_format=...)``) in
    ``module_tensors``."""

    def __init__(self):
        super().__init__()
        self.count, self.module_tensors = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("memory_format") == torch.channels_last:
            if func is torch.ops.aten.clone.default:
                self.count += 1
            else:
                self.module_tensors += 1
        return func(*args, **kwargs)


def conv_inputs_layouts(module: torch.nn.Module) -> tuple[list[bool], list]:
    """Forward pre-hooks on every convolution recording whether its input is channels-last."""
    seen: list[bool] = []
    handles = [m.register_forward_pre_hook(lambda m, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last))) for m in module.modules()
        if isinstance(m, torch.nn.Conv2d)]
    return seen, handles


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_convolution_sees_channels_last_with_one_conversion_per_network_pass(backbone, precision):
    """In a run, every convolution's input is channels-last, and the image is converted once per network pass
    (2 target passes + 1 per Adam step), not once per layer."""
    extractor = VGGFeatures(LAYERS, backbone=backbone)
    seen, handles = conv_inputs_layouts(extractor)
    photo, painting = images(32)
    config = st.StyleConfig(size=32, steps=3, optimizer="adam", lr=0.01, precision=precision)
    with LayoutCopies() as copies:
        st.stylize(photo, painting, config, extractor=extractor, show_progress=False)
    for h in handles:
        h.remove()
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in extractor.modules())
    assert len(seen) == 5 * convs and all(seen)
    assert copies.count == 5
    # bf16: each weight of this (default-layout) network copied to bf16 channels-last once, not once per pass.
    assert copies.module_tensors == (convs if precision == "bf16" else 0)


def test_the_extractor_stylize_builds_is_converted_to_channels_last(backbone):
    """stylize converts its own VGG once (the weights), leaving the caller's backbone untouched."""
    photo, painting = images(32)
    convs = []
    original = torch.nn.Conv2d.forward

    def spy(self, x):
        convs.append(self.weight.is_contiguous(memory_format=torch.channels_last))
        return original(self, x)

    try:
        torch.nn.Conv2d.forward = spy
        st.stylize(photo, painting, st.StyleConfig(size=32, steps=1, precision="fp32"), backbone=backbone,
                   show_progress=False)
    finally:
        torch.nn.Conv2d.forward = original
    assert convs and all(convs)
    assert all(m.weight.is_contiguous() for m in backbone.features if isinstance(m, torch.nn.Conv2d))


# --- the quality guard ----------------------------------------------------------------------------------------


def _guard_runs(backbone):
    """40 L-BFGS steps from the content image at 64 px in fp32 and in bf16 (untrained VGG19, built-in images,
    beta raised so that the untrained network's small style term counts), a second fp32 run from the content
    image nudged by 1e-6 (how far apart two float32 runs end), and the float32 objective."""
    from nstlab.data import open_image

    extractor = VGGFeatures(LAYERS, backbone=backbone)
    photo, painting = open_image("astronaut", size=64), open_image("mosaic", size=64)
    config = st.StyleConfig(size=64, steps=40, optimizer="lbfgs", beta=1e5)
    runs = {p: st.stylize(photo, painting, replace(config, precision=p), extractor=extractor, show_progress=False)
            for p in ("fp32", "bf16")}
    g = torch.Generator().manual_seed(0)
    nudged = (photo + 1e-6 * torch.randn(photo.shape, generator=g)).clamp(0, 1)
    runs["fp32, nudged"] = st.stylize(nudged, painting, replace(config, precision="fp32"), extractor=extractor,
                                      show_progress=False)
    P, A = st._targets(extractor, photo, [painting], [1.0], config, "fp32")
    objective = st._objective(extractor, P, A, config, [], "fp32")
    with torch.no_grad():
        loss = {p: objective(r.image).total.item() for p, r in runs.items()}
        start = objective(photo).total.item()
    grey_levels = {p: (r.image - runs["fp32"].image).abs().mean().item() * 255 for p, r in runs.items()}
    return runs, loss, start, grey_levels


@pytest.fixture(scope="module")
def guard(backbone):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as one_thread does; a module-scoped fixture runs before it
    try:
        return _guard_runs(backbone)
    finally:
        torch.set_num_threads(threads)


def test_bf16_optimises_nearly_as_well_per_step_as_fp32(guard):
    """The bf16 run lowers the float32 loss by as much as the fp32 run, give or take 20 %, in the same 40 steps."""
    runs, loss, start, _ = guard
    assert runs["fp32"].precision == "fp32" and runs["bf16"].precision == "bf16"
    assert loss["fp32"] < 0.5 * start and loss["bf16"] < 0.5 * start  # both runs did optimise
    assert loss["bf16"] == pytest.approx(loss["fp32"], rel=0.2)


def test_bf16_reaches_the_float32_loss_within_two_percent_and_nearly_the_same_image(guard):
    """The issue's quality guard: 40 steps in bf16 end at a total loss (evaluated in float32) within 2 % of the
    fp32 run's, and the bf16 image is no further from the fp32 image than a second fp32 run's is when its start
    differs by 1e-6 (L-BFGS's paths part after a few dozen steps whatever the precision: measured, such two
    fp32 runs end 0.04 % apart in loss and 6 grey levels of 255 apart on average; full bf16 autocast, which
    nstlab no longer uses in stylize, ended 14 % above the fp32 loss and 7.7 grey levels away)."""
    _, loss, _, grey_levels = guard
    assert loss["bf16"] == pytest.approx(loss["fp32"], rel=0.02)
    assert loss["fp32, nudged"] == pytest.approx(loss["fp32"], rel=0.005)  # the yardstick is itself a fp32 result
    assert grey_levels["bf16"] <= max(2.0, grey_levels["fp32, nudged"])


# --- bf16 in the backward pass only ---------------------------------------------------------------------------


def frozen_conv(seed=0, **kwargs):
    torch.manual_seed(seed)
    return device.channels_last(torch.nn.Conv2d(8, 16, 3, **kwargs).requires_grad_(False))


def test_bf16_backward_keeps_the_forward_pass_exact_and_rounds_only_the_gradient():
    conv = frozen_conv(padding=1)
    x = device.channels_last(torch.rand(1, 8, 12, 12, generator=torch.Generator().manual_seed(1)))
    reference_x = x.clone().requires_grad_(True)
    reference = torch.relu(conv(reference_x))
    reference.square().sum().backward()
    x.requires_grad_(True)
    with device.Bf16Backward():
        out = torch.relu(conv(x))
    assert out.dtype == torch.float32 and torch.equal(out, reference)  # the same numbers, the same ReLU mask
    assert out.grad_fn.next_functions[0][0].name() == "_ConvForwardFp32BackwardBf16Backward"
    out.square().sum().backward()
    assert x.grad.dtype == torch.float32 and not torch.equal(x.grad, reference_x.grad)  # it was rounded ...
    torch.testing.assert_close(x.grad, reference_x.grad, rtol=0.02, atol=0.02 * reference_x.grad.abs().max().item())
    assert x.grad.is_contiguous(memory_format=torch.channels_last)  # ... and stays in the network's layout


def test_bf16_backward_leaves_trained_weights_passes_without_gradient_and_other_options_alone():
    x = torch.rand(1, 8, 9, 9, requires_grad=True)
    trained = torch.nn.Conv2d(8, 16, 3)
    with device.Bf16Backward():
        y_trained = trained(x)
        with torch.no_grad():
            y_no_grad = frozen_conv()(x)
        y_strided = frozen_conv(stride=2, dilation=1)(x)
        y_same = frozen_conv(padding="same")(x)
    assert y_trained.grad_fn.name() == "ConvolutionBackward0"  # its weight needs a gradient: untouched
    assert y_no_grad.grad_fn is None and y_same.grad_fn.name() == "ConvolutionBackward0"
    assert y_strided.grad_fn.name() == "_ConvForwardFp32BackwardBf16Backward"
    (g,) = torch.autograd.grad(y_strided.sum(), x)
    (ref,) = torch.autograd.grad(frozen_conv(stride=2)(x).sum(), x)
    assert g.shape == x.shape
    torch.testing.assert_close(g, ref, rtol=0.02, atol=0.02 * ref.abs().max().item())


def test_bf16_backward_casts_each_weight_once_and_again_after_it_changes():
    conv = frozen_conv()
    x = device.channels_last(torch.rand(1, 8, 6, 6)).requires_grad_(True)
    first = device.Bf16Backward.weight_bf16(conv.weight)
    assert first.dtype == torch.bfloat16 and first.is_contiguous(memory_format=torch.channels_last)
    with device.Bf16Backward():  # a new mode at every pass, as stylize enters it: the copy is kept
        conv(x).sum().backward()
    assert device.Bf16Backward.weight_bf16(conv.weight) is first
    with torch.no_grad():
        conv.weight.mul_(2)  # changed in place: the copy is made again
    again = device.Bf16Backward.weight_bf16(conv.weight)
    assert again is not first and torch.equal(again, conv.weight.to(torch.bfloat16))


def test_bf16_backward_copies_a_callers_weights_in_the_layout_of_the_input(monkeypatch):
    """A network left in the default layout, fed channels-last images (as stylize feeds a caller's extractor),
    gets channels-last bf16 copies; fed contiguous images, contiguous ones."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3).requires_grad_(False)  # the default layout
    seen = []
    original = torch.nn.grad.conv2d_input

    def spy(shape, weight, *args, **kwargs):
        seen.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())
        return original(shape, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.grad, "conv2d_input", spy)
    for x in (device.channels_last(torch.rand(1, 8, 6, 6)), torch.rand(1, 8, 6, 6)):
        x.requires_grad_(True)
        with device.Bf16Backward():
            conv(x).sum().backward()
    assert seen == [True, False]


class NaNAfter(torch.nn.Module):
    """An extractor whose features become NaN from its `after`-th call on (a run that diverges)."""

    def __init__(self, inner, after: int):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0
        self.layers, self.pretrained, self.note, self.min_size = inner.layers, False, "test", inner.min_size

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        return {k: v * float("nan") for k, v in out.items()} if self.calls > self.after else out


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_run_diverging_under_bf16_is_told_to_use_fp32(backbone, precision):
    extractor = NaNAfter(VGGFeatures(("relu1_1", "relu2_1"), backbone=backbone), after=4)
    photo, painting = images(32)
    config = st.StyleConfig(size=32, steps=6, content_layers=("relu2_1",), style_layers=("relu1_1",),
                            optimizer="adam", lr=0.01, precision=precision)
    with pytest.raises(st.StyleDiverged, match="the loss became nan") as err:
        st.stylize(photo, painting, config, extractor=extractor, show_progress=False)
    assert ("--precision fp32" in str(err.value)) == (precision == "bf16")


def test_graded_runs_are_float32_and_identical_to_an_explicit_fp32_run(backbone, monkeypatch):
    """Under nbgrader the default precision (auto) gives exactly the fp32 result, on any machine."""
    extractor = VGGFeatures(("relu1_1", "relu2_1"), backbone=backbone)
    photo, painting = images(32)
    config = st.StyleConfig(size=32, steps=3, content_layers=("relu2_1",), style_layers=("relu1_1",))
    explicit = st.stylize(photo, painting, replace(config, precision="fp32"), extractor=extractor, show_progress=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    graded = st.stylize(photo, painting, config, extractor=extractor, show_progress=False)
    assert graded.precision == "fp32" and torch.equal(graded.image, explicit.image)
    with checks.no_tf32():
        inside = st.stylize(photo, painting, replace(config, precision="bf16"), extractor=extractor,
                            show_progress=False)
    assert inside.precision == "fp32" and torch.equal(inside.image, explicit.image)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_run_is_channels_last_and_close_to_fp32(backbone):
    extractor = VGGFeatures(("relu1_1", "relu2_1"), backbone=backbone).cuda()
    photo, painting = (t.cuda() for t in images(32))
    config = st.StyleConfig(size=32, steps=5, content_layers=("relu2_1",), style_layers=("relu1_1",))
    a = st.stylize(photo, painting, replace(config, precision="bf16"), extractor=extractor, show_progress=False)
    b = st.stylize(photo, painting, replace(config, precision="fp32"), extractor=extractor, show_progress=False)
    assert a.precision == "bf16" and (a.image - b.image).abs().mean().item() * 255 <= 2.0


# --- channels-last in the other network passes ----------------------------------------------------------------


@pytest.fixture
def conv_spy(monkeypatch):
    """Records, for every convolution run, whether its input and its weight are channels-last (then runs it)."""
    seen: list[tuple[bool, bool]] = []
    original = torch.nn.Conv2d.forward

    def forward(self, x):
        seen.append((x.is_contiguous(memory_format=torch.channels_last),
                     self.weight.is_contiguous(memory_format=torch.channels_last)))
        return original(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", forward)
    return seen


def test_dream_converts_the_network_once_and_each_image_once_per_pass(conv_spy):
    from nstlab.dream import DreamConfig, dream, dream_extractor

    config = DreamConfig(layer="relu2_1", octaves=1, steps=3, size=32, jitter=4, precision="bf16")
    extractor = dream_extractor(config, fallback="untrained")
    image = images(32)[0]
    with LayoutCopies() as copies:
        result = dream(image, extractor, config, progress=False)
    assert len(result.history) == 3 and conv_spy and all(x and w for x, w in conv_spy)
    assert copies.count == 3  # one per ascent step, whatever the number of layers


def test_fast_training_runs_both_networks_channels_last_with_one_conversion_per_batch(conv_spy):
    from nstlab.fast import train
    from nstlab.fast.config import fast_config

    config = fast_config("grade")
    with LayoutCopies() as copies:
        result = train(images(64)[1], config=config, backbone=untrained_backbone("vgg16"), progress=False,
                       precision="bf16")
    assert result.steps == config.steps and conv_spy and all(x and w for x, w in conv_spy)
    assert copies.count == config.steps + 1  # each batch, and the style image once
    # Each 4-d parameter or buffer of the two networks converted once, not once per step.
    vgg = VGGFeatures(config.layers, backbone=untrained_backbone("vgg16"))
    tensors = [*result.model.net.parameters(), *vgg.parameters(), *vgg.buffers()]
    assert copies.module_tensors == sum(t.ndim == 4 for t in tensors)


def test_fast_apply_is_float32_by_default_and_returns_the_usual_layout():
    from nstlab.fast import TransformNet, apply

    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    image = images(32)[0]
    reference = net(image).detach()
    out = apply(net, image)
    assert out.is_contiguous() and out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)  # fp32: only the layout changed
    bf16 = apply(net, image, precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - reference).abs().max() < 0.05


def test_transfer_runs_the_frozen_backbone_channels_last(conv_spy):
    from nstlab.transfer import patch_dataset, transfer

    d = patch_dataset(classes=("brick", "mosaic"), n_train=2, n_test=2)
    result = transfer(untrained_backbone("vgg16"), d, head_epochs=2, finetune_epochs=1, precision="bf16")
    assert 0 <= result.frozen_accuracy <= 1 and conv_spy and all(x and w for x, w in conv_spy)


def test_the_feature_browser_runs_channels_last_and_keeps_float32_maps(conv_spy):
    from nstlab.widgets.feature_browser import feature_browser

    demo = feature_browser(size=64, backbone=untrained_backbone("vgg16"), layers=("relu1_1", "relu2_1"),
                           precision="bf16")
    assert conv_spy and all(x and w for x, w in conv_spy)
    assert all(f.dtype == torch.float32 and f.is_contiguous() for f in demo.features.values())


# --- the command line -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["stylize", "astronaut", "mosaic", "--size", "32", "--steps", "1", "--no-checkpoint", "--no-progress"],
    ["dream", "astronaut", "--size", "32", "--octaves", "1", "--steps", "1", "--no-progress"],
])
def test_the_command_line_takes_precision_and_says_what_it_chose(tmp_path, capsys, monkeypatch, command):
    """--precision reaches the run and the announcing line names it; NSTLAB_PRECISION is used without it, and a
    bad value stops with one line naming it and the choices."""
    from nstlab.cli import main

    monkeypatch.setenv("NSTLAB_OFFLINE", "1")
    out = tmp_path / "out.png"
    assert main([*command, "-o", str(out), "--untrained", "--precision", "bf16"]) == 0
    assert "; precision bf16 (requested by the caller" in capsys.readouterr().out and out.exists()
    monkeypatch.setenv("NSTLAB_PRECISION", "fp32")
    assert main([*command, "-o", str(out), "--untrained", "--overwrite"]) == 0
    assert "; precision fp32 (set by NSTLAB_PRECISION)" in capsys.readouterr().out
    monkeypatch.setenv("NSTLAB_PRECISION", "half")
    assert main([*command, "-o", str(out), "--untrained", "--overwrite"]) != 0
    assert "NSTLAB_PRECISION asks for precision 'half'; use one of fp32, bf16, auto" in capsys.readouterr().err
