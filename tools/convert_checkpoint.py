"""Convert ImageNet backbone weights into the CSAIL layout that ``pretrained_base`` loads, and mmseg /
mmrazor segmentation checkpoints into plain state_dicts that ``pretrained`` loads.

Usage:
    python -m tools.convert_checkpoint SRC DST [--from auto|csail|torchvision|timm|mmseg]

Public API:
    ConversionError(CheckpointError)           a layout that cannot (or must not) be converted
    detect_layout(state) -> str                 "csail_resnet", "csail_mobilenetv2",
        "torchvision_resnet", "torchvision_mobilenetv2", "timm_deep_resnet"
    resnet_arch(state) -> str                   "resnet18" | "resnet50" | "resnet101" (CSAIL keys)
    torchvision_mobilenetv2_to_csail(state) -> dict
    timm_deep_resnet_to_csail(state) -> dict
    convert_state(state, layout="auto") -> (dict, backbone_name)   converted + checked
    convert_file(src, dst, layout="auto") -> backbone_name
    main(argv=None) -> int                      0 on success, 2 on a refused / bad file

What converts and what does not:
- torchvision MobileNetV2 -> CSAIL ``features.*``: same blocks, same BN (eps 1e-5), ReLU6; only the
  names differ. Expand-1 block: ``conv.0.0/conv.0.1/conv.1/conv.2`` -> ``conv.0/1/3/4``; other
  blocks: ``conv.0.0/0.1/1.0/1.1/2/3`` -> ``conv.0/1/3/4/6/7``; ``features.0``, ``features.18``
  and ``classifier.1`` keep their names.
- Deep-stem ResNets with a 64-64-128 stem and plain 1x1-conv shortcuts (timm ``resnet50s`` /
  ``resnet101s``, gluon ``*_v1s``, PyTorch-Encoding ``resnet*s``): stem ``conv1.0/1/3/4/6`` and
  ``bn1`` -> ``conv1/bn1/conv2/bn2/conv3/bn3``; blocks keep their names.
- Refused: torchvision ResNets (a single 7x7 stem conv cannot fill the 3-conv deep stem);
  ResNet-D / -C / -T (timm ``resnet*d``, ``resnet*c``, ``resnet*t``): their 32-wide stem does
  not fit the 64-wide one, and the ResNet-D shortcut (avg-pool then stride-1 conv,
  ``downsample.1/2``) computes a different function from the v1s stride-2 1x1 conv, so copying
  its weights would silently give a different network.
- mmseg segmentors (``{meta, state_dict}`` with ``backbone.*`` / ``decode_head.*`` /
  ``auxiliary_head.*``) and mmrazor distillation files (BPKD's releases: the student under
  ``architecture.model.``, the teacher and distiller elsewhere): the student's state_dict is kept
  as is (mmrazor prefix stripped, other keys dropped and counted). SegKD's mmseg family also loads
  such files directly; converting only makes them plain.
The output is a plain state_dict (``torch.save`` of a dict of tensors), written atomically and
checked against the target backbone's keys and shapes (backbones).
"""
import argparse
import os
import re
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models.backbones import build_backbone  # noqa: E402
from models.checkpoint import CheckpointError, load_state_file  # noqa: E402

StateDict = Dict[str, Tensor]
LAYOUTS = ("csail_resnet", "csail_mobilenetv2", "torchvision_resnet", "torchvision_mobilenetv2",
           "timm_deep_resnet")
_RESNET_ARCHS = {("basic", (2, 2, 2, 2)): "resnet18", ("bottleneck", (3, 4, 6, 3)): "resnet50",
                 ("bottleneck", (3, 4, 23, 3)): "resnet101"}
# file keys a backbone does not use (ImageNet classifier / last 1x1 conv)
_EXTRA_PREFIXES = {"resnet": ("fc.",), "mobilenetv2": ("features.18.", "classifier.")}


class ConversionError(CheckpointError):
    """A weight file that cannot be converted to a CSAIL-layout backbone."""


def detect_layout(state: Mapping[str, Tensor]) -> str:
    if "features.1.conv.0.0.weight" in state:
        return "torchvision_mobilenetv2"
    if "features.1.conv.3.weight" in state and "features.0.0.weight" in state:
        return "csail_mobilenetv2"
    if "conv1.0.weight" in state and "conv1.6.weight" in state:
        return "timm_deep_resnet"
    if "conv1.weight" in state and "conv2.weight" in state and "conv3.weight" in state:
        return "csail_resnet"
    if "conv1.weight" in state and state["conv1.weight"].dim() == 4 and "layer1.0.conv1.weight" in state:
        return "torchvision_resnet"
    sample = ", ".join(list(state)[:5])
    if any(k.startswith("pretrained.") for k in state):
        raise ConversionError("this is a whole segmentation checkpoint (keys %s ...), not an ImageNet "
                              "backbone; load it with `pretrained`, it needs no conversion" % sample)
    raise ConversionError("unrecognised weight layout (keys %s ...); supported: CSAIL, torchvision "
                          "MobileNetV2, deep-stem (64-wide) ResNets such as timm resnet50s/101s" % sample)


