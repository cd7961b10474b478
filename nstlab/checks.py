"""Assertions for the check cells in the notebooks.

A check cell should tell a student *what* differs and *where to look*, not just ``AssertionError``. Every
helper here raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader counts it as a failed test) with
a message that names the quantity, the expected and actual shapes or dtypes, the first entries that
disagree, and the relative error against the tolerance.

Comparisons run with TF32 switched off, so that a check gives the same verdict on a CPU and on an NVIDIA GPU
(TF32 matrix products carry only about three decimal digits).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

# How many disagreeing entries a message lists; more would bury the first one, which is usually the clue.
MAX_LISTED = 5


class CheckFailed(AssertionError):
    """A check cell found a difference; the message says what and how to look for it."""


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Switch TF32 off for matrix products and convolutions inside the block, then restore it.

    Example:
        >>> with no_tf32():
        ...     torch.backends.cuda.matmul.allow_tf32
        False
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype} on {value.device}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def _as_float64(value: Any, name: str) -> np.ndarray:
    """Convert a tensor, array or number to a float64 numpy array for comparison."""
    if value is None:
        raise CheckFailed(f"{name} is None; did the function forget to `return` its result?")
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CheckFailed(f"{name} should be a number, array or tensor, but it is {_describe(value)}.") from err


def check_type(value: Any, expected: type | tuple[type, ...], *, name: str = "the result") -> None:
    """Fail unless ``value`` is an instance of ``expected``.

    Example:
        >>> check_type(torch.zeros(2), torch.Tensor, name="x")
    """
    if not isinstance(value, expected):
        wanted = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise CheckFailed(f"{name} should be a {wanted}, but it is {_describe(value)}.")


def check_shape(value: Any, expected: tuple[int, ...], *, name: str = "the result") -> None:
    """Fail unless ``value`` (tensor or array) has exactly the shape ``expected``.

    Example:
        >>> check_shape(torch.zeros(2, 3), (2, 3), name="x")
        >>> check_shape(torch.zeros(3, 2), (2, 3), name="x")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: x has shape (3, 2) but should have shape (2, 3). ...
    """
    shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
    expected = tuple(expected)
    if shape != expected:
        hint = "Check which axes you sum over or reshape."
        if len(shape) != len(expected):
            hint = f"It has {len(shape)} dimensions instead of {len(expected)}: a missing or extra batch axis?"
        elif sorted(shape) == sorted(expected):
            hint = "The same sizes in another order: is a transpose or permute missing or doubled?"
        raise CheckFailed(f"{name} has shape {shape} but should have shape {expected}. {hint}")


def check_dtype(value: Any, expected: torch.dtype | np.dtype | type, *, name: str = "the result") -> None:
    """Fail unless ``value`` has dtype ``expected``.

    Example:
        >>> check_dtype(torch.zeros(1), torch.float32, name="x")
    """
    dtype = getattr(value, "dtype", type(value))
    if dtype != expected:
        raise CheckFailed(
            f"{name} has dtype {dtype} but should have dtype {expected}. "
            "Did a constant of another type (a Python float64 array, an integer tensor) enter the computation?"
        )


def check_close(
    actual: Any,
    expected: Any,
    *,
    name: str = "the result",
    rtol: float = 1e-5,
    atol: float = 1e-8,
    check_dtype_of: torch.dtype | None = None,
) -> None:
    """Fail unless ``actual`` equals ``expected`` within ``|a - e| <= atol + rtol * |e|`` entry by entry.

    The message gives the shapes, the number of disagreeing entries, the first few with their indices, and
    the largest relative error against the tolerance.

    Args:
        actual: the student's value (tensor, array or number).
        expected: the reference value.
        name: what the value is, as the student would call it (``"gram_matrix(x)"``).
        rtol: relative tolerance.
        atol: absolute tolerance.
        check_dtype_of: if given, ``actual`` must also have this dtype.

    Example:
        >>> check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], name="x")
        >>> check_close(torch.tensor([1.0, 2.5]), [1.0, 2.0], name="x")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: x differs from the expected value in 1 of 2 entries ...
    """
    if check_dtype_of is not None:
        check_dtype(actual, check_dtype_of, name=name)
    a, e = _as_float64(actual, name), _as_float64(expected, "the expected value")
    if a.shape != e.shape:
        check_shape(a, e.shape, name=name)
    if np.isnan(a).any() and not np.isnan(e).any():
        where = tuple(int(i) for i in np.argwhere(np.isnan(a))[0])
        raise CheckFailed(
            f"{name} contains NaN (first at index {where}). Look for a division by zero, log of a "
            "non-positive number or an overflowing exponential."
        )
    with np.errstate(invalid="ignore"):
        bad = ~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return
    indices = np.argwhere(bad)
    listed = "; ".join(
        f"at {tuple(int(i) for i in idx) if a.ndim else '()'}: got {a[tuple(idx)]:.6g}, expected {e[tuple(idx)]:.6g}"
        for idx in indices[:MAX_LISTED]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a - e) / np.maximum(np.abs(e), atol)
    rel_err = float(np.nanmax(rel))
    hint = ""
    ratio = _constant_ratio(a, e)
    if np.allclose(a, -e, rtol=rtol, atol=atol):
        hint = " It is the negative of the expected value: check the sign."
    elif ratio is not None:
        hint = f" Every entry is off by the same factor {ratio:.6g}: a missing or extra normalisation constant?"
    elif a.ndim == 2 and a.shape == e.shape[::-1] and np.allclose(a, e.T, rtol=rtol, atol=atol):
        hint = " It is the transpose of the expected value."
    raise CheckFailed(
        f"{name} differs from the expected value in {int(bad.sum())} of {bad.size} entries "
        f"(largest relative error {rel_err:.3g}, tolerance rtol={rtol:g}, atol={atol:g}). "
        f"First differences: {listed}.{hint}"
    )


def _constant_ratio(a: np.ndarray, e: np.ndarray) -> float | None:
    """The factor a / e if it is the same for every entry (and not 1), else None."""
    mask = np.abs(e) > 1e-12
    if mask.sum() < 2:
        return None
    ratios = a[mask] / e[mask]
    if np.allclose(ratios, ratios[0], rtol=1e-6) and not np.isclose(ratios[0], 1.0):
        return float(ratios[0])
    return None


def check_true(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds.

    Example:
        >>> check_true(1 + 1 == 2, "arithmetic is broken")
    """
    if not condition:
        raise CheckFailed(message)


def passed(what: str) -> None:
    """Print the line a check cell ends with when everything held.

    Example:
        >>> passed("gram_matrix")
        ✓ gram_matrix: all checks passed.
    """
    print(f"✓ {what}: all checks passed.")
