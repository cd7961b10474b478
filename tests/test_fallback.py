"""The untrained stand-in still shows the lessons of notebooks 05 and 06, measured, not judged by eye.

Offline, the notebooks run on a random VGG19 (He initialisation, seeded), normalised per layer and with
average pooling. Random-weight networks can synthesise textures once their activations are scaled sensibly
(He, Wang & Hopcroft 2016; Ustyuzhaninov et al. 2017). These tests check, at the grade profile's sizes, the
two things the notebooks' figures must show: along a sweep of the style weight the result moves away from
the photo while its style loss falls; and content reconstructions get worse the deeper the layer.
"""

from __future__ import annotations

import pytest
import torch

from nstlab import data, losses, transfer
from nstlab.style_config import STAND_IN_BETA, StyleConfig
from nstlab.stylize import stylize
from nstlab.vgg import VGGFeatures
from nstlab.weights import load_backbone

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SIZE = 48  # notebook 06's comparison size in the grade profile; the photo's short side is VGG's minimum, 32
CONTENT, STYLE = ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.fixture(scope="module")
def stand_in():
    """The backbone an offline notebook gets (NSTLAB_OFFLINE is set for every test)."""
    backbone = load_backbone("vgg19", fallback="untrained", seed=0, normalised=True)
    assert not backbone.pretrained and backbone.normalised and backbone.note.startswith("UNTRAINED")
    return backbone


@pytest.fixture(scope="module")
def photo_and_painting():
    return data.builtin_image("chelsea", size=SIZE), data.builtin_image("mosaic", size=SIZE)


def test_along_a_sweep_of_the_style_weight_the_style_loss_falls_and_the_photo_recedes(stand_in, photo_and_painting):
    """beta = 1e1 ... STAND_IN_BETA: each result has a lower style loss, a higher content loss and lies further
    from the photo in pixels than the one before; the smallest beta keeps the photo."""
    photo, painting = photo_and_painting
    extractor = VGGFeatures(CONTENT + STYLE, backbone=stand_in, pool="avg")
    with torch.no_grad():
        P = {name: extractor(photo)[name] for name in CONTENT}
        A = {name: losses.gram_matrix(extractor(painting)[name]) for name in STYLE}
    rows = []
    # scipy's L-BFGS-B searches its own step length, so that every beta gets a comparable optimisation
    for beta in (1e1, 1e2, 1e3, STAND_IN_BETA):
        config = StyleConfig(size=SIZE, steps=8, beta=beta, optimizer="lbfgsb", content_layers=CONTENT,
                             style_layers=STYLE, precision="fp32", seed=0)
        image = stylize(photo, painting, config, extractor=extractor, show_progress=False).image
        with torch.no_grad():
            features = extractor(image)
            style = float(losses.style_loss(features, A))
            content = float(sum(losses.content_loss(features[name], P[name]) for name in CONTENT))
        rows.append((beta, style, content, float((image - photo).abs().mean())))
    for (b0, s0, c0, d0), (b1, s1, c1, d1) in zip(rows, rows[1:], strict=False):
        assert s1 < 0.9 * s0, f"style loss did not fall from beta={b0:g} to {b1:g}: {rows}"
        assert c1 > 1.5 * c0, f"content loss did not grow from beta={b0:g} to {b1:g}: {rows}"
        assert d1 > d0, f"the result did not move away from the photo from beta={b0:g} to {b1:g}: {rows}"
    assert rows[0][3] < 0.02, f"beta=1e1 should keep the photo: {rows}"


def test_content_reconstructions_get_worse_the_deeper_the_layer(stand_in, photo_and_painting):
    """Reconstructing the photo from noise to match one layer (notebook 05): relu1_1 gives the photo back, and
    each deeper layer's reconstruction is further from it in pixels."""
    photo, _ = photo_and_painting
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    extractor = VGGFeatures(layers, backbone=stand_in, pool="avg")
    errors = [float((transfer.reconstruct(extractor, photo, name, steps=30, seed=0) - photo).abs().mean())
              for name in layers]
    assert errors[0] < 0.05, errors
    for shallow, deep in zip(errors, errors[1:], strict=False):
        assert deep > 1.3 * shallow, f"mean pixel errors by depth {dict(zip(layers, errors, strict=True))}"
