"""Tests of the perceptual loss of nstlab.fast: against hand computations, against Gatys' convention in
nstlab.losses (Gram, style and content terms), and one training step that moves the network."""

from __future__ import annotations

import math

import pytest
import torch

from nstlab import losses
from nstlab.fast import (
    JOHNSON_CONTENT_LAYER,
    JOHNSON_STYLE_LAYERS,
    TrainingDiverged,
    TransformNet,
    instance_norm,
    johnson_gram,
    perceptual_loss,
    style_targets,
    train_step,
    tv_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_johnson_gram_is_gatys_gram_divided_by_chw():
    F = rand(2, 5, 4, 3)
    torch.testing.assert_close(johnson_gram(F), losses.gram_matrix(F) / (5 * 4 * 3))
    torch.testing.assert_close(johnson_gram(F), losses.gram_matrix(F, normalize=True))


def test_johnson_gram_by_hand_loops():
    """G[n, c, d] = sum over pixels of F[n, c] F[n, d], divided by C H W, one image at a time."""
    F = rand(2, 3, 2, 2, seed=1)
    G = torch.empty(2, 3, 3, dtype=torch.float64)
    for n in range(2):
        for c in range(3):
            for d in range(3):
                G[n, c, d] = sum(F[n, c, h, w] * F[n, d, h, w] for h in range(2) for w in range(2)) / 12
    torch.testing.assert_close(johnson_gram(F), G)


def test_johnson_gram_rejects_a_missing_batch_dimension():
    with pytest.raises(ValueError, match=r"got \(3, 4, 4\).*F\[None\]"):
        johnson_gram(torch.rand(3, 4, 4))


def features(seed, N=2):
    return {"relu1_2": rand(N, 4, 8, 8, seed=seed), "relu2_2": rand(N, 6, 4, 4, seed=seed + 1),
            "relu3_3": rand(N, 8, 2, 2, seed=seed + 2)}


def test_perceptual_loss_against_a_hand_computation():
    """content = sum (F - P)^2 / (N C H W); style = sum over layers of ||G - A||_F^2 / N; total weighs them."""
    feats, other = features(0), features(10, N=1)
    P = rand(2, 6, 4, 4, seed=20)
    grams = {layer: johnson_gram(other[layer]) for layer in ("relu1_2", "relu3_3")}
    total, content, style = perceptual_loss(feats, P, grams, content_weight=2.0, style_weight=3.0)
    want_content = ((feats["relu2_2"] - P) ** 2).sum() / (2 * 6 * 4 * 4)
    want_style = sum(((johnson_gram(feats[k][n:n + 1]) - grams[k]) ** 2).sum() for k in grams for n in range(2)) / 2
    torch.testing.assert_close(content, want_content)
    torch.testing.assert_close(style, want_style)
    torch.testing.assert_close(total, 2.0 * want_content + 3.0 * want_style)


def test_the_loss_of_a_batch_is_the_mean_of_its_images_losses():
    feats, P = features(0, N=3), rand(3, 6, 4, 4, seed=5)
    grams = {"relu1_2": johnson_gram(features(9, N=1)["relu1_2"])}
    whole = perceptual_loss(feats, P, grams)
    parts = [perceptual_loss({k: v[n:n + 1] for k, v in feats.items()}, P[n:n + 1], grams) for n in range(3)]
    for i in range(3):
        torch.testing.assert_close(whole[i], sum(p[i] for p in parts) / 3)


def test_style_term_is_four_times_gatys_style_layer_loss():
    """For one image, ||G_J - A_J||^2 = 4 E_l (Gatys), so the style term is 4 L times Gatys' equally weighted
    style loss; and the feature term is 2 / (C H W) times Gatys' content loss."""
    feats, style = features(0, N=1), features(7, N=1)
    layers = ("relu1_2", "relu2_2", "relu3_3")
    grams = {k: johnson_gram(style[k]) for k in layers}
    P = rand(1, 6, 4, 4, seed=3)
    _, content, johnson_style = perceptual_loss(feats, P, grams)
    gatys_layers = [losses.style_layer_loss(feats[k], losses.gram_matrix(style[k])) for k in layers]
    torch.testing.assert_close(johnson_style, 4 * sum(gatys_layers))
    gatys_style = losses.style_loss(feats, {k: losses.gram_matrix(style[k]) for k in layers})  # w_l = 1/L
    torch.testing.assert_close(johnson_style, 4 * len(layers) * gatys_style)
    torch.testing.assert_close(content, 2 / (6 * 4 * 4) * losses.content_loss(feats["relu2_2"], P))


def test_loss_is_zero_when_output_matches_both_targets():
    feats = features(0, N=1)
    grams = {k: johnson_gram(feats[k]) for k in feats}
    total, content, style = perceptual_loss(feats, feats["relu2_2"], grams)
    assert total.item() == content.item() == style.item() == 0.0


def test_total_variation_is_a_per_value_mean_of_gatys_total_variation():
    image = rand(2, 3, 8, 8, seed=4)
    torch.testing.assert_close(tv_loss(image), losses.total_variation(image) / image.numel())
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0


def test_training_adds_the_weighted_total_variation(extractor):
    """The loop's step with tv_weight adds tv_weight * tv_loss(y_hat) to the loss of train_step."""
    from nstlab.fast.train import _step

    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    grams = style_targets(extractor, torch.rand(1, 3, 32, 32))
    batch = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tv = tv_loss(net(batch)).item()
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)  # measures without moving the network
    plain = train_step(net, extractor, frozen, batch, grams)[0]
    with_tv = _step(net, extractor, frozen, batch, grams, content_layer=JOHNSON_CONTENT_LAYER, content_weight=1.0,
                    style_weight=1e5, tv_weight=0.5)[0]
    assert math.isclose(with_tv - plain, 0.5 * tv, rel_tol=1e-3, abs_tol=1e-7)


