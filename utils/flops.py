"""Parameters and FLOPs of a built segmentation model, with and without its aux head.

Public API:
    count_params(model) -> {"total": int, "aux": int, "without_aux": int}
    count_flops(model, size=(512, 1024), batch=1, convention="torch") -> {"total", "aux", "without_aux"}
    model_cost(model, size=(512, 1024)) -> dict    both of the above (keys "params", "flops")
    format_cost(name, size, cost) -> str           the one-line summary printed by the CLI
    main(argv=None)                                CLI

    python -m utils.flops --model deeplabv3 --backbone resnet18 --size 512 1024
    python -m utils.flops --model pspnet --backbone resnet18_v1c --size 512 512 --num-class 150 --convention mmseg

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode forward. Conventions:
- ``torch`` (default): convolutions / matmuls only, 2 FLOPs per multiply-add, the convention of the
  official CIRKD-family parity figures (README, model table);
- ``mmseg``: the counts of the mmseg/BPKD tables (fvcore / mmengine op handles): multiply-adds for
  convolutions and matmuls, 2 per element for affine BatchNorm, 1 per input element for adaptive
  average pooling, 4 per output element for bilinear resizing, nothing for ReLU, max-pool, add or
  softmax. With ``--size 512 512 --num-class 150`` (BPKD's ADE20K configs) it gives BPKD's GFLOPs.
The aux head is every sub-module named ``auxlayer`` or ``auxiliary_head``; its FLOPs are counted by
re-running it on the input it received and reported apart (``without_aux`` is what tables quote). The CLI builds the model on the
``meta`` device by default (no memory, no arithmetic: counting ResNet-101 at 512x1024 takes
a fraction of a second); ``--device cpu`` runs real tensors instead.
This module takes a built model and imports ``models`` only inside ``main``.
"""
import argparse
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

AUX_NAMES = ("auxlayer", "auxiliary_head")
CONVENTIONS = ("torch", "mmseg")
aten = torch.ops.aten


def _aux_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name.split(".")[-1] in AUX_NAMES]


def _numel(shape) -> int:
    total = 1
    for s in shape:
        total *= int(s)
    return total


def _mmseg_mapping() -> Dict:
    """Per-op counts of the mmseg convention (see the module docstring); shapes in, count out."""
    from torch.utils.flop_counter import conv_flop_count

    def conv(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs):
        return conv_flop_count(x_shape, w_shape, out_shape, transposed=transposed) // 2

    def mm(a_shape, b_shape, *args, out_shape=None, **kwargs):
        return _numel(a_shape) * int(b_shape[-1])

    def addmm(_bias, a_shape, b_shape, *args, out_shape=None, **kwargs):
        return _numel(a_shape) * int(b_shape[-1])

    def bmm(a_shape, b_shape, *args, out_shape=None, **kwargs):
        return _numel(a_shape) * int(b_shape[-1])

    def baddbmm(_bias, a_shape, b_shape, *args, out_shape=None, **kwargs):
        return _numel(a_shape) * int(b_shape[-1])

    def batch_norm(x_shape, weight_shape, *args, out_shape=None, **kwargs):
        return _numel(x_shape) * (2 if weight_shape is not None else 1)

    def per_input(x_shape, *args, out_shape=None, **kwargs):
        return _numel(x_shape)

    def bilinear(x_shape, *args, out_shape=None, **kwargs):
        return 4 * _numel(out_shape)

    mapping = {aten.convolution: conv, aten._convolution: conv, aten.mm: mm, aten.addmm: addmm, aten.bmm: bmm,
               aten.baddbmm: baddbmm, aten._adaptive_avg_pool2d: per_input, aten.mean: per_input,
               aten.upsample_bilinear2d: bilinear, aten.native_batch_norm: batch_norm}
    for name in ("_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "cudnn_batch_norm"):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = batch_norm
    return mapping


def _counter(convention: str) -> FlopCounterMode:
    if convention not in CONVENTIONS:
        raise ValueError("convention must be one of %s, got %r" % (CONVENTIONS, convention))
    return FlopCounterMode(display=False, custom_mapping=_mmseg_mapping() if convention == "mmseg" else None)


def count_params(model: nn.Module) -> Dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    aux_params = {id(p): p.numel() for _, m in _aux_modules(model) for p in m.parameters()}
    aux = sum(aux_params.values())
    return {"total": total, "aux": aux, "without_aux": total - aux}


def count_flops(model: nn.Module, size: Sequence[int] = (512, 1024), batch: int = 1,
                convention: str = "torch") -> Dict[str, int]:
    """FLOPs of one eval-mode forward of a (batch, 3, H, W) input on the model's device/dtype."""
    if len(size) != 2 or min(size) <= 0:
        raise ValueError("size must be (height, width) with positive values, got %s" % (tuple(size),))
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.zeros(batch, 3, int(size[0]), int(size[1]), device=device, dtype=dtype)

    captured: List[Tuple[nn.Module, tuple]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: captured.append((mod, args)))
             for _, m in _aux_modules(model)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            counter = _counter(convention)
            with counter:
                model(x)
            total = counter.get_total_flops()
            for h in hooks:
                h.remove()
            hooks = []
            aux = 0
            for module, args in captured:
                aux_counter = _counter(convention)
                with aux_counter:
                    module(*args)
                aux += aux_counter.get_total_flops()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {"total": int(total), "aux": int(aux), "without_aux": int(total - aux)}


def model_cost(model: nn.Module, size: Sequence[int] = (512, 1024), convention: str = "torch") -> Dict[str, Dict[str, int]]:
    return {"params": count_params(model), "flops": count_flops(model, size, convention=convention)}


def format_cost(name: str, size: Sequence[int], cost: Dict[str, Dict[str, int]]) -> str:
    params, flops = cost["params"], cost["flops"]
    return ("%s @ %dx%d: params %s total / %s without aux, %.2f GFLOPs total / %.2f without aux"
            % (name, size[0], size[1], format(params["total"], ","), format(params["without_aux"], ","),
               flops["total"] / 1e9, flops["without_aux"] / 1e9))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from models import available_models, get_segmentation_model

    parser = argparse.ArgumentParser(prog="python -m utils.flops", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="one of: %s" % ", ".join(available_models()))
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--size", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    parser.add_argument("--num-class", type=int, default=19)
    parser.add_argument("--aux", choices=["auto", "on", "off"], default="auto",
                        help="build the aux head (auto: on where the model has one)")
    parser.add_argument("--head-width", default=None, help="None, a preset (cirkd_v2) or an int")
    parser.add_argument("--device", default="meta", help="meta (default, instant) or cpu / cuda")
    parser.add_argument("--convention", choices=CONVENTIONS, default="torch",
                        help="torch: conv/matmul, 2 per multiply-add; mmseg: the BPKD/mmseg tables' counts")
    args = parser.parse_args(argv)

    def build(aux: bool) -> nn.Module:
        with torch.device(args.device):
            return get_segmentation_model(args.model, args.backbone, num_class=args.num_class, aux=aux,
                                          head_width=args.head_width)
    try:
        if args.aux == "auto":
            try:
                model = build(True)
            except ValueError as exc:
                if "aux" not in str(exc):
                    raise
                model = build(False)
        else:
            model = build(args.aux == "on")
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    name = "%s/%s" % (args.model, args.backbone) if args.backbone else args.model
    cost = model_cost(model, args.size, args.convention)
    print(format_cost(name, args.size, cost) + ("" if args.convention == "torch" else " [%s convention]" % args.convention))
    return 0


if __name__ == "__main__":
    sys.exit(main())
