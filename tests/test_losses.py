"""Tests of nstlab.losses: float64 references, invariants, finite differences, analytic against autograd."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch

from nstlab import losses
from nstlab.losses import (
    CONVENTIONS,
    content_gradient,
    content_loss,
    gram_matrix,
    style_layer_gradient,
    style_layer_loss,
    style_loss,
    total_loss,
    total_variation,
)


def rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def relu_features(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rectified activations: about half the entries are exactly zero, as after a ReLU."""
    return rand(*shape, seed=seed, dtype=dtype).clamp(min=0)


# ---------------------------------------------------------------- float64 references written from the paper

def reference_gram(F: np.ndarray) -> np.ndarray:
    """G_ij = sum_k F_ik F_jk for each image, with explicit loops over images."""
    N, C = F.shape[:2]
    out = np.zeros((N, C, C))
    for n in range(N):
        Fl = F[n].reshape(C, -1)
        for i in range(C):
            for j in range(C):
                out[n, i, j] = np.sum(Fl[i] * Fl[j])
    return out


def reference_style_layer(F: np.ndarray, A: np.ndarray) -> float:
    """E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2, summed over images."""
    _, C, H, W = F.shape
    return float(np.sum((reference_gram(F) - A) ** 2) / (4 * C**2 * (H * W) ** 2))


def test_gram_matrix_matches_a_float64_loop_reference():
    F = rand(3, 4, 5, 6, seed=1)
    np.testing.assert_allclose(gram_matrix(F).numpy(), reference_gram(F.double().numpy()), rtol=1e-5, atol=1e-5)


