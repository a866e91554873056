#!/usr/bin/env bash
# SegKD quick start, CPU friendly (7-8 minutes on 2 cores with the defaults below):
#   1. generate a synthetic Cityscapes-format data set (real on-disk layout, real label ids),
#   2. train a teacher, DeepLabV3-ResNet18, for TEACHER_ITERS iterations (a ResNet-101 cannot be trained
#      here in minutes; the smaller teacher trained 2x longer is what makes it clearly the stronger one),
#   3. train the student, DeepLabV3-MobileNetV2, alone (--kd-method none: the baseline) and distilled from
#      that teacher (--kd-method $KD_METHOD), STUDENT_ITERS iterations each, same seed, lr and batch,
#   4. evaluate the three final checkpoints with eval.py, print their mIoU side by side with the share of
#      the teacher-baseline gap that distillation closed, and draw one picture of their predictions.
# Everything is trained from scratch (no ImageNet weights can be downloaded here); whatever it prints is what
# was measured on this run. Results: $OUT/{teacher,baseline,distilled}/eval/results.json, $OUT/predictions.png.
# Knobs (environment): TEACHER_ITERS, STUDENT_ITERS, KD_METHOD, NUM_TRAIN, NUM_VAL, SIZE_H, SIZE_W, CROP, BATCH,
# LR, DATA, OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash tools/ensure_deps.sh
TEACHER_ITERS=${TEACHER_ITERS:-200}
STUDENT_ITERS=${STUDENT_ITERS:-100}
KD_METHOD=${KD_METHOD:-kd}
NUM_TRAIN=${NUM_TRAIN:-64}
NUM_VAL=${NUM_VAL:-16}
SIZE_H=${SIZE_H:-128}
SIZE_W=${SIZE_W:-256}
CROP=${CROP:-96}
BATCH=${BATCH:-8}
LR=${LR:-0.02}
DATA=${DATA:-data/synthetic_cityscapes_${NUM_TRAIN}x${SIZE_H}x${SIZE_W}}
OUT=${OUT:-work_dirs/quickstart_$(date +%Y%m%d_%H%M%S)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ ! -d "$DATA/leftImg8bit" ]; then
  echo "== generating synthetic Cityscapes data in $DATA"
  "$PY" -m datasets.synthetic --format cityscapes --out "$DATA" --num-train "$NUM_TRAIN" --num-val "$NUM_VAL" \
    --size "$SIZE_H" "$SIZE_W" --seed 0
fi
"$PY" tools/check_dataset.py citys "$DATA" --split all

COMMON=(--dataset citys --data "$DATA" --crop-size "$CROP" "$CROP" --batch-size "$BATCH" --lr "$LR"
        --weight-decay 1e-4 --workers 2 --log-iter 25)
TEACHER=(--model deeplabv3 --backbone resnet18)
STUDENT=(--model deeplab_mobile --backbone mobilenetv2)

echo "== 1/3 teacher DeepLabV3-ResNet18 ($TEACHER_ITERS iterations)"
"$PY" train_kd.py --kd-method none --student-model deeplabv3 --student-backbone resnet18 "${COMMON[@]}" \
  --max-iterations "$TEACHER_ITERS" --val-per-iters "$TEACHER_ITERS" --seed 100 --save-dir "$OUT/teacher"
TEACHER_FILE=$OUT/teacher/deeplabv3_resnet18_citys.pth

echo "== 2/3 student baseline DeepLabV3-MobileNetV2 ($STUDENT_ITERS iterations)"
"$PY" train_kd.py --kd-method none --student-model deeplab_mobile --student-backbone mobilenetv2 "${COMMON[@]}" \
  --max-iterations "$STUDENT_ITERS" --val-per-iters "$STUDENT_ITERS" --seed 0 --save-dir "$OUT/baseline"

echo "== 3/3 student DeepLabV3-MobileNetV2 distilled from the teacher with $KD_METHOD ($STUDENT_ITERS iterations)"
"$PY" train_kd.py --kd-method "$KD_METHOD" --teacher-model deeplabv3 --teacher-backbone resnet18 \
  --teacher-pretrained "$TEACHER_FILE" --student-model deeplab_mobile --student-backbone mobilenetv2 "${COMMON[@]}" \
  --max-iterations "$STUDENT_ITERS" --val-per-iters "$STUDENT_ITERS" --seed 0 --save-dir "$OUT/distilled"

echo "== evaluating the final checkpoints with eval.py (whole image, single scale)"
EVAL=(--dataset citys --data "$DATA" --no-progress --save-pred)
"$PY" eval.py "${TEACHER[@]}" "${EVAL[@]}" --pretrained "$TEACHER_FILE" --save-dir "$OUT/teacher/eval" | tail -n 1
"$PY" eval.py "${STUDENT[@]}" "${EVAL[@]}" --pretrained "$OUT/baseline/deeplab_mobile_mobilenetv2_citys.pth" \
  --save-dir "$OUT/baseline/eval" | tail -n 1
"$PY" eval.py "${STUDENT[@]}" "${EVAL[@]}" --pretrained "$OUT/distilled/kd_deeplab_mobile_mobilenetv2_citys.pth" \
  --save-dir "$OUT/distilled/eval" | tail -n 1

"$PY" tools/compare_results.py --gap "teacher R18 ($TEACHER_ITERS it)=$OUT/teacher/eval/results.json" \
  "student MBV2 (none)=$OUT/baseline/eval/results.json" "student MBV2 ($KD_METHOD)=$OUT/distilled/eval/results.json"
"$PY" tools/compare_predictions.py --dataset citys --data "$DATA" --out "$OUT/predictions.png" \
  teacher="$OUT/teacher/eval" baseline="$OUT/baseline/eval" "$KD_METHOD=$OUT/distilled/eval"
echo "logs, TensorBoard events and checkpoints: $OUT  (tensorboard --logdir $OUT)"
