"""Choosing the device a computation runs on, and saying why.

Every library function computes on the device of its inputs; this module is the one place that *chooses*
a device, for notebooks and the command line. The choice comes with a reason a student can read, because
"why is this slow?" is nearly always answered by "it ran on the CPU".

Order of preference: an explicit request, then the ``NSTLAB_DEVICE`` environment variable, then CUDA, then
Apple's MPS, then the CPU.

The same module decides the **precision** of network passes, once, with a reason: ``fp32``, ``bf16`` or
``auto``. ``bf16`` runs the convolutions under :func:`torch.autocast` with bfloat16 (8 bits of mantissa, the
range of float32); ``auto`` picks it where the hardware computes bfloat16 natively (a CUDA GPU that supports
it; a CPU with AVX512-BF16 or AMX, or an ARM CPU with the BF16 extension, as oneDNN reports) and float32
elsewhere. Style transfer by optimisation is the exception: its optimiser needs each image's features to
float32's accuracy, so there bf16 computes only the backward pass (:class:`Bf16Backward`). Only the network
runs in bfloat16: Gram matrices, losses, optimiser state and the image stay in float32, and everything
checked for a grade runs in float32 (the ``grade`` profile, and :func:`float32_only`, which
:func:`nstlab.checks.no_tf32` enters). Network passes also use the channels-last
memory layout (:func:`channels_last`), the fast layout of oneDNN's and cuDNN's convolutions.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.weak import WeakIdKeyDictionary

ENV_VAR = "NSTLAB_DEVICE"
KNOWN_KINDS = ("cpu", "cuda", "mps")
PRECISION_ENV_VAR = "NSTLAB_PRECISION"
PRECISIONS = ("fp32", "bf16", "auto")
# Set inside float32_only(): graded checks must give the same verdict on every machine.
_FLOAT32_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("nstlab_float32_only", default=False)


@dataclass(frozen=True)
class DeviceChoice:
    """A device and the reason it was chosen.

    Attributes:
        device: the chosen ``torch.device``.
        reason: one sentence saying why, for notebooks and ``nstlab doctor``.
    """

    device: torch.device
    reason: str

    def __str__(self) -> str:
        return f"{self.device} ({self.reason})"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _check_requested(name: str, source: str) -> DeviceChoice:
    """Validate a device the user asked for, and explain a refusal."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{source} asks for device {name!r}, which torch does not understand; "
            f"use one of {', '.join(KNOWN_KINDS)} (optionally with an index, such as 'cuda:1')."
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{source} asks for device {name!r}, but torch sees no CUDA GPU "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "use 'cpu', or install a CUDA build of torch on a machine with an NVIDIA GPU."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"{source} asks for device {name!r}, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist; use an index below that."
            )
    elif device.type == "mps" and not _mps_available():
        raise ValueError(f"{source} asks for device {name!r}, but MPS is not available here; use 'cpu'.")
    elif device.type not in KNOWN_KINDS:
        raise ValueError(f"{source} asks for device {name!r}; nstlab supports {', '.join(KNOWN_KINDS)}.")
    return DeviceChoice(device, f"requested by {source}")


def choose_device(requested: str | torch.device | None = None) -> DeviceChoice:
    """Choose the device to compute on and say why.

    Args:
        requested: a device name such as ``"cpu"`` or ``"cuda:0"``; ``None`` or ``"auto"`` picks the best
            available one (``NSTLAB_DEVICE`` first, then CUDA, MPS, CPU).

    Returns:
        A :class:`DeviceChoice` with the device and a one-sentence reason.

    Raises:
        ValueError: if the requested device is unknown or not available, with what to use instead.

    Example:
        >>> choice = choose_device("cpu")
        >>> choice.device, choice.reason
        (device(type='cpu'), 'requested by the caller')
    """
    if requested is not None and str(requested) != "auto":
        return _check_requested(str(requested), "the caller")
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env and from_env != "auto":
        return _check_requested(from_env, f"the environment variable {ENV_VAR}")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return DeviceChoice(torch.device("cuda"), f"a CUDA GPU is available ({name})")
    if _mps_available():
        return DeviceChoice(torch.device("mps"), "Apple's Metal (MPS) backend is available")
    cuda_note = "this torch has no CUDA support" if torch.version.cuda is None else "torch sees no CUDA GPU"
    return DeviceChoice(torch.device("cpu"), f"no GPU found ({cuda_note}); the fast profile keeps runs short")


