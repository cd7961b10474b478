"""Progress bars for long work, in a notebook or a terminal.

Training loops and style-transfer runs wrap their iterations in :func:`progress`, which shows a notebook
widget in Jupyter and a text bar in a terminal (``tqdm.auto``). While nbgrader grades a notebook
(``NBGRADER_EXECUTION`` is set) the bar is silent: nbgrader counts anything written to stderr in a check
cell as a failure, and nobody is watching.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from nstlab.profiles import GRADER_ENV_VAR

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None,
             disable: bool | None = None, leave: bool = True) -> Iterator[T]:
    """Iterate over ``iterable`` while showing a progress bar.

    Args:
        iterable: what to iterate over.
        desc: a short label shown before the bar.
        total: the number of items, if ``iterable`` has no ``len``.
        disable: force the bar off (``True``) or on (``False``); ``None`` hides it under nbgrader.
        leave: keep the finished bar on screen.

    Example:
        >>> sum(progress(range(3), disable=True))
        3
    """
    if disable is None:
        disable = bool(os.environ.get(GRADER_ENV_VAR))
    if disable:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, leave=leave)
