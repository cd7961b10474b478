"""Check-cell helpers: they pass on right answers and explain wrong ones."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from nstlab.checks import CheckFailed, check_close, check_dtype, check_shape, check_true, check_type, no_tf32


def test_equal_values_pass_within_tolerance():
    check_close(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-7]), name="x")
    check_close(3.0, 3.0)


def test_message_names_the_value_counts_and_lists_first_differences():
    with pytest.raises(CheckFailed) as info:
        check_close(torch.tensor([1.0, 5.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]), name="gram_matrix(x)")
    message = str(info.value)
    assert "gram_matrix(x)" in message and "1 of 3 entries" in message
    assert "at (1,): got 5, expected 2" in message and "rtol=1e-05" in message


def test_constant_factor_is_reported_as_a_normalisation_hint():
    with pytest.raises(CheckFailed, match="same factor 0.25.*normalisation"):
        check_close(torch.arange(1.0, 5.0) / 4, torch.arange(1.0, 5.0))


def test_sign_and_transpose_mistakes_get_hints():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(CheckFailed, match="negative"):
        check_close(-a, a)
    b = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(CheckFailed, match="shape \\(3, 2\\).*transpose"):
        check_close(b.T, b)


def test_shape_messages_explain_missing_axes_and_permutations():
    with pytest.raises(CheckFailed, match="3 dimensions instead of 4.*batch axis"):
        check_shape(torch.zeros(3, 4, 4), (1, 3, 4, 4))
    with pytest.raises(CheckFailed, match="another order"):
        check_shape(torch.zeros(4, 3), (3, 4))


def test_none_nan_and_wrong_types_are_explained():
    with pytest.raises(CheckFailed, match="forget to `return`"):
        check_close(None, 1.0, name="f()")
    with pytest.raises(CheckFailed, match=r"contains NaN \(first at index \(1,\)\)"):
        check_close(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(CheckFailed, match="should be a Tensor, but it is list"):
        check_type([1, 2], torch.Tensor)
    with pytest.raises(CheckFailed, match="should be a number, array or tensor"):
        check_close("abc", 1.0)


def test_dtype_and_boolean_checks():
    check_dtype(torch.zeros(1), torch.float32)
    with pytest.raises(CheckFailed, match="dtype torch.float64 but should have dtype torch.float32"):
        check_close(torch.zeros(1, dtype=torch.float64), [0.0], check_dtype_of=torch.float32)
    with pytest.raises(CheckFailed, match="custom message"):
        check_true(False, "custom message")


def test_check_failed_is_an_assertion_error_so_nbgrader_counts_it():
    assert issubclass(CheckFailed, AssertionError)


def test_no_tf32_switches_off_and_restores_even_after_an_error():
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with pytest.raises(RuntimeError), no_tf32():
            assert torch.backends.cuda.matmul.allow_tf32 is False
            assert torch.backends.cudnn.allow_tf32 is False
            raise RuntimeError("inside")
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False


# A submission's value may be built to pass any comparison. Each test below builds one such value, shows that
# the check refuses it (without running any of its methods) and that the plain right value still passes.

RIGHT = torch.tensor([1.0, 2.0, 3.0])
WRONG = torch.tensor([9.0, 9.0, 9.0])
NOT_PLAIN = "should be a number, array or tensor, but it is an object of class"


def refused(check, value, *args, pattern=NOT_PLAIN, **kwargs) -> str:
    """Run ``check(value, *args)``, require a CheckFailed matching ``pattern``, and return its message."""
    with pytest.raises(CheckFailed, match=pattern) as info:
        check(value, *args, **kwargs)
    return str(info.value)


class Spy:
    """Records the name of every overriding method a value's class runs."""

    def __init__(self):
        self.calls = []

    def __call__(self, name, result):
        self.calls.append(name)
        return result


def test_a_tensor_subclass_whose_eq_always_holds_is_refused():
    spy = Spy()

    class EqualToEverything(torch.Tensor):
        def __eq__(self, other):
            return spy("__eq__", torch.ones_like(RIGHT, dtype=torch.bool))

        def __ne__(self, other):
            return spy("__ne__", torch.zeros_like(RIGHT, dtype=torch.bool))

        __hash__ = torch.Tensor.__hash__

    message = refused(check_close, WRONG.as_subclass(EqualToEverything), RIGHT, name="f(x)")
    assert message.startswith("f(x) should be") and "EqualToEverything, a subclass of torch.Tensor" in message
    assert "plain" in message and spy.calls == []
    check_close(RIGHT.clone(), RIGHT, name="f(x)")


