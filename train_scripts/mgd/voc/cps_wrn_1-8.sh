#!/usr/bin/env bash
# MGD teacher T_W "WideResNet-34-2" (WRN-50-2 layout) | voc 1/8 | CPS + CutMix, two branches of DeepLabV3+ wide_resnet50_2; branch 1 is the teacher
# official: 4 GPUs x 2 = batch 8, 39338 iterations, crop 512, SGD lr 0.004 poly 0.9, w_cps 1.
# Writes work_dirs/mgd_voc_cps_wrn_1-8/kd_deeplabv3plus_cps_wide_resnet50_2_voc_best_model.pth (a plain state_dict);
# the released 1/8 teacher is pretrained_ckpt/teacher-voc8-wideresnet34.pth (loads as is: branch1.* is taken).
# lr / weight decay: the single-process equivalents of the official 4-GPU run (lr / 4, wd x 4);
# any NPROC gives the official update at this global batch. Extra flags go to train_kd.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2012}
ARGS=(
  --kd-method cps --cps-weight 1
  --student-model deeplabv3plus_cps --student-backbone wide_resnet50_2 --student-pretrained-base pretrained_ckpt/checkpoint-wres34.pth.tar
  --train-list data/splits/voc/train_aug_labeled_1-8.txt --unlabeled-list data/splits/voc/train_aug_unlabeled_1-8.txt
  --dataset voc --data "$DATA" --pipeline cps --crop-size 512 512 --no-aux
  --val-mode slide --val-crop-size 512 512 --val-stride 342 342 --val-miou present
  --batch-size 8 --max-iterations 39338 --lr 0.001 --weight-decay 0.0004 --power 0.9 --no-decay-norm-bias
  --val-per-iters 2000 --save-per-iters 2000
  --save-dir work_dirs/mgd_voc_cps_wrn_1-8
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
