"""``nstlab present --prepare``: compute once what the lectures' demos look up, so no control waits.

Live computation is too slow for a lecture on a laptop CPU for some demos; each of them has a module-level
``prepare(*, cache_dir=None, progress=True) -> Path`` that computes its precomputed results once, prints an
estimate of the time first or shows a progress bar, and caches them (an existing cache is returned at once).
This module finds the demos a lecture uses (the ``nstlab.widgets`` modules its cells import) and runs the
``prepare`` of each that has one. A demo that needs pretrained weights which are not here is skipped with
the way to get them, so the other demos are still prepared.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nstlab.weights import WeightsUnavailable

# The widget modules a lecture's code imports, e.g. "from nstlab.widgets.style_panel import style_panel".
WIDGET_IMPORT = re.compile(r"nstlab\.widgets\.(\w+)")


@dataclass(frozen=True)
class Prepared:
    """One demo's outcome: its widget module, the cache (``None`` when skipped) and why it was skipped."""

    module: str
    path: Path | None
    skipped: str = ""


def lecture_demos(notebooks: Iterable[Path]) -> list[str]:
    """The ``nstlab.widgets`` modules imported by the code cells of ``notebooks``, in order of appearance.

    Example:
        >>> import tempfile
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import nstlab.widgets.gd_explorer")])
        >>> path = Path(tempfile.mkdtemp()) / "lecture.ipynb"
        >>> nbformat.write(nb, path)
        >>> lecture_demos([path])
        ['nstlab.widgets.gd_explorer']
    """
    found: dict[str, None] = {}
    for notebook in notebooks:
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type == "code":
                found.update(dict.fromkeys(f"nstlab.widgets.{m}" for m in WIDGET_IMPORT.findall(cell.source)))
    return list(found)


def prepare_demos(modules: Iterable[str], *, cache_dir: Path | None = None, progress: bool = True) -> list[Prepared]:
    """Run the ``prepare`` of each widget module in ``modules`` that has one; return what each did.

    Args:
        modules: widget module names, e.g. from :func:`lecture_demos`.
        cache_dir: one folder for every cache; ``None``: each demo's default cache folder (where the
            lecture looks).
        progress: print estimates and show progress bars.

    Returns:
        A :class:`Prepared` per module that has a ``prepare``, in order.
    """
    done = []
    for name in modules:
        module = importlib.import_module(name)
        if not hasattr(module, "prepare"):
            continue  # computes live, nothing to prepare
        try:
            path = module.prepare(cache_dir=cache_dir, progress=progress)
        except WeightsUnavailable as err:
            done.append(Prepared(name, None, skipped=f"{str(err).splitlines()[0]}"))
            continue
        done.append(Prepared(name, Path(path)))
    return done


__all__ = ["Prepared", "lecture_demos", "prepare_demos"]
