"""Assertions for the check cells in the notebooks.

A check cell should tell a student *what* differs and *where to look*, not just ``AssertionError``. Every
helper here raises :class:`CheckFailed` (an ``AssertionError``, so nbgrader counts it as a failed test) with
a message that names the quantity, the expected and actual shapes or dtypes, the first entries that
disagree, and the relative error against the tolerance.

Only the checker decides a verdict. A submission could return an object whose comparisons always succeed: a
``torch.Tensor`` or ``np.ndarray`` subclass that overrides ``__eq__``, ``__sub__``, ``shape``, ``detach`` or
``__torch_function__``, or any object with ``__array__`` or ``__float__``. So the helpers accept only *plain*
values: exact ``torch.Tensor`` and ``torch.nn.Parameter``, exact numeric ``np.ndarray``, Python and numpy
numbers, and lists or tuples of those. They look at the class with ``type(value) is ...`` before touching the
value (``isinstance`` would let a subclass in, and consults a forgeable ``__class__``), and compare float64
numpy copies that they make themselves, calling torch's own methods unbound with ``__torch_function__`` and
dispatch modes switched off. Anything else fails with a message naming the type it got.

Comparisons run with TF32 switched off, so that a check gives the same verdict on a CPU and on an NVIDIA GPU
(TF32 matrix products carry only about three decimal digits).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import _disable_current_modes

from nstlab.device import float32_only

# How many disagreeing entries a message lists; more would bury the first one, which is usually the clue.
MAX_LISTED = 5

# The exact classes a check compares. Parameter is torch's own tensor subclass (a model's weights) and adds no
# overrides; every other subclass could decide a comparison, so none is accepted.
PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
PLAIN_NUMBERS = (int, float, bool)
# numpy's own scalar classes (np.float32, np.int64, np.bool_, ...), not subclasses of them.
NUMPY_SCALARS = tuple({t for t in np.sctypeDict.values() if issubclass(t, (np.bool_, np.number))})
# Array kinds that hold numbers: bool, signed and unsigned integer, float, complex. An object array holds
# arbitrary objects, and converting it would call their __float__.
NUMBER_KINDS = "biufc"


class CheckFailed(AssertionError):
    """A check cell found a difference; the message says what and how to look for it.

    In a notebook, IPython shows it as the check cell's line and the message, without the source of this
    module (a student looking for their mistake has nothing to find there).
    """

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting the traceback itself (the hook ipyparallel uses for remote
        # errors). Frames of this module are left out; the lines of the cell (and of any function it called
        # on the way) stay, so the student sees which check failed.
        hidden = (os.path.abspath(__file__), *_ipython_folder())  # this module, and IPython running the cell
        lines = []
        for frame in traceback.extract_tb(self.__traceback__):
            if not os.path.abspath(frame.filename).startswith(hidden):
                lines.append(f"{_where(frame.filename)}, line {frame.lineno}:  {(frame.line or '').strip()}")
        return [*lines, f"\x1b[31m{type(self).__name__}\x1b[39m: {self}"]


def _ipython_folder() -> tuple[str, ...]:
    """The folder of the IPython package, whose frames run every cell, or nothing outside IPython."""
    module = sys.modules.get("IPython")
    return (os.path.dirname(os.path.abspath(module.__file__)) + os.sep,) if module and module.__file__ else ()


def _where(filename: str) -> str:
    """``Cell In[3]`` for a notebook cell's file (as IPython names it), else the file's name."""
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython: nobody calls _render_traceback_ then anyway
        return os.path.basename(filename)
    compiler = getattr(get_ipython(), "compile", None)
    named = compiler.format_code_name(filename) if hasattr(compiler, "format_code_name") else None
    return " ".join(named) if named else os.path.basename(filename)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Switch TF32 off for matrix products and convolutions inside the block, then restore it.

    Inside the block the library's network passes also run in float32 whatever precision was asked for
    (:func:`nstlab.device.float32_only`), so that a check's verdict does not depend on the machine's bf16.

    Example:
        >>> with no_tf32():
        ...     torch.backends.cuda.matmul.allow_tf32
        False
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with float32_only():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


@contextlib.contextmanager
def _torch_itself() -> Iterator[None]:
    """Run torch's own code inside the block, even if a notebook switched on a mode that reroutes every call.

    A ``TorchFunctionMode`` or ``TorchDispatchMode`` entered by earlier code (and never left) sees every tensor
    operation, ``.dtype`` and ``.shape`` included, and could hand the checker zeros for both values.
    """
    with torch._C.DisableTorchFunction(), _disable_current_modes():
        yield


def _is_one_of(cls: type, classes: tuple[type, ...]) -> bool:
    """Whether ``cls`` is one of ``classes`` itself; ``cls in classes`` would ask ``==``, which a metaclass can fake."""
    return any(cls is c for c in classes)


def _class_name(cls: type) -> str:
    """The name of a class, read through ``type`` itself so that no metaclass can rename it."""
    qualname = type.__dict__["__qualname__"].__get__(cls)
    module = type.__dict__["__module__"].__get__(cls)
    return qualname if type(module) is not str or module == "builtins" else f"{module}.{qualname}"


def _describe(value: Any) -> str:
    """Say what ``value`` is, without calling any method a submission could have written."""
    cls = type(value)
    if _is_one_of(cls, PLAIN_TENSORS):
        with _torch_itself():
            return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype} on {value.device}"
    if cls is np.ndarray:
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    if _is_one_of(cls, (list, tuple)):
        return f"{cls.__name__} of length {len(value)}"
    if _is_one_of(cls, (*PLAIN_NUMBERS, complex, str, bytes, type(None), *NUMPY_SCALARS)):
        return f"{cls.__name__} {value!r}"
    for base in (torch.Tensor, np.ndarray, *PLAIN_NUMBERS):
        if issubclass(cls, base):
            return f"an object of class {_class_name(cls)}, a subclass of {_class_name(base)}"
    return f"an object of class {_class_name(cls)}"


def _not_plain(value: Any, name: str) -> CheckFailed:
    return CheckFailed(
        f"{name} should be a number, array or tensor, but it is {_describe(value)}. A check compares only plain "
        "values: a torch.Tensor, a numpy array, a Python or numpy number, or a list of them; not a subclass or "
        "another object that converts itself. Return the plain tensor, array or number."
    )


def _as_float64(value: Any, name: str) -> np.ndarray:
    """Copy a plain tensor, array, number or (nested) list of them into a new float64 numpy array.

    Raises:
        CheckFailed: if ``value`` (or an item of it) is None or not plain; the message names ``name``.
    """
    __tracebackhide__ = True
    if value is None:
        raise CheckFailed(f"{name} is None; did the function forget to `return` its result?")
    cls = type(value)
    if _is_one_of(cls, PLAIN_TENSORS):
        # Unbound calls: an exact tensor has no overrides, but its __dict__ could hold a `detach` of its own.
        with _torch_itself():
            copy = torch.Tensor.to(torch.Tensor.detach(value), device="cpu", dtype=torch.float64)
            return np.array(torch.Tensor.numpy(copy), dtype=np.float64, copy=True)
    if (cls is np.ndarray and value.dtype.kind in NUMBER_KINDS) or _is_one_of(cls, (*PLAIN_NUMBERS, *NUMPY_SCALARS)):
        return np.array(value, dtype=np.float64, copy=True)
    if _is_one_of(cls, (list, tuple)):
        items = [_as_float64(item, f"{name}[{i}]") for i, item in enumerate(value)]
        try:
            return np.array(items, dtype=np.float64)
        except ValueError as err:
            shapes = sorted({item.shape for item in items})
            raise CheckFailed(f"{name} is a {cls.__name__} whose items have different shapes {shapes}; "
                              "they cannot be compared as one array.") from err
    raise _not_plain(value, name)


def _dtype(value: Any, name: str) -> torch.dtype | np.dtype | type:
    """The dtype of a plain tensor, array or numpy number; the class of a Python number or list."""
    cls = type(value)
    if _is_one_of(cls, PLAIN_TENSORS):
        with _torch_itself():
            return value.dtype  # `dtype` is a data descriptor: an instance attribute cannot shadow it
    if _is_one_of(cls, (np.ndarray, *NUMPY_SCALARS)):
        return value.dtype
    _as_float64(value, name)  # refuses None and anything that is not plain
    return cls


def check_type(value: Any, expected: type | tuple[type, ...], *, name: str = "the result") -> None:
    """Fail unless ``value`` is an instance of ``expected``.

    For ``torch.Tensor`` and ``np.ndarray`` only the classes themselves pass (and ``torch.nn.Parameter`` for
    ``torch.Tensor``), never a subclass: a subclass can override what the later checks would look at. Any
    other class (``tuple``, ``nn.Linear``, a dataclass) also accepts its subclasses.

    Example:
        >>> check_type(torch.zeros(2), torch.Tensor, name="x")
        >>> check_type((1, 2), tuple, name="x")
    """
    __tracebackhide__ = True
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    wanted = (expected,) if isinstance(expected, type) else tuple(expected)
    cls = type(value)
    for kind in wanted:
        if issubclass(kind, (torch.Tensor, np.ndarray)):
            if cls is kind or (kind is torch.Tensor and cls is torch.nn.Parameter):
                return
        elif issubclass(cls, kind):  # the class itself, not a forgeable `value.__class__`
            return
    names = " or ".join(kind.__name__ for kind in wanted)
    hint = ""
    if any(issubclass(cls, kind) for kind in wanted):
        hint = " Return a plain one: a subclass can override what the checks look at, so it is not accepted."
    raise CheckFailed(f"{name} should be a {names}, but it is {_describe(value)}.{hint}")


def check_shape(value: Any, expected: tuple[int, ...], *, name: str = "the result") -> None:
    """Fail unless ``value`` (tensor, array, number or list) has exactly the shape ``expected``.

    Example:
        >>> check_shape(torch.zeros(2, 3), (2, 3), name="x")
        >>> check_shape(torch.zeros(3, 2), (2, 3), name="x")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: x has shape (3, 2) but should have shape (2, 3). ...
    """
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    shape = _as_float64(value, name).shape
    expected = tuple(expected)
    if shape != expected:
        hint = "Check which axes you sum over or reshape."
        if len(shape) != len(expected):
            hint = f"It has {len(shape)} dimensions instead of {len(expected)}: a missing or extra batch axis?"
        elif sorted(shape) == sorted(expected):
            hint = "The same sizes in another order: is a transpose or permute missing or doubled?"
        elif sum(abs(s - e) for s, e in zip(shape, expected, strict=True)) == 1:
            hint = ("One axis is one entry too short or too long: an off-by-one (a range that stops one early, or "
                    "a first value left out)?")
        raise CheckFailed(f"{name} has shape {shape} but should have shape {expected}. {hint}")


def check_dtype(value: Any, expected: torch.dtype | np.dtype | type, *, name: str = "the result") -> None:
    """Fail unless ``value`` has dtype ``expected`` (for a Python number or list: its class).

    Example:
        >>> check_dtype(torch.zeros(1), torch.float32, name="x")
    """
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    dtype = _dtype(value, name)
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
    factors: Mapping[str, float] | None = None,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Fail unless ``actual`` equals ``expected`` within ``|a - e| <= atol + rtol * |e|`` entry by entry.

    The message gives the shapes, the number of disagreeing entries, the first few with their indices, and
    the largest error against the tolerance: relative where the expected entry is not zero, absolute where it
    is (a relative error against 0 would read as 1e+08 and say nothing).

    When every entry is off by the same factor, the message says so; ``factors`` names the factors that
    known mistakes produce, so that the message can say which mistake it probably is.

    Args:
        actual: the student's value (tensor, array or number).
        expected: the reference value.
        name: what the value is, as the student would call it (``"gram_matrix(x)"``).
        rtol: relative tolerance.
        atol: absolute tolerance.
        check_dtype_of: if given, ``actual`` must also have this dtype.
        factors: known mistakes and the factor ``actual / expected`` each produces, e.g.
            ``{"a mean instead of ½·sum": 2 / N}``; the reciprocal of a factor is recognised too.
        mistakes: known wrong answers by what causes them, e.g. ``{"f'(z) left out": delta_next @ W_next}``;
            when ``actual`` matches one of them (within the same tolerance), the message names that cause.

    Example:
        >>> check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], name="x")
        >>> check_close(torch.tensor([1.0, 2.5]), [1.0, 2.0], name="x")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: x differs from the expected value in 1 of 2 entries ...
        >>> check_close(0.25, 1.0, name="E", factors={"a mean instead of ½·sum (N = 8)": 2 / 8})
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: E differs ... 0.25 times the expected value: a mean instead of ½·sum (N = 8)?
    """
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    if check_dtype_of is not None:
        check_dtype(actual, check_dtype_of, name=name)
    a, e = _as_float64(actual, name), _as_float64(expected, "the expected value")
    if a.shape != e.shape or not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
        _known_mistake(a, name, rtol, atol, mistakes)
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
    raise CheckFailed(
        f"{name} differs from the expected value in {int(bad.sum())} of {bad.size} entries "
        f"({_largest_error(a, e, bad)}, tolerance rtol={rtol:g}, atol={atol:g}). "
        f"First differences: {listed}.{_hint(a, e, rtol, atol, factors)}"
    )


