"""SegKD's one training script: plain training, offline, teacher-free, multi-teacher and multi-stream distillation.

    python train_kd.py --kd-method none ...                      # one CPU/GPU process
    torchrun --nproc_per_node 8 train_kd.py --kd-method af_dcd ...
    python -m torch.distributed.launch --nproc_per_node 8 train_kd.py ...   # legacy launcher

Methods plug in through the ``losses/`` registry (``--kd-method NAME``, ``a+b`` to combine); the
loop itself knows nothing method-specific. The flags are those of the CIRKD/Af-DCD scripts.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import List, Optional

import torch

import losses
from datasets import PIPELINE_NAMES, build_pipeline, get_dataset_info, normalize_ignore_index
from engine.cli import fail, make_parser
from engine.preflight import preflight
from engine.specs import BuildError
from engine.trainer import Trainer, TrainingError
from utils.distributed import is_collective_timeout


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("SegKD: knowledge distillation for semantic segmentation")
    g = p.add_argument_group("models")
    g.add_argument("--student-model", default="deeplabv3")
    g.add_argument("--student-backbone", default="resnet18")
    g.add_argument("--student-pretrained-base", default="None", help="ImageNet backbone file (CSAIL layout) or None")
    g.add_argument("--student-pretrained", default="None", help="whole-student checkpoint to start from, or None")
    g.add_argument("--student-head-width", default=None, help="head width: int, 'afdcd' (default) or 'cirkd_v2'")
    g.add_argument("--student-aux-width", type=int, default=None,
                   help="aux head channels of mmseg-family students (default in/4; BPKD's Cityscapes DLV3+-MBV2: 64)")
    g.add_argument("--teacher-model", default=None,
                   help="default deeplabv3 (the student's model for a self-teacher such as Tf-KD self)")
    g.add_argument("--teacher-backbone", default=None, help="default resnet101 (or the student's, as above)")
    g.add_argument("--teacher-pretrained", default="None", help="teacher checkpoint (required when the method uses a teacher)")
    g.add_argument("--teacher-head-width", default=None)
    g.add_argument("--teacher-aux-width", type=int, default=None,
                   help="teacher aux head channels (mmseg family; default: the checkpoint's)")
    g.add_argument("--teacher-aux", dest="teacher_aux", action="store_true", default=None,
                   help="teacher aux head (default: on for ResNet, so released CIRKD teachers load strictly)")
    g.add_argument("--no-teacher-aux", dest="teacher_aux", action="store_false")
    g.add_argument("--teacher2-model", default=None, help="second teacher (two-teacher methods; default the first's)")
    g.add_argument("--teacher2-backbone", default=None, help="default the first teacher's")
    g.add_argument("--teacher2-pretrained", default="None")
    g.add_argument("--teacher2-head-width", default=None, help="the second teacher's own head width (default: its model's)")
    g.add_argument("--teacher2-aux", dest="teacher2_aux", action="store_true", default=None,
                   help="second teacher aux head (default: on for ResNet)")
    g.add_argument("--no-teacher2-aux", dest="teacher2_aux", action="store_false")
    g.add_argument("--allow-random-teacher", action="store_true",
                   help="run without a teacher checkpoint (smoke tests only: a random teacher teaches nothing)")
    g.add_argument("--aux", dest="aux", action="store_true", default=None,
                   help="student aux head (default: on for ResNet, off for MobileNet, as CIRKD)")
    g.add_argument("--no-aux", dest="aux", action="store_false")
    g.add_argument("--aux-weight", type=float, default=0.4)
    g.add_argument("--task-loss", choices=["ce", "ohem"], default="ce",
                   help="supervised loss on the student (a method may own its task loss instead)")
    g.add_argument("--ohem-thresh", type=float, default=0.7, help="OHEM: keep pixels with true-class prob <= this")
    g.add_argument("--ohem-min-kept", type=int, default=100000, help="OHEM: keep at least this many pixels per process batch")

    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="citys")
    g.add_argument("--data", default=None, help="dataset root (default data/<dataset folder>)")
    g.add_argument("--train-split", default="train")
    g.add_argument("--val-split", default="val")
    g.add_argument("--train-list", default=None, help="list file of the labeled training images (default: the split's)")
    g.add_argument("--val-list", default=None, help="list file of the validation images (default: the split's)")
    g.add_argument("--unlabeled-list", default=None,
                   help="list file of unlabeled images for methods with an unlabeled stream (labels are not read)")
    g.add_argument("--incremental", default=None, metavar="DATASET:TASK:SETTING",
                   help="class-incremental task, e.g. voc:15-1:overlap (tasks in datasets/incremental.py); with --step")
    g.add_argument("--step", type=int, default=0, help="the incremental step this run trains (0 = the base classes)")
    g.add_argument("--memory-size", type=int, default=0,
                   help="DKD-M: exemplar images of old classes added from step 1 on (VOC 100, ADE 300; 0 = DKD)")
    g.add_argument("--allow-labeled-in-unlabeled", action="store_true",
                   help="let the unlabeled list contain labeled images (refused by default: partitions are disjoint)")
    g.add_argument("--unlabeled-batch-size", type=int, default=None,
                   help="GLOBAL batch of each unlabeled stream (default: --batch-size)")
    g.add_argument("--crop-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="training crop (default: the dataset's CIRKD crop)")
    g.add_argument("--pipeline", choices=list(PIPELINE_NAMES), default="cirkd",
                   help="data pipeline: CIRKD's (scale 0.5-2, BGR minus mean), mmseg 0.26's (ratio resize from "
                        "--img-scale, category-balanced crop, photometric distortion, RGB mean/std; test images "
                        "rescaled to --img-scale), cps (MGD/CPS) or dkd (random resized crop; test: short side to the "
                        "crop + centre crop); every network adapts the tensor to its own normalisation")
    g.add_argument("--img-scale", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help="mmseg pipeline: img_scale (default: the dataset's mmseg value, e.g. 2048 1024 Cityscapes)")
    g.add_argument("--ignore-label", "--ignore-index", dest="ignore_label", type=int, default=-1,
                   help="ignore value in labels given to losses (-1 or 255; both mean 'ignore')")
    g.add_argument("--workers", type=int, default=4)
    g.add_argument("--on-bad-sample", choices=["raise", "skip"], default="raise",
                   help="corrupt/mismatched samples: stop, or skip and count them (training: replaced by the "
                        "next sample; validation: left out)")
    g.add_argument("--check-data", choices=["header", "full", "off"], default="header",
                   help="start-up check of every train/val file: header and end marker (fast), full decode "
                        "with label values and sizes, or none")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=16, help="GLOBAL batch (divided by the number of processes)")
    g.add_argument("--max-iterations", type=int, default=40000)
    g.add_argument("--lr", type=float, default=0.02)
    g.add_argument("--lr-min", type=float, default=0.0, help="poly floor: lr = min + (lr - min)(1 - t)^power")
    g.add_argument("--power", type=float, default=0.9)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=1e-4)
    g.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    g.add_argument("--head-lr-mult", type=float, default=1.0, help="lr multiplier of the heads (DKD: 10)")
    g.add_argument("--method-lr-mult", type=float, default=1.0, help="lr multiplier of the method's own parameters")
    g.add_argument("--no-decay-norm-bias", action="store_true", help="no weight decay on norm layers and biases")
    g.add_argument("--weight-decay-only", nargs="+", default=None, metavar="PATTERN",
                   help="weight decay only on parameters matching these fnmatch patterns (DKD steps >= 1: 'cls.2.*')")
    g.add_argument("--freeze-bn", action="store_true", help="student BatchNorm in eval mode, affine frozen")
    g.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up iterations before the poly decay")
    g.add_argument("--warmup-fraction", type=float, default=0.0, help="warm-up as a fraction of --max-iterations")
    g.add_argument("--warmup-factor", type=float, default=0.001, help="warm-up starts at lr * this")
    g.add_argument("--accum-steps", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--deterministic", action="store_true")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--ce-reduction", choices=["rank", "global"], default="rank",
                   help="CE mean per process (official) or over the global batch's valid pixels")
    g.add_argument("--dist-timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="how long a process waits for the others in a collective; a stalled or dead rank then "
                        "ends the job with a one-line message instead of hanging it")
    g.add_argument("--disable-dropout", action="store_true",
                   help="dropout off in the student (exactness checks, e.g. 1 vs N processes)")

    g = p.add_argument_group("distillation")
    g.add_argument("--kd-method", default="none",
                   help="one of: %s; combine with '+'" % ", ".join(losses.available_methods()))
    losses.add_method_args(p)

    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--save-dir", default="work_dirs/run")
    g.add_argument("--log-dir", default=None, help="text log and TensorBoard (default: --save-dir)")
    g.add_argument("--log-iter", type=int, default=10)
    g.add_argument("--val-per-iters", type=int, default=800)
    g.add_argument("--save-per-iters", type=int, default=800)
    g.add_argument("--skip-val", action="store_true")
    g.add_argument("--val-mode", choices=["whole", "slide"], default="whole",
                   help="validation inference: whole image, or sliding windows (mmseg's Pascal Context PSPNet/HRNet)")
    g.add_argument("--val-crop-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="slide window (default: --crop-size)")
    g.add_argument("--val-stride", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="slide stride (default: 2/3 of the window)")
    g.add_argument("--val-miou", choices=["present", "zero"], default="zero",
                   help="mIoU over classes present in GT/prediction, or all classes with absent = 0 (CIRKD)")
    g.add_argument("--vis-images", type=int, default=3, help="validation pictures sent to TensorBoard")
    g.add_argument("--resume", default=None, help="resume file, or 'auto' for this run's latest")
    g.add_argument("--stop-at-iteration", type=int, default=None,
                   help="stop after this iteration as if killed (to test resuming)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs only)")
    g.add_argument("--preflight-only", action="store_true",
                   help="check flags, checkpoint files, data and folders, then exit (the train scripts run "
                        "this once before torchrun starts the workers)")
    g.add_argument("--skip-nonfinite", type=int, default=0, metavar="K",
                   help="skip a step whose loss or gradients are NaN/Inf (counted, logged) and stop after K in "
                        "a row; 0 = stop at the first (nothing non-finite ever reaches the weights)")
    g.add_argument("--resume-override", action="store_true",
                   help="let --resume continue with a changed batch size or iteration count")
    g.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=None,
                   help=argparse.SUPPRESS)
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.method_spec = losses.parse_spec(args.kd_method)   # parsed once; the trainer reads it
        self_teacher = args.method_spec.teacher_is_student(args)
        args.method_spec.teachers_needed(args)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]))
    if self_teacher:
        args.teacher_model = args.teacher_model or args.student_model
        args.teacher_backbone = args.teacher_backbone or args.student_backbone
        if (args.teacher_model, args.teacher_backbone) != (args.student_model, args.student_backbone):
            parser.error("--kd-method %s distills from a trained copy of the student: --teacher-model/--teacher-"
                         "backbone must equal the student's (%s/%s)" % (args.kd_method, args.student_model,
                                                                        args.student_backbone))
    args.teacher_model = args.teacher_model or "deeplabv3"
    args.teacher_backbone = args.teacher_backbone or "resnet101"
    try:
        info = get_dataset_info(args.dataset)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]) if exc.args else str(exc))
    args.dataset = info.name
    args.num_classes = info.num_classes
    if args.incremental:
        from datasets.incremental import IncrementalTaskError, incremental_classes
        try:
            args.num_classes, args.head_widths = incremental_classes(args.incremental, args.step, info.name)
        except IncrementalTaskError as exc:
            parser.error(str(exc))
        if args.memory_size < 0:
            parser.error("--memory-size must be >= 0")
    elif args.step or args.memory_size:
        parser.error("--step / --memory-size belong to a class-incremental run: add --incremental DATASET:TASK:SETTING")
    args.ignore_index = normalize_ignore_index(args.ignore_label)
    args.crop_size = list(args.crop_size or info.default_crop)
    try:
        build_pipeline(args.pipeline, info, args.img_scale, args.crop_size)
    except ValueError as exc:
        parser.error(str(exc))
    for flag in ("val_crop_size", "val_stride"):
        value = getattr(args, flag)
        if value is not None and min(value) < 1:
            parser.error("--%s must be two positive ints, got %s" % (flag.replace("_", "-"), " ".join(map(str, value))))
    args.val_crop_size = list(args.val_crop_size or args.crop_size)
    args.val_stride = list(args.val_stride or [max(1, c * 2 // 3) for c in args.val_crop_size])
    args.log_dir = args.log_dir or args.save_dir
    if args.aux is None:
        from models import model_has_aux
        args.aux = args.student_backbone.startswith("resnet") and model_has_aux(args.student_model)
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error("--lr must be a finite number > 0, got %s" % args.lr)
    if not args.dist_timeout > 0:
        parser.error("--dist-timeout must be > 0 seconds")
    if args.skip_nonfinite < 0:
        parser.error("--skip-nonfinite must be >= 0")
    if not 0.0 <= args.warmup_fraction < 1.0 or not 0.0 < args.warmup_factor <= 1.0:
        parser.error("--warmup-fraction must be in [0, 1) and --warmup-factor in (0, 1]")
    if args.warmup_iters is not None and not 0 <= args.warmup_iters < args.max_iterations:
        parser.error("--warmup-iters must be in 0..--max-iterations-1, got %d" % args.warmup_iters)
    for flag in ("student_aux_width", "teacher_aux_width"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error("--%s must be >= 1, got %d" % (flag.replace("_", "-"), getattr(args, flag)))
    if args.unlabeled_batch_size is not None and args.unlabeled_batch_size < 1:
        parser.error("--unlabeled-batch-size must be >= 1")
    for flag in ("batch_size", "max_iterations", "accum_steps", "log_iter", "val_per_iters", "save_per_iters"):
        if getattr(args, flag) < 1:
            parser.error("--%s must be >= 1, got %d" % (flag.replace("_", "-"), getattr(args, flag)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size % world_size:
        parser.error("--batch-size %d (global) is not divisible by the %d processes; use a multiple of %d"
                     % (args.batch_size, world_size, world_size))
    if (args.batch_size // world_size) % args.accum_steps:
        parser.error("per-process batch %d is not divisible by --accum-steps %d"
                     % (args.batch_size // world_size, args.accum_steps))
    if world_size == 1 and args.batch_size // args.accum_steps < 2:
        parser.error("a micro-batch of 1 image: BatchNorm in train mode needs >= 2 per step on one process "
                     "(the pooled ASPP/PSP branches are 1x1); raise --batch-size or lower --accum-steps")
    if args.amp == "fp16" and (args.device == "cpu" or not torch.cuda.is_available()):
        parser.error("--amp fp16 needs CUDA; use --amp bf16 on CPU")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.preflight_only:
        try:
            preflight(args)
        except BuildError as exc:
            return fail(str(exc))
        print("preflight ok: %s" % args.kd_method)
        return 0
    try:
        Trainer(args).train()
    except TrainingError as exc:
        return fail(str(exc))
    except RuntimeError as exc:
        if not is_collective_timeout(exc):
            raise
        rank = os.environ.get("RANK", "0")
        return fail("process %s: another process did not answer within --dist-timeout %g s (stalled or dead); "
                    "stopped, the last checkpoint in %s is intact (resume with --resume auto)"
                    % (rank, args.dist_timeout, args.save_dir))
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint in %s is intact (resume with --resume auto)" % args.save_dir,
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    torch.multiprocessing.set_sharing_strategy("file_system")
    sys.exit(main())
