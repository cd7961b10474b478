"""Tests of nstlab.statistics: mean/std and AdaIN against torch oracles, the Gram-MMD identity in float64, the
linear-kernel MMD as a distance of means, the style losses by name, and clear errors for wrong shapes."""

from __future__ import annotations

import pytest
import torch

from nstlab import losses
from nstlab.statistics import (
    STYLE_LOSSES,
    adain,
    gram_style_as_mmd,
    mean_std,
    mean_std_loss,
    mmd2,
    style_layer_loss,
    style_target,
)


def features(*shape, seed=0, dtype=torch.float64):
    """Rectified random activations, like a ReLU layer's."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(*shape, generator=g, dtype=dtype))


def test_mean_std_match_torch_biased_statistics_with_eps_inside_the_root():
    F = features(2, 5, 6, 7)
    mu, sigma = mean_std(F, eps=1e-5)
    assert mu.shape == sigma.shape == (2, 5)
    torch.testing.assert_close(mu, F.mean(dim=(2, 3)))
    torch.testing.assert_close(sigma, torch.sqrt(torch.var(F, dim=(2, 3), unbiased=False) + 1e-5))


def test_mean_std_loss_is_the_squared_distance_of_the_statistics_averaged_over_the_batch():
    F, S = features(3, 4, 5, 5, seed=1), features(1, 4, 7, 3, seed=2)
    mu_f, sd_f = F.mean(dim=(2, 3)), F.std(dim=(2, 3), unbiased=False)
    mu_s, sd_s = S.mean(dim=(2, 3)), S.std(dim=(2, 3), unbiased=False)
    expected = (((mu_f - mu_s) ** 2).sum(1) + ((sd_f - sd_s) ** 2).sum(1)).mean()
    torch.testing.assert_close(mean_std_loss(F, S, eps=0.0), expected)
    assert mean_std_loss(S, S).item() == 0.0


def test_mean_std_loss_gradient_passes_a_finite_difference_check():
    F = features(1, 3, 4, 4, seed=3).requires_grad_(True)
    S = features(1, 3, 5, 5, seed=4)
    assert torch.autograd.gradcheck(lambda F: mean_std_loss(F, S), (F,))


def test_adain_gives_the_content_the_style_statistics_and_keeps_the_normalised_content():
    c, s = features(2, 6, 8, 8, seed=5), 2.0 + 3.0 * features(1, 6, 5, 9, seed=6)
    c_before = c.clone()
    t = adain(c, s)
    assert t.shape == c.shape and torch.equal(c, c_before)  # the input is untouched
    mu_t, sd_t = mean_std(t, eps=0.0)
    mu_s, sd_s = mean_std(s, eps=1e-5)
    torch.testing.assert_close(mu_t, mu_s.expand(2, 6))
    # sigma(t) = sigma_s * sigma_c(eps=0) / sigma_c(eps): equal to the style's up to eps
    torch.testing.assert_close(sd_t, sd_s.expand(2, 6), rtol=1e-4, atol=0)
    # the normalised content is unchanged: instance norm of t equals instance norm of c
    norm = torch.nn.functional.instance_norm
    torch.testing.assert_close(norm(t, eps=0.0), norm(c, eps=0.0), rtol=1e-6, atol=1e-6)


def test_adain_of_a_style_with_itself_is_the_identity():
    s = features(1, 4, 6, 6, seed=7)
    torch.testing.assert_close(adain(s, s), s)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 16, 6, 6), (2, 8, 3, 7)])
def test_gram_style_loss_equals_quadratic_mmd_over_4_N_squared_in_float64(shape):
    """E_l = MMD^2_quad / (4 N_l^2) for two images with the same positions, to float64 precision."""
    F, S = features(*shape, seed=8), features(*shape, seed=9)
    gatys = losses.style_layer_loss(F, losses.gram_matrix(S))
    N, C = shape[:2]
    by_hand = sum(mmd2(F[n].flatten(1).T, S[n].flatten(1).T) for n in range(N)) / (4 * C**2)
    torch.testing.assert_close(by_hand, gatys, rtol=1e-12, atol=0)
    torch.testing.assert_close(gram_style_as_mmd(F, S), gatys, rtol=1e-12, atol=0)


def test_with_different_sizes_the_mmd_compares_grams_divided_by_their_own_positions():
    """M != M': MMD^2 = ||G/M - A/M'||^2, so E_l matches only with A rescaled to M/M'."""
    F, S = features(1, 5, 4, 4, seed=10), features(1, 5, 6, 3, seed=11)
    M, M_s = 16, 18
    G, A = losses.gram_matrix(F), losses.gram_matrix(S)
    torch.testing.assert_close(mmd2(F[0].flatten(1).T, S[0].flatten(1).T), ((G / M - A / M_s) ** 2).sum(),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(gram_style_as_mmd(F, S), losses.style_layer_loss(F, A * M / M_s), rtol=1e-12, atol=0)
    assert not torch.allclose(gram_style_as_mmd(F, S), losses.style_layer_loss(F, A), rtol=1e-3)


def test_linear_kernel_mmd_is_the_squared_distance_of_the_means():
    g = torch.Generator().manual_seed(12)
    X, Y = torch.randn(30, 7, generator=g, dtype=torch.float64), torch.randn(11, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mmd2(X, Y, kernel="linear"), ((X.mean(0) - Y.mean(0)) ** 2).sum(), rtol=1e-12, atol=1e-15)


def test_mmd_of_a_sample_with_itself_is_zero_and_otherwise_positive():
    g = torch.Generator().manual_seed(13)
    X, Y = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    for kernel in ("quadratic", "linear"):
        assert abs(mmd2(X, X, kernel=kernel).item()) < 1e-12
        assert mmd2(X, Y, kernel=kernel).item() > 0


@pytest.mark.parametrize("kind", STYLE_LOSSES)
def test_each_style_loss_is_zero_at_its_own_target_and_positive_elsewhere(kind):
    F, S = features(1, 6, 5, 5, seed=14, dtype=torch.float32), features(1, 6, 5, 5, seed=15, dtype=torch.float32)
    assert style_layer_loss(S, style_target(S, kind=kind), kind=kind).item() == pytest.approx(0.0, abs=1e-6)
    assert style_layer_loss(F, style_target(S, kind=kind), kind=kind).item() > 0


def test_style_losses_by_name_agree_with_their_definitions():
    F, S = features(1, 6, 5, 5, seed=16), features(1, 6, 4, 7, seed=17)
    torch.testing.assert_close(style_layer_loss(F, style_target(S, kind="gram"), kind="gram"),
                               losses.style_layer_loss(F, losses.gram_matrix(S)))
    torch.testing.assert_close(style_layer_loss(F, style_target(S, kind="mean_std"), kind="mean_std"),
                               mean_std_loss(F, S))
    torch.testing.assert_close(style_layer_loss(F, style_target(S, kind="mmd_linear"), kind="mmd_linear"),
                               mmd2(F[0].flatten(1).T, S[0].flatten(1).T, kernel="linear"))


BAD = {
    "mean_std of an unbatched tensor": (lambda: mean_std(torch.zeros(3, 4, 4)), ValueError, "F[None]"),
    "adain with other channels": (lambda: adain(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 4)), ValueError,
                                  "same channels"),
    "mean_std_loss with a batch of 2 against 3": (lambda: mean_std_loss(torch.zeros(3, 2, 4, 4), torch.zeros(2, 2, 4, 4)),
                                                  ValueError, "batch size of 3 or 1"),
    "mmd2 of features not samples": (lambda: mmd2(torch.zeros(1, 3, 4, 4), torch.zeros(5, 3)), ValueError,
                                     "F[0].flatten(1).T"),
    "mmd2 with other widths": (lambda: mmd2(torch.zeros(5, 3), torch.zeros(5, 4)), ValueError, "same C"),
    "mmd2 unknown kernel": (lambda: mmd2(torch.zeros(5, 3), torch.zeros(5, 3), kernel="rbf"), ValueError, "'quadratic'"),
    "integer features": (lambda: mean_std(torch.zeros(1, 3, 4, 4, dtype=torch.long)), TypeError, ".float()"),
    "unknown style loss": (lambda: style_target(torch.zeros(1, 3, 4, 4), kind="cosine"), ValueError, "'mean_std'"),
    "style target of another shape": (lambda: style_layer_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4),
                                                                kind="mean_std"), ValueError, "style_target"),
}


@pytest.mark.parametrize("case", BAD)
def test_wrong_shapes_and_names_get_an_error_that_names_the_fix(case):
    call, kind, words = BAD[case]
    with pytest.raises(kind) as info:
        call()
    assert words in str(info.value), str(info.value)
