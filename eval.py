"""Evaluate a segmentation checkpoint: whole/slide inference, multi-scale, flip, per-class table.

    python eval.py --model deeplabv3 --backbone resnet18 --dataset citys --data data/cityscapes \
        --pretrained work_dirs/run/kd_deeplabv3_resnet18_citys_best_model.pth
    torchrun --nproc_per_node 8 eval.py ... --scales 0.75 1.0 1.25 --flip-eval

Default protocol = CIRKD's: batch 1, full resolution, whole image, single scale, no flip.
The protocol is printed next to every number and stored in the results JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np
from torch.utils.data import DataLoader, Subset

from datasets import PIPELINE_NAMES, DatasetError, build_dataset, build_pipeline, get_dataset_info, normalize_ignore_index
from engine.cli import fail, make_parser
from engine.specs import BuildError, build_network
from utils.distributed import cleanup, init_distributed
from models.meta import pipeline_norm, set_input_source
from utils.evaluation import evaluate
from utils.evaluators import MIoUEvaluator
from utils.visualize import colorize, overlay, picture_of, save_palette_png


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("SegKD evaluation")
    p.add_argument("--model", default="deeplabv3")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--head-width", default=None)
    p.add_argument("--pretrained", required=True, help="checkpoint to evaluate (plain state_dict or a *_resume.pth file)")
    p.add_argument("--aux", dest="aux", action="store_true", default=None,
                   help="build the aux head (default: as the checkpoint has it)")
    p.add_argument("--no-aux", dest="aux", action="store_false")
    p.add_argument("--dataset", default="citys")
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--ignore-label", "--ignore-index", dest="ignore_label", type=int, default=-1)
    p.add_argument("--pipeline", choices=list(PIPELINE_NAMES), default="cirkd",
                   help="test preprocessing: CIRKD's (full image, BGR minus mean) or mmseg's (image rescaled to "
                        "--img-scale keeping the ratio, RGB mean/std; the prediction is resized back to the label)")
    p.add_argument("--img-scale", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="mmseg pipeline: test img_scale (default: the dataset's, e.g. 2048 512 for ADE20K)")
    p.add_argument("--incremental", default=None, metavar="DATASET:TASK:SETTING",
                   help="a class-incremental checkpoint (DKD): its task; with --step, scored old/new/all/hIoU")
    p.add_argument("--step", type=int, default=0, help="the step the checkpoint finished (its heads)")
    p.add_argument("--mode", choices=["whole", "slide"], default="whole")
    p.add_argument("--crop-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="slide window")
    p.add_argument("--stride", type=int, nargs=2, default=None, metavar=("H", "W"), help="slide stride (default 2/3 crop)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0])
    p.add_argument("--flip-eval", action="store_true")
    p.add_argument("--miou", choices=["present", "zero"], default="zero",
                   help="mIoU over classes present in GT/prediction, or all classes with absent = 0 (CIRKD)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--save-dir", default="work_dirs/eval")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results.json in --save-dir")
    p.add_argument("--save-pred", action="store_true", help="palette PNGs and overlays of every prediction")
    p.add_argument("--labelids", action="store_true", help="Cityscapes: also write labelIds PNGs for the test server")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def protocol_text(args) -> str:
    text = "%s pipeline, %s, scales %s, flip %s" % (args.pipeline, args.mode, ",".join("%g" % s for s in args.scales),
                                                    "on" if args.flip_eval else "off")
    if args.mode == "slide":
        text += ", crop %dx%d stride %dx%d" % (tuple(args.crop_size) + tuple(args.stride))
    return text + ", mIoU over %s" % ("present classes" if args.miou == "present" else "all classes (absent = 0)")


class PredictionWriter:
    def __init__(self, args, info, pipeline) -> None:
        self.args, self.info, self.pipeline = args, info, pipeline
        self.to_label_id = getattr(info, "train_id_to_label_id", None)
        if args.labelids and self.to_label_id is None:
            raise BuildError("--labelids is for Cityscapes only (dataset %s has no labelId mapping)" % info.name)
        os.makedirs(os.path.join(args.save_dir, "pred"), exist_ok=True)

    def __call__(self, index, images, labels, pred, names) -> None:
        stem = os.path.splitext(os.path.basename(str(names[0])))[0]
        label = pred[0].cpu().numpy().astype(np.int64)
        out = os.path.join(self.args.save_dir, "pred")
        if self.args.save_pred:
            save_palette_png(label, self.info.palette, os.path.join(out, stem + ".png"))
            color = colorize(label, self.info.palette, -1)
            rgb = picture_of(images[0].float().cpu().numpy(), label.shape, self.pipeline)
            from PIL import Image
            Image.fromarray(overlay(rgb, color)).save(os.path.join(out, stem + "_overlay.jpg"))
        if self.args.labelids:
            lut = np.asarray(self.to_label_id, dtype=np.uint8)
            from PIL import Image
            Image.fromarray(lut[label]).save(os.path.join(out, stem + "_labelIds.png"))


def check_args(parser: argparse.ArgumentParser, args) -> None:
    if any(not (s > 0) for s in args.scales):
        parser.error("--scales must all be > 0, got %s" % " ".join("%g" % s for s in args.scales))
    for flag in ("crop_size", "stride"):
        value = getattr(args, flag)
        if value is not None and min(value) < 1:
            parser.error("--%s must be two positive ints, got %s" % (flag.replace("_", "-"), " ".join(map(str, value))))
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    results = os.path.join(args.save_dir, "results.json")
    if os.path.isfile(results) and not args.overwrite:
        parser.error("%s already holds results; pick another --save-dir or pass --overwrite "
                     "(nothing was changed)" % results)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        return run(args)
    except (BuildError, DatasetError, ValueError, FileNotFoundError) as exc:
        return fail(str(exc).splitlines()[0])


def run(args) -> int:
    info = get_dataset_info(args.dataset)
    ignore_index = normalize_ignore_index(args.ignore_label)
    pipeline = build_pipeline(args.pipeline, info, args.img_scale)
    dist_info = init_distributed(args.local_rank, args.device)
    if args.mode == "slide":
        args.crop_size = args.crop_size or list(info.default_crop)
        args.stride = args.stride or [max(1, c * 2 // 3) for c in args.crop_size]
    root = args.data or info.default_root
    if not os.path.isdir(root):
        raise BuildError("dataset root %s does not exist; pass --data DIR (see data/README.md)" % root)
    if not os.path.isfile(args.pretrained):
        raise BuildError("--pretrained %s does not exist" % args.pretrained)
    from engine.preflight import check_weight_file
    check_weight_file(args.pretrained, "--pretrained")     # a text file is one clear line, not an unpickling error
    num_classes, classes, evaluator = info.num_classes, None, None
    if args.incremental:
        from datasets.incremental import incremental_classes, parse_incremental, step_classes
        from utils.evaluators import IncrementalEvaluator
        num_classes, classes = incremental_classes(args.incremental, args.step, info.name)
        key, task, _ = parse_incremental(args.incremental)
        new, old = step_classes(key, task, args.step)
        evaluator = (IncrementalEvaluator(num_classes, [0] + old, new) if old
                     else IncrementalEvaluator(num_classes, [0] + new, []))
    model = build_network(args.model, args.backbone, num_classes, args.aux, args.pretrained,
                          head_width=args.head_width, role="model", classes=classes).to(dist_info.device).eval()
    set_input_source(model, pipeline_norm(pipeline))   # the model adapts the pipeline's tensor to its own input
    if args.incremental:
        from datasets.incremental import build_incremental_dataset
        dataset = build_incremental_dataset(info.name, root, args.incremental, args.step, args.split, "val",
                                            pipeline=args.pipeline, img_scale=args.img_scale,
                                            crop_size=tuple(args.crop_size) if args.crop_size else None)
    else:
        dataset = build_dataset(info.name, root, split=args.split, mode="val", ignore_index=ignore_index,
                                pipeline=args.pipeline, img_scale=args.img_scale)
    mine = list(range(dist_info.rank, len(dataset), dist_info.world_size))
    loader = DataLoader(Subset(dataset, mine), batch_size=1, shuffle=False, num_workers=args.workers)
    writer = PredictionWriter(args, info, pipeline) if (args.save_pred or args.labelids) else None
    evaluator = evaluator or MIoUEvaluator(info.num_classes, ignore_index=ignore_index, absent=args.miou)
    scores = evaluate(model, loader, evaluator, dist_info.device, mode=args.mode,
                      scales=args.scales, flip=args.flip_eval, crop=tuple(args.crop_size or (0, 0)),
                      stride=tuple(args.stride or (0, 0)), amp=args.amp, on_image=writer,
                      progress=dist_info.is_main and not args.no_progress, slide_pad=pipeline.slide_pad)
    if dist_info.is_main:
        report(args, info, scores, len(dataset))
    cleanup()
    return 0


def report_incremental(args, info, scores, num_images: int) -> None:
    names = ["background"] + list(info.class_names[1:] if info.name == "voc" else info.class_names)
    iou = [float(x) for x in scores["IoU"]]
    print("\n%-24s %8s" % ("class", "IoU"))
    for name, value in zip(names, iou):
        print("%-24s %8.2f" % (name, 100 * value + 0.0))
    figures = {k: float(scores[k]) for k in ("mIoU_old", "mIoU_new", "mIoU_all", "hIoU") if k in scores}
    print("\n%s %s step %d (%d images): %s  [%s pipeline, sigmoid rule, old = background + earlier steps]"
          % (args.pretrained, args.incremental, args.step, num_images,
             "  ".join("%s %.2f" % (k, 100 * v) for k, v in figures.items()), args.pipeline))
    os.makedirs(args.save_dir, exist_ok=True)
    result = dict({"checkpoint": args.pretrained, "incremental": args.incremental, "step": args.step,
                   "images": num_images, "per_class_IoU": dict(zip(names, iou))}, **figures)
    path = os.path.join(args.save_dir, "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    print("results written to %s" % path)


def report(args, info, scores, num_images: int) -> None:
    if args.incremental:
        return report_incremental(args, info, scores, num_images)
    protocol = protocol_text(args)
    iou = [float(x) for x in scores["IoU"]]
    acc = [float(x) for x in scores["Acc"]]
    print("\n%-24s %8s %8s" % ("class", "IoU", "acc"))
    for name, i, a in zip(info.class_names, iou, acc):
        print("%-24s %8.2f %8.2f" % (name, 100 * i, 100 * a))
    print("\n%s %s/%s on %s %s (%d images): pixAcc %.2f  mIoU %.2f  mAcc %.2f  [%s]"
          % (args.pretrained, args.model, args.backbone, info.name, args.split, num_images,
             100 * float(scores["pixAcc"]), 100 * float(scores["mIoU"]), 100 * float(scores["mAcc"]), protocol))
    os.makedirs(args.save_dir, exist_ok=True)
    result = {"checkpoint": args.pretrained, "model": args.model, "backbone": args.backbone,
              "dataset": info.name, "split": args.split, "images": num_images, "protocol": protocol,
              "pixAcc": float(scores["pixAcc"]), "mIoU": float(scores["mIoU"]), "mAcc": float(scores["mAcc"]),
              "per_class_IoU": dict(zip(info.class_names, iou)), "per_class_acc": dict(zip(info.class_names, acc))}
    path = os.path.join(args.save_dir, "results.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    print("results written to %s" % path)


if __name__ == "__main__":
    sys.exit(main())