# --- precision of network passes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision of network passes and the reason it was chosen.

    Attributes:
        precision: ``"fp32"`` or ``"bf16"`` (``"auto"`` is resolved to one of them).
        reason: one sentence saying why, for notebooks and ``nstlab doctor``.
    """

    precision: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the convolutions compute in: ``torch.float32`` or ``torch.bfloat16``."""
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


def native_bf16(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 natively (fast), and what was found.

    Args:
        device: a device or its name; only its type matters.

    Returns:
        ``(True, what)`` for a CUDA GPU with bf16 support or a CPU with AVX512-BF16, AMX or ARM's BF16
        extension (as oneDNN reports them); ``(False, why not)`` elsewhere, MPS included.

    Example:
        >>> supported, what = native_bf16("cpu")
        >>> isinstance(supported, bool) and bool(what)
        True
    """
    kind = torch.device(device).type
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(0)} computes bf16 natively"
        return False, "this CUDA GPU has no native bf16"
    if kind != "cpu":
        return False, f"nstlab uses bf16 autocast on {kind} only when asked"
    try:  # private but long-lived probes of cpuinfo, as torch's own tests use them
        units = [name for name, probe in (("AVX512-BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
                 if getattr(torch.cpu, probe, lambda: False)()]
        if units:  # both named where both are there: oneDNN's bf16 convolutions run far faster on AMX's tiles
            return True, f"this CPU has {' and '.join(units)}"
        if platform.machine().lower() in ("arm64", "aarch64") and torch.backends.mkldnn.is_available() \
                and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, "oneDNN reports bf16 on this ARM CPU"
    except (AttributeError, RuntimeError):
        return False, "this torch cannot tell whether the CPU has native bf16"
    return False, "this CPU has no native bf16 (no AVX512-BF16 or AMX)"


def _check_precision(name: object, source: str) -> str:
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise ValueError(f"{source} asks for precision {name!r}; use one of {', '.join(PRECISIONS)} "
                         "(auto: bf16 where the device computes it natively, else fp32).")
    return key


@contextlib.contextmanager
def float32_only() -> Iterator[None]:
    """Inside this block every precision choice is fp32, whatever was asked: for checks that grade.

    Example:
        >>> with float32_only():
        ...     choose_precision("bf16").precision
        'fp32'
    """
    token = _FLOAT32_ONLY.set(True)
    try:
        yield
    finally:
        _FLOAT32_ONLY.reset(token)


def choose_precision(requested: str | None = None, *, device: str | torch.device = "cpu",
                     profile: str | None = None) -> PrecisionChoice:
    """Choose the precision of network passes on ``device`` and say why.

    Order: inside :func:`float32_only` always fp32; then an explicit ``requested`` (``"fp32"``/``"bf16"``);
    the ``grade`` profile, and any run while nbgrader executes, compute in fp32; then ``NSTLAB_PRECISION``; then ``auto``: bf16 where
    :func:`native_bf16` says the device computes it natively, else fp32.

    Args:
        requested: ``"fp32"``, ``"bf16"``, ``"auto"`` or ``None`` (same as ``"auto"``).
        device: the device the network runs on.
        profile: the active profile's name; ``None`` asks :func:`nstlab.profiles.get_profile`.

    Returns:
        A :class:`PrecisionChoice`.

    Raises:
        ValueError: an unknown precision (argument or ``NSTLAB_PRECISION``), naming it and the choices.

    Example:
        >>> choose_precision("fp32")
        PrecisionChoice(precision='fp32', reason='requested by the caller')
        >>> choose_precision("auto", profile="grade").reason
        'the grade profile computes in float32, so checks give the same verdict on every machine'
    """
    if _FLOAT32_ONLY.get():
        return PrecisionChoice("fp32", "checks compute in float32, so they give the same verdict on every machine")
    if requested is not None:
        requested = _check_precision(requested, "the caller")
    from_env = os.environ.get(PRECISION_ENV_VAR, "").strip()
    from_env = _check_precision(from_env, f"the environment variable {PRECISION_ENV_VAR}") if from_env else ""
    supported, what = native_bf16(device)
    if requested in ("fp32", "bf16"):
        slow = "" if requested == "fp32" or supported else f" ({what}: bf16 is emulated and slower)"
        return PrecisionChoice(requested, f"requested by the caller{slow}")
    if profile is None:
        from nstlab.profiles import get_profile

        profile = get_profile().name
    if profile == "grade":
        return PrecisionChoice("fp32", "the grade profile computes in float32, so checks give the same verdict "
                               "on every machine")
    if os.environ.get("NBGRADER_EXECUTION"):  # grading under another profile (NSTLAB_PROFILE) stays float32 too
        return PrecisionChoice("fp32", "nbgrader is grading, and graded checks compute in float32 on every machine")
    if from_env in ("fp32", "bf16"):
        slow = "" if from_env == "fp32" or supported else f" ({what}: bf16 is emulated and slower)"
        return PrecisionChoice(from_env, f"set by {PRECISION_ENV_VAR}{slow}")
    if supported:
        return PrecisionChoice("bf16", f"auto: {what}")
    return PrecisionChoice("fp32", f"auto: {what}")


def autocast(precision: str | PrecisionChoice, device: str | torch.device):
    """The context a network pass runs in: bf16 autocast on ``device`` for ``"bf16"``, nothing for ``"fp32"``.

    Example:
        >>> with autocast("bf16", "cpu"):
        ...     torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3)).dtype
        torch.bfloat16
    """
    name = precision.precision if isinstance(precision, PrecisionChoice) else precision
    if name not in ("fp32", "bf16"):
        raise ValueError(f"autocast needs a resolved precision 'fp32' or 'bf16', got {name!r}; "
                         "resolve 'auto' with choose_precision first.")
    kind = torch.device(device).type
    if name == "fp32":
        return torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)


def channels_last(x):
    """A 4-d tensor or a module in the channels-last memory layout (N, H, W, C in memory), for convolutions.

    The shape stays (N, C, H, W); only the order of the numbers in memory changes, to the one oneDNN and
    cuDNN convolve fastest. A module is converted in place (its parameters), as ``Module.to`` does; a tensor
    already in that layout is returned as it is, so converting once before a network pass costs one copy.

    Example:
        >>> x = channels_last(torch.zeros(1, 3, 4, 4))
        >>> x.shape, x.is_contiguous(memory_format=torch.channels_last)
        (torch.Size([1, 3, 4, 4]), True)
    """
    if isinstance(x, torch.nn.Module):
        return x.to(memory_format=torch.channels_last)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def frozen_weights_in(module: torch.nn.Module, precision: str | PrecisionChoice) -> torch.nn.Module:
    """A frozen network's convolution and linear weights stored in bf16 once, in place, for bf16 runs.

    Autocast casts float32 weights to bf16 at every pass: it keeps a cast only for weights that are trained,
    and VGG19 up to relu5_1 has 11 million frozen ones (about 1 % of a style-transfer evaluation at 256
    pixels). Stored in bf16 they are used as they are. Only the weights and biases of convolutions and linear
    layers change: buffers such as the ImageNet mean stay float32. With ``"fp32"`` nothing changes.

    Use it only on the network's own copy, run only under :func:`autocast` with ``"bf16"`` afterwards.

    Example:
        >>> net = frozen_weights_in(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), "bf16")
        >>> net[0].weight.dtype
        torch.bfloat16
    """
    name = precision.precision if isinstance(precision, PrecisionChoice) else precision
    if name == "bf16":
        for layer in module.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.to(torch.bfloat16)
    return module


# --- bf16 in the backward pass only ---------------------------------------------------------------------------


# weight -> (its version, {memory layout: its bf16 copy}), for Bf16Backward; an entry goes when its weight does.
_BF16_COPIES = WeakIdKeyDictionary()


class _ConvForwardFp32BackwardBf16(torch.autograd.Function):
    """conv2d computed exactly in float32; the gradient with respect to its input computed in bf16.

    Only for frozen weights: no gradient goes to the weight or the bias. Nothing of the input is saved for
    the backward pass, only the weight's bf16 copy (shared by every pass of a run).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, weight_bf16, stride, padding, dilation, groups):
        ctx.save_for_backward(weight_bf16)
        ctx.shape, ctx.stride, ctx.padding, ctx.dilation, ctx.groups = x.shape, stride, padding, dilation, groups
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight_bf16,) = ctx.saved_tensors
        grad_x = torch.nn.grad.conv2d_input(ctx.shape, weight_bf16, grad.to(torch.bfloat16), ctx.stride, ctx.padding,
                                            ctx.dilation, ctx.groups)
        return grad_x.to(grad.dtype), None, None, None, None, None, None, None


