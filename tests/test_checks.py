"""Check-cell helpers: they pass on right answers and explain wrong ones."""

from __future__ import annotations

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
