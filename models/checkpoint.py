"""Reading weight files and loading them into the zoo's models, with readable errors.

Public API:
    CheckpointError(ValueError, RuntimeError)     every loading problem; first line = summary
    is_unset(path) -> bool                        None, "", "None", "none", False count as unset
    load_state_file(path) -> dict[str, Tensor]    torch.load(map_location="cpu",
        weights_only=True); unwraps {"state_dict": ...} / {"model": ...} / {"student": ...}
        (a train_kd.py resume file); strips "module."
    load_pretrained_base(model, path_or_state, source=None) -> list[str]
        ImageNet backbone weights into ``model.pretrained`` (CIRKD family, CSAIL layout) or
        ``model.backbone`` (mmseg family: open-mmlab ``resnet*_v1c``, msra HRNet, mmcls files whose
        ``backbone.*`` keys are taken), or into `model` if it is a backbone. Keeps only keys the backbone has (drops ``fc.*``, ``features.18.*``,
        ``classifier.*``) and returns the dropped keys. Any missing or mis-shaped backbone tensor
        is a CheckpointError (a missing ``num_batches_tracked`` is fine).
    load_pretrained(model, path_or_state, source=None, arch=None, hint=None, allow_missing=(),
                    init_missing=None) -> list[str]
        a whole segmentation checkpoint, strictly; CheckpointError lists missing / unexpected /
        mis-shaped keys. Keys matching an ``allow_missing`` fnmatch pattern may be absent (they
        keep their init, or ``init_missing(model, keys)`` sets them); returns those keys.
    state_head_width(state, width_key) -> int | None   head width a checkpoint was trained with

Differences from the official loaders (Af-DCD / CIRKD): files are never unpickled with code
execution (weights_only=True); a missing backbone tensor is always an error (ResNet-18's
official loader silently keeps the random init); ``pretrained`` is loaded whenever given,
whatever ``local_rank`` is.
"""
import fnmatch
import os
import pickle
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

StateDict = Dict[str, Tensor]
_WRAPPER_KEYS = ("state_dict", "model", "student")  # "student": a train_kd.py resume file
_SHOW = 8  # keys listed per category in error messages


class CheckpointError(ValueError, RuntimeError):
    """A weight file that cannot be read or does not fit the model."""


def is_unset(path: object) -> bool:
    return path is None or path is False or (isinstance(path, str) and path.strip() in ("", "None", "none"))


def _strip_prefix(state: Mapping[str, Tensor], prefix: str = "module.") -> StateDict:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def load_state_file(path: str) -> StateDict:
    """Read a weight file safely and return a flat ``name -> Tensor`` dict."""
    if is_unset(path):
        raise CheckpointError("no checkpoint path given (got %r)" % (path,))
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint file %s does not exist; check the path" % path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                "checkpoint %s was refused by torch.load(weights_only=True): it holds Python objects "
                "that would run code when unpickled. Re-save it as a plain state_dict "
                "(torch.save(model.state_dict(), path)) in a trusted environment; never load "
                "untrusted pickles. (%s)" % (path, first)) from None
        raise CheckpointError("checkpoint %s cannot be unpickled (%s); is it a PyTorch weight file?"
                              % (path, first)) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises KeyError, ValueError, ... on non-PyTorch bytes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError("checkpoint %s cannot be read (%s: %s); the file is truncated or not a PyTorch "
                              "weight file (%d bytes) - download it again" % (path, type(exc).__name__, first,
                                                                             os.path.getsize(path))) from None
    return _unwrap(obj, path)


def _unwrap(obj: object, source: str) -> StateDict:
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping) and not isinstance(obj.get(key), Tensor):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError("checkpoint %s holds a %s, not a state_dict; save model.state_dict()"
                              % (source, type(obj).__name__))
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError("checkpoint %s is not a plain state_dict: %d entries are not tensors "
                              "(e.g. %s); save model.state_dict() or a dict holding it under "
                              "'state_dict' or 'model'" % (source, len(bad), bad[:_SHOW]))
    return _strip_prefix(obj)


def _as_state(path_or_state: Union[str, Mapping[str, Tensor]], source: Optional[str]) -> Tuple[StateDict, str]:
    if isinstance(path_or_state, Mapping):
        return _unwrap(path_or_state, source or "<state_dict>"), source or "<state_dict>"
    return load_state_file(path_or_state), source or os.fspath(path_or_state)


