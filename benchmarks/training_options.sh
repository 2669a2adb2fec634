#!/usr/bin/env bash
# Training beyond the paper's recipe, measured on CIFAR-10 on a CPU (README, "Training options
# measured"): batches built for positives, a long-tailed CIFAR-10 with and without class weights,
# two-stage SupCon against one-stage supcon+ce, and a ResNet against a ViT-tiny encoder. Every row of a
# table has the budget of the other rows of that table; each step prints its table.
#
#   tar -xzf ../shared/data/cifar10-jpg.tar.gz -C /work/data     # train/ and test/ class folders
#   DATA=/work/data bash benchmarks/training_options.sh              # all steps
#   DATA=/work/data STEPS="longtail" bash benchmarks/training_options.sh
#
# Seed 0 and 2 threads (configs/cifar10_cpu.yaml; README: EXTRA="--threads 1"); on another CPU the numbers move by float rounding.
# QUICK=1 shrinks every budget to a smoke run (minutes; the numbers then mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding CIFAR-10 train/ and test/}
OUT=${OUT:-runs/training-options}
STEPS=${STEPS:-sampler longtail joint vit}
SUPCON=${SUPCON:-.venv/bin/supcon}
PY=${PY:-.venv/bin/python}
EXTRA=${EXTRA:-}   # more flags for every run, e.g. EXTRA="--threads 1"
CFG=configs/cifar10_cpu.yaml
if [[ ${QUICK:-0} == 1 ]]; then
  SUBSET=0.01; SAMPLER_EPOCHS=1; LT_EPOCHS=1; JOINT_EPOCHS=1; VIT_EPOCHS=1; PROBE_EPOCHS=2
else
  SUBSET=0.1; SAMPLER_EPOCHS=4; LT_EPOCHS=5; JOINT_EPOCHS=15; VIT_EPOCHS=5; PROBE_EPOCHS=30
fi
COMMON=(--config $CFG --dataset "folder:$DATA" --linear-epochs $PROBE_EPOCHS --overwrite --no-plots $EXTRA)
mkdir -p "$OUT"

table() {  # table TITLE LABEL=RUN_DIR ...
  $PY benchmarks/options_table.py "$@" | tee "$OUT/$step.md"
}

for step in $STEPS; do
  case $step in
    sampler)  # small batch: 24 images over 10 classes leave each image 2.3 same-class companions on
              # average, as 256 images over 100 classes do (2.55); m-per-class guarantees 3
      for s in random m-per-class; do
        $SUPCON run "${COMMON[@]}" --methods supcon --label-fraction $SUBSET --batch-size 24 \
          --epochs $SAMPLER_EPOCHS --sampler $s --m-per-class 4 --out "$OUT/sampler/$s"
      done
      table "sampler, SupCon, batch 24, $SAMPLER_EPOCHS epochs on $SUBSET of CIFAR-10" \
        "random=$OUT/sampler/random/supcon" "m-per-class (M=4)=$OUT/sampler/m-per-class/supcon" ;;
    longtail)  # CIFAR-10-LT, imbalance ratio 100 (12,406 training images), balanced test set
      for w in none effective-number; do
        $SUPCON run "${COMMON[@]}" --methods supcon,ce --imbalance-ratio 100 --epochs $LT_EPOCHS \
          --class-weights $w --out "$OUT/longtail/$w"
      done
      table "CIFAR-10-LT ratio 100, $LT_EPOCHS epochs" \
        "CE=$OUT/longtail/none/ce" "CE, effective-number weights=$OUT/longtail/effective-number/ce" \
        "SupCon + probe=$OUT/longtail/none/supcon" \
        "SupCon + probe, effective-number weights=$OUT/longtail/effective-number/supcon" ;;
    joint)  # two stages (SupCon, then a linear probe) against one stage (SupCon + CE on the encoder)
      $SUPCON run "${COMMON[@]}" --methods supcon,supcon+ce --label-fraction $SUBSET \
        --epochs $JOINT_EPOCHS --out "$OUT/joint"
      table "two-stage vs one-stage, $JOINT_EPOCHS epochs on $SUBSET of CIFAR-10" \
        "SupCon, then linear probe=$OUT/joint/supcon" "supcon+ce (weight 1)=$OUT/joint/supcon+ce" ;;
    vit)  # same epochs, images resized to 16x16 (ViT-tiny: 4x4 patches, 16 tokens) to fit 2 cores
      $SUPCON run "${COMMON[@]}" --methods supcon --label-fraction $SUBSET --image-size 16 \
        --epochs $VIT_EPOCHS --arch resnet18 --out "$OUT/vit/resnet18"
      $SUPCON run "${COMMON[@]}" --methods supcon --label-fraction $SUBSET --image-size 16 \
        --epochs $VIT_EPOCHS --arch vit-tiny --lr 0.001 --weight-decay 0.05 --out "$OUT/vit/vit-tiny"
      table "ResNet-18 vs ViT-tiny, SupCon, 16x16, $VIT_EPOCHS epochs on $SUBSET of CIFAR-10" \
        "ResNet-18 (SGD)=$OUT/vit/resnet18/supcon" "ViT-tiny (AdamW)=$OUT/vit/vit-tiny/supcon" ;;
    *) echo "unknown step $step (sampler longtail joint vit)" >&2; exit 2 ;;
  esac
done