def test_a_tensor_subclass_whose_torch_function_answers_every_call_is_refused():
    spy = Spy()

    class AnswersEverything(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return spy(getattr(func, "__name__", str(func)), RIGHT.clone())

    wrong = WRONG.as_subclass(AnswersEverything)
    spy.calls.clear()
    refused(check_close, wrong, RIGHT)
    refused(check_shape, wrong, (3,))
    refused(check_dtype, wrong, torch.float32)
    assert spy.calls == []


def test_a_tensor_subclass_whose_difference_and_abs_are_zero_is_refused():
    spy = Spy()

    class NoDifference(torch.Tensor):
        def __sub__(self, other):
            return spy("__sub__", torch.zeros(3))

        def __rsub__(self, other):
            return spy("__rsub__", torch.zeros(3))

        def __abs__(self):
            return spy("__abs__", torch.zeros(3))

    refused(check_close, WRONG.as_subclass(NoDifference), RIGHT)
    assert spy.calls == []


def test_a_tensor_subclass_whose_conversions_return_the_right_value_is_refused():
    spy = Spy()

    class ConvertsToTheAnswer(torch.Tensor):
        def detach(self):
            return spy("detach", RIGHT.clone())

        def to(self, *args, **kwargs):
            return spy("to", RIGHT.clone())

        def cpu(self):
            return spy("cpu", RIGHT.clone())

        def numpy(self, force=False):
            return spy("numpy", RIGHT.numpy().copy())

        def tolist(self):
            return spy("tolist", RIGHT.tolist())

        def __array__(self, dtype=None, copy=None):
            return spy("__array__", RIGHT.numpy().copy())

    refused(check_close, WRONG.as_subclass(ConvertsToTheAnswer), RIGHT)
    assert spy.calls == []


def test_a_tensor_subclass_that_lies_about_its_shape_and_dtype_is_refused():
    spy = Spy()

    class LiesAboutItself(torch.Tensor):
        @property
        def shape(self):
            return spy("shape", torch.Size([2, 3]))

        @property
        def dtype(self):
            return spy("dtype", torch.float32)

    liar = torch.zeros(7, dtype=torch.int64).as_subclass(LiesAboutItself)
    refused(check_shape, liar, (2, 3))
    refused(check_dtype, liar, torch.float32)
    assert spy.calls == []
    check_shape(torch.zeros(2, 3), (2, 3))
    check_dtype(torch.zeros(2, 3), torch.float32)


def test_check_type_refuses_a_tensor_subclass_but_accepts_a_plain_tensor_and_a_parameter():
    class Sub(torch.Tensor):
        pass

    message = refused(check_type, torch.zeros(2).as_subclass(Sub), torch.Tensor,
                      pattern="should be a Tensor, but it is an object of class .*Sub, a subclass of torch.Tensor")
    assert "plain" in message
    check_type(torch.zeros(2), torch.Tensor)
    check_type(torch.nn.Parameter(torch.zeros(2)), torch.Tensor)
    check_type(np.zeros(2), (torch.Tensor, np.ndarray))


def test_check_type_ignores_a_forged_class_attribute():
    class PretendsToBeATensor:
        __class__ = property(lambda self: torch.Tensor)

    assert isinstance(PretendsToBeATensor(), torch.Tensor)  # what the check must not rely on
    refused(check_type, PretendsToBeATensor(), torch.Tensor, pattern="should be a Tensor, but it is an object")
    refused(check_close, PretendsToBeATensor(), RIGHT)


def test_an_array_subclass_whose_ufuncs_and_eq_always_agree_is_refused():
    spy = Spy()

    class AgreesWithEverything(np.ndarray):
        def __eq__(self, other):
            return spy("__eq__", np.ones(3, dtype=bool))

        def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
            return spy("__array_ufunc__", np.zeros(3))

        def __array_function__(self, func, types, args, kwargs):
            return spy("__array_function__", True)

        def __array__(self, dtype=None, copy=None):
            return spy("__array__", RIGHT.numpy().astype(dtype or np.float32))

    wrong = WRONG.numpy().view(AgreesWithEverything)
    message = refused(check_close, wrong, RIGHT.numpy())
    assert "a subclass of numpy.ndarray" in message
    refused(check_shape, wrong, (3,))
    refused(check_dtype, wrong, np.float32)
    assert spy.calls == []
    check_close(RIGHT.numpy().copy(), RIGHT.numpy())


def test_an_object_that_converts_itself_with_float_or_array_is_refused():
    spy = Spy()

    class ConvertsToTwo:
        def __float__(self):
            return spy("__float__", 2.0)

        def __array__(self, dtype=None, copy=None):
            return spy("__array__", np.array(2.0))

    message = refused(check_close, ConvertsToTwo(), 2.0, name="f(x)")
    assert "f(x) should be" in message and "ConvertsToTwo" in message
    refused(check_shape, ConvertsToTwo(), ())
    refused(check_dtype, ConvertsToTwo(), float)
    assert spy.calls == []
    check_close(2.0, 2.0)


def test_a_number_subclass_whose_eq_always_holds_is_refused():
    class EqualFloat(float):
        def __eq__(self, other):
            return True

        __hash__ = float.__hash__

    class EqualInt(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    refused(check_close, EqualFloat(9.0), 2.0, pattern="a subclass of float")
    refused(check_close, EqualInt(9), 2, pattern="a subclass of int")
    check_close(2, 2.0)
    check_close(np.float32(2.0), 2.0)


def test_an_object_array_whose_items_convert_themselves_is_refused():
    class ConvertsToTwo:
        def __float__(self):
            raise AssertionError("the check called __float__")

    items = np.empty(2, dtype=object)
    items[:] = [ConvertsToTwo(), ConvertsToTwo()]
    refused(check_close, items, [2.0, 2.0], pattern="a numpy array of shape \\(2,\\) and dtype object")


def test_a_list_hiding_a_subclass_among_plain_items_is_refused_and_the_item_named():
    class Sub(torch.Tensor):
        pass

    mixed = [torch.ones(2), torch.zeros(2).as_subclass(Sub)]
    refused(check_close, mixed, [[1.0, 1.0], [0.0, 0.0]], name="ws", pattern=r"ws\[1\] should be a number")
    check_close([torch.ones(2), np.zeros(2)], [[1.0, 1.0], [0.0, 0.0]], name="ws")
    with pytest.raises(CheckFailed, match="items have different shapes"):
        check_close([torch.ones(2), torch.ones(3)], [1.0, 1.0])


def test_a_plain_tensor_carrying_its_own_detach_and_numpy_is_read_through_torch():
    wrong = WRONG.clone()
    wrong.detach = lambda: RIGHT.clone()
    wrong.numpy = lambda force=False: RIGHT.numpy().copy()
    refused(check_close, wrong, RIGHT, pattern="differs from the expected value in 3 of 3 entries")


def test_parameters_and_tensors_needing_grad_are_compared_by_value():
    w = torch.nn.Parameter(RIGHT.clone())
    check_close(w, RIGHT)
    check_close(w * 2, RIGHT * 2)
    check_shape(w, (3,))
    check_dtype(w, torch.float32)
    refused(check_close, w, WRONG, pattern="differs from the expected value")


def test_a_torch_function_mode_left_on_cannot_answer_for_the_check():
    from torch.overrides import TorchFunctionMode

    class AllZeros(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            return torch.zeros_like(out) if isinstance(out, torch.Tensor) else out

    mode = AllZeros()
    mode.__enter__()  # as a submission would: entered, never left while the check runs
    try:
        refused(check_close, WRONG.clone(), RIGHT, pattern="differs from the expected value in 3 of 3")
        refused(check_shape, torch.zeros(2, 3), (3, 2), pattern="has shape \\(2, 3\\)")
    finally:
        mode.__exit__(None, None, None)


def test_a_dispatch_mode_left_on_cannot_answer_for_the_check():
    from torch.utils._python_dispatch import TorchDispatchMode

    class AllZeros(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            return torch.zeros_like(out) if isinstance(out, torch.Tensor) else out

    mode = AllZeros()
    mode.__enter__()
    try:
        refused(check_close, WRONG.clone(), RIGHT, pattern="differs from the expected value in 3 of 3")
    finally:
        mode.__exit__(None, None, None)


def test_check_true_refuses_a_condition_that_only_claims_to_hold():
    spy = Spy()

    class AlwaysTrue:
        def __bool__(self):
            return spy("__bool__", True)

    with pytest.raises(CheckFailed, match="lists differ.*not a plain True or False"):
        check_true(AlwaysTrue(), "lists differ")
    assert spy.calls == []
    check_true(True, "never shown")
    check_true(np.bool_(True), "never shown")
    check_true((RIGHT == RIGHT).all(), "never shown")
    with pytest.raises(CheckFailed, match="tensors differ"):
        check_true((RIGHT == WRONG).all(), "tensors differ")
    with pytest.raises(CheckFailed, match="3 entries"):
        check_true(RIGHT == RIGHT, "ambiguous")


def test_check_equal_compares_plain_copies_so_an_always_equal_list_is_refused():
    from nstlab.checks import check_equal

    class AlwaysEqual(list):
        def __eq__(self, other):
            return True

    check_equal([2, 1, 0], [2, 1, 0], name="errors")
    with pytest.raises(CheckFailed, match=r"errors: yours \[2.0, 1.0\], expected \[2.0, 1.0, 0.0\]. Stop at 0\?"):
        check_equal([2, 1], [2, 1, 0], name="errors", hint="Stop at 0?")
    with pytest.raises(CheckFailed):
        check_equal(AlwaysEqual([9, 9, 9]), [2, 1, 0], name="errors")


def test_an_expected_zero_is_compared_by_absolute_error_not_a_huge_relative_one():
    """Against 0 the message gives the absolute error; '1e+08' relative error would tell the student nothing."""
    with pytest.raises(CheckFailed) as info:
        check_close(torch.tensor([0.5, 2.0]), torch.tensor([0.0, 2.0]), name="dE/dw")
    message = str(info.value)
    assert "largest absolute error 0.5 where 0 is expected" in message
    assert "relative error" not in message and "e+" not in message


def test_errors_against_zero_and_non_zero_entries_are_both_reported():
    with pytest.raises(CheckFailed, match=r"largest relative error 0\.5; largest absolute error 1 where 0 is expected"):
        check_close(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0]), name="x")


def test_a_single_number_off_by_a_named_factor_names_the_mistake():
    """A mean instead of ½·sum is off by 2/N; the hint names that mistake, also for the reciprocal factor."""
    n = 8
    factors = {"a mean instead of ½·sum": 2 / n, "the content loss in the other convention": 2.0 * 4 * 4 * 3}
    with pytest.raises(CheckFailed, match=r"0\.25 times the expected value: a mean instead of ½·sum\?"):
        check_close(torch.tensor(1.0), torch.tensor(4.0), name="E", factors=factors)
    with pytest.raises(CheckFailed, match=r"96 times the expected value: the content loss in the other convention\?"):
        check_close(96.0, 1.0, name="L", factors=factors)
    with pytest.raises(CheckFailed, match=r"3 times the expected value: a missing or extra constant factor\?"):
        check_close(3.0, 1.0, name="L", factors=factors)


def test_a_failed_check_in_a_kernel_shows_the_message_and_the_cell_not_the_library_source():
    """In a real IPython kernel the traceback stops at the check cell's own line (frames of checks.py hidden)."""
    import nbformat
    from nbclient import NotebookClient

    cell = nbformat.v4.new_code_cell("from nstlab import checks\nchecks.check_close([1.0, 5.0], [1.0, 2.0], name='x')")
    nb = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    error = next(out for out in nb.cells[0].outputs if out.output_type == "error")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))  # without the terminal colours
    assert error.ename == "CheckFailed" and "differs from the expected value" in error.evalue
    assert "check_close([1.0, 5.0]" in shown
    assert "checks.py" not in shown and "_as_float64" not in shown and "raise CheckFailed" not in shown


