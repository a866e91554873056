#!/usr/bin/env bash
# SegKD quick start, CPU friendly (10-14 minutes on 2 cores with the defaults below):
#   1. generate a synthetic Cityscapes-format data set (real on-disk layout, real label ids),
#   2. train a DeepLabV3-ResNet101 teacher and a DeepLabV3-ResNet18 student baseline (--kd-method none),
#   3. distill a DeepLabV3-ResNet18 student from that teacher with Af-DCD (--kd-method af_dcd),
#   4. evaluate the three checkpoints with eval.py and print their mIoU side by side.
# Everything is trained from scratch (no ImageNet weights can be downloaded here) for a few dozen
# iterations, so the numbers are small and say little about the methods; they are what was measured.
# Knobs (environment): TEACHER_ITERS, STUDENT_ITERS, NUM_TRAIN, NUM_VAL, SIZE_H, SIZE_W, CROP, BATCH, OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash tools/ensure_deps.sh
TEACHER_ITERS=${TEACHER_ITERS:-80}
STUDENT_ITERS=${STUDENT_ITERS:-40}
NUM_TRAIN=${NUM_TRAIN:-32}
NUM_VAL=${NUM_VAL:-8}
SIZE_H=${SIZE_H:-256}
SIZE_W=${SIZE_W:-512}
CROP=${CROP:-128}
BATCH=${BATCH:-4}
DATA=${DATA:-data/synthetic_cityscapes_${NUM_TRAIN}x${SIZE_H}x${SIZE_W}}
OUT=${OUT:-work_dirs/quickstart_$(date +%Y%m%d_%H%M%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ ! -d "$DATA/leftImg8bit" ]; then
  echo "== generating synthetic Cityscapes data in $DATA"
  "$PY" -m datasets.synthetic --format cityscapes --out "$DATA" --num-train "$NUM_TRAIN" --num-val "$NUM_VAL" \
    --size "$SIZE_H" "$SIZE_W" --seed 0
fi
"$PY" tools/check_dataset.py citys "$DATA" --split all

COMMON=(--dataset citys --data "$DATA" --crop-size "$CROP" "$CROP" --batch-size "$BATCH" --workers 2 --log-iter 10)

echo "== 1/3 teacher DeepLabV3-ResNet101 ($TEACHER_ITERS iterations)"
"$PY" train_kd.py --kd-method none --student-model deeplabv3 --student-backbone resnet101 "${COMMON[@]}" \
  --max-iterations "$TEACHER_ITERS" --val-per-iters "$TEACHER_ITERS" --save-dir "$OUT/teacher"
TEACHER=$OUT/teacher/deeplabv3_resnet101_citys_best_model.pth

echo "== 2/3 student baseline DeepLabV3-ResNet18 ($STUDENT_ITERS iterations)"
"$PY" train_kd.py --kd-method none --student-model deeplabv3 --student-backbone resnet18 "${COMMON[@]}" \
  --max-iterations "$STUDENT_ITERS" --val-per-iters "$STUDENT_ITERS" --save-dir "$OUT/student"

echo "== 3/3 Af-DCD student DeepLabV3-ResNet18 <- DeepLabV3-ResNet101 ($STUDENT_ITERS iterations)"
"$PY" train_kd.py --kd-method af_dcd --teacher-model deeplabv3 --teacher-backbone resnet101 \
  --teacher-pretrained "$TEACHER" --student-model deeplabv3 --student-backbone resnet18 "${COMMON[@]}" \
  --max-iterations "$STUDENT_ITERS" --val-per-iters "$STUDENT_ITERS" --save-dir "$OUT/af_dcd"

echo "== evaluating with eval.py (whole image, single scale)"
"$PY" eval.py --model deeplabv3 --backbone resnet101 --dataset citys --data "$DATA" --no-progress \
  --pretrained "$TEACHER" --save-dir "$OUT/teacher/eval" | tail -n 2
"$PY" eval.py --model deeplabv3 --backbone resnet18 --dataset citys --data "$DATA" --no-progress \
  --pretrained "$OUT/student/deeplabv3_resnet18_citys_best_model.pth" --save-dir "$OUT/student/eval" | tail -n 2
"$PY" eval.py --model deeplabv3 --backbone resnet18 --dataset citys --data "$DATA" --no-progress --save-pred \
  --pretrained "$OUT/af_dcd/kd_deeplabv3_resnet18_citys_best_model.pth" --save-dir "$OUT/af_dcd/eval" | tail -n 2

"$PY" tools/compare_results.py "teacher R101=$OUT/teacher/eval/results.json" \
  "student R18 (none)=$OUT/student/eval/results.json" "student R18 (af_dcd)=$OUT/af_dcd/eval/results.json"
echo "logs, TensorBoard events and checkpoints: $OUT  (tensorboard --logdir $OUT)"
