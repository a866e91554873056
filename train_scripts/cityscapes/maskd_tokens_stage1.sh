#!/usr/bin/env bash
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
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