def test_a_known_wrong_answer_is_named_before_the_generic_message():
    """The check names the cause when the answer equals a known mistake, even with another shape."""
    from nstlab.losses import gram_matrix

    F = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    mixed = F.transpose(0, 1).reshape(3, -1) @ F.transpose(0, 1).reshape(3, -1).T  # images of the batch mixed
    mistakes = {"the images of the batch are mixed": gram_matrix(F).sum(0)}
    with pytest.raises(CheckFailed, match="equals what this mistake gives: the images of the batch are mixed"):
        check_close(mixed, gram_matrix(F), name="gram_matrix(F)", rtol=1e-5, atol=1e-5, mistakes=mistakes)
    check_close(gram_matrix(F), gram_matrix(F), name="gram_matrix(F)", mistakes=mistakes)  # right answers pass


def test_a_shape_one_entry_off_suggests_an_off_by_one():
    with pytest.raises(CheckFailed, match="off-by-one"):
        check_shape(torch.zeros(3, 2), (4, 2), name="ws")


def test_check_grad_fails_answers_that_carry_no_gradient():
    """A detached value, a numpy round trip and a tensor rebuilt from numbers are right but untrainable."""
    from nstlab.checks import check_grad

    x = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    for wrong in ((x * x).detach(), torch.from_numpy(x.detach().numpy() ** 2), torch.tensor([v * v for v in x.tolist()])):
        with pytest.raises(CheckFailed, match="carries no gradient back to its input"):
            check_grad(wrong, x**2, [x], name="square(x)")
    check_grad(x * x, x**2, [x], name="square(x)")


def test_check_grad_compares_the_gradient_where_answers_agree_in_value():
    """relu written as where(x >= 0, x, 0) has the right values but gradient 1 at 0, where torch.relu has 0."""
    from nstlab.checks import check_grad

    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    with pytest.raises(CheckFailed, match=r"the gradient of relu\(x\) differs .* at \(1,\)"):
        check_grad(torch.where(x >= 0, x, torch.zeros_like(x)), torch.relu(x), [x], name="relu(x)")
    check_grad(torch.where(x > 0, x, torch.zeros_like(x)), torch.relu(x), [x], name="relu(x)")