class Bf16Backward(torch.overrides.TorchFunctionMode):
    """Inside this mode, convolutions by frozen weights run forward in float32 and backward in bf16.

    This is how :func:`nstlab.stylize.stylize` uses bf16. Its optimiser follows the gradient of the loss with
    respect to the pixels, and measured, rounding the *forward* pass is what stops it short: a bf16
    activation carries about 3 significant digits, so the residuals the losses are made of (features minus
    targets, Gram matrices minus targets) drown in rounding as the run nears its optimum, and ReLUs near
    zero switch on or off from one pixel update to the next. Rounding the *backward* pass only blurs the
    gradient by the same relative amount, which L-BFGS tolerates: on the quality guard's problem a run
    ends within 0.3 % of the float32 run's loss where full bf16 autocast ends 14 % above it
    (docs/benchmarks.md). The backward convolutions are about half of an evaluation's work, so this saves
    less than autocast does per evaluation but reaches the float32 result sooner.

    Only calls of ``conv2d`` whose input needs a gradient and whose weight does not are changed; every other
    operation, and every pass without a gradient, runs as it would in float32. The weights' bf16 copies are
    made at their first use and kept as long as the weights live (so a new mode at every pass costs no cast),
    and made again if a weight is changed in place.

    Example:
        >>> conv = torch.nn.Conv2d(1, 1, 3).requires_grad_(False)
        >>> x = torch.ones(1, 1, 5, 5, requires_grad=True)
        >>> with Bf16Backward():
        ...     y = conv(x)
        >>> y.dtype, y.grad_fn.name()
        (torch.float32, '_ConvForwardFp32BackwardBf16Backward')
    """

    @staticmethod
    def weight_bf16(weight: torch.Tensor, layout: torch.memory_format = torch.channels_last) -> torch.Tensor:
        """``weight`` in bf16 and in ``layout``, cast at its first use and kept while the weight lives.

        The layout is the input's: a caller's network whose weights were left in the default layout still
        gets channels-last bf16 copies when its input is channels-last, as in :func:`nstlab.stylize.stylize`
        (oneDNN would otherwise reorder the weights at every backward pass).
        """
        version, copies = _BF16_COPIES.get(weight, (None, {}))
        if version != weight._version:
            version, copies = weight._version, {}
            _BF16_COPIES[weight] = (version, copies)
        if layout not in copies:
            copies[layout] = weight.detach().to(dtype=torch.bfloat16, memory_format=layout)  # one copy
        return copies[layout]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.conv2d and torch.is_grad_enabled():
            names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
            call = {**dict(zip(names, args, strict=False)), **kwargs}  # args may stop early
            x, weight, padding = call.get("input"), call.get("weight"), call.get("padding", 0)
            if (isinstance(x, torch.Tensor) and x.requires_grad and x.dtype == torch.float32
                    and isinstance(weight, torch.Tensor) and not weight.requires_grad
                    and not isinstance(padding, str)
                    and not (isinstance(call.get("bias"), torch.Tensor) and call["bias"].requires_grad)):
                layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
                    and not x.is_contiguous() else torch.contiguous_format
                return _ConvForwardFp32BackwardBf16.apply(
                    x, weight, call.get("bias"), self.weight_bf16(weight, layout), call.get("stride", 1), padding,
                    call.get("dilation", 1), call.get("groups", 1))
        return func(*args, **kwargs)