def _known_mistake(a: np.ndarray, name: str, rtol: float, atol: float, mistakes: Mapping[str, Any] | None) -> None:
    """Fail naming the cause if ``a`` is one of the known wrong answers."""
    __tracebackhide__ = True
    for cause, wrong in (mistakes or {}).items():
        w = _as_float64(wrong, "a known mistake")
        if w.shape == a.shape and np.allclose(a, w, rtol=rtol, atol=atol):
            raise CheckFailed(f"{name} is wrong, and it equals what this mistake gives: {cause}.")


def _largest_error(a: np.ndarray, e: np.ndarray, bad: np.ndarray) -> str:
    """The largest relative error where the expected entry is not zero, the largest absolute one where it is."""
    zero = e == 0
    parts = []
    with np.errstate(invalid="ignore"):
        if (bad & ~zero).any():
            parts.append(f"largest relative error {float(np.nanmax(np.abs(a - e)[bad & ~zero] / np.abs(e[bad & ~zero]))):.3g}")
        if (bad & zero).any():
            parts.append(f"largest absolute error {float(np.nanmax(np.abs(a[bad & zero]))):.3g} where 0 is expected")
    return "; ".join(parts) or "the values differ"


def _hint(a: np.ndarray, e: np.ndarray, rtol: float, atol: float, factors: Mapping[str, float] | None) -> str:
    """One sentence about the likely mistake: a sign, a constant factor (named when known), a transpose."""
    if np.allclose(a, -e, rtol=rtol, atol=atol):
        return " It is the negative of the expected value: check the sign."
    ratio = _constant_ratio(a, e)
    if ratio is not None:
        for mistake, factor in (factors or {}).items():
            if factor and (np.isclose(ratio, factor, rtol=1e-4) or np.isclose(ratio, 1 / factor, rtol=1e-4)):
                return f" Yours is {ratio:.6g} times the expected value: {mistake}?"
        if a.size == 1:
            return f" Yours is {ratio:.6g} times the expected value: a missing or extra constant factor?"
        return f" Every entry is off by the same factor {ratio:.6g}: a missing or extra normalisation constant?"
    if a.ndim == 2 and a.shape == e.shape[::-1] and np.allclose(a, e.T, rtol=rtol, atol=atol):
        return " It is the transpose of the expected value."
    return ""


