"""The model registry and the CIRKD-family factory ``get_segmentation_model``.

Public API:
    register_model(name, width_key=None, meta=None)   decorator for a builder; ``meta`` (a
        ``ModelMeta``: input normalisation, align_corners, head prefixes, classifier keys, checkpoint
        key rules) is attached to every built model as ``model.meta``
        ``builder(backbone, num_class, aux, norm_layer, **model_specific) -> nn.Module``;
        `width_key` names a head weight whose first dim is the head width, so a ``pretrained``
        checkpoint can choose the width (the builder then gets ``head_width=<int>``).
    available_models() -> list[str]
    get_segmentation_model(model, backbone, num_class=19, aux=False, norm_layer=nn.BatchNorm2d,
                           pretrained_base=None, pretrained=None, local_rank=None,
                           head_width=None, allow_missing=(), init_missing=None, **kwargs) -> nn.Module
        ``aux=None``: as the ``pretrained`` file has it (aux-head keys present or not), else the
        builder's default. ``allow_missing``: fnmatch patterns of keys the ``pretrained`` file may lack (e.g. a new
        classifier); ``init_missing(model, missing_keys)`` initialises them. Any other missing key
        is still an error.

Paths may be None or the string 'None' (as the official scripts pass). `pretrained_base` (an
ImageNet backbone file, CSAIL layout) is loaded first, then `pretrained` (a whole segmentation
checkpoint, strict). Unlike the official factory, `pretrained` is loaded whatever `local_rank` is
(`local_rank` is accepted for signature compatibility only). When `pretrained` is given and
`head_width` is not, the head is built as wide as the checkpoint's head (so CIRKD@dab64db
"cirkd_v2" checkpoints load). `head_width` is only passed to builders when set or inferred.
The built model gets ``arch_name`` = "model/backbone" (used in error messages).
"""
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from torch import nn

from .checkpoint import is_unset, load_pretrained, load_pretrained_base, load_state_file, state_head_width
from .heads import HEAD_WIDTH_PRESETS, resolve_head_width
from .meta import DEFAULT_META, ModelMeta

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    builder: Callable[..., nn.Module]
    width_key: Optional[str]
    meta: ModelMeta
    aux_width_key: Optional[str] = None
    has_aux: bool = True


_MODELS: Dict[str, _Entry] = {}


def register_model(name: str, width_key: Optional[str] = None, meta: Optional[ModelMeta] = None,
                   aux_width_key: Optional[str] = None, has_aux: bool = True) -> Callable:
    """Decorator: make `builder` available as ``get_segmentation_model(name, ...)``; ``width_key`` /
    ``aux_width_key`` name the checkpoint weights whose output channels give the head / aux widths."""
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError("segmentation model %r registered twice (%s, %s)"
                             % (name, _MODELS[name].builder, builder))
        _MODELS[name] = _Entry(builder, width_key, meta or DEFAULT_META, aux_width_key, has_aux)
        return builder
    return wrap


def available_models() -> List[str]:
    return sorted(_MODELS)


def model_has_aux(name: str) -> bool:
    """Whether the model can have an auxiliary head at all (unknown names: True, the builder decides)."""
    return _MODELS[name].has_aux if name in _MODELS else True


def _check_kwargs(name: str, builder: Callable, kwargs: Dict[str, Any]) -> None:
    params = inspect.signature(builder).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError("segmentation model %r does not take %s; it takes %s"
                         % (name, unknown, [p for p in params if p not in ("backbone",)]))


def _width_hint(model: nn.Module, width: int) -> Optional[str]:
    kind = getattr(model, "head_kind", None)
    c4 = getattr(model, "out_channels", {}).get("c4")
    if kind is None or c4 is None:
        return None
    presets = [p for p in HEAD_WIDTH_PRESETS if resolve_head_width(kind, c4, p) == width]
    named = " (preset %r)" % presets[-1] if presets else ""
    return ("the checkpoint's head is %d wide%s but the model was built with head_width=%s; leave "
            "head_width unset to follow the checkpoint, or pass head_width=%d"
            % (width, named, getattr(model, "head_width", "?"), width))


def get_segmentation_model(model: str, backbone: Optional[str], num_class: int = 19, aux: Optional[bool] = False,
                           norm_layer: Optional[Callable[[int], nn.Module]] = nn.BatchNorm2d,
                           pretrained_base: Optional[str] = None, pretrained: Optional[str] = None,
                           local_rank: Optional[int] = None,
                           head_width: Optional[Union[int, str]] = None, allow_missing: Sequence[str] = (),
                           init_missing: Optional[Callable[[nn.Module, List[str]], None]] = None,
                           **kwargs: Any) -> nn.Module:
    """Build a registered segmentation model and load its weights (see the module docstring)."""
    if model not in _MODELS:
        raise ValueError("unknown segmentation model %r; available: %s"
                         % (model, ", ".join(available_models())))
    entry = _MODELS[model]
    if norm_layer is None:
        norm_layer = nn.BatchNorm2d
    if is_unset(head_width):
        head_width = None
    state = None
    checkpoint_width = None
    if not is_unset(pretrained):
        state = entry.meta.remap_keys(load_state_file(pretrained))
        checkpoint_width = state_head_width(state, entry.width_key)
        if head_width is None and checkpoint_width is not None:
            head_width = checkpoint_width
            logger.info("%s/%s: head width %d taken from %s", model, backbone, checkpoint_width, pretrained)
    if aux is None:
        # follow the checkpoint (an aux head's keys are in it or not), else the builder's default
        if state is not None:
            aux = any(k.startswith(("auxlayer.", "auxiliary_head.")) for k in state)
        else:
            default = inspect.signature(entry.builder).parameters.get("aux")
            aux = bool(default.default) if default is not None and default.default is not inspect.Parameter.empty \
                else False
    if head_width is not None:
        kwargs["head_width"] = head_width
    if kwargs.get("aux_width") is None:
        kwargs.pop("aux_width", None)
        aux_width = state_head_width(state, entry.aux_width_key) if state is not None and aux else None
        if aux_width is not None:
            kwargs["aux_width"] = aux_width      # the checkpoint's aux head decides, as for the head
    _check_kwargs(model, entry.builder, kwargs)
    net = entry.builder(backbone=backbone, num_class=num_class, aux=aux, norm_layer=norm_layer, **kwargs)
    net.arch_name = "%s/%s" % (model, backbone)
    net.meta = entry.meta
    if not is_unset(pretrained_base):
        load_pretrained_base(net, pretrained_base)
    if state is not None:
        hint = None
        built_width = getattr(net, "head_width", None)
        if checkpoint_width is not None and built_width is not None and built_width != checkpoint_width:
            hint = _width_hint(net, checkpoint_width)
        load_pretrained(net, state, source=str(pretrained), arch=net.arch_name, hint=hint,
                        allow_missing=allow_missing, init_missing=init_missing)
    return net
