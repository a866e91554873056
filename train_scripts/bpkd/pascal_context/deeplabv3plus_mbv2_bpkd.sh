#!/usr/bin/env bash
# BPKD table | pascal_context | teacher DeepLabV3+-R101 (53.20 mIoU) | student DeepLabV3+-MobileNetV2 | bpkd
# Published (BPKD README, val, single scale): mIoU 46.23, mAcc 58.12
# 4 GPUs x 4 images = global batch 16, crop 480x480, SGD lr 0.004 momentum 0.9 wd 1e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's pascal_context config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# BPKD: edge 50 + body 20 on the decode-head logits at their native stride (alpha 2, kernel 7,
# tau 1, per-class edge normalisation: the card's defaults; the paper's training code is unreleased).
# Teacher: pretrained_ckpt/deeplabv3plus_r101-d8_480x480_80k_pascal_context_59_20210416_111127-7ca0331d.pth (logits at stride 4, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset pascal_context --model deeplabv3plus --backbone mobilenetv2 --pretrained work_dirs/bpkd_pascal_context_deeplabv3plus_mbv2_bpkd/kd_deeplabv3plus_mobilenetv2_pascal_context_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/VOCdevkit/VOC2010}
ARGS=(
  --kd-method bpkd
  --teacher-model deeplabv3plus --teacher-backbone resnet101_v1c --teacher-pretrained pretrained_ckpt/deeplabv3plus_r101-d8_480x480_80k_pascal_context_59_20210416_111127-7ca0331d.pth
  --student-model deeplabv3plus --student-backbone mobilenetv2 --student-pretrained-base pretrained_ckpt/mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth --aux
  --dataset pascal_context --data "$DATA" --pipeline mmseg --crop-size 480 480
  --batch-size 16 --max-iterations 80000 --lr 0.004 --lr-min 1e-4 --weight-decay 1e-4
  --val-per-iters 8000 --save-per-iters 8000
  --bpkd-lambda-edge 50 --bpkd-lambda-body 20
  --save-dir work_dirs/bpkd_pascal_context_deeplabv3plus_mbv2_bpkd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