def _constant_ratio(a: np.ndarray, e: np.ndarray) -> float | None:
    """The factor a / e if it is the same for every entry (and not 1), else None; one entry is enough."""
    mask = np.abs(e) > 1e-12
    if not mask.any() or (np.abs(a[~mask]) > 1e-12).any():
        return None
    ratios = a[mask] / e[mask]
    if np.allclose(ratios, ratios[0], rtol=1e-6) and not np.isclose(ratios[0], 1.0):
        return float(ratios[0])
    return None


def check_equal(actual: Any, expected: Any, *, name: str = "the result", hint: str = "") -> None:
    """Fail unless ``actual`` equals ``expected`` exactly, entry by entry (counts, labels, integer lists).

    Both are compared as float64 copies made here, like :func:`check_close`, so an object that answers
    ``==`` with ``True`` whatever it is compared with cannot pass.

    Example:
        >>> check_equal([2, 1, 0], [2, 1, 0], name="errors")
        >>> check_equal([2, 1], [2, 1, 0], name="errors", hint="Stop at 0?")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: errors: yours [2.0, 1.0], expected [2.0, 1.0, 0.0]. Stop at 0?
    """
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    a, e = _as_float64(actual, name), _as_float64(expected, "the expected value")
    if a.shape != e.shape or not np.array_equal(a, e):
        raise CheckFailed(f"{name}: yours {a.tolist()}, expected {e.tolist()}." + (f" {hint}" if hint else ""))