def resnet_arch(state: Mapping[str, Tensor]) -> str:
    """The v1s backbone whose blocks match a CSAIL-named ResNet state_dict."""
    blocks = []
    for layer in range(1, 5):
        ids = {int(m.group(1)) for k in state for m in [re.match(r"layer%d\.(\d+)\." % layer, k)] if m}
        blocks.append(len(ids))
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    arch = _RESNET_ARCHS.get((kind, tuple(blocks)))
    if arch is None:
        raise ConversionError("a %s ResNet with %s blocks per layer has no backbone here (resnet18: "
                              "basic 2-2-2-2, resnet50: bottleneck 3-4-6-3, resnet101: bottleneck "
                              "3-4-23-3)" % (kind, "-".join(map(str, blocks))))
    return arch


def torchvision_mobilenetv2_to_csail(state: Mapping[str, Tensor]) -> StateDict:
    expand1 = {"conv.0.0.": "conv.0.", "conv.0.1.": "conv.1.", "conv.1.": "conv.3.", "conv.2.": "conv.4."}
    expand = {"conv.0.0.": "conv.0.", "conv.0.1.": "conv.1.", "conv.1.0.": "conv.3.",
              "conv.1.1.": "conv.4.", "conv.2.": "conv.6.", "conv.3.": "conv.7."}
    out: StateDict = {}
    for key, value in state.items():
        m = re.match(r"features\.(\d+)\.(conv\..*)$", key)
        if m is None:  # features.0.*, features.18.*, classifier.*: same names
            out[key] = value
            continue
        index, rest = m.group(1), m.group(2)
        # the expand-1 block is the only one without a 1x1 expansion (its conv.0.0 is depthwise)
        table = expand1 if "features.%s.conv.3.weight" % index not in state else expand
        for old in sorted(table, key=len, reverse=True):
            if rest.startswith(old):
                out["features.%s.%s%s" % (index, table[old], rest[len(old):])] = value
                break
        else:
            raise ConversionError("unexpected torchvision MobileNetV2 key %s" % key)
    return out


def timm_deep_resnet_to_csail(state: Mapping[str, Tensor]) -> StateDict:
    stem_out = (int(state["conv1.0.weight"].shape[0]), int(state["conv1.6.weight"].shape[0]))
    if stem_out != (64, 128):
        raise ConversionError(
            "deep stem of width %d-%d-%d (ResNet-C/D/T, e.g. timm resnet*d) does not fit the v1s stem "
            "64-64-128; there is no sound mapping, use a 64-wide deep-stem model (timm resnet50s / "
            "resnet101s) or the CSAIL ImageNet files"
            % (stem_out[0], int(state["conv1.3.weight"].shape[0]), stem_out[1]))
    avg_down = sorted({k.rsplit(".downsample.", 1)[0] for k in state if re.search(r"\.downsample\.2\.", k)})
    if avg_down:
        raise ConversionError(
            "ResNet-D shortcuts (avg-pool + stride-1 1x1 conv, keys %s.downsample.1/2) compute a "
            "different function from the v1s stride-2 1x1 conv shortcut; copying them would give a "
            "network the weights were not trained for, so the conversion is refused" % avg_down[0])
    stem = {"conv1.0.": "conv1.", "conv1.1.": "bn1.", "conv1.3.": "conv2.", "conv1.4.": "bn2.",
            "conv1.6.": "conv3.", "bn1.": "bn3."}
    out: StateDict = {}
    for key, value in state.items():
        for old, new in stem.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value
    return out


def _check_against_backbone(state: Mapping[str, Tensor], arch: str) -> None:
    with torch.device("meta"):
        backbone = build_backbone(arch)
    root = getattr(backbone, "imagenet_root", backbone)
    target = {k: tuple(v.shape) for k, v in root.state_dict().items()}
    family = "mobilenetv2" if arch == "mobilenetv2" else "resnet"
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    misshaped = ["%s %s vs %s" % (k, tuple(state[k].shape), target[k]) for k in target
                 if k in state and tuple(state[k].shape) != target[k]]
    unknown = [k for k in state if k not in target and not k.startswith(_EXTRA_PREFIXES[family])]
    if missing or misshaped or unknown:
        raise ConversionError("converted weights do not fit %s: %d missing (%s), %d mis-shaped (%s), "
                              "%d unknown keys (%s)" % (arch, len(missing), ", ".join(missing[:5]),
                                                        len(misshaped), ", ".join(misshaped[:5]),
                                                        len(unknown), ", ".join(unknown[:5])))


