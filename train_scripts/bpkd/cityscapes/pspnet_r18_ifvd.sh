#!/usr/bin/env bash
# BPKD table | cityscapes | teacher PSPNet-R101 (79.74 mIoU) | student PSPNet-R18 | ifvd
# Published (BPKD README, val, single scale): mIoU 76.24
# 4 GPUs x 2 images = global batch 8, crop 512x1024, SGD lr 0.01 momentum 0.9 wd 5e-4, poly 0.9 to 1e-4
# mmseg pipeline (img_scale as mmseg's cityscapes config, ratio 0.5-2.0, cat_max_ratio 0.75, flip, photometric
# distortion, RGB mean/std); loss CE + 0.4 aux CE; validation as mmseg's test_cfg (whole image).
# IFVD as in its card (KD 1 + IFV 20 on head_feat + adversarial 0.001 / D 0.1); BPKD does not list
# its baseline settings, so the CIRKD-family values are used.
# Teacher: pretrained_ckpt/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth (logits at stride 8, as the student's)
# Evaluate: python eval.py --pipeline mmseg --dataset citys --model pspnet --backbone resnet18_v1c --pretrained work_dirs/bpkd_citys_pspnet_r18_ifvd/kd_pspnet_resnet18_v1c_citys_best_model.pth
# Fewer GPUs: NPROC=2 bash <this script> (the batch stays global; --accum-steps saves memory).
# Extra flags are passed on to train_kd.py, e.g. --resume auto; on GPUs --amp bf16 --channels-last (README: bench_step).
set -euo pipefail
cd "$(dirname "$0")/../../.."
NPROC=${NPROC:-4}
DATA=${DATA:-data/cityscapes}
ARGS=(
  --kd-method ifvd
  --teacher-model pspnet --teacher-backbone resnet101_v1c --teacher-pretrained pretrained_ckpt/pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth
  --student-model pspnet --student-backbone resnet18_v1c --student-pretrained-base pretrained_ckpt/resnet18_v1c-b5776b93.pth --aux
  --dataset citys --data "$DATA" --pipeline mmseg --crop-size 512 1024
  --batch-size 8 --max-iterations 80000 --lr 0.01 --lr-min 1e-4 --weight-decay 5e-4
  --val-per-iters 8000 --save-per-iters 8000
  --lambda-kd 1.0 --lambda-ifv 20 --lambda-adv 0.001 --lambda-d 0.1
  --save-dir work_dirs/bpkd_citys_pspnet_r18_ifvd
)
"${PYTHON:-python3}" train_kd.py "${ARGS[@]}" "$@" --preflight-only
torchrun --nproc_per_node "$NPROC" train_kd.py "${ARGS[@]}" "$@"