def _compare(target: Mapping[str, Tensor], state: Mapping[str, Tensor]
             ) -> Tuple[List[str], List[str], List[Tuple[str, tuple, tuple]]]:
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    misshaped = [(k, tuple(state[k].shape), tuple(target[k].shape)) for k in target
                 if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    return missing, unexpected, misshaped


def _details(missing: List[str], unexpected: List[str], misshaped: List[tuple]) -> Tuple[str, str]:
    """A short 'e.g.' and the multi-line listing used in error messages."""
    examples = []
    if missing:
        examples.append("missing %s" % missing[0])
    if unexpected:
        examples.append("unexpected %s" % unexpected[0])
    if misshaped:
        k, got, want = misshaped[0]
        examples.append("%s is %s in the file, %s in the model" % (k, got, want))
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            more = " ... (+%d more)" % (len(items) - _SHOW) if len(items) > _SHOW else ""
            lines.append("  %s: %s%s" % (title, ", ".join(items[:_SHOW]), more))
    if misshaped:
        shown = ", ".join("%s %s vs model %s" % m for m in misshaped[:_SHOW])
        more = " ... (+%d more)" % (len(misshaped) - _SHOW) if len(misshaped) > _SHOW else ""
        lines.append("  mis-shaped (file vs model): %s%s" % (shown, more))
    return "; ".join(examples), "\n".join(lines)


def _load_checked(module: nn.Module, state: Mapping[str, Tensor], keep_own: Sequence[str] = ()) -> None:
    target = module.state_dict()
    full = {k: v for k, v in state.items() if k in target}
    for k, v in target.items():  # tolerate checkpoints without num_batches_tracked
        if k not in full and (k.endswith("num_batches_tracked") or k in keep_own):
            full[k] = v.clone()
    module.load_state_dict(full, strict=True)


def load_pretrained_base(model: nn.Module, path_or_state: Union[str, Mapping[str, Tensor]],
                         source: Optional[str] = None) -> List[str]:
    """Load CSAIL-layout ImageNet weights into the backbone; return the dropped file keys."""
    backbone = model
    for name in ("pretrained", "backbone"):        # CIRKD family / mmseg family
        if isinstance(getattr(model, name, None), nn.Module):
            backbone = getattr(model, name)
            break
    root = getattr(backbone, "imagenet_root", backbone)
    state, source = _as_state(path_or_state, source)
    if any(k.startswith("backbone.") for k in state):   # mmcls classifiers: backbone.* + head.*
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    target = root.state_dict()
    missing, _, misshaped = _compare(target, state)
    # a backbone may declare parts an ImageNet file need not have (MGD's ResNet-18: the deep stem
    # stays randomly initialised when the file is torchvision's, as the official strict=False load)
    optional = [k for k in missing if any(fnmatch.fnmatchcase(k, p) for p in getattr(root, "imagenet_optional", ()))]
    missing = [k for k in missing if k not in optional]
    dropped = [k for k in state if k not in target]
    if missing or misshaped:
        name = getattr(backbone, "__class__").__name__
        example, listing = _details(missing, [], misshaped)
        hint = "convert torchvision/timm files with `python -m tools.convert_checkpoint`"
        if any(k.startswith("pretrained.") or k.startswith("head.") for k in state):
            hint = ("this looks like a whole segmentation checkpoint; pass it as `pretrained`, "
                    "not `pretrained_base`")
        raise CheckpointError(
            "ImageNet backbone file %s does not fit %s (CSAIL layout expected): %d missing, %d "
            "mis-shaped keys (e.g. %s); %s\n%s\n  dropped file keys: %s"
            % (source, name, len(missing), len(misshaped), example, hint, listing,
               ", ".join(dropped[:_SHOW]) + (" ..." if len(dropped) > _SHOW else "")))
    _load_checked(root, state, keep_own=optional)
    return dropped


def _advice(missing: List[str], unexpected: List[str]) -> str:
    if unexpected and not missing and all(k.startswith("auxlayer.") for k in unexpected):
        return "the checkpoint has an aux head: build the model with aux=True"
    if missing and not unexpected and all(k.startswith("auxlayer.") for k in missing):
        return "the checkpoint has no aux head: build the model with aux=False"
    return ("check that the model/backbone flags (e.g. --teacher-model/--teacher-backbone), "
            "num_class and aux match the checkpoint")


def load_pretrained(model: nn.Module, path_or_state: Union[str, Mapping[str, Tensor]],
                    source: Optional[str] = None, arch: Optional[str] = None,
                    hint: Optional[str] = None, allow_missing: Sequence[str] = (),
                    init_missing: Optional[Callable[[nn.Module, List[str]], None]] = None) -> List[str]:
    """Strictly load a whole segmentation checkpoint (``module.`` prefix stripped).

    Returns the keys that were allowed to be missing (matched by ``allow_missing``)."""
    state, source = _as_state(path_or_state, source)
    target = model.state_dict()
    missing, unexpected, misshaped = _compare(target, state)
    allowed = [k for k in missing if any(fnmatch.fnmatchcase(k, p) for p in allow_missing)]
    missing = [k for k in missing if k not in allowed]
    if missing or unexpected or misshaped:
        arch = arch or getattr(model, "arch_name", None) or type(model).__name__
        example, listing = _details(missing, unexpected, misshaped)
        advice = hint or _advice(missing, unexpected)
        raise CheckpointError(
            "checkpoint %s does not fit %s: %d missing, %d unexpected, %d mis-shaped keys (e.g. %s); "
            "%s\n%s" % (source, arch, len(missing), len(unexpected), len(misshaped), example,
                        advice, listing))
    _load_checked(model, state, keep_own=allowed)
    if allowed and init_missing is not None:
        init_missing(model, allowed)
    return allowed


def state_head_width(state: Mapping[str, Tensor], width_key: Optional[str]) -> Optional[int]:
    """Output channels of `width_key` (a head conv weight) in `state`, or None if absent."""
    if width_key is None or width_key not in state or state[width_key].dim() < 1:
        return None
    return int(state[width_key].shape[0])
