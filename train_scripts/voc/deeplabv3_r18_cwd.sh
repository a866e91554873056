#!/usr/bin/env bash
# voc | teacher DeepLabV3-ResNet101 (77.67) | student DeepLabV3-ResNet18 | cwd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 512x512, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): -
# Fewer GPUs: NPROC=2 bash train_scripts/voc/deeplabv3_r18_cwd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/VOCdevkit/VOC2012}
ARGS=(
  --kd-method cwd
  --teacher-model deeplabv3 --teacher-backbone resnet101 --teacher-pretrained pretrained_ckpt/deeplabv3_resnet101_voc_best_model.pth
  --student-model deeplabv3 --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset voc --data "$DATA" --crop-size 512 512
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --lambda-kd 1.0 --lambda-cwd-fea 50 --lambda-cwd-logit 3 --cwd-temperature 4 --lambda-adv 0.001 --lambda-d 0.1
  --save-dir work_dirs/voc_deeplabv3_r18_cwd --log-dir work_dirs/voc_deeplabv3_r18_cwd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
