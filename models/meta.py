"""Model metadata that travels with a built model (as timm's ``pretrained_cfg``).

Public API:
    InputNorm(name, mean, std, rgb)      how a network expects its input: ``(pixel - mean) / std`` with
                                         pixels 0..255 in RGB (``rgb=True``) or BGR channel order
    CIRKD_NORM                           BGR minus the CIRKD mean, no std (the CIRKD/Af-DCD family)
    IMAGENET_RGB                         RGB (x - mean) / std, mmseg/torchvision (123.675, ...)/(58.395, ...)
    PIPELINE_NORM                        what the default (CIRKD) data pipeline produces (= CIRKD_NORM)
    pipeline_norm(pipeline) -> InputNorm  what a ``datasets.pipelines`` pipeline produces
    ModelMeta(input_norm, align_corners, head_prefixes, classifier_keys, key_prefix_rules)
        .remap_keys(state) -> state       checkpoint keys in a foreign layout -> the model's keys
    model_meta(model) -> ModelMeta        the built model's (DDP unwrapped), default CIRKD family
    set_input_source(model, source)       the model converts inputs given in ``source`` normalisation
                                          into its own (a fixed affine map + channel swap, as a
                                          forward pre-hook; nothing enters the state_dict)

The pipeline makes ONE tensor per image; each network adapts it to what it was trained on, so a
CIRKD student and an mmseg teacher see their own inputs in the same step. The map is exact:
``raw = x * std_s + mean_s`` (channel order of s), reorder, ``(raw - mean_t) / std_t``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class InputNorm:
    name: str
    mean: Tuple[float, float, float]      # in the order of ``rgb``
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    rgb: bool = False                     # False: channels are B, G, R

    def same_map(self, other: "InputNorm") -> bool:
        """The same normalisation (whatever the names)."""
        return (tuple(self.mean), tuple(self.std), self.rgb) == (tuple(other.mean), tuple(other.std), other.rgb)


CIRKD_NORM = InputNorm("cirkd_bgr_mean", (104.00698793, 116.66876762, 122.67891434), (1.0, 1.0, 1.0), rgb=False)
IMAGENET_RGB = InputNorm("imagenet_rgb_mean_std", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), rgb=True)
PIPELINE_NORM = CIRKD_NORM


def pipeline_norm(pipeline) -> InputNorm:
    """The normalisation of a data pipeline's tensor (anything with ``name, mean, std, rgb``)."""
    norm = InputNorm("pipeline:" + pipeline.name, tuple(float(v) for v in pipeline.mean),
                     tuple(float(v) for v in pipeline.std), bool(pipeline.rgb))
    for known in (CIRKD_NORM, IMAGENET_RGB):
        if known.same_map(norm):
            return known
    return norm


@dataclass(frozen=True)
class ModelMeta:
    input_norm: InputNorm = CIRKD_NORM
    align_corners: bool = True                           # logits -> label size (loss, inference)
    head_prefixes: Tuple[str, ...] = ("head.", "auxlayer.")   # parameters that get --head-lr-mult
    classifier_keys: Tuple[str, ...] = ()               # fnmatch patterns of the classifier weights
    key_prefix_rules: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)  # (from, to) prefixes
    drop_prefixes: Tuple[str, ...] = ()                 # checkpoint keys to ignore (other branches)

    def remap_keys(self, state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """Rewrite checkpoint keys with the first matching prefix rule (``("branch1.", "")`` etc.);
        keys under ``drop_prefixes`` (a CPS checkpoint's second branch) are left out."""
        if not self.key_prefix_rules and not self.drop_prefixes:
            return dict(state)
        out: Dict[str, Tensor] = {}
        for key, value in state.items():
            if self.drop_prefixes and key.startswith(self.drop_prefixes):
                continue
            for old, new in self.key_prefix_rules:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = value
        return out


DEFAULT_META = ModelMeta()


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def model_meta(model: nn.Module) -> ModelMeta:
    return getattr(unwrap(model), "meta", DEFAULT_META)


class AffineInputAdapter:
    """``y[c] = x[perm[c]] * scale[c] + bias[c]``: one normalisation into another, exactly."""

    def __init__(self, source: InputNorm, target: InputNorm) -> None:
        self.source, self.target = source, target
        # raw_t[c] (target channel order) = x[perm[c]] * std_s[perm[c]] + mean_s[perm[c]]
        perm = [0, 1, 2] if source.rgb == target.rgb else [2, 1, 0]
        std_s = [source.std[p] for p in perm]
        mean_s = [source.mean[p] for p in perm]
        self.perm = perm
        scale = [s / t for s, t in zip(std_s, target.std)]
        bias = [(m - tm) / t for m, tm, t in zip(mean_s, target.mean, target.std)]
        self.scale = torch.tensor(scale, dtype=torch.float64).view(1, 3, 1, 1)
        self.bias = torch.tensor(bias, dtype=torch.float64).view(1, 3, 1, 1)
        self._cache: Dict[Tuple[torch.device, torch.dtype], Tuple[Tensor, Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = (torch.tensor(self.perm, device=x.device),
                                self.scale.to(x.device, x.dtype), self.bias.to(x.device, x.dtype))
        perm, scale, bias = self._cache[key]
        if self.perm != [0, 1, 2]:
            x = x.index_select(1, perm)
        return x * scale + bias

    def __repr__(self) -> str:
        return "AffineInputAdapter(%s -> %s)" % (self.source.name, self.target.name)


def set_input_source(model: nn.Module, source: InputNorm) -> Optional[AffineInputAdapter]:
    """Make ``model`` accept inputs normalised as ``source``; returns the adapter (None: identity)."""
    handle = model.__dict__.pop("_input_adapter_handle", None)
    if handle is not None:
        handle.remove()
    target = model_meta(model).input_norm
    model.__dict__["input_adapter"] = None
    if source.same_map(target):
        return None
    adapter = AffineInputAdapter(source, target)

    def hook(module: nn.Module, args: tuple):
        return (adapter(args[0]),) + tuple(args[1:])

    model.__dict__["_input_adapter_handle"] = model.register_forward_pre_hook(hook)
    model.__dict__["input_adapter"] = adapter
    return adapter

