#!/usr/bin/env bash
# BPKD table | ade20k | teacher DeepLabV3+-R101 (45.47 mIoU) | student DeepLabV3+-MobileNetV2 | skd
# Published (BPKD README, val, single scale): mIoU 32.49
# 4 GPUs x 2 images = global batch 8, crop 512x512, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's ade20k config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# SKD as in its card (KD 1 + pair-wise 10 on head_feat + adversarial 0.001 / D 0.1); BPKD does not
# list its baseline settings, so the CIRKD-family values are used.
# Teacher: pretrained_ckpt/deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232-38ed86bb.pth (logits at stride 4, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset ade20k --model deeplabv3plus --backbone mobilenetv2 --pretrained work_dirs/bpkd_ade20k_deeplabv3plus_mbv2_skd/kd_deeplabv3plus_mobilenetv2_ade20k_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/ADEChallengeData2016}
ARGS=(
  --kd-method skd
  --teacher-model deeplabv3plus --teacher-backbone resnet101_v1c --teacher-pretrained pretrained_ckpt/deeplabv3plus_r101-d8_512x512_160k_ade20k_20200615_123232-38ed86bb.pth
  --student-model deeplabv3plus --student-backbone mobilenetv2 --student-pretrained-base pretrained_ckpt/mobilenet_v2_batch256_imagenet_20200708-3b2dc3af.pth --aux
  --dataset ade20k --data "$DATA" --pipeline mmseg --crop-size 512 512
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --lambda-kd 1.0 --lambda-skd 10 --lambda-adv 0.001 --lambda-d 0.1
  --save-dir work_dirs/bpkd_ade20k_deeplabv3plus_mbv2_skd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
