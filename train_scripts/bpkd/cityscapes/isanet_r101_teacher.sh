#!/usr/bin/env bash
# BPKD table | cityscapes | teacher ISANet-R101 trained without distillation (80000 iterations, as the zoo file)
# Released file (BPKD's teacher, 80.61 mIoU): pretrained_ckpt/isanet_r101-d8_769x769_80k_cityscapes_20210903_111319-24f71dfa.pth
# Train it here only to reproduce it; the student scripts load the released file.
# 4 GPUs x 2 images = global batch 8, crop 512x1024, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's cityscapes config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# The released teacher used a 769x769 crop and img_scale 2049x1025 (its config), kept here.
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method none
  --student-model isanet --student-backbone resnet101_v1c --student-pretrained-base pretrained_ckpt/resnet101_v1c-e67eebb6.pth --aux
  --dataset citys --data "$DATA" --pipeline mmseg --crop-size 769 769 --img-scale 2049 1025
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --save-dir work_dirs/bpkd_citys_teacher_isanet_r101
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
