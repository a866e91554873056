"""Glue between our models and the architecture-parity cases (tests/data/parity/*.pt).

Public API:
    PARITY_DIR                                   folder of the case files
    load_parity_case(path) -> dict
    build_parity_model(case) -> nn.Module        get_segmentation_model(case["model"],
        case["backbone"], num_class=case["num_class"], aux=case["aux"], **kwargs). CIRKD family:
        kwargs are the case's (the official builder's) keyword arguments minus the four above,
        with "nn.BatchNorm2d"-style norm_layer strings turned into classes. mmseg family (cases
        with a ``model_cfg``): the resolved mmseg config is mapped onto SegKD's builder arguments
        (decode/aux head widths) by ``mmseg_kwargs``. CPS/MGD family (``deeplabv3plus_cps``): the
        official constructor's arguments are mapped by ``cps_kwargs`` (``OFFICIAL_KWARGS``).
    conv_specs(model) -> list                    every Conv2d as the cases' conv_specs tuple
    run_parity_case(case, f64=False) -> dict     check_case's report {"ok", "failures", "warnings"};
        mmseg cases use the checker their folder ships (data/parity/mmseg/check.py: it also turns
        Dropout2d off in train mode)

tests/parity_ref/check.py and fill.py are unchanged copies of the reference harness
(the project's parity harness); check_case fills the model with deterministic weights, runs it in eval
and train mode and compares with the stored official numbers.
"""
import importlib.util
import os
from typing import Any, Dict, List

import torch
from torch import nn

from models import get_segmentation_model

HERE = os.path.dirname(os.path.abspath(__file__))
PARITY_DIR = os.path.join(HERE, "data", "parity")
_REF_DIR = os.path.join(HERE, "parity_ref")
_NORM_LAYERS = {"nn.BatchNorm2d": nn.BatchNorm2d, "BatchNorm2d": nn.BatchNorm2d,
                "nn.SyncBatchNorm": nn.SyncBatchNorm, "SyncBatchNorm": nn.SyncBatchNorm}
_CASE_FIELDS = ("model", "backbone", "num_class", "aux")


MMSEG_DIR = os.path.join(PARITY_DIR, "mmseg")


def is_mmseg_case(case: Dict[str, Any]) -> bool:
    return "model_cfg" in case or str((case.get("builder_kwargs") or {}).get("framework", "")).startswith("mmseg")


def _reference_check(folder: str = _REF_DIR, name: str = "segkd_parity_ref_check"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_parity_case(path: str) -> Dict[str, Any]:
    # the case files are plain containers (dicts, lists, tensors, strings), no code objects
    return torch.load(path, map_location="cpu", weights_only=True)


def mmseg_kwargs(case: Dict[str, Any]) -> Dict[str, Any]:
    """The resolved mmseg config of a case -> SegKD builder arguments (widths the config sets)."""
    cfg = case.get("model_cfg") or {}
    kwargs: Dict[str, Any] = {}
    decode = cfg.get("decode_head") or {}
    if "channels" in decode:
        kwargs["head_width"] = int(decode["channels"])
    if "c1_channels" in decode:
        kwargs["c1_channels"] = int(decode["c1_channels"])
    if "isa_channels" in decode:
        kwargs["isa_channels"] = int(decode["isa_channels"])
    aux = cfg.get("auxiliary_head") or {}
    if isinstance(aux, dict) and "channels" in aux:
        kwargs["aux_width"] = int(aux["channels"])
    return kwargs


def cps_kwargs(case: Dict[str, Any]) -> Dict[str, Any]:
    """The official CPS/MGD constructor's arguments (``num_classes, criterion, norm_layer,
    pretrained_model``) -> SegKD builder arguments: only the norm layer builds anything; the
    criterion is an attribute, and an ImageNet file would be replaced by the fill anyway."""
    official = dict(case.get("builder_kwargs") or {})
    if official.get("num_classes", case["num_class"]) != case["num_class"]:
        raise ValueError("parity case: builder num_classes %r != num_class %r" % (official["num_classes"], case["num_class"]))
    kwargs: Dict[str, Any] = {"norm_layer": _norm_layer(official.get("norm_layer", "nn.BatchNorm2d"))}
    for key in ("mobilenet_output_stride",):
        if key in official:
            kwargs[key] = official[key]
    return kwargs


def _norm_layer(norm):
    if isinstance(norm, str):
        if norm not in _NORM_LAYERS:
            raise ValueError("parity case names an unknown norm_layer %r" % norm)
        return _NORM_LAYERS[norm]
    return norm


def dkd_kwargs(case: Dict[str, Any]) -> Dict[str, Any]:
    """DKD's ``DeepLabV3(output_stride, norm_act, backbone_pretrained, classes, use_cosine, freeze_*)``:
    ``classes`` (head widths per step) builds the heads; the rest must be the values DKD trains with."""
    official = dict(case.get("builder_kwargs") or {})
    if official.get("output_stride", 16) != 16 or official.get("use_cosine", False):
        raise ValueError("dkd_deeplabv3 is built at output stride 16 without cosine heads, got %r" % official)
    if official.get("norm_act", "bn_sync") != "bn_sync":
        raise ValueError("dkd_deeplabv3 uses BatchNorm (bn_sync), got norm_act %r" % official.get("norm_act"))
    return {"classes": list(official["classes"])}


OFFICIAL_KWARGS = {"deeplabv3plus_cps": cps_kwargs,   # model -> official constructor args -> ours
                   "dkd_deeplabv3": dkd_kwargs}


def build_parity_model(case: Dict[str, Any]) -> nn.Module:
    if case["model"] in OFFICIAL_KWARGS:
        return get_segmentation_model(case["model"], case["backbone"], num_class=case["num_class"],
                                      aux=case["aux"], **OFFICIAL_KWARGS[case["model"]](case))
    if is_mmseg_case(case):
        return get_segmentation_model(case["model"], case["backbone"], num_class=case["num_class"],
                                      aux=case["aux"], **mmseg_kwargs(case))
    kwargs = {k: v for k, v in dict(case.get("builder_kwargs") or {}).items() if k not in _CASE_FIELDS}
    if "norm_layer" in kwargs:
        kwargs["norm_layer"] = _norm_layer(kwargs["norm_layer"])
    return get_segmentation_model(case["model"], case["backbone"], num_class=case["num_class"],
                                  aux=case["aux"], **kwargs)


def conv_specs(model: nn.Module) -> List[tuple]:
    return [(name, m.in_channels, m.out_channels, tuple(m.kernel_size), tuple(m.stride),
             tuple(m.padding), tuple(m.dilation), m.groups, m.bias is not None)
            for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def run_parity_case(case: Dict[str, Any], f64: bool = False) -> Dict[str, Any]:
    model = build_parity_model(case)
    checker = _reference_check(MMSEG_DIR, "segkd_parity_mmseg_check") if is_mmseg_case(case) else _reference_check()
    return checker.check_case(model, case, f64=f64)
