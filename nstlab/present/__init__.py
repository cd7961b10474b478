"""Lecture mode: the course's demos as full-screen dashboards a lecturer can project.

A lecture is a notebook in ``course/lectures/`` that is a sequence of one part's widget demos and key figures,
each under a one-line caption. ``nstlab present`` serves it through Voilà (:mod:`nstlab.present.server`),
which shows the outputs and widgets without the code, one kernel per open page; ``nstlab present --prepare``
computes the precomputed grids the demos look up (:mod:`nstlab.present.prepare`).

Every lecture's first cell calls :func:`projector_theme`, so figures drawn in the lecture's kernel have large
type and thick lines; the page's own type is set by the ``nstlab`` Voilà template beside this module.
"""

from __future__ import annotations

from pathlib import Path

# The lectures' folder, relative to the course root.
LECTURES_FOLDER = Path("course") / "lectures"

# Matplotlib settings readable from the back of a lecture room: figures are shown at 110 dpi and enlarged
# 1.5 times by the page, so 14-point type is about 32 screen pixels high. Tight label and tick padding keeps
# the larger type inside the margins that widgets fix for their figures.
PROJECTOR_RC = {
    "font.size": 14,
    "axes.titlesize": 16,
    "axes.labelsize": 14,
    "axes.labelpad": 2.0,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "xtick.major.pad": 2.5,
    "ytick.major.pad": 2.5,
    "legend.fontsize": 12,
    "lines.linewidth": 2.5,
    "lines.markersize": 9,
    "axes.linewidth": 1.2,
    "figure.dpi": 110,
}


def projector_theme() -> dict:
    """Set matplotlib's defaults to :data:`PROJECTOR_RC` in this kernel, and return them.

    Called by each lecture's first cell; widgets and figures drawn afterwards use these sizes wherever they
    do not set their own.

    Example:
        >>> import matplotlib
        >>> with matplotlib.rc_context():
        ...     projector_theme()["font.size"] == matplotlib.rcParams["font.size"] == 14
        True
    """
    import matplotlib

    matplotlib.rcParams.update(PROJECTOR_RC)
    return dict(PROJECTOR_RC)


def lectures_dir(root: Path) -> Path:
    """The folder of the lecture notebooks in the course at ``root``.

    Example:
        >>> lectures_dir(Path("/course")).as_posix()
        '/course/course/lectures'
    """
    return root / LECTURES_FOLDER


def list_lectures(root: Path) -> list[str]:
    """The lecture names (notebook file names without ``.ipynb``) in the course at ``root``, sorted.

    Example:
        >>> import tempfile
        >>> list_lectures(Path(tempfile.mkdtemp()))
        []
    """
    return sorted(p.stem for p in lectures_dir(root).glob("*.ipynb"))


def find_lecture(root: Path, name: str) -> str:
    """The lecture called ``name``, or the only one whose name starts with it (``part1`` for
    ``part1-perceptron-to-backprop``); a ``.ipynb`` suffix is allowed.

    Raises:
        LookupError: no lecture, or more than one, matches; the message lists the lectures.

    Example:
        >>> import tempfile
        >>> find_lecture(Path(tempfile.mkdtemp()), "part1")
        Traceback (most recent call last):
        ...
        LookupError: no lecture 'part1'; the lectures are: (none)
    """
    names = list_lectures(root)
    wanted = name.removesuffix(".ipynb")
    matches = [n for n in names if n == wanted] or [n for n in names if n.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    problem = f"'{name}' could mean {', '.join(matches)}" if matches else f"no lecture '{name}'"
    raise LookupError(f"{problem}; the lectures are: {', '.join(names) or '(none)'}")


__all__ = ["LECTURES_FOLDER", "PROJECTOR_RC", "find_lecture", "lectures_dir", "list_lectures", "projector_theme"]
