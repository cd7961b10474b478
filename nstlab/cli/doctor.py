"""``nstlab doctor``: is this environment ready for the course?

Prints one line per component (Python, torch, torchvision and its compiled operators, the device and why,
the precision of network passes and why, pretrained weights, nbgrader and the course, the JupyterLab
extensions for widgets and nbgrader) and exits with status 1, naming the reason and the fix, when something
the course needs is broken. Missing pretrained
weights are reported but are not a failure: the course runs offline on the untrained fallback.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_PYTHON = ((3, 11), (3, 13))


@dataclass(frozen=True)
class Finding:
    """One line of the report: a component, what was found, and whether it is fatal."""

    component: str
    detail: str
    ok: bool = True
    fix: str = ""
    required: bool = True


def _python() -> Finding:
    version = sys.version_info[:2]
    detail = f"{platform.python_version()} ({sys.executable})"
    low, high = SUPPORTED_PYTHON
    if not low <= version <= high:
        return Finding("python", detail, False, f"use Python {low[0]}.{low[1]} to {high[0]}.{high[1]}")
    return Finding("python", detail)


def _torch() -> Finding:
    try:
        import torch
    except Exception as err:  # noqa: BLE001 -- any import failure is the finding itself
        return Finding("torch", f"cannot be imported ({err})", False, "run `make lab` or `pip install -e .`")
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return Finding("torch", f"{torch.__version__} ({cuda})")


def _torchvision() -> Finding:
    try:
        import torch
        import torchvision
        from torchvision.ops import nms

        # The compiled operators fail only when used: nms is the usual first victim of a torch mismatch.
        nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except Exception as err:  # noqa: BLE001
        torch_version = sys.modules["torch"].__version__ if "torch" in sys.modules else "unknown"
        return Finding(
            "torchvision",
            f"broken: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            False,
            f"torchvision was built for another torch than the installed {torch_version}; reinstall a matching "
            "pair: `pip install --force-reinstall torch torchvision` (do not pin torch alone)",
        )
    return Finding("torchvision", f"{torchvision.__version__} (compiled operators work)")


def _device() -> Finding:
    from nstlab.device import choose_device

    try:
        choice = choose_device()
    except ValueError as err:
        return Finding("device", str(err), False, "unset NSTLAB_DEVICE or set it to an available device")
    return Finding("device", f"{choice.device}: {choice.reason}")


def _precision() -> Finding:
    from nstlab.device import PRECISION_ENV_VAR, choose_device, choose_precision

    try:
        choice = choose_precision(device=choose_device().device)
    except ValueError as err:
        return Finding("precision", str(err), False, f"unset {PRECISION_ENV_VAR} or set it to fp32, bf16 or auto")
    return Finding("precision", f"{choice.precision} for network passes ({choice.reason}); "
                   "losses, Gram matrices and optimiser state stay float32")


def _profile() -> Finding:
    from nstlab.profiles import get_profile

    try:
        profile = get_profile()
    except ValueError as err:
        return Finding("profile", str(err), False, "unset NSTLAB_PROFILE or set it to fast, full or grade")
    return Finding("profile", f"{profile.name} ({profile.reason})")


def _weights() -> list[Finding]:
    try:
        weights = importlib.import_module("nstlab.weights")
    except ImportError:
        return [Finding("weights", "nstlab.weights is not part of this version", required=False)]
    findings = []
    for item in weights.status():
        if item.present:
            findings.append(Finding(f"weights {item.arch}", f"present at {item.path}", required=False))
        else:
            findings.append(Finding(
                f"weights {item.arch}",
                f"not downloaded ({item.filename}); notebooks fall back to an untrained network and say so",
                ok=False, required=False,
                fix="run `nstlab weights status` for the download and import instructions",
            ))
    return findings


def _nbgrader() -> Finding:
    try:
        import nbgrader
    except ImportError as err:
        return Finding("nbgrader", f"cannot be imported ({err})", False, "run `pip install -e .`")
    from nstlab.course import CourseError, assignments, course_root

    try:
        root = course_root()
    except CourseError:
        return Finding("nbgrader", f"{nbgrader.__version__}; no course folder here (fine for the library alone)")
    return Finding("nbgrader", f"{nbgrader.__version__}; course at {root} with {len(assignments(root))} assignments")


def _labextension(component: str, name: str) -> Finding:
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("labextensions"):
        if (Path(folder) / name / "package.json").is_file():
            return Finding(component, f"JupyterLab extension {name} installed")
    return Finding(component, f"JupyterLab extension {name} not found", False,
                   "reinstall in this environment: `pip install --force-reinstall ipywidgets nbgrader`")


def _widgets_extension() -> Finding:
    return _labextension("widgets", "@jupyter-widgets/jupyterlab-manager")


def _nbgrader_extension() -> Finding:
    return _labextension("nbgrader extension", "@jupyter/nbgrader")


def _kernel() -> Finding:
    try:
        importlib.import_module("ipykernel")
    except ImportError as err:
        return Finding("kernel", f"ipykernel missing ({err})", False, "`pip install ipykernel`")
    return Finding("kernel", "ipykernel available (notebooks run on this Python)")


CHECKS: tuple[Callable[[], Finding | list[Finding]], ...] = (
    _python, _torch, _torchvision, _device, _precision, _profile, _weights, _kernel, _nbgrader,
    _widgets_extension, _nbgrader_extension,
)


def diagnose() -> list[Finding]:
    """Run every check and return the findings, in report order."""
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            result = check()
        except Exception as err:  # noqa: BLE001 -- a check that crashes is itself a finding, not a traceback
            name = getattr(check, "__name__", "check").strip("_<>") or "check"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            result = Finding(name, f"could not be checked ({reason})", False, "fix the failures above first")
        findings.extend(result if isinstance(result, list) else [result])
        if findings[-1].component == "torch" and not findings[-1].ok:
            break  # nothing below works without torch
    return findings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        "doctor",
        help="check that this environment is ready for the course",
        description="Check Python, torch, torchvision, the device, weights, nbgrader and the Jupyter extensions.",
    )


def run(args: argparse.Namespace) -> int:
    findings = diagnose()
    width = max(len(f.component) for f in findings)
    for f in findings:
        mark = "ok  " if f.ok else ("FAIL" if f.required else "note")
        print(f"{mark}  {f.component:<{width}}  {f.detail}")
        if f.fix and not f.ok:
            print(f"      {'':<{width}}  -> {f.fix}")
    failures = [f for f in findings if f.required and not f.ok]
    if failures:
        names = ", ".join(f.component for f in failures)
        print(f"\nnstlab doctor: the environment is broken ({names}); see the fixes above.", file=sys.stderr)
        return 1
    print("\nnstlab doctor: the environment is healthy.")
    return 0