def test_the_exercise_signatures_are_the_agreed_ones():
    """Notebook 07's exercises re-implement these with exactly these parameter names (tests/test_notebooks.py)."""
    import inspect

    def names(fn):
        return list(inspect.signature(fn).parameters)

    assert names(perceptual_loss) == ["features", "content_features", "style_grams", "content_layer",
                                      "content_weight", "style_weight"]
    assert names(train_step) == ["net", "extractor", "optimizer", "batch", "style_grams", "content_layer",
                                 "content_weight", "style_weight"]
    assert names(johnson_gram) == ["F"] and names(instance_norm) == ["x", "weight", "bias", "eps"]


@pytest.mark.parametrize("change, message", [
    (dict(content_layer="relu4_3"), "lack the content layer 'relu4_3'"),
    (dict(style_weight=-1.0), "style_weight must be a finite number >= 0"),
    (dict(style_weight=float("nan")), "style_weight must be a finite number >= 0"),
])
def test_bad_arguments_say_what_is_wrong(change, message):
    feats = features(0)
    grams = {"relu1_2": johnson_gram(feats["relu1_2"][:1])}
    with pytest.raises(ValueError, match=message):
        perceptual_loss(feats, feats["relu2_2"], grams, **change)


def test_mismatched_targets_name_their_shapes():
    feats = features(0)
    with pytest.raises(ValueError, match=r"style_grams\['relu1_2'\] has shape \(1, 3, 3\)"):
        perceptual_loss(feats, feats["relu2_2"], {"relu1_2": torch.zeros(1, 3, 3, dtype=torch.float64)})
    with pytest.raises(ValueError, match="lack the style layer"):
        perceptual_loss(feats, feats["relu2_2"], {"relu4_3": torch.zeros(1, 3, 3)})
    with pytest.raises(ValueError, match="content_features has shape"):
        perceptual_loss(feats, rand(2, 6, 2, 2), {"relu1_2": johnson_gram(feats["relu1_2"][:1])})


@pytest.fixture(scope="module")
def extractor():
    from nstlab.vgg import VGGFeatures
    from nstlab.weights import untrained_backbone

    layers = (*JOHNSON_STYLE_LAYERS, JOHNSON_CONTENT_LAYER)
    return VGGFeatures(layers, backbone=untrained_backbone("vgg16"))


def test_train_step_returns_the_loss_before_the_update_and_changes_the_network(extractor):
    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    grams = style_targets(extractor, torch.rand(1, 3, 32, 32))
    batch = torch.rand(2, 3, 32, 32)
    before = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        content_features = extractor(batch)[JOHNSON_CONTENT_LAYER]
        expected = perceptual_loss(extractor(net(batch)), content_features, grams, style_weight=10.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    total, content, style = train_step(net, extractor, opt, batch, grams, style_weight=10.0)
    assert all(isinstance(v, float) for v in (total, content, style))
    assert math.isclose(total, expected[0].item(), rel_tol=1e-4)
    assert math.isclose(content, expected[1].item(), rel_tol=1e-4)
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert all(p.grad is None for p in extractor.parameters())  # the loss network stays frozen


def test_a_few_steps_on_one_batch_lower_the_loss(extractor):
    torch.manual_seed(1)
    net = TransformNet(width=4, blocks=1)
    grams = style_targets(extractor, torch.rand(1, 3, 32, 32))
    batch = torch.rand(2, 3, 32, 32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    history = [train_step(net, extractor, opt, batch, grams, style_weight=10.0)[0] for _ in range(8)]
    assert history[-1] < 0.7 * history[0], history


def test_a_nan_loss_stops_with_the_step_and_leaves_the_network_unchanged(extractor):
    net = TransformNet(width=4, blocks=1)
    grams = style_targets(extractor, torch.rand(1, 3, 32, 32))
    grams = {k: torch.full_like(v, float("nan")) for k, v in grams.items()}
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    with pytest.raises(TrainingDiverged, match="in this step .*Lower the learning rate"):
        train_step(net, extractor, opt, torch.rand(1, 3, 32, 32), grams)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
