"""SegKD segmentation models: the Af-DCD / CIRKD zoo behind a small registry.

Public API:
    get_segmentation_model(model, backbone, num_class=19, aux=False, norm_layer=nn.BatchNorm2d,
                           pretrained_base=None, pretrained=None, local_rank=None,
                           head_width=None, **kwargs) -> nn.Module
    register_model(name, width_key=None), available_models()
    SegOutputs                      what every model's forward returns (models/outputs.py)
    CheckpointError, load_state_file, load_pretrained, load_pretrained_base  (models/checkpoint.py)

Registered here: deeplabv3, psp (ResNet-18/50/101 "v1s", output stride 8), deeplab_mobile,
psp_mobile (dilated MobileNetV2). Every model's ``out_channels`` maps its output names
(logits, aux_logits, c1..c4, head_feat) to channel counts. Importing a module that uses
``@register_model`` adds a model; import it from here so the registry sees it.
"""
from .checkpoint import CheckpointError, load_pretrained, load_pretrained_base, load_state_file
from .outputs import SegOutputs
from .registry import available_models, get_segmentation_model, model_has_aux, register_model
from . import deeplabv3, pspnet  # noqa: F401  (registers the zoo)
from . import mmseg  # noqa: F401  (registers the mmseg family: pspnet ...)
from . import cps  # noqa: F401  (registers deeplabv3plus_cps: MGD / CPS networks)
from . import dkd  # noqa: F401  (registers dkd_deeplabv3: class-incremental DeepLabV3)

__all__ = ["get_segmentation_model", "register_model", "available_models", "model_has_aux", "SegOutputs",
           "CheckpointError", "load_state_file", "load_pretrained", "load_pretrained_base"]