def test_gram_matrix_of_a_batch_is_the_batch_of_gram_matrices():
    F = rand(4, 8, 7, 5, seed=2)
    one_by_one = torch.cat([gram_matrix(F[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(gram_matrix(F), one_by_one)


def test_gram_matrix_is_symmetric_and_positive_semidefinite():
    G = gram_matrix(rand(2, 6, 4, 4, seed=3, dtype=torch.float64))
    torch.testing.assert_close(G, G.transpose(1, 2))
    assert torch.linalg.eigvalsh(G).min() > -1e-10


def test_normalized_gram_matrix_is_divided_by_c_h_w():
    F = rand(2, 3, 4, 5, seed=4)
    torch.testing.assert_close(gram_matrix(F, normalize=True), gram_matrix(F) / (3 * 4 * 5))


def test_gram_matrix_of_half_precision_features_is_float32():
    F = rand(1, 3, 4, 4, seed=5).to(torch.bfloat16)
    assert gram_matrix(F).dtype == torch.float32


def test_content_loss_matches_the_float64_reference_in_both_conventions():
    F, P = rand(2, 3, 4, 5, seed=6), rand(2, 3, 4, 5, seed=7)
    squares = float(np.sum((F.double().numpy() - P.double().numpy()) ** 2))
    assert content_loss(F, P).item() == pytest.approx(0.5 * squares, rel=1e-5)
    dlai = content_loss(F, P, convention="deeplearning_ai").item()
    assert dlai == pytest.approx(squares / (4 * 3 * 4 * 5), rel=1e-5)


def test_style_layer_loss_matches_the_float64_reference():
    F, S = relu_features(2, 5, 6, 4, seed=8), relu_features(2, 5, 6, 4, seed=9)
    A = gram_matrix(S)
    expected = reference_style_layer(F.double().numpy(), A.double().numpy())
    assert style_layer_loss(F, A).item() == pytest.approx(expected, rel=1e-5)
    # Both conventions share the style normalisation 1/(4 n_C^2 (n_H n_W)^2).
    assert style_layer_loss(F, A, convention="deeplearning_ai").item() == pytest.approx(expected, rel=1e-5)


def test_losses_of_identical_inputs_are_zero():
    F = relu_features(2, 4, 5, 5, seed=10)
    assert content_loss(F, F.clone()).item() == 0
    assert style_layer_loss(F, gram_matrix(F)).item() == 0
    assert style_loss({"relu1_1": F}, {"relu1_1": gram_matrix(F)}).item() == 0
    assert total_variation(torch.full((1, 3, 6, 6), 0.3)).item() == 0


def test_losses_are_non_negative():
    F, P = rand(2, 3, 4, 4, seed=11), rand(2, 3, 4, 4, seed=12)
    assert content_loss(F, P) > 0 and style_layer_loss(F, gram_matrix(P)) > 0
    assert total_variation(F, kind="l1") > 0 and total_variation(F, kind="l2") > 0


def test_the_loss_of_a_batch_is_the_sum_of_the_losses_of_its_images():
    F, P = relu_features(3, 4, 5, 5, seed=13), relu_features(3, 4, 5, 5, seed=14)
    A = gram_matrix(P)
    for loss, target in ((content_loss, P), (style_layer_loss, A)):
        single = sum(loss(F[i:i + 1], target[i:i + 1]) for i in range(3))
        torch.testing.assert_close(loss(F, target), single)


def test_a_target_with_batch_size_one_applies_to_every_image():
    F, P = rand(3, 4, 5, 5, seed=15), rand(1, 4, 5, 5, seed=16)
    torch.testing.assert_close(content_loss(F, P), content_loss(F, P.expand(3, -1, -1, -1)))
    A = gram_matrix(P)
    torch.testing.assert_close(style_layer_loss(F, A), style_layer_loss(F, A.expand(3, -1, -1)))


def test_style_loss_by_default_weights_every_target_layer_equally():
    feats = {"relu1_1": rand(1, 3, 8, 8, seed=17), "relu2_1": rand(1, 6, 4, 4, seed=18)}
    grams = {"relu1_1": gram_matrix(rand(1, 3, 8, 8, seed=19)), "relu2_1": gram_matrix(rand(1, 6, 4, 4, seed=20))}
    layer = {name: style_layer_loss(feats[name], grams[name]) for name in feats}
    torch.testing.assert_close(style_loss(feats, grams), (layer["relu1_1"] + layer["relu2_1"]) / 2)
    weighted = style_loss(feats, grams, weights={"relu1_1": 3.0, "relu2_1": 0.0})
    torch.testing.assert_close(weighted, 3 * layer["relu1_1"])
    # Layers left out of `weights` do not count; extra feature layers are ignored.
    only_first = style_loss({**feats, "relu4_2": rand(1, 2, 2, 2)}, grams, weights={"relu1_1": 1.0})
    torch.testing.assert_close(only_first, layer["relu1_1"])


def test_total_variation_matches_a_loop_reference():
    x = rand(2, 3, 5, 4, seed=21, dtype=torch.float64)
    a = x.numpy()
    l1 = l2 = 0.0
    for n, c, i, j in np.ndindex(a.shape):
        for di, dj in ((1, 0), (0, 1)):
            if i + di < a.shape[2] and j + dj < a.shape[3]:
                d = a[n, c, i + di, j + dj] - a[n, c, i, j]
                l1, l2 = l1 + abs(d), l2 + d * d
    assert total_variation(x, kind="l1").item() == pytest.approx(l1)
    assert total_variation(x, kind="l2").item() == pytest.approx(l2)


def test_total_loss_is_alpha_content_plus_beta_style_plus_tv_weight_times_tv():
    feats = {"relu1_1": rand(1, 3, 8, 8, seed=22), "relu4_2": rand(1, 4, 2, 2, seed=23)}
    content = {"relu4_2": rand(1, 4, 2, 2, seed=24)}
    grams = {"relu1_1": gram_matrix(rand(1, 3, 8, 8, seed=25))}
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(26))
    parts = total_loss(feats, content, grams, image=x, tv_weight=0.5, tv_kind="l1")
    torch.testing.assert_close(parts.content, content_loss(feats["relu4_2"], content["relu4_2"]))
    torch.testing.assert_close(parts.style, style_loss(feats, grams))
    torch.testing.assert_close(parts.tv, total_variation(x, kind="l1"))
    gatys = CONVENTIONS["gatys"]
    torch.testing.assert_close(parts.total, gatys.alpha * parts.content + gatys.beta * parts.style + 0.5 * parts.tv)
    dlai = total_loss(feats, content, grams, convention="deeplearning_ai")
    torch.testing.assert_close(dlai.total, 10 * dlai.content + 40 * dlai.style)
    assert dlai.tv.item() == 0
    mine = total_loss(feats, content, grams, alpha=2.0, beta=0.0)
    torch.testing.assert_close(mine.total, 2 * mine.content)


def test_conventions_are_declared_with_their_alpha_beta_and_normalisations():
    gatys, dlai = CONVENTIONS["gatys"], CONVENTIONS["deeplearning_ai"]
    assert (gatys.alpha, gatys.beta) == (1.0, 1e3) and (dlai.alpha, dlai.beta) == (10.0, 40.0)
    assert gatys.content_factor(64, 32, 32) == 0.5
    assert dlai.content_factor(64, 32, 32) == 1 / (4 * 64 * 32 * 32)
    assert gatys.style_factor(64, 1024) == dlai.style_factor(64, 1024) == 1 / (4 * 64**2 * 1024**2)
    custom = dataclasses.replace(gatys, name="mine", content_normalisation="1/(4 n_H n_W n_C)", alpha=2.0)
    assert custom.content_factor(2, 3, 4) == 1 / 96 and losses.get_convention(custom) is custom
    with pytest.raises(ValueError, match="unknown content normalisation '1/3'"):
        dataclasses.replace(gatys, content_normalisation="1/3").content_factor(1, 1, 1)
    # The module docstring declares the convention; it is the contract the notebooks quote.
    for formula in ("4 N_l^2 M_l^2", r"\tfrac12", "4 n_H n_W n_C", r"\alpha = 10, \beta = 40"):
        assert formula in losses.__doc__


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("convention", ["gatys", "deeplearning_ai"])
def test_loss_gradients_match_finite_differences(convention):
    F = rand(2, 3, 3, 4, seed=27, dtype=torch.float64).requires_grad_()
    P, S = rand(2, 3, 3, 4, seed=28, dtype=torch.float64), rand(1, 3, 3, 4, seed=29, dtype=torch.float64)
    A = gram_matrix(S)
    assert torch.autograd.gradcheck(lambda f: content_loss(f, P, convention=convention), (F,))
    assert torch.autograd.gradcheck(lambda f: style_layer_loss(f, A, convention=convention), (F,))
    assert torch.autograd.gradcheck(lambda f: total_variation(f, kind="l2"), (F,))
    assert torch.autograd.gradcheck(
        lambda f: total_loss({"a": f, "b": f}, {"b": P}, {"a": A}, image=f, tv_weight=0.1,
                             convention=convention).total, (F,))


def test_the_gram_matrix_backward_pass_equals_autograd_of_the_plain_product():
    F = rand(2, 3, 4, 5, seed=38, dtype=torch.float64).requires_grad_()
    dG = rand(2, 3, 3, seed=39, dtype=torch.float64)  # not symmetric: the general case
    (ours,) = torch.autograd.grad(gram_matrix(F), F, dG)
    F_flat = F.reshape(2, 3, 20)
    (plain,) = torch.autograd.grad(F_flat @ F_flat.transpose(1, 2), F, dG)
    torch.testing.assert_close(ours, plain)
    assert torch.autograd.gradgradcheck(lambda f: gram_matrix(f, normalize=True), (F,))


def test_channels_last_features_give_the_same_gram_and_their_gradient_in_their_own_layout():
    """The networks hand back channels-last activations: the Gram and its gradient are the same numbers, the
    gradient comes back channels-last (no copy into the other layout), and it is differentiable again."""
    F = rand(2, 3, 4, 5, seed=40, dtype=torch.float64)
    last = F.contiguous(memory_format=torch.channels_last).requires_grad_()
    plain = F.clone().requires_grad_()
    dG = rand(2, 3, 3, seed=41, dtype=torch.float64)
    torch.testing.assert_close(gram_matrix(last), gram_matrix(plain))
    (g_last,) = torch.autograd.grad(gram_matrix(last), last, dG)
    (g_plain,) = torch.autograd.grad(gram_matrix(plain), plain, dG)
    torch.testing.assert_close(g_last, g_plain)
    assert g_last.is_contiguous(memory_format=torch.channels_last) and not g_last.is_contiguous()
    assert torch.autograd.gradgradcheck(lambda f: gram_matrix(f, normalize=True), (last,))


@pytest.mark.parametrize("convention", ["gatys", "deeplearning_ai"])
def test_analytic_content_gradient_equals_autograd_through_the_relu(convention):
    X = rand(2, 4, 5, 5, seed=30, dtype=torch.float64).requires_grad_()  # pre-activation
    P = relu_features(2, 4, 5, 5, seed=31, dtype=torch.float64)
    F = torch.relu(X)
    (autograd,) = torch.autograd.grad(content_loss(F, P, convention=convention), X)
    torch.testing.assert_close(content_gradient(F.detach(), P, convention=convention), autograd)
    Fd = F.detach().requires_grad_()
    (wrt_F,) = torch.autograd.grad(content_loss(Fd, P, convention=convention), Fd)
    torch.testing.assert_close(content_gradient(Fd.detach(), P, convention=convention, mask=False), wrt_F)


@pytest.mark.parametrize("convention", ["gatys", "deeplearning_ai"])
def test_analytic_style_gradient_equals_autograd_through_the_relu(convention):
    X = rand(2, 4, 5, 3, seed=32, dtype=torch.float64).requires_grad_()
    A = gram_matrix(relu_features(1, 4, 5, 3, seed=33, dtype=torch.float64))
    F = torch.relu(X)
    (autograd,) = torch.autograd.grad(style_layer_loss(F, A, convention=convention), X)
    torch.testing.assert_close(style_layer_gradient(F.detach(), A, convention=convention), autograd)
    Fd = F.detach().requires_grad_()
    (wrt_F,) = torch.autograd.grad(style_layer_loss(Fd, A, convention=convention), Fd)
    torch.testing.assert_close(style_layer_gradient(Fd.detach(), A, convention=convention, mask=False), wrt_F)


def test_analytic_gradients_match_central_finite_differences():
    """Perturb single entries of F (away from the ReLU's kink) and compare the loss change with the formula."""
    F = relu_features(1, 3, 4, 4, seed=40, dtype=torch.float64) + 0.1  # all positive: the mask is 1
    P = rand(1, 3, 4, 4, seed=41, dtype=torch.float64)
    A = gram_matrix(relu_features(1, 3, 4, 4, seed=42, dtype=torch.float64))
    eps = 1e-6
    for loss, gradient, target in ((content_loss, content_gradient, P), (style_layer_loss, style_layer_gradient, A)):
        analytic = gradient(F, target)
        for index in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 2, 3, 1)]:
            up, down = F.clone(), F.clone()
            up[index] += eps
            down[index] -= eps
            numeric = (loss(up, target) - loss(down, target)) / (2 * eps)
            assert analytic[index].item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9)


