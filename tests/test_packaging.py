"""The environment the course installs: declared consistently, and actually working."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r): r.replace(" ", "") for r in project["dependencies"]}


def _conda_dependencies() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for item in env["dependencies"]:
        for requirement in item["pip"] if isinstance(item, dict) else [item]:
            name = _name(requirement)
            if name not in ("python", "pip"):
                found[name] = requirement.replace(" ", "")
    return found


def test_environment_yml_lists_the_same_packages_as_pyproject():
    py, conda = _pyproject_dependencies(), _conda_dependencies()
    assert set(py) == set(conda), (
        f"only in pyproject.toml: {sorted(set(py) - set(conda))}; only in environment.yml: {sorted(set(conda) - set(py))}"
    )


def test_environment_yml_uses_the_same_version_ranges_as_pyproject():
    py, conda = _pyproject_dependencies(), _conda_dependencies()
    different = {name: (py[name], conda[name]) for name in py if name in conda and py[name] != conda[name]}
    assert not different, f"version ranges differ (pyproject, environment.yml): {different}"


def test_torchvision_operators_load_with_the_installed_torch():
    """The classic breakage: a torchvision built for another torch cannot register its operators (nms)."""
    import torch
    import torchvision.ops

    keep = torchvision.ops.nms(torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1]]), torch.tensor([0.9, 0.8]), 0.5)
    assert keep.tolist() == [0]
