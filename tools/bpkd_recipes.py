"""BPKD's three tables as train scripts: train_scripts/bpkd/<dataset>/<student>_<method>.sh.

Used by tools/make_train_scripts.py (one generator for every script). Sources: BPKD's README tables
(AkideLiu/BPKD@83014fa), its mmseg 0.26 configs, the mmseg model zoo metafiles (checkpoint names,
teacher mIoU) and ../shared/notes/bpkd.md. Every row: 80k iterations, SGD momentum 0.9, poly 0.9 to
lr 1e-4, CE + 0.4 aux CE, the mmseg pipeline, SyncBN (BatchNorm on one process).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

DATASETS = {
    # name: folder, crop, global batch (GPUs x per GPU), lr, weight decay, data root
    "citys": ("cityscapes", (512, 1024), (4, 2), "0.01", "5e-4", "data/cityscapes"),
    "ade20k": ("ade20k", (512, 512), (4, 2), "0.01", "5e-4", "data/ADEChallengeData2016"),
    "pascal_context": ("pascal_context", (480, 480), (4, 4), "0.004", "1e-4", "data/VOCdevkit/VOC2010"),
}

PAIRS = {
    # student key: model, student backbone, teacher backbone, names, logit stride, ImageNet files
    "pspnet_r18": ("pspnet", "resnet18_v1c", "resnet101_v1c", "PSPNet-R18", "PSPNet-R101", 8,
                   "resnet18_v1c-b5776b93.pth", "resnet101_v1c-e67eebb6.pth"),
    "hrnet_w18s": ("fcn", "hrnetv2_w18_small", "hrnetv2_w48", "HRNetV2p-W18-Small", "HRNetV2p-W48", 4,
                   "hrnetv2_w18_small-b5a04e21.pth", "hrnetv2_w48-d2186c55.pth"),
    "deeplabv3plus_mbv2": ("deeplabv3plus", "mobilenetv2", "resnet101_v1c", "DeepLabV3+-MobileNetV2",
                           "DeepLabV3+-R101", 4, "mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth",
                           "resnet101_v1c-e67eebb6.pth"),
    "isanet_r18": ("isanet", "resnet18_v1c", "resnet101_v1c", "ISANet-R18", "ISANet-R101", 8,
                   "resnet18_v1c-b5776b93.pth", "resnet101_v1c-e67eebb6.pth"),
}
TEACHER_KEYS = {"pspnet_r18": "pspnet_r101", "hrnet_w18s": "hrnet_w48", "deeplabv3plus_mbv2": "deeplabv3plus_r101",
                "isanet_r18": "isanet_r101"}

# Teacher checkpoints (mmseg 0.26 zoo; Pascal Context ISANet: BPKD release v0.0.3) and their zoo
# schedule / crop, for the teacher scripts.
TEACHERS = {
    ("citys", "pspnet_r18"): ("pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth", 80000, None),
    ("citys", "hrnet_w18s"): ("fcn_hr48_512x1024_160k_cityscapes_20200602_190946-59b7973e.pth", 160000, None),
    ("citys", "deeplabv3plus_mbv2"): ("deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143-068fcfe9.pth",
                                      80000, None),
    ("citys", "isanet_r18"): ("isanet_r101-d8_769x769_80k_cityscapes_20210903_111319-24f71dfa.pth", 80000,
                              ((769, 769), (2049, 1025))),
    ("ade20k", "pspnet_r18"): ("pspnet_r101-d8_512x512_160k_ade20k_20200615_100650-967c316f.pth", 160000, None),
    ("ade20k", "hrnet_w18s"): ("fcn_hr48_512x512_160k_ade20k_20200614_214407-a52fc02c.pth", 160000, None),
    ("ade20k", "deeplabv3plus_mbv2"): ("deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232-38ed86bb.pth",
                                       160000, None),
    ("ade20k", "isanet_r18"): ("isanet_r101-d8_512x512_160k_ade20k_20210903_211431-a7879dcd.pth", 160000, None),
    ("pascal_context", "pspnet_r18"): ("pspnet_r101-d8_480x480_80k_pascal_context_59_20210416_114418-fa6caaa2.pth",
                                       80000, None),
    ("pascal_context", "hrnet_w18s"): ("fcn_hr48_480x480_80k_pascal_context_59_20210411_003240-3ae7081e.pth",
                                       80000, None),
    ("pascal_context", "deeplabv3plus_mbv2"): (
        "deeplabv3plus_r101-d8_480x480_80k_pascal_context_59_20210416_111127-7ca0331d.pth", 80000, None),
    ("pascal_context", "isanet_r18"): ("raw_80k_isanet_r18_pascal_context_59_teacher.pth", 80000,
                                       ((512, 512), None)),
}

METHODS = ("none", "skd", "ifvd", "cirkd", "cwd", "bpkd")
COLUMNS = ("T", "none", "skd", "ifvd", "cirkd", "cwd", "bpkd")
# BPKD README, mIoU (val, single scale): T, S, SKDS, IFVD, CIRKD, CWD, BPKD.
PAPER = {
    ("citys", "pspnet_r18"): "79.74 74.23 76.13 76.24 76.03 76.26 77.57",
    ("citys", "hrnet_w18s"): "80.65 75.31 77.27 77.18 77.36 77.87 78.58",
    ("citys", "deeplabv3plus_mbv2"): "80.98 75.29 76.05 76.97 77.71 77.97 78.59",
    ("citys", "isanet_r18"): "80.61 73.62 74.99 75.35 75.41 75.43 75.72",
    ("ade20k", "pspnet_r18"): "44.39 33.30 34.49 34.54 35.07 37.02 38.51",
    ("ade20k", "hrnet_w18s"): "42.02 31.38 32.57 32.66 33.06 34.00 35.31",
    ("ade20k", "deeplabv3plus_mbv2"): "45.47 31.56 32.49 32.11 32.24 35.12 35.49",
    ("ade20k", "isanet_r18"): "43.80 31.15 32.16 32.78 32.82 37.56 38.73",
    ("pascal_context", "pspnet_r18"): "52.47 43.79 45.08 45.97 45.62 45.99 46.82",
    ("pascal_context", "hrnet_w18s"): "51.12 40.62 41.54 41.55 42.02 42.89 43.96",
    ("pascal_context", "deeplabv3plus_mbv2"): "53.20 41.01 42.07 41.73 42.25 43.74 46.23",
    ("pascal_context", "isanet_r18"): "53.41 44.05 45.69 46.75 45.83 46.76 47.25",
}
BPKD_MACC = {("citys", "pspnet_r18"): "84.47", ("citys", "hrnet_w18s"): "85.78",
             ("citys", "deeplabv3plus_mbv2"): "86.45", ("citys", "isanet_r18"): "83.65",
             ("ade20k", "pspnet_r18"): "47.70", ("ade20k", "hrnet_w18s"): "46.11",
             ("ade20k", "deeplabv3plus_mbv2"): "53.84", ("ade20k", "isanet_r18"): "47.92",
             ("pascal_context", "pspnet_r18"): "56.29", ("pascal_context", "hrnet_w18s"): "54.51",
             ("pascal_context", "deeplabv3plus_mbv2"): "58.12", ("pascal_context", "isanet_r18"): "56.81"}

# mmseg test_cfg: whole image, except Pascal Context PSPNet (slide 480/320) and HRNet (slide 512/320).
SLIDE = {("pascal_context", "pspnet_r18"): (480, 320), ("pascal_context", "hrnet_w18s"): (512, 320)}

METHOD_NOTES = {
    "none": "The student alone (BPKD's \"S\" row; on Cityscapes PSPNet-R18 that row is mmseg's R18b zoo\n"
            "# model with a torchvision-style stem, and DeepLabV3+-MV2 the zoo's 512-wide head).",
    "skd": "SKD as in its card (KD 1 + pair-wise 10 on head_feat + adversarial 0.001 / D 0.1); BPKD does not\n"
           "# list its baseline settings, so the CIRKD-family values are used.",
    "ifvd": "IFVD as in its card (KD 1 + IFV 20 on head_feat + adversarial 0.001 / D 0.1); BPKD does not list\n"
            "# its baseline settings, so the CIRKD-family values are used.",
    "cirkd": "CIRKD as in its card (KD 1, mini-batch pixel 1, memory pixel / region 0.1, head_feat); BPKD does\n"
             "# not list its baseline settings, so CIRKD's Cityscapes values are used.",
    "cwd": "CWD as mmrazor 0.x's logits recipe (cwd_cls_head_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k):\n"
           "# CWD on the decode-head logits only, tau 1, weight 5, no KD / feature / adversarial term.",
    "bpkd": "BPKD: edge 50 + body 20 on the decode-head logits at their native stride (alpha 2, kernel 7,\n"
            "# tau 1, per-class edge normalisation: the card's defaults; the paper's training code is unreleased).",
}


def small_logits(dataset: str, student: str) -> bool:
    return min(DATASETS[dataset][1]) // PAIRS[student][5] < 64


def method_flags(dataset: str, student: str, method: str) -> List[str]:
    adversarial = "--lambda-adv 0 --lambda-d 0" if small_logits(dataset, student) else "--lambda-adv 0.001 --lambda-d 0.1"
    return {
        "none": [],
        "skd": ["--lambda-kd 1.0 --lambda-skd 10 " + adversarial],
        "ifvd": ["--lambda-kd 1.0 --lambda-ifv 20 " + adversarial],
        "cirkd": ["--lambda-kd 1.0 --lambda-minibatch-pixel 1.0 --lambda-memory-pixel 0.1 --lambda-memory-region 0.1"],
        "cwd": ["--lambda-kd 0 --lambda-cwd-fea 0 --lambda-cwd-logit 5 --cwd-temperature 1 --lambda-adv 0 --lambda-d 0"],
        "bpkd": ["--bpkd-lambda-edge 50 --bpkd-lambda-body 20"],
    }[method]


def student_flags(dataset: str, student: str) -> List[str]:
    model, backbone = PAIRS[student][0], PAIRS[student][1]
    flags = "--student-model %s --student-backbone %s --student-pretrained-base pretrained_ckpt/%s" % (
        model, backbone, PAIRS[student][6])
    flags += " --no-aux" if model == "fcn" else " --aux"
    if dataset == "citys" and student == "deeplabv3plus_mbv2":
        flags += " --student-head-width 128 --student-aux-width 64"   # BPKD's lighter Cityscapes head
    return [flags]


def val_flags(dataset: str, student: str) -> List[str]:
    if (dataset, student) in SLIDE:
        window, stride = SLIDE[(dataset, student)]
        return ["--val-mode slide --val-crop-size %d %d --val-stride %d %d" % (window, window, stride, stride)]
    return []


def eval_hint(dataset: str, student: str, model: str, backbone: str, save_dir: str, kd: bool) -> str:
    best = "%s%s_%s_%s_best_model.pth" % ("kd_" if kd else "", model, backbone, dataset)
    protocol = ""
    if (dataset, student) in SLIDE:
        window, stride = SLIDE[(dataset, student)]
        protocol = " --mode slide --crop-size %d %d --stride %d %d" % (window, window, stride, stride)
    return ("# Evaluate: python eval.py --pipeline mmseg --dataset %s --model %s --backbone %s%s --pretrained %s/%s"
            % (dataset, model, backbone, protocol, save_dir, best))


def header(dataset: str, student: str, lines: List[str]) -> List[str]:
    folder, crop, (gpus, per_gpu), lr, wd, _ = DATASETS[dataset]
    return ["#!/usr/bin/env bash"] + lines + [
        "# %d GPUs x %d images = global batch %d, crop %dx%d, SGD lr %s momentum 0.9 wd %s, poly 0.9 to 1e-4"
        % (gpus, per_gpu, gpus * per_gpu, crop[0], crop[1], lr, wd),
        "# mmseg pipeline (img_scale as mmseg's %s config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric"
        % folder,
        "# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (%s)."
        % ("slide %d/%d" % SLIDE[(dataset, student)] if (dataset, student) in SLIDE else "whole image"),
    ]


LAUNCH_NOTE = ["# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).",
               "# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step)."]


def student_script(dataset: str, student: str, method: str, launch: List[str]) -> str:
    folder, crop, (gpus, per_gpu), lr, wd, root = DATASETS[dataset]
    model, s_backbone, t_backbone, s_name, t_name, stride, _, _ = PAIRS[student]
    figures = dict(zip(COLUMNS, PAPER[(dataset, student)].split()))
    checkpoint, _, _ = TEACHERS[(dataset, student)]
    save_dir = "work_dirs/bpkd_%s_%s_%s" % (dataset, student, method)
    published = "mIoU %s" % figures[method] + (", mAcc %s" % BPKD_MACC[(dataset, student)] if method == "bpkd" else "")
    lines = header(dataset, student, [
        "# BPKD table | %s | %s | student %s | %s" % (
            folder, "baseline (no distillation)" if method == "none" else "teacher %s (%s mIoU)" % (t_name, figures["T"]),
            s_name, method),
        "# Published (BPKD README, val, single scale): %s" % published])
    lines += ["# " + METHOD_NOTES[method]]
    if method in ("skd", "ifvd") and small_logits(dataset, student):
        lines.append("# Adversarial term off here: %dx%d crops give %dx%d logits, below the SAGAN discriminator's 64x64."
                     % (crop[0], crop[1], crop[0] // stride, crop[1] // stride))
    if method != "none":
        lines.append("# Teacher: pretrained_ckpt/%s (logits at stride %d, as the student's)" % (checkpoint, stride))
    lines.append(eval_hint(dataset, student, model, s_backbone, save_dir, method != "none"))
    lines += LAUNCH_NOTE + ["set -euo pipefail", 'cd "$(dirname "$0")/../../.."', "NPROC=${NPROC:-%d}" % gpus,
                            "DATA=${DATA:-%s}" % root, "ARGS=(", "  --kd-method %s" % method]
    body = []
    if method != "none":
        body.append("--teacher-model %s --teacher-backbone %s --teacher-pretrained pretrained_ckpt/%s"
                    % (model, t_backbone, checkpoint))
    body += student_flags(dataset, student)
    body.append("--dataset %s --data \"$DATA\" --pipeline mmseg --crop-size %d %d" % (dataset, crop[0], crop[1]))
    body.append("--batch-size %d --max-iterations 80000 --lr %s --lr-min 1e-4 --weight-decay %s"
                % (gpus * per_gpu, lr, wd))
    body.append("--val-per-iters 8000 --save-per-iters 8000")
    body += val_flags(dataset, student)
    body += method_flags(dataset, student, method)
    body.append("--save-dir %s" % save_dir)
    lines += ["  %s" % b for b in body] + [")"] + launch
    return "\n".join(lines) + "\n"


def teacher_script(dataset: str, student: str, launch: List[str]) -> str:
    folder, crop, (gpus, per_gpu), lr, wd, root = DATASETS[dataset]
    model, _, t_backbone, _, t_name, _, _, t_base = PAIRS[student]
    figures = dict(zip(COLUMNS, PAPER[(dataset, student)].split()))
    checkpoint, iterations, override = TEACHERS[(dataset, student)]
    scale = ""
    if override is not None:
        crop = override[0]
        scale = " --img-scale %d %d" % override[1] if override[1] else ""
    key = TEACHER_KEYS[student]
    save_dir = "work_dirs/bpkd_%s_teacher_%s" % (dataset, key)
    lines = header(dataset, student, [
        "# BPKD table | %s | teacher %s trained without distillation (%d iterations, as the zoo file)"
        % (folder, t_name, iterations),
        "# Released file (BPKD's teacher, %s mIoU): pretrained_ckpt/%s" % (figures["T"], checkpoint),
        "# Train it here only to reproduce it; the student scripts load the released file."])
    if override is not None:
        lines.append("# The released teacher used a %dx%d crop%s (its config), kept here."
                     % (crop[0], crop[1], " and img_scale %dx%d" % override[1] if override[1] else ""))
    lines += LAUNCH_NOTE + ["set -euo pipefail", 'cd "$(dirname "$0")/../../.."', "NPROC=${NPROC:-%d}" % gpus,
                            "DATA=${DATA:-%s}" % root, "ARGS=(", "  --kd-method none"]
    body = ["--student-model %s --student-backbone %s --student-pretrained-base pretrained_ckpt/%s %s"
            % (model, t_backbone, t_base, "--no-aux" if model == "fcn" else "--aux"),
            "--dataset %s --data \"$DATA\" --pipeline mmseg --crop-size %d %d%s" % (dataset, crop[0], crop[1], scale),
            "--batch-size %d --max-iterations %d --lr %s --lr-min 1e-4 --weight-decay %s"
            % (gpus * per_gpu, iterations, lr, wd),
            "--val-per-iters 8000 --save-per-iters 8000"]
    body += val_flags(dataset, student)
    body.append("--save-dir %s" % save_dir)
    lines += ["  %s" % b for b in body] + [")"] + launch
    return "\n".join(lines) + "\n"


def scripts(out: str, launch: List[str]) -> Dict[str, str]:
    import os
    written: Dict[str, str] = {}
    for dataset, spec in DATASETS.items():
        for student in PAIRS:
            for method in METHODS:
                written[os.path.join(out, "bpkd", spec[0], "%s_%s.sh" % (student, method))] = \
                    student_script(dataset, student, method, launch)
            written[os.path.join(out, "bpkd", spec[0], "%s_teacher.sh" % TEACHER_KEYS[student])] = \
                teacher_script(dataset, student, launch)
    return written


def rows() -> List[Tuple[str, str, str]]:
    return [(d, s, m) for d in DATASETS for s in PAIRS for m in METHODS]