def test_analytic_style_gradient_is_the_caffe_formula():
    """c (G - A) F masked by F > 0 with c = 1 / (N_l^2 M_l^2), written out as in the Caffe-era code."""
    F = relu_features(1, 3, 4, 4, seed=34, dtype=torch.float64)
    A = gram_matrix(relu_features(1, 3, 4, 4, seed=35, dtype=torch.float64))
    Fl = F[0].reshape(3, 16).numpy()
    El = Fl @ Fl.T - A[0].numpy()
    expected = (3**-2 * 16**-2 * El @ Fl * (Fl > 0)).reshape(1, 3, 4, 4)
    np.testing.assert_allclose(style_layer_gradient(F, A).numpy(), expected)


# ---------------------------------------------------------------- inputs

def test_losses_leave_their_inputs_untouched():
    F, P = rand(1, 3, 4, 4, seed=36), rand(1, 3, 4, 4, seed=37)
    F0, P0 = F.clone(), P.clone()
    A = gram_matrix(P)
    A0 = A.clone()
    content_loss(F, P), style_layer_loss(F, A), content_gradient(F, P), style_layer_gradient(F, A)
    total_variation(F), total_loss({"a": F}, {"a": P}, {"a": A}, image=F, tv_weight=1.0)
    assert torch.equal(F, F0) and torch.equal(P, P0) and torch.equal(A, A0)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4, 4), torch.zeros(1, 1, 3, 4, 4), torch.zeros(5)])
