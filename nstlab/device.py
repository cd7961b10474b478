"""Choosing the device a computation runs on, and saying why.

Every library function computes on the device of its inputs; this module is the one place that *chooses*
a device, for notebooks and the command line. The choice comes with a reason a student can read, because
"why is this slow?" is nearly always answered by "it ran on the CPU".

Order of preference: an explicit request, then the ``NSTLAB_DEVICE`` environment variable, then CUDA, then
Apple's MPS, then the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

ENV_VAR = "NSTLAB_DEVICE"
KNOWN_KINDS = ("cpu", "cuda", "mps")


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
