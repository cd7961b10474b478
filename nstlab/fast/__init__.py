r"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016): a network trained once per style, applied in one pass.

The modules, one concept each, read in this order:

* :mod:`nstlab.fast.network`: the image transform network (instance normalisation, residual blocks,
  upsampling convolutions);
* :mod:`nstlab.fast.loss`: the perceptual loss through a frozen VGG16, next to Gatys' convention;
* :mod:`nstlab.fast.config`: the settings of a training run and the presets of the profiles;
* :mod:`nstlab.fast.train`: one training step.

The public names are importable from ``nstlab.fast`` itself.
"""

from nstlab.fast.config import PRESETS, STYLE_WEIGHT, FastConfig, fast_config
from nstlab.fast.loss import JOHNSON_CONTENT_LAYER, JOHNSON_STYLE_LAYERS, johnson_gram, perceptual_loss, style_targets
from nstlab.fast.network import (
    MIN_SIDE,
    PAPER,
    SMALL,
    ResidualBlock,
    TransformNet,
    UpsampleConv,
    count_parameters,
    instance_norm,
)
from nstlab.fast.train import TrainingDiverged, train_step

__all__ = [
    "JOHNSON_CONTENT_LAYER", "JOHNSON_STYLE_LAYERS", "MIN_SIDE", "PAPER", "PRESETS", "SMALL", "STYLE_WEIGHT",
    "FastConfig", "ResidualBlock", "TrainingDiverged", "TransformNet", "UpsampleConv", "count_parameters",
    "fast_config", "instance_norm", "johnson_gram", "perceptual_loss", "style_targets", "train_step",
]