def convert_state(state: Mapping[str, Tensor], layout: str = "auto") -> Tuple[StateDict, str]:
    """Convert to the CSAIL layout and check it against the matching backbone."""
    found = detect_layout(state)
    if layout not in ("auto", "csail") and not found.startswith(layout):
        raise ConversionError("--from %s given, but the file looks like %s" % (layout, found))
    if layout == "csail" and not found.startswith("csail"):
        raise ConversionError("--from csail given, but the file looks like %s" % found)
    if found == "torchvision_resnet":
        kernel = tuple(state["conv1.weight"].shape[2:])
        raise ConversionError(
            "torchvision-layout ResNet (single %dx%d stem conv1): it cannot fill the v1s deep stem "
            "(three 3x3 convs conv1..conv3, 64-64-128 channels), so it is refused; use the CSAIL "
            "ImageNet files (resnet18-imagenet.pth, resnet101-imagenet.pth) or a 64-wide deep-stem "
            "ResNet (timm resnet50s / resnet101s)" % kernel)
    if found == "torchvision_mobilenetv2":
        out, arch = torchvision_mobilenetv2_to_csail(state), "mobilenetv2"
    elif found == "csail_mobilenetv2":
        out, arch = dict(state), "mobilenetv2"
    else:
        out = timm_deep_resnet_to_csail(state) if found == "timm_deep_resnet" else dict(state)
        arch = resnet_arch(out)
    _check_against_backbone(out, arch)
    return out, arch


MMRAZOR_PREFIX = "architecture.model."
MMSEG_PREFIXES = ("backbone.", "decode_head.", "auxiliary_head.")


def is_segmentor(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(MMRAZOR_PREFIX) or k.startswith(("decode_head.",)) for k in state)


def convert_segmentor(state: Mapping[str, Tensor]) -> Tuple[StateDict, str]:
    """An mmseg / mmrazor checkpoint -> the student's plain state_dict, and what was done."""
    if any(k.startswith(MMRAZOR_PREFIX) for k in state):
        out = {k[len(MMRAZOR_PREFIX):]: v for k, v in state.items() if k.startswith(MMRAZOR_PREFIX)}
        dropped = len(state) - len(out)
        what = "mmrazor distillation file: kept the student (%d keys under %s, prefix stripped), dropped %d " \
               "teacher/distiller keys" % (len(out), MMRAZOR_PREFIX, dropped)
    else:
        out = dict(state)
        what = "mmseg segmentor: %d keys kept as they are" % len(out)
    if not any(k.startswith("decode_head.") for k in out):
        raise ConversionError("no decode_head.* keys after conversion: not an mmseg segmentation checkpoint")
    heads = sorted({k.split(".")[0] for k in out})
    return out, "%s (%s)" % (what, ", ".join(heads))


def convert_file(src: str, dst: str, layout: str = "auto") -> str:
    if str(src).endswith(".safetensors"):
        raise ConversionError("%s: .safetensors files are not read here; re-save it as a .pth first, "
                              "e.g. torch.save(safetensors.torch.load_file(src), dst)" % src)
    state = load_state_file(src)
    if layout == "mmseg" or (layout == "auto" and is_segmentor(state)):
        out, arch = convert_segmentor(state)
    else:
        out, arch = convert_state(state, layout)
    tmp = "%s.tmp%d" % (dst, os.getpid())
    torch.save(out, tmp)
    os.replace(tmp, dst)
    return arch


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.convert_checkpoint",
                                     description="Convert ImageNet backbone weights to the CSAIL layout.")
    parser.add_argument("src", help="input weights (.pth / .pt)")
    parser.add_argument("dst", help="output file, loadable as pretrained_base")
    parser.add_argument("--from", dest="layout", default="auto",
                        choices=["auto", "csail", "torchvision", "timm", "mmseg"], help="input layout")
    args = parser.parse_args(argv)
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        print("error: source and destination are the same file", file=sys.stderr)
        return 2
    try:
        arch = convert_file(args.src, args.dst, args.layout)
    except CheckpointError as exc:
        print("error: %s: %s" % (args.src, exc), file=sys.stderr)
        return 2
    if " " in arch:        # a segmentation checkpoint: say what was done
        print("wrote %s: %s" % (args.dst, arch))
    else:
        print("wrote %s (%s backbone, CSAIL layout)" % (args.dst, arch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
