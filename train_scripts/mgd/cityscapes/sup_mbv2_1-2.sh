#!/usr/bin/env bash
# MGD baseline "Sup. l" | cityscapes 1/2 | DeepLabV3+ mobilenetv2 on the 1488 labeled images alone
# The student's schedule (12741 iterations, batch 16, lr 0.02 official), no unlabeled data, no teacher.
# lr / weight decay: the single-process equivalents of the official 8-GPU run (lr / 8, wd x 8);
# any NPROC gives the official update at this global batch. Extra flags go to train_kd.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/cityscapes}
MIN_KEPT=$(( 100000 * 8 / NPROC ))   # OHEM: 100000 per official GPU batch
ARGS=(
  --kd-method none
  --student-model deeplabv3plus_cps --student-backbone mobilenetv2 --student-pretrained-base pretrained_ckpt/mobilenet_v2-b0353104.pth
  --train-list data/splits/cityscapes/train_aug_labeled_1-2.txt
  --dataset citys --data "$DATA" --pipeline cps --crop-size 800 800 --no-aux
  --val-mode slide --val-crop-size 800 800 --val-stride 534 534 --val-miou present
  --batch-size 16 --max-iterations 12741 --lr 0.0025 --weight-decay 0.0008 --power 0.9 --no-decay-norm-bias
  --val-per-iters 2000 --save-per-iters 2000
  --task-loss ohem --ohem-thresh 0.7 --ohem-min-kept "$MIN_KEPT"
  --save-dir work_dirs/mgd_citys_sup_mbv2_1-2
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
