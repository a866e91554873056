#!/usr/bin/env bash
# camvid | teacher-free | student DeepLabV3-ResNet18 | tf_kd
# 8 GPUs x 2 images = global batch 16, 40000 iterations, crop 360x360, SGD lr 0.02 poly 0.9, momentum 0.9
# Published mIoU (val, whole image, single scale): 66.14
# Tf-KD published no segmentation hyper-parameters; the card's ResNet18 CIFAR row is used
# (reg: alpha 0.1, T 20, multiplier 100) as a starting point, not a tuned setting. Self variant:
# --tf-kd-variant self --teacher-pretrained <this dataset's deeplabv3_r18_none best_model.pth>.
# Fewer GPUs: NPROC=2 bash train_scripts/camvid/deeplabv3_r18_tf_kd.sh (the batch stays global; add --accum-steps to save memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-8}
DATA=${DATA:-data/CamVid}
ARGS=(
  --kd-method tf_kd
  --student-model deeplabv3 --student-backbone resnet18 --student-pretrained-base pretrained_ckpt/resnet18-imagenet.pth
  --dataset camvid --data "$DATA" --crop-size 360 360
  --batch-size 16 --max-iterations 40000
  --lr 0.02 --weight-decay 1e-4
  --val-per-iters 800 --save-per-iters 800
  --tf-kd-variant reg
  --save-dir work_dirs/camvid_deeplabv3_r18_tf_kd --log-dir work_dirs/camvid_deeplabv3_r18_tf_kd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
