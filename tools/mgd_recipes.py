"""MGD's experiments as train scripts: train_scripts/mgd/<dataset>/<what>_1-<R>.sh.

Used by tools/make_train_scripts.py. Sources: JayQine/MGD-SSSS@9309105 configs and script.sh of the
1/8 experiments (the only ones shipped), shared/methods/mgd.md (defaults, iterations, single-process
equivalence) and shared/notes/mgd.md. Every script runs at the official GLOBAL batch; lr and weight
decay are the single-process equivalents of the official multi-GPU runs (lr / W, wd x W, because
the official losses are all-reduced without gradient and then averaged by DDP once more), so any
number of processes gives the official update.
"""
from __future__ import annotations

import os
from typing import Dict, List

PARTITIONS = (16, 8, 4, 2)
DATASETS = {
    # name: folder, data root, crop, official GPUs, split lists folder, labeled / unlabeled counts per partition
    "voc": ("voc", "data/VOCdevkit/VOC2012", 512, 4, "data/splits/voc",
            {16: (662, 9920), 8: (1323, 9259), 4: (2646, 7936), 2: (5291, 5291)}),
    "citys": ("cityscapes", "data/cityscapes", 800, 8, "data/splits/cityscapes",
              {16: (186, 2789), 8: (372, 2603), 4: (744, 2231), 2: (1488, 1487)}),
}
EPOCHS = {"voc": 34, "citys": 137}
# official base lr of the run (after the VOC scripts' x world-size scaling), global batch
STUDENTS = {
    ("voc", "resnet18"): dict(lr=0.01, batch=8, lambda_sem="0.002", lambda_content="100", official=True),
    ("voc", "mobilenetv2"): dict(lr=0.014, batch=8, lambda_sem="0.0005", lambda_content="50", official=True),
    ("citys", "resnet18"): dict(lr=0.02, batch=16, lambda_sem="0.001", lambda_content="100", official=True),
    ("citys", "mobilenetv2"): dict(lr=0.02, batch=16, lambda_sem="0.0005", lambda_content="50", official=False),
}
TEACHERS = {   # backbone: (name in the paper, official lr after scaling per dataset, ImageNet file)
    "resnet101": ("T_D ResNet-101", {"voc": 0.01, "citys": 0.02}, "resnet101_v1c.pth"),
    "wide_resnet50_2": ("T_W \"WideResNet-34-2\" (WRN-50-2 layout)", {"voc": 0.004, "citys": 0.02},
                        "checkpoint-wres34.pth.tar"),
}
TEACHER_BATCH = {"voc": 8, "citys": 8}
IMAGENET = {"resnet18": "resnet18-f37072fd.pth", "mobilenetv2": "mobilenet_v2-b0353104.pth"}
RELEASED = {("voc", "resnet101"): "teacher-voc8-resnet101.pth", ("voc", "wide_resnet50_2"): "teacher-voc8-wideresnet34.pth",
            ("citys", "resnet101"): "teacher-city8-resnet101.pth",
            ("citys", "wide_resnet50_2"): "teacher-city8-wideresnet34.pth"}
SHORT = {"resnet18": "r18", "mobilenetv2": "mbv2", "resnet101": "r101", "wide_resnet50_2": "wrn"}


