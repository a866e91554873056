#!/usr/bin/env bash
# MGD baseline "Sup. l" | voc 1/4 | DeepLabV3+ mobilenetv2 on the 2646 labeled images alone
# The student's schedule (33728 iterations, batch 8, lr 0.014 official), no unlabeled data, no teacher.
# lr / weight decay: the single-process equivalents of the official 4-GPU run (lr / 4, wd x 4);
# any NPROC gives the official update at this global batch. Extra flags go to train_kd.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2012}
ARGS=(
  --kd-method none
  --student-model deeplabv3plus_cps --student-backbone mobilenetv2 --student-pretrained-base pretrained_ckpt/mobilenet_v2-b0353104.pth
  --train-list data/splits/voc/train_aug_labeled_1-4.txt
  --dataset voc --data "$DATA" --pipeline cps --crop-size 512 512 --no-aux
  --val-mode slide --val-crop-size 512 512 --val-stride 342 342 --val-miou present
  --batch-size 8 --max-iterations 33728 --lr 0.0035 --weight-decay 0.0004 --power 0.9 --no-decay-norm-bias
  --val-per-iters 2000 --save-per-iters 2000
  --save-dir work_dirs/mgd_voc_sup_mbv2_1-4
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
