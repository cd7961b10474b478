"""Profiles and device choice: automatic choices, overrides, and clear refusals."""

from __future__ import annotations

import pytest
import torch

from nstlab import device, profiles


def test_grader_execution_selects_the_grade_profile(monkeypatch):
    monkeypatch.delenv("NSTLAB_PROFILE", raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    p = profiles.get_profile()
    assert p.name == "grade" and "nbgrader" in p.reason


def test_environment_variable_overrides_the_grader(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("NSTLAB_PROFILE", "full")
    assert profiles.get_profile().name == "full"


def test_cpu_machines_default_to_fast(monkeypatch):
    monkeypatch.delenv("NSTLAB_PROFILE", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    expected = "full" if torch.cuda.is_available() else "fast"
    assert profiles.get_profile().name == expected


def test_unknown_profile_names_the_source_and_the_choices(monkeypatch):
    monkeypatch.setenv("NSTLAB_PROFILE", "turbo")
    with pytest.raises(ValueError, match="NSTLAB_PROFILE asks for profile 'turbo'; known profiles are fast, full, grade"):
        profiles.get_profile()


def test_grade_profile_is_smaller_than_fast_which_is_smaller_than_full():
    g, f, u = (profiles.get_profile(n) for n in ("grade", "fast", "full"))
    for field in ("image_size", "style_steps", "train_epochs", "widget_size"):
        assert getattr(g, field) <= getattr(f, field) <= getattr(u, field), field


def test_profiles_are_frozen():
    with pytest.raises(AttributeError):
        profiles.get_profile("fast").image_size = 1  # type: ignore[misc]


def test_choose_device_explains_its_choice(monkeypatch):
    monkeypatch.delenv("NSTLAB_DEVICE", raising=False)
    choice = device.choose_device()
    assert choice.reason and str(choice.device) in str(choice)
    if not torch.cuda.is_available():
        assert choice.device.type in ("cpu", "mps")


def test_device_from_environment_and_refusals(monkeypatch):
    monkeypatch.setenv("NSTLAB_DEVICE", "cpu")
    assert device.choose_device().reason == "requested by the environment variable NSTLAB_DEVICE"
    with pytest.raises(ValueError, match="does not understand"):
        device.choose_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU.*use 'cpu'"):
            device.choose_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_is_chosen_when_present(monkeypatch):
    monkeypatch.delenv("NSTLAB_DEVICE", raising=False)
    assert device.choose_device().device.type == "cuda"


def test_describe_names_the_profile_the_device_and_the_precision_with_reasons(monkeypatch):
    """The first line of every notebook: profile, device and precision, each with why, then the sizes."""
    monkeypatch.delenv("NSTLAB_DEVICE", raising=False)
    monkeypatch.delenv("NSTLAB_PRECISION", raising=False)
    line = profiles.describe(profiles.get_profile("grade"))
    where = device.choose_device()
    assert line.startswith(f"profile grade (requested by the caller) · device {where} · precision fp32 (the grade "
                           "profile computes in float32")
    assert line.endswith("seed=0") and "image_size=64" in line
    monkeypatch.setenv("NSTLAB_PRECISION", "fp32")
    assert "· precision fp32 (set by NSTLAB_PRECISION):" in profiles.describe(profiles.get_profile("fast"))


def test_doctor_reports_the_precision_and_refuses_a_bad_setting(monkeypatch):
    from nstlab.cli.doctor import diagnose

    monkeypatch.delenv("NSTLAB_PROFILE", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("NSTLAB_PRECISION", "fp32")
    found = {f.component: f for f in diagnose()}
    assert found["precision"].ok and found["precision"].detail.startswith("fp32 for network passes (set by NSTLAB_PRECISION)")
    monkeypatch.setenv("NSTLAB_PRECISION", "half")
    found = {f.component: f for f in diagnose()}
    assert not found["precision"].ok and "use one of fp32, bf16, auto" in found["precision"].detail
    assert "NSTLAB_PRECISION" in found["precision"].fix
