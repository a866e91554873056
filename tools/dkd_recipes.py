"""DKD's README tables as task scripts: train_scripts/dkd/<dataset>/<setting>_<task>_{dkd,dkd-m}.sh.

Used by tools/make_train_scripts.py. Each script runs every step through tools/run_incremental.py
(restarting at the first unfinished step). Sources: cvlab-yonsei/DKD@fb4693f configs and scripts,
shared/methods/dkd.md (defaults, published numbers) and shared/notes/dkd.md (images per step).
"""
from __future__ import annotations

import os
from typing import Dict, List

DATASETS = {  # key: folder, --dataset, data root, GPUs x per GPU, epochs, lr step 0 / later, pos_weight, memory
    "voc": ("voc", "voc", "data/VOCdevkit/VOC2012", (4, 8), 60, ("1e-3", "1e-4"), ("2", "1"), 100),
    "ade": ("ade20k", "ade20k", "data/ADEChallengeData2016", (4, 6), 100, ("2.5e-3", "2.5e-4"), ("35", "35"), 300),
}
# training images per step (the protocol's selection; shared/notes/dkd.md)
IMAGES = {
    ("voc", "overlap", "19-1"): (10410, 548), ("voc", "overlap", "15-5"): (9568, 2145),
    ("voc", "overlap", "15-1"): (9568, 487, 299, 491, 500, 548),
    ("voc", "overlap", "10-1"): (6139, 528, 1177, 444, 482, 3898, 487, 299, 491, 500, 548),
    ("voc", "overlap", "5-3"): (2836, 2331, 1542, 2095, 4484, 1468),
    ("voc", "disjoint", "19-1"): (10034, 548), ("voc", "disjoint", "15-5"): (8437, 2145),
    ("voc", "disjoint", "15-1"): (8437, 378, 299, 420, 500, 548),
    ("ade", "overlap", "100-50"): (20192, 9390), ("ade", "overlap", "100-10"): (20192, 1710, 2294, 2747, 4279, 2844),
    ("ade", "overlap", "50-50"): (20177, 13186, 9390),
}
# DKD README (released weights, final step): hIoU / mIoU_all for DKD and DKD-M
PUBLISHED = {
    ("voc", "overlap", "19-1"): ("56.95/76.13", "68.14/77.04"), ("voc", "overlap", "15-5"): ("67.17/73.95", "68.96/74.84"),
    ("voc", "overlap", "15-1"): ("57.46/70.50", "64.09/72.95"), ("voc", "overlap", "10-1"): ("57.21/60.43", "64.89/66.20"),
    ("voc", "overlap", "5-3"): ("61.32/58.98", "65.02/63.32"),
    ("voc", "disjoint", "19-1"): ("57.98/75.90", "67.12/76.84"), ("voc", "disjoint", "15-5"): ("64.35/72.21", "65.04/72.53"),
    ("voc", "disjoint", "15-1"): ("54.21/68.48", "60.32/70.78"),
    ("ade", "overlap", "100-50"): ("29.42/35.55", "29.45/35.58"), ("ade", "overlap", "100-10"): ("26.79/34.53", "27.44/34.83"),
    ("ade", "overlap", "50-50"): ("34.77/34.39", "34.78/34.39"),
}


def iterations(dataset: str, setting: str, task: str, memory: bool) -> List[int]:
    _, _, _, (gpus, per_gpu), epochs, _, _, mem = DATASETS[dataset]
    batch = gpus * per_gpu
    return [epochs * ((n + (mem if memory and step else 0)) // batch)
            for step, n in enumerate(IMAGES[(dataset, setting, task)])]


def script(dataset: str, setting: str, task: str, memory: bool) -> str:
    folder, name, root, (gpus, per_gpu), epochs, lrs, pos, mem = DATASETS[dataset]
    iters = iterations(dataset, setting, task, memory)
    kind = "dkd-m" if memory else "dkd"
    hiou, miou = PUBLISHED[(dataset, setting, task)][1 if memory else 0].split("/")
    out = "work_dirs/dkd_%s_%s_%s%s" % (dataset, setting, task, "_m" if memory else "")
    lines = [
        "#!/usr/bin/env bash",
        "# %s | %s %s %s (%d steps) | DeepLabV3-ResNet101 (OS 16) | %s" % (
            "DKD-M" if memory else "DKD", folder, setting, task, len(iters), "exemplar memory %d" % mem if memory else
            "no memory"),
        "# Published (DKD README, released weights, final step): hIoU %s, mIoU_all %s" % (hiou, miou),
        "# official: %d GPUs x %d = batch %d, %d epochs per step = %s iterations (images per step x epochs / batch);"
        % (gpus, per_gpu, gpus * per_gpu, epochs, " ".join(map(str, iters))),
        "# SGD nesterov, lr %s (step 0) / %s, ASPP and heads x10, poly 0.9%s, pos_weight %s / %s; steps >= 1:"
        % (lrs[0], lrs[1], " with 20%% linear warm-up" if dataset == "ade" else "", pos[0], pos[1]),
        "# BN frozen, dropout off, weight decay 1e-4 on the new head only; loss mBCE + 5 KD + 5 DKD+ + 5 DKD- + AC.",
        "# Test: resize the short side to 512, centre crop 512, sigmoid rule; old = background + earlier classes.",
        "# Official AMP: add --amp fp16 on GPUs. One GPU at the same global batch: NPROC=1 bash <this script>.",
        "# Rerunning the script continues at the first unfinished step (a killed step resumes).",
        "set -euo pipefail", 'cd "$(dirname "$0")/../../.."', "NPROC=${NPROC:-%d}" % gpus,
        "DATA=${DATA:-%s}" % root, "OUT=${OUT:-%s}" % out,
        '"${PYTHON:-python3}" tools/run_incremental.py --incremental %s:%s:%s --out "$OUT" --nproc "$NPROC" \\'
        % (dataset, task, setting),
        '  --backbone "${BACKBONE:-resnet101}" --launcher "${LAUNCHER:-torchrun}" \\',
        "  --iterations %s --lr %s %s --pos-weight %s %s -- \\" % (" ".join(map(str, iters)), lrs[0], lrs[1], pos[0], pos[1]),
        '  --data "$DATA" --pipeline dkd --crop-size 512 512 --batch-size %d --weight-decay 1e-4 --nesterov \\'
        % (gpus * per_gpu),
        "  --head-lr-mult 10 --val-per-iters 1000000 --save-per-iters 1000%s%s \"$@\"" % (
            " --warmup-fraction 0.2 --warmup-factor 0.001" if dataset == "ade" else "",
            " --memory-size %d" % mem if memory else ""),
    ]
    return "\n".join(lines) + "\n"


def scripts(out: str, launch: List[str]) -> Dict[str, str]:
    written: Dict[str, str] = {}
    for (dataset, setting, task) in IMAGES:
        for memory in (False, True):
            path = os.path.join(out, "dkd", DATASETS[dataset][0], "%s_%s_%s.sh" % (setting, task, "dkd-m" if memory else "dkd"))
            written[path] = script(dataset, setting, task, memory)
    return written
