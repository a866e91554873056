#!/usr/bin/env bash
# BPKD table | cityscapes | baseline (no distillation) | student HRNetV2p-W18-Small | none
# Published (BPKD README, val, single scale): mIoU 75.31
# 4 GPUs x 2 images = global batch 8, crop 512x1024, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's cityscapes config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# The student alone (BPKD's "S" row; on Cityscapes PSPNet-R18 that row is mmseg's R18b zoo
# model with a torchvision-style stem, and DeepLabV3+-MV2 the zoo's 512-wide head).
# Evaluate: python eval.py --pipeline mmseg --dataset citys --model fcn --backbone hrnetv2_w18_small --pretrained work_dirs/bpkd_citys_hrnet_w18s_none/fcn_hrnetv2_w18_small_citys_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method none
  --student-model fcn --student-backbone hrnetv2_w18_small --student-pretrained-base pretrained_ckpt/hrnetv2_w18_small-b5a04e21.pth --no-aux
  --dataset citys --data "$DATA" --pipeline mmseg --crop-size 512 1024
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --save-dir work_dirs/bpkd_citys_hrnet_w18s_none
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
