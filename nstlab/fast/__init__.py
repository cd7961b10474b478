r"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016): a network trained once per style, applied in one pass.

The modules, one concept each, read in this order:

* :mod:`nstlab.fast.network`: the image transform network (instance normalisation, residual blocks,
  upsampling convolutions);
* :mod:`nstlab.fast.loss`: the perceptual loss through a frozen VGG16, next to Gatys' convention;
* :mod:`nstlab.fast.config`: the settings of a training run and the presets of the profiles;
* :mod:`nstlab.fast.data`: training photos from a folder or the built-in images, as random crops;
* :mod:`nstlab.fast.model_file`: trained models, applying them, and their one-file format on disk;
* :mod:`nstlab.fast.train`: one training step, and the training loop with checkpoints;
* :mod:`nstlab.fast.export`: ONNX (checked in onnxruntime) and Core ML for deployment.

The public names are importable from ``nstlab.fast`` itself.
"""

from nstlab.fast.config import PRESETS, STYLE_WEIGHT, FastConfig, fast_config
from nstlab.fast.data import NoTrainingImages, TrainingImages, find_images
from nstlab.fast.export import DeployUnavailable, export_coreml, export_onnx, onnx_max_difference
from nstlab.fast.loss import (
    JOHNSON_CONTENT_LAYER,
    JOHNSON_STYLE_LAYERS,
    johnson_gram,
    perceptual_loss,
    style_targets,
    tv_loss,
)
from nstlab.fast.model_file import (
    FORMAT_VERSION,
    FastModel,
    ModelFileError,
    apply,
    default_models_dir,
    describe_model,
    load_model,
    save_model,
)
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
from nstlab.fast.train import StepLosses, TrainingDiverged, TrainResult, train, train_step

__all__ = [
    "FORMAT_VERSION", "JOHNSON_CONTENT_LAYER", "JOHNSON_STYLE_LAYERS", "MIN_SIDE", "PAPER", "PRESETS", "SMALL",
    "STYLE_WEIGHT", "DeployUnavailable", "FastConfig", "FastModel", "ModelFileError", "NoTrainingImages",
    "ResidualBlock", "StepLosses", "TrainResult", "TrainingDiverged", "TrainingImages", "TransformNet",
    "UpsampleConv", "apply", "count_parameters", "default_models_dir", "describe_model", "export_coreml",
    "export_onnx", "fast_config", "find_images", "instance_norm", "johnson_gram", "load_model",
    "onnx_max_difference", "perceptual_loss", "save_model", "style_targets", "train", "train_step", "tv_loss",
]
