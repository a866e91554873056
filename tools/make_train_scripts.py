"""Write train_scripts/<dataset>/<arch-pair>_<method>.sh from one recipe table.

    python tools/make_train_scripts.py          # rewrites the scripts; commit the result

The table is the single place where the official recipes (CIRKD, Af-DCD, MasKD, BPKD and the
teacher-free choices) live (BPKD's mmseg tables in ``bpkd_recipes.py``); each script states GPUs x batch, iterations, crop, schedule, the
official source and the published number it should reproduce.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpkd_recipes  # noqa: E402  (BPKD's tables: train_scripts/bpkd/)
import mgd_recipes  # noqa: E402  (MGD's partitions: train_scripts/mgd/)
import dkd_recipes  # noqa: E402  (DKD's incremental tasks: train_scripts/dkd/)

DATASETS = {
    # name: (folder, crop, iterations, data root, teacher mIoU)
    "citys": ("cityscapes", (512, 1024), 40000, "data/cityscapes", "78.07"),
    "voc": ("voc", (512, 512), 40000, "data/VOCdevkit/VOC2012", "77.67"),
    "camvid": ("camvid", (360, 360), 40000, "data/CamVid", "69.84"),
    "ade20k": ("ade20k", (512, 512), 40000, "data/ADEChallengeData2016", "42.70"),
    "coco_stuff_164k": ("coco_stuff_164k", (512, 512), 80000, "data/coco_stuff_164k", "38.71"),
}
STUDENTS = {
    "deeplabv3_r18": ("deeplabv3", "resnet18", "resnet18-imagenet.pth", "DeepLabV3-ResNet18"),
    "deeplabv3_mbv2": ("deeplab_mobile", "mobilenetv2", "mobilenetv2-imagenet.pth", "DeepLabV3-MobileNetV2"),
    "psp_r18": ("psp", "resnet18", "resnet18-imagenet.pth", "PSPNet-ResNet18"),
}
# Published mIoU (val, whole image, single scale) of each row, from the cards (Af-DCD / CIRKD READMEs).
PAPER = {
    ("citys", "deeplabv3_r18"): {"none": "74.21", "kd": "-", "skd": "75.42", "ifvd": "75.59", "cwd": "75.55",
                                 "cirkd": "76.38", "maskd": "77.00", "af_dcd": "77.03", "tf_kd": "70.35",
                                 "sad": "70.10", "tf_fd": "70.83"},
    ("citys", "deeplabv3_mbv2"): {"none": "73.12", "skd": "73.82", "ifvd": "73.50", "cwd": "74.66",
                                  "cirkd": "75.42", "maskd": "75.26", "af_dcd": "76.43"},
    ("voc", "deeplabv3_r18"): {"none": "73.21", "cirkd": "74.50", "af_dcd": "76.25"},
    ("voc", "psp_r18"): {"none": "73.33", "cirkd": "74.78", "af_dcd": "76.14"},
    ("camvid", "deeplabv3_r18"): {"none": "66.92", "cirkd": "68.21", "af_dcd": "69.27", "tf_kd": "66.14",
                                  "sad": "66.50", "tf_fd": "67.01"},
    ("camvid", "psp_r18"): {"none": "66.73", "cirkd": "68.65", "af_dcd": "69.48"},
    ("ade20k", "deeplabv3_r18"): {"none": "33.91", "kd": "34.88", "cirkd": "35.41", "af_dcd": "36.21"},
    ("coco_stuff_164k", "deeplabv3_r18"): {"none": "32.60", "kd": "32.88", "cirkd": "33.11", "af_dcd": "34.02"},
}
AFDCD_WEIGHTS = {"citys": ("1.0", "2e-6", "0.005"), "voc": ("1.0", "1e-6", "0.005"), "camvid": ("1.0", "8e-6", "0.01"),
                 "ade20k": ("0.5", "1e-6", "0.04"), "coco_stuff_164k": ("0.5", "5e-6", "0.005")}

OFFLINE_ROWS = (
    [("citys", s, m) for s in ("deeplabv3_r18", "deeplabv3_mbv2") for m in ("kd", "skd", "ifvd", "cwd", "cirkd", "maskd", "af_dcd", "bpkd")]
    + [(d, s, m) for d in ("voc", "camvid") for s in ("deeplabv3_r18", "psp_r18") for m in ("skd", "ifvd", "cwd", "cirkd", "af_dcd", "bpkd")]
    + [(d, "deeplabv3_r18", m) for d in ("ade20k", "coco_stuff_164k") for m in ("kd", "cirkd", "af_dcd")]
)
TEACHER_FREE_ROWS = [(d, "deeplabv3_r18", m) for d in ("citys", "camvid") for m in ("tf_kd", "sad", "tf_fd")]
BASELINE_ROWS = ([(d, "deeplabv3_r18", "none") for d in DATASETS] + [("citys", "deeplabv3_mbv2", "none")]
                 + [(d, "psp_r18", "none") for d in ("citys", "voc", "camvid")])


def method_flags(dataset: str, student: str, method: str) -> List[str]:
    if method in ("skd", "ifvd", "cwd") and dataset == "camvid":
        # 360x360 crops give 45x45 logits; the SAGAN discriminator needs >= 64x64, so the
        # holistic (adversarial) term is off here (the official code would crash).
        return [f.replace("--lambda-adv 0.001 --lambda-d 0.1", "--lambda-adv 0 --lambda-d 0")
                for f in method_flags("citys", student, method)]
    if method == "af_dcd":
        kd, fd, ctr = AFDCD_WEIGHTS[dataset]
        flags = ["--lambda-kd %s" % kd, "--lambda-fd %s" % fd, "--lambda-ctr %s" % ctr]
        if dataset == "citys" and student == "deeplabv3_r18":
            # The official script asks for a centre mask + enhanced projector (with flags argparse
            # rejects); which setting produced 77.03 cannot be verified. This is the evident intent.
            flags += ["--no-rand-mask", "--enhance-projector"]
        return flags
    return {
        "kd": ["--lambda-kd 1.0 --kd-temperature 1.0"],
        "skd": ["--lambda-kd 1.0 --lambda-skd 10 --lambda-adv 0.001 --lambda-d 0.1"],
        "ifvd": ["--lambda-kd 1.0 --lambda-ifv 20 --lambda-adv 0.001 --lambda-d 0.1"],
        "cwd": ["--lambda-kd 1.0 --lambda-cwd-fea 50 --lambda-cwd-logit 3 --cwd-temperature 4 --lambda-adv 0.001 --lambda-d 0.1"],
        "cirkd": ["--lambda-kd 1.0 --lambda-minibatch-pixel 1.0",
                  "--lambda-memory-pixel %s --lambda-memory-region %s" % (("0.01",) * 2 if dataset == "voc" else ("0.1",) * 2)],
        "maskd": ["--lambda-maskd 1.0 --pretrained-mask ${MASK_TOKENS:-work_dirs/maskd_tokens_%s/maskd_tokens_deeplabv3_resnet101_%s.pth}"
                  % (dataset, dataset)],
        "bpkd": ["--bpkd-lambda-edge 50 --bpkd-lambda-body 20"],
        "tf_kd": ["--tf-kd-variant reg"],
        "sad": ["--lambda-sad 0.1 --sad-start-fraction 0.6667"],
        "tf_fd": ["--lambda-tf-fd-inter 5e-4 --lambda-tf-fd-intra 8e-4"],
        "none": [],
    }[method]


def schedule_flags(method: str, student: str) -> List[str]:
    if method == "maskd":  # MasKD's own recipe: wd 5e-4 (MBV2 2e-4), lr floor 1e-4, val/save every 400
        return ["--lr 0.02 --lr-min 1e-4 --weight-decay %s" % ("2e-4" if student == "deeplabv3_mbv2" else "5e-4"),
                "--val-per-iters 400 --save-per-iters 400"]
    return ["--lr 0.02 --weight-decay 1e-4", "--val-per-iters 800 --save-per-iters 800"]


HEADER_NOTES = {
    "tf_kd": "Tf-KD published no segmentation hyper-parameters; the card's ResNet18 CIFAR row is used\n"
             "# (reg: alpha 0.1, T 20, multiplier 100) as a starting point, not a tuned setting. Self variant:\n"
             "# --tf-kd-variant self --teacher-pretrained <this dataset's deeplabv3_r18_none best_model.pth>.",
    "sad": "SAD's official code has no loss for segmentation; gamma 0.1 (ENet-SAD), switched on at 2/3 of\n"
           "# the iterations, attention on c1..c4 (the card's recommendation); not tuned for this task.",
    "tf_fd": "Tf-FD released CIFAR code only; lambda_inter 5e-4 and lambda_intra 8e-4 are its train_kd.py values,\n"
             "# features c2..c4; no segmentation hyper-parameters were published, these are starting points.",
    "maskd": "Stage 2 of MasKD: needs the tokens of stage 1 (train_scripts/cityscapes/maskd_tokens_stage1.sh).",
    "af_dcd": "Official: OSVAI/Af-DCD train_scripts (losses/ocmgd.py); grad-clip 15 on the loss module.",
    "bpkd": "BPKD (WACV'24) edge + body terms on the logits of the CIRKD models; BPKD's own tables (mmseg\n"
            "# models and pipeline) are train_scripts/bpkd/.",
}


# Every file, folder and flag is checked by one quick process before torchrun starts the workers, so a
# missing checkpoint is one line instead of a report per worker.
LAUNCH = ['"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only',
          'torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"']


def script_text(dataset: str, student: str, method: str) -> str:
    folder, crop, iters, root, teacher_miou = DATASETS[dataset]
    model, backbone, imagenet, pretty = STUDENTS[student]
    paper = PAPER.get((dataset, student), {}).get(method, "-")
    teacher_free = method in ("tf_kd", "sad", "tf_fd", "none")
    lines = [
        "#!/usr/bin/env bash",
        "# %s | %s | %s" % (folder, ("teacher-free" if teacher_free else "teacher DeepLabV3-ResNet101 (%s)" % teacher_miou)
                            if method != "none" else "baseline (no distillation)", "student " + pretty + " | " + method),
        "# 8 GPUs x 2 images = global batch 16, %d iterations, crop %dx%d, SGD lr 0.02 poly 0.9, momentum 0.9"
        % (iters, crop[0], crop[1]),
        "# Published mIoU (val, whole image, single scale): %s" % paper,
    ]
    if method in HEADER_NOTES:
        lines.append("# " + HEADER_NOTES[method])
    lines += [
        "# Fewer GPUs: NPROC=2 bash %s (the batch stays global; add --accum-steps to save memory)."
        % os.path.join("train_scripts", folder, "%s_%s.sh" % (student, method)),
        "# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).",
        "set -euo pipefail",
        'cd "$(dirname "$0")/../.."',
        "NPROC=${NPROC:-8}",
        'DATA=${DATA:-%s}' % root,
        "ARGS=(",
        "  --kd-method %s" % ("tf_kd" if method == "tf_kd" else method),
    ]
    body = []
    if method not in ("none", "tf_kd", "sad", "tf_fd"):
        body.append("--teacher-model deeplabv3 --teacher-backbone resnet101 "
                    "--teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_%s_best_model.pth" % dataset)
    body.append("--student-model %s --student-backbone %s --student-pretrained-base pretrained_ckpt/%s"
                % (model, backbone, imagenet))
    body.append("--dataset %s --data \"$DATA\" --crop-size %d %d" % (dataset, crop[0], crop[1]))
    body.append("--batch-size 16 --max-iterations %d" % iters)
    body += schedule_flags(method, student)
    body += method_flags(dataset, student, method)
    body.append("--save-dir work_dirs/%s_%s_%s --log-dir work_dirs/%s_%s_%s" % ((dataset, student, method) * 2))
    lines += ["  %s" % b for b in body] + [")"] + LAUNCH
    return "\n".join(lines) + "\n"


def teacher_script(dataset: str) -> str:
    folder, crop, iters, root, teacher_miou = DATASETS[dataset]
    return "\n".join([
        "#!/usr/bin/env bash",
        "# %s | teacher DeepLabV3-ResNet101 trained without distillation (released file: %s mIoU)" % (folder, teacher_miou),
        "# 8 GPUs x 2 = global batch 16, %d iterations, crop %dx%d (the CIRKD maintainer reports the released" % (iters, crop[0], crop[1]),
        "# Cityscapes teacher used 80k iterations at batch 8); writes deeplabv3_resnet101_%s_best_model.pth" % dataset,
        "set -euo pipefail", 'cd "$(dirname "$0")/../.."', "NPROC=${NPROC:-8}", "DATA=${DATA:-%s}" % root,
        "ARGS=(",
        "  --kd-method none",
        "  --student-model deeplabv3 --student-backbone resnet101 --student-pretrained-base pretrained_ckpt/resnet101-imagenet.pth",
        "  --dataset %s --data \"$DATA\" --crop-size %d %d --batch-size 16 --max-iterations %d" % (dataset, crop[0], crop[1], iters),
        "  --lr 0.02 --weight-decay 1e-4 --save-dir work_dirs/%s_teacher_deeplabv3_r101" % dataset,
        ")"] + LAUNCH + [""])


MASKD_STAGE1 = """#!/usr/bin/env bash
# cityscapes | MasKD stage 1: learn 8 receptive tokens on the frozen DeepLabV3-ResNet101 teacher
# (teacher forward in train mode, as the official train_mask_module.py); SGD lr 0.1 poly 0.9,
# weight decay 1e-3, 10000 iterations, global batch 16 (8 GPUs x 2), crop 512x1024.
# Writes work_dirs/maskd_tokens_citys/maskd_tokens_deeplabv3_resnet101_citys.pth for stage 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method maskd_tokens
  --teacher-model deeplabv3 --teacher-backbone resnet101
  --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_citys_best_model.pth
  --dataset citys --data "$DATA" --crop-size 512 1024 --batch-size 16 --max-iterations 10000
  --lr 0.1 --weight-decay 1e-3 --skip-val --save-per-iters 400
  --save-dir work_dirs/maskd_tokens_citys
)
""" + "\n".join(LAUNCH) + "\n"


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def main(out: Optional[str] = None) -> Dict[str, str]:
    out = out or os.path.join(ROOT, "train_scripts")
    written = {}
    for dataset, student, method in BASELINE_ROWS + OFFLINE_ROWS + TEACHER_FREE_ROWS:
        name = os.path.join(out, DATASETS[dataset][0], "%s_%s.sh" % (student, method))
        written[name] = script_text(dataset, student, method)
    for dataset in DATASETS:
        written[os.path.join(out, DATASETS[dataset][0], "deeplabv3_r101_teacher.sh")] = teacher_script(dataset)
    written[os.path.join(out, "cityscapes", "maskd_tokens_stage1.sh")] = MASKD_STAGE1
    written.update(bpkd_recipes.scripts(out, LAUNCH))
    written.update(mgd_recipes.scripts(out, LAUNCH))
    written.update(dkd_recipes.scripts(out, LAUNCH))
    for path, text in written.items():
        write(path, text)
    return written


if __name__ == "__main__":
    files = main()
    print("wrote %d scripts under train_scripts/" % len(files))