def check_grad(actual: Any, expected: torch.Tensor, inputs: Sequence[torch.Tensor], *, name: str = "the result",
               rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Fail unless ``actual`` passes autograd's gradient back to ``inputs``, equal to the one ``expected`` passes.

    A value can be right and still useless for training: one computed with ``.detach()``, ``.item()``, numpy
    or ``torch.tensor(...)`` of numbers carries no gradient, and ``torch.where``/``clamp`` choices decide the
    gradient at a kink. Both results are weighted by the same fixed random numbers, summed and differentiated
    with respect to every tensor of ``inputs``; the gradients are compared with :func:`check_close`.

    Args:
        actual: the student's result, computed from ``inputs``.
        expected: the reference result, computed from the same ``inputs``.
        inputs: the tensors (``requires_grad=True``) both were computed from.
        name: what ``actual`` is, as the student would call it.
        rtol, atol: tolerances of the gradients' comparison.

    Example:
        >>> x = torch.tensor([1.0, -2.0], requires_grad=True)
        >>> check_grad(x * x, x ** 2, [x], name="square(x)")
        >>> check_grad((x * x).detach(), x ** 2, [x], name="square(x)")
        Traceback (most recent call last):
        ...
        nstlab.checks.CheckFailed: square(x) carries no gradient back to its input...
    """
    __tracebackhide__ = True
    check_type(actual, torch.Tensor, name=name)
    with _torch_itself():
        if actual.grad_fn is None or not actual.requires_grad:
            raise CheckFailed(
                f"{name} carries no gradient back to its input, so nothing could be trained through it. Was it "
                "detached, turned into a number (.item(), float()), computed in numpy, or rebuilt with "
                "torch.tensor(...)? Compute it from the input with torch operations only."
            )
        weights = torch.rand(expected.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        weights = weights.to(device=expected.device, dtype=expected.dtype)
        if tuple(actual.shape) != tuple(expected.shape):
            check_shape(actual, tuple(expected.shape), name=name)
        mine = torch.autograd.grad((actual * weights).sum(), list(inputs), allow_unused=True, retain_graph=True)
        theirs = torch.autograd.grad((expected * weights).sum(), list(inputs), allow_unused=True, retain_graph=True)
    for k, (g_mine, g_ref) in enumerate(zip(mine, theirs, strict=True)):
        which = f"the gradient of {name} with respect to input {k}" if len(mine) > 1 else f"the gradient of {name}"
        if g_mine is None:
            raise CheckFailed(f"{which} is missing: {name} does not depend on that input through autograd.")
        check_close(g_mine, g_ref if g_ref is not None else torch.zeros_like(g_mine), name=which, rtol=rtol, atol=atol)


def check_true(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds.

    ``condition`` must be a plain ``True`` or ``False`` (Python's, numpy's, or a one-entry bool tensor or
    array): an object that merely claims to be true, such as a submission's reply to ``==``, does not pass.

    Example:
        >>> check_true(1 + 1 == 2, "arithmetic is broken")
    """
    __tracebackhide__ = True  # IPython shows the check cell's line, not this function's source
    cls = type(condition)
    if cls is bool or cls is np.bool_:
        holds = bool(condition)
    elif _is_one_of(cls, PLAIN_TENSORS) and _dtype(condition, "the condition") == torch.bool or (
            cls is np.ndarray and condition.dtype == np.bool_):
        values = _as_float64(condition, "the condition")
        if values.size != 1:
            raise CheckFailed(f"{message} (The check could not tell: its condition has {values.size} entries.)")
        holds = bool(values.item())
    else:
        raise CheckFailed(f"{message} (The check could not tell: its condition is {_describe(condition)}, "
                          "not a plain True or False.)")
    if not holds:
        raise CheckFailed(message)


def passed(what: str) -> None:
    """Print the line a check cell ends with when everything held.

    Example:
        >>> passed("gram_matrix")
        ✓ gram_matrix: all checks passed.
    """
    print(f"✓ {what}: all checks passed.")
