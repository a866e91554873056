#!/usr/bin/env bash
# BPKD table | ade20k | teacher HRNetV2p-W48 (42.02 mIoU) | student HRNetV2p-W18-Small | cwd
# Published (BPKD README, val, single scale): mIoU 34.00
# 4 GPUs x 2 images = global batch 8, crop 512x512, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's ade20k config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# CWD as mmrazor 0.x's logits recipe (cwd_cls_head_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k):
# CWD on the decode-head logits only, tau 1, weight 5, no KD / feature / adversarial term.
# Teacher: pretrained_ckpt/fcn_hr48_512x512_160k_ade20k_20200614_214407-a52fc02c.pth (logits at stride 4, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset ade20k --model fcn --backbone hrnetv2_w18_small --pretrained work_dirs/bpkd_ade20k_hrnet_w18s_cwd/kd_fcn_hrnetv2_w18_small_ade20k_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/ADEChallengeData2016}
ARGS=(
  --kd-method cwd
  --teacher-model fcn --teacher-backbone hrnetv2_w48 --teacher-pretrained pretrained_ckpt/fcn_hr48_512x512_160k_ade20k_20200614_214407-a52fc02c.pth
  --student-model fcn --student-backbone hrnetv2_w18_small --student-pretrained-base pretrained_ckpt/hrnetv2_w18_small-b5a04e21.pth --no-aux
  --dataset ade20k --data "$DATA" --pipeline mmseg --crop-size 512 512
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --lambda-kd 0 --lambda-cwd-fea 0 --lambda-cwd-logit 5 --cwd-temperature 1 --lambda-adv 0 --lambda-d 0
  --save-dir work_dirs/bpkd_ade20k_hrnet_w18s_cwd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
