"""Precomputed grids of results, shared by the demos that cannot compute live on a CPU.

The style panel and the dream explorer run every combination of their controls once (``prepare()``), save
the results in one file per set of settings, and afterwards only look results up. This module names those
files and writes them; what a grid holds is each demo's own business.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch


def default_cache_dir(kind: str) -> Path:
    """The user's cache folder for one kind of grid: ``<torch cache>/nstlab/<kind>`` (``~/.cache/torch/...``).

    Example:
        >>> default_cache_dir("style_grid").parts[-2:]
        ('nstlab', 'style_grid')
    """
    return Path(torch.hub.get_dir()).parent / "nstlab" / kind


def grid_file(spec, *, pretrained: bool, folder: Path) -> Path:
    """The file of the grid of ``spec`` (a dataclass) in ``folder``. The name holds a hash of the settings and
    whether the network was pretrained, so a grid made offline is not shown as pretrained once the weights
    arrive, and changed settings never read an old grid.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Spec:
        ...     size: int = 64
        >>> grid_file(Spec(), pretrained=False, folder=Path("/tmp")).name.startswith("untrained-")
        True
    """
    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]
    return folder / f"{'pretrained' if pretrained else 'untrained'}-{digest}.pt"


def save_grid(record: dict, path: Path) -> Path:
    """Write a grid's ``record`` to ``path`` atomically: an interrupted run leaves no half-written grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(record, partial)
    partial.replace(path)
    return path
