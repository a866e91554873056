#!/usr/bin/env bash
# BPKD table | cityscapes | teacher ISANet-R101 (80.61 mIoU) | student ISANet-R18 | cwd
# Published (BPKD README, val, single scale): mIoU 75.43
# 4 GPUs x 2 images = global batch 8, crop 512x1024, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's cityscapes config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# CWD as mmrazor 0.x's logits recipe (cwd_cls_head_pspnet_r101_d8_pspnet_r18_d8_512x1024_cityscapes_80k):
# CWD on the decode-head logits only, tau 1, weight 5, no KD / feature / adversarial term.
# Teacher: pretrained_ckpt/isanet_r101-d8_769x769_80k_cityscapes_20210903_111319-24f71dfa.pth (logits at stride 8, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset citys --model isanet --backbone resnet18_v1c --pretrained work_dirs/bpkd_citys_isanet_r18_cwd/kd_isanet_resnet18_v1c_citys_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method cwd
  --teacher-model isanet --teacher-backbone resnet101_v1c --teacher-pretrained pretrained_ckpt/isanet_r101-d8_769x769_80k_cityscapes_20210903_111319-24f71dfa.pth
  --student-model isanet --student-backbone resnet18_v1c --student-pretrained-base pretrained_ckpt/resnet18_v1c-b5776b93.pth --aux
  --dataset citys --data "$DATA" --pipeline mmseg --crop-size 512 1024
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --lambda-kd 0 --lambda-cwd-fea 0 --lambda-cwd-logit 5 --cwd-temperature 1 --lambda-adv 0 --lambda-d 0
  --save-dir work_dirs/bpkd_citys_isanet_r18_cwd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