def test_features_of_the_wrong_rank_are_rejected_with_their_shape(bad):
    for call in (lambda: gram_matrix(bad), lambda: content_loss(bad, bad), lambda: total_variation(bad),
                 lambda: style_layer_loss(bad, torch.zeros(1, 3, 3)), lambda: content_gradient(bad, bad)):
        with pytest.raises(ValueError, match=r"\(N, C, H, W\).*" + re.escape(str(tuple(bad.shape)))):
            call()


def test_mismatched_targets_are_rejected():
    F = rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="P has shape"):
        content_loss(F, rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="A_gram has shape"):
        style_layer_loss(F, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="A_gram has shape"):
        style_layer_gradient(F, torch.zeros(3, 3))
    with pytest.raises(TypeError, match="floating-point"):
        gram_matrix(torch.zeros(1, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="tensor"):
        gram_matrix(np.zeros((1, 3, 4, 4)))


def test_bad_weights_layers_and_options_are_rejected():
    feats = {"relu1_1": rand(1, 3, 4, 4)}
    grams = {"relu1_1": gram_matrix(feats["relu1_1"])}
    with pytest.raises(ValueError, match="weight of style layer 'relu1_1' must be a finite number >= 0"):
        style_loss(feats, grams, weights={"relu1_1": -1.0})
    with pytest.raises(ValueError, match="no target Gram matrix"):
        style_loss(feats, grams, weights={"relu9_9": 1.0})
    with pytest.raises(ValueError, match="features lack the style layer"):
        style_loss({}, grams)
    with pytest.raises(ValueError, match="target_grams is empty"):
        style_loss(feats, {})
    with pytest.raises(ValueError, match="alpha must be"):
        total_loss(feats, {"relu1_1": feats["relu1_1"]}, grams, alpha=-1.0)
    with pytest.raises(ValueError, match="beta must be"):
        total_loss(feats, {"relu1_1": feats["relu1_1"]}, grams, beta=math.nan)
    with pytest.raises(ValueError, match="pass image=x"):
        total_loss(feats, {"relu1_1": feats["relu1_1"]}, grams, tv_weight=1.0)
    with pytest.raises(ValueError, match="features lack the content layer"):
        total_loss(feats, {"relu4_2": feats["relu1_1"]}, grams)
    with pytest.raises(ValueError, match="unknown convention 'keras'"):
        content_loss(feats["relu1_1"], feats["relu1_1"], convention="keras")
    with pytest.raises(ValueError, match="kind must be one of"):
        total_variation(feats["relu1_1"], kind="l3")

