#!/usr/bin/env bash
# BPKD table | ade20k | teacher PSPNet-R101 (44.39 mIoU) | student PSPNet-R18 | bpkd
# Published (BPKD README, val, single scale): mIoU 38.51, mAcc 47.70
# 4 GPUs x 2 images = global batch 8, crop 512x512, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's ade20k config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# BPKD: edge 50 + body 20 on the decode-head logits at their native stride (alpha 2, kernel 7,
# tau 1, per-class edge normalisation: the card's defaults; the paper's training code is unreleased).
# Teacher: pretrained_ckpt/pspnet_r101-d8_512x512_160k_ade20k_20200615_100650-967c316f.pth (logits at stride 8, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset ade20k --model pspnet --backbone resnet18_v1c --pretrained work_dirs/bpkd_ade20k_pspnet_r18_bpkd/kd_pspnet_resnet18_v1c_ade20k_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/ADEChallengeData2016}
ARGS=(
  --kd-method bpkd
  --teacher-model pspnet --teacher-backbone resnet101_v1c --teacher-pretrained pretrained_ckpt/pspnet_r101-d8_512x512_160k_ade20k_20200615_100650-967c316f.pth
  --student-model pspnet --student-backbone resnet18_v1c --student-pretrained-base pretrained_ckpt/resnet18_v1c-b5776b93.pth --aux
  --dataset ade20k --data "$DATA" --pipeline mmseg --crop-size 512 512
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --bpkd-lambda-edge 50 --bpkd-lambda-body 20
  --save-dir work_dirs/bpkd_ade20k_pspnet_r18_bpkd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