def iterations(dataset: str, ratio: int, batch: int) -> int:
    labeled, unlabeled = DATASETS[dataset][5][ratio]
    return EPOCHS[dataset] * (max(labeled, unlabeled) // batch)


def lists(dataset: str, ratio: int) -> str:
    folder = DATASETS[dataset][4]
    return ("--train-list %s/train_aug_labeled_1-%d.txt --unlabeled-list %s/train_aug_unlabeled_1-%d.txt"
            % (folder, ratio, folder, ratio))


def common(dataset: str) -> List[str]:
    crop = DATASETS[dataset][2]
    stride = -(-crop * 2 // 3)
    return ["--dataset %s --data \"$DATA\" --pipeline cps --crop-size %d %d --no-aux" % (dataset, crop, crop),
            "--val-mode slide --val-crop-size %d %d --val-stride %d %d --val-miou present" % (crop, crop, stride, stride)]


def optimisation(lr: float, gpus: int, batch: int, iters: int) -> List[str]:
    return ["--batch-size %d --max-iterations %d --lr %g --weight-decay %g --power 0.9 --no-decay-norm-bias"
            % (batch, iters, lr / gpus, 1e-4 * gpus),
            "--val-per-iters 2000 --save-per-iters 2000"]


def ohem(dataset: str) -> List[str]:
    return ["--task-loss ohem --ohem-thresh 0.7 --ohem-min-kept \"$MIN_KEPT\""] if dataset == "citys" else []


def min_kept(dataset: str, pixels_per_gpu_batch: int, gpus: int) -> List[str]:
    """The official min_kept counts the pixels of one GPU's batch; here, of one process's share."""
    if dataset != "citys":
        return []
    return ["MIN_KEPT=$(( %d * %d / NPROC ))   # OHEM: %d per official GPU batch" % (
        pixels_per_gpu_batch, gpus, pixels_per_gpu_batch)]


def script(lines: List[str], body: List[str], dataset: str, gpus: int, launch: List[str],
           variables: List[str] = ()) -> str:
    folder, root = DATASETS[dataset][0], DATASETS[dataset][1]
    return "\n".join(["#!/usr/bin/env bash"] + lines + [
        "# lr / weight decay: the single-process equivalents of the official %d-GPU run (lr / %d, wd x %d);" % (
            gpus, gpus, gpus),
        "# any NPROC gives the official update at this global batch. Extra flags go to train_kd.py.",
        "set -euo pipefail", 'cd "$(dirname "$0")/../../.."', "NPROC=${NPROC:-%d}" % gpus,
        "DATA=${DATA:-%s}" % root] + list(variables) + ["ARGS=("] + ["  " + b for b in body] + [")"] + launch) + "\n"


def student_script(dataset: str, backbone: str, ratio: int, launch: List[str]) -> str:
    cfg = STUDENTS[(dataset, backbone)]
    folder, _, crop, gpus, _, counts = DATASETS[dataset]
    iters = iterations(dataset, ratio, cfg["batch"])
    teachers = {t: "pretrained_ckpt/%s" % RELEASED[(dataset, t)] if ratio == 8 else
                "work_dirs/mgd_%s_cps_%s_1-%d/kd_deeplabv3plus_cps_%s_%s_best_model.pth" % (
                    dataset, SHORT[t], ratio, t, dataset) for t in TEACHERS}
    lines = ["# MGD | %s 1/%d (%d labeled / %d unlabeled) | student DeepLabV3+ %s | teachers T_D ResNet-101, T_W WRN"
             % (folder, ratio, counts[ratio][0], counts[ratio][1], backbone),
             "# official: %d GPUs x %d = batch %d, %d epochs x max(labeled, unlabeled) // batch = %d iterations, crop %d,"
             % (gpus, cfg["batch"] // gpus, cfg["batch"], EPOCHS[dataset], iters, crop),
             "# SGD lr %g poly 0.9, lambda_1 %s, lambda_2 %s%s; eval slide %d, mIoU over present classes."
             % (cfg["lr"], cfg["lambda_sem"], cfg["lambda_content"], ", OHEM 0.7" if dataset == "citys" else "", crop),
             "# Published: not reproduced here (the paper's tables could not be read; see shared/methods/mgd.md)."]
    assumed = []
    if ratio != 8:
        assumed.append("the official configs exist for 1/8 only: this partition keeps the 1/8 settings")
    if not cfg["official"]:
        assumed.append("no official Cityscapes MobileNetV2 config: City R18's lr and batch with VOC MBV2's lambdas")
    if assumed:
        lines.append("# Assumed: " + "; ".join(assumed) + ".")
    lines.append("# Teachers: %s (T_D, --teacher-*) and %s (T_W, --teacher2-*)%s." % (
        teachers["resnet101"], teachers["wide_resnet50_2"],
        " = the released CPS teachers" if ratio == 8 else ", written by this folder's cps_*_1-%d.sh" % ratio))
    body = ["--kd-method mgd",
            "--student-model deeplabv3plus_cps --student-backbone %s --student-pretrained-base pretrained_ckpt/%s"
            % (backbone, IMAGENET[backbone]),
            "--teacher-model deeplabv3plus_cps --teacher-backbone resnet101 --teacher-pretrained \"$TEACHER_D\"",
            "--teacher2-model deeplabv3plus_cps --teacher2-backbone wide_resnet50_2 --teacher2-pretrained \"$TEACHER_W\"",
            lists(dataset, ratio)] + common(dataset) + optimisation(cfg["lr"], gpus, cfg["batch"], iters)
    body += ohem(dataset)
    body += ["--mgd-lambda-sem %s --mgd-lambda-content %s --mgd-sem-images-per-gpu %d"
             % (cfg["lambda_sem"], cfg["lambda_content"], cfg["batch"] // gpus),
             "--save-dir work_dirs/mgd_%s_%s_1-%d" % (dataset, SHORT[backbone], ratio)]
    variables = ["TEACHER_D=${TEACHER_D:-%s}" % teachers["resnet101"],
                 "TEACHER_W=${TEACHER_W:-%s}" % teachers["wide_resnet50_2"]]
    return script(lines, body, dataset, gpus, launch, variables + min_kept(dataset, 50000 * cfg["batch"] // gpus, gpus))


def supervised_script(dataset: str, backbone: str, ratio: int, launch: List[str]) -> str:
    cfg = STUDENTS[(dataset, backbone)]
    folder, _, crop, gpus, split_dir, counts = DATASETS[dataset]
    iters = iterations(dataset, ratio, cfg["batch"])
    lines = ["# MGD baseline \"Sup. l\" | %s 1/%d | DeepLabV3+ %s on the %d labeled images alone" % (
        folder, ratio, backbone, counts[ratio][0]),
             "# The student's schedule (%d iterations, batch %d, lr %g official), no unlabeled data, no teacher."
             % (iters, cfg["batch"], cfg["lr"])]
    body = ["--kd-method none",
            "--student-model deeplabv3plus_cps --student-backbone %s --student-pretrained-base pretrained_ckpt/%s"
            % (backbone, IMAGENET[backbone]),
            "--train-list %s/train_aug_labeled_1-%d.txt" % (split_dir, ratio)] + common(dataset)
    body += optimisation(cfg["lr"], gpus, cfg["batch"], iters) + ohem(dataset)
    body.append("--save-dir work_dirs/mgd_%s_sup_%s_1-%d" % (dataset, SHORT[backbone], ratio))
    return script(lines, body, dataset, gpus, launch, min_kept(dataset, 50000 * cfg["batch"] // gpus, gpus))


def teacher_script(dataset: str, backbone: str, ratio: int, launch: List[str]) -> str:
    name, lrs, imagenet = TEACHERS[backbone]
    folder, _, crop, gpus, _, counts = DATASETS[dataset]
    batch = TEACHER_BATCH[dataset]
    iters = iterations(dataset, ratio, batch)
    weight = 5 if dataset == "citys" else 1
    lines = ["# MGD teacher %s | %s 1/%d | CPS + CutMix, two branches of DeepLabV3+ %s; branch 1 is the teacher" % (
        name, folder, ratio, backbone),
             "# official: %d GPUs x %d = batch %d, %d iterations, crop %d, SGD lr %g poly 0.9, w_cps %d%s." % (
                 gpus, batch // gpus, batch, iters, crop, lrs[dataset], weight,
                 ", OHEM 0.7 / 50000 per GPU" if dataset == "citys" else ""),
             "# Writes work_dirs/mgd_%s_cps_%s_1-%d/kd_deeplabv3plus_cps_%s_%s_best_model.pth (a plain state_dict);"
             % (dataset, SHORT[backbone], ratio, backbone, dataset),
             "# the released 1/8 teacher is pretrained_ckpt/%s (loads as is: branch1.* is taken)." % RELEASED[
                 (dataset, backbone)]]
    if ratio != 8:
        lines.append("# Assumed: the official configs exist for 1/8 only: this partition keeps the 1/8 settings.")
    body = ["--kd-method cps --cps-weight %d" % weight,
            "--student-model deeplabv3plus_cps --student-backbone %s --student-pretrained-base pretrained_ckpt/%s"
            % (backbone, imagenet), lists(dataset, ratio)] + common(dataset) + optimisation(lrs[dataset], gpus, batch, iters)
    body += ohem(dataset)
    body.append("--save-dir work_dirs/mgd_%s_cps_%s_1-%d" % (dataset, SHORT[backbone], ratio))
    return script(lines, body, dataset, gpus, launch, min_kept(dataset, 50000 * batch // gpus, gpus))


def scripts(out: str, launch: List[str]) -> Dict[str, str]:
    written: Dict[str, str] = {}
    for dataset, spec in DATASETS.items():
        folder = os.path.join(out, "mgd", spec[0])
        for ratio in PARTITIONS:
            for backbone in ("resnet18", "mobilenetv2"):
                written[os.path.join(folder, "mgd_%s_1-%d.sh" % (SHORT[backbone], ratio))] = \
                    student_script(dataset, backbone, ratio, launch)
                written[os.path.join(folder, "sup_%s_1-%d.sh" % (SHORT[backbone], ratio))] = \
                    supervised_script(dataset, backbone, ratio, launch)
            for backbone in TEACHERS:
                written[os.path.join(folder, "cps_%s_1-%d.sh" % (SHORT[backbone], ratio))] = \
                    teacher_script(dataset, backbone, ratio, launch)
    return written
