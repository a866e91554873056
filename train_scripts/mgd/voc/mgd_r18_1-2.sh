#!/usr/bin/env bash
# MGD | voc 1/2 (5291 labeled / 5291 unlabeled) | student DeepLabV3+ resnet18 | teachers T_D ResNet-101, T_W WRN
# official: 4 GPUs x 2 = batch 8, 34 epochs x max(labeled, unlabeled) // batch = 22474 iterations, crop 512,
# SGD lr 0.01 poly 0.9, lambda_1 0.002, lambda_2 100; eval slide 512, mIoU over present classes.
# Published: not reproduced here (the paper's tables could not be read; see shared/methods/mgd.md).
# Assumed: the official configs exist for 1/8 only: this partition keeps the 1/8 settings.
# Teachers: work_dirs/mgd_voc_cps_r101_1-2/kd_deeplabv3plus_cps_resnet101_voc_best_model.pth (T_D, --teacher-*) and work_dirs/mgd_voc_cps_wrn_1-2/kd_deeplabv3plus_cps_wide_resnet50_2_voc_best_model.pth (T_W, --teacher2-*), written by this folder's cps_*_1-2.sh.
# lr / weight decay: the single-process equivalents of the official 4-GPU run (lr / 4, wd x 4);
# any NPROC gives the official update at this global batch. Extra flags go to train_kd.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2012}
TEACHER_D=${TEACHER_D:-work_dirs/mgd_voc_cps_r101_1-2/kd_deeplabv3plus_cps_resnet101_voc_best_model.pth}
TEACHER_W=${TEACHER_W:-work_dirs/mgd_voc_cps_wrn_1-2/kd_deeplabv3plus_cps_wide_resnet50_2_voc_best_model.pth}
ARGS=(
  --kd-method mgd
  --student-model deeplabv3plus_cps --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-f37072fd.pth
  --teacher-model deeplabv3plus_cps --teacher-backbone resnet101 --teacher-pretrained "$TEACHER_D"
  --teacher2-model deeplabv3plus_cps --teacher2-backbone wide_resnet50_2 --teacher2-pretrained "$TEACHER_W"
  --train-list data/splits/voc/train_aug_labeled_1-2.txt --unlabeled-list data/splits/voc/train_aug_unlabeled_1-2.txt
  --dataset voc --data "$DATA" --pipeline cps --crop-size 512 512 --no-aux
  --val-mode slide --val-crop-size 512 512 --val-stride 342 342 --val-miou present
  --batch-size 8 --max-iterations 22474 --lr 0.0025 --weight-decay 0.0004 --power 0.9 --no-decay-norm-bias
  --val-per-iters 2000 --save-per-iters 2000
  --mgd-lambda-sem 0.002 --mgd-lambda-content 100 --mgd-sem-images-per-gpu 2
  --save-dir work_dirs/mgd_voc_r18_1-2
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
