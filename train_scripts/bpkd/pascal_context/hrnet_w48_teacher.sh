#!/usr/bin/env bash
# BPKD table | pascal_context | teacher HRNetV2p-W48 trained without distillation (80000 iterations, as the zoo file)
# Released file (BPKD's teacher, 51.12 mIoU): pretrained_ckpt/fcn_hr48_480x480_80k_pascal_context_59_20210411_003240-3ae7081e.pth
# Train it here only to reproduce it; the student scripts load the released file.
# 4 GPUs x 4 images = global batch 16, crop 480x480, SGD lr 0.004 momentum 0.9 wd 1e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's pascal_context config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (slide 512/320).
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2010}
ARGS=(
  --kd-method none
  --student-model fcn --student-backbone hrnetv2_w48 --student-pretrained-base pretrained_ckpt/hrnetv2_w48-d2186c55.pth --no-aux
  --dataset pascal_context --data "$DATA" --pipeline mmseg --crop-size 480 480
  --batch-size 16 --max-iterations 80000 --lr 0.004 --lr-min 1e-4 --weight-decay 1e-4
  --val-per-iters 8000 --save-per-iters 8000
  --val-mode slide --val-crop-size 512 512 --val-stride 320 320
  --save-dir work_dirs/bpkd_pascal_context_teacher_hrnet_w48
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
