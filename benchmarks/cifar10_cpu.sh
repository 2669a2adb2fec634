#!/usr/bin/env bash
# CIFAR-10 on a CPU: the paper's comparison (SupCon vs SimCLR vs cross-entropy) at a CPU budget,
# the robustness to corruptions, a temperature sweep and 10 % labels. Writes every result under
# $OUT and prints the tables; README's CIFAR-10 section was made with it.
#
#   tar -xzf ../shared/data/cifar10-jpg.tar.gz -C /work/data     # train/ and test/ class folders
#   DATA=/work/data bash benchmarks/cifar10_cpu.sh                  # all steps, about 1.5 h on 2 cores
#   DATA=/work/data EXTRA="--threads 1" STEPS="run robustness" bash benchmarks/cifar10_cpu.sh
#
# README's tables (2026-12-02) ran with EXTRA="--threads 1" next to other jobs, seed 0; another CPU
# or thread count changes the float rounding and with it the numbers. Timings depend on the load.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the folder holding CIFAR-10 train/ and test/}
OUT=${OUT:-runs/cifar10-cpu}
STEPS=${STEPS:-run robustness sweep labels}
SHORT_EPOCHS=${SHORT_EPOCHS:-6}     # budget of the sweep and the 10 % label runs:
SHORT_FRACTION=${SHORT_FRACTION:-0.1}  # ... this class-balanced fraction of the training split (5,000 images)
SUPCON=${SUPCON:-.venv/bin/supcon}
CFG=configs/cifar10_cpu.yaml
EXTRA=${EXTRA:-}   # more flags for every command, e.g. EXTRA="--threads 1" next to other jobs
mkdir -p "$OUT"

for step in $STEPS; do
  case $step in
    run)  # linear-probe and kNN top-1 of the three methods, same budget
      $SUPCON run --config $CFG --dataset "folder:$DATA" --out "$OUT/run" --overwrite $EXTRA ;;
    robustness)  # all 15 corruptions x 5 severities of the 10,000 test images; CE is the baseline
      $SUPCON robustness --checkpoint "$OUT/run/supcon/linear/checkpoint.pt" \
        --baseline "$OUT/run/ce/checkpoint.pt" --out "$OUT/robustness-supcon"
      $SUPCON robustness --checkpoint "$OUT/run/simclr/linear/checkpoint.pt" \
        --baseline "$OUT/run/ce/checkpoint.pt" --out "$OUT/robustness-simclr" ;;
    sweep)  # temperature at a shorter budget (10 % of the training split): each method's spread (CE
            # has no temperature: one run); its temperature-0.1 points are the 10 % label runs
      $SUPCON sweep --config $CFG --dataset "folder:$DATA" --epochs "$SHORT_EPOCHS" \
        --label-fraction "$SHORT_FRACTION" \
        --grid temperature=0.05,0.1,0.5 --methods supcon,simclr,ce --out "$OUT/sweep" --overwrite $EXTRA ;;
    labels)  # 10 % of the training labels (and images), shorter budget (= the sweep's t = 0.1 runs)
      $SUPCON run --config $CFG --dataset "folder:$DATA" --epochs "$SHORT_EPOCHS" --label-fraction "$SHORT_FRACTION" \
        --out "$OUT/labels-10" --overwrite $EXTRA ;;
    *) echo "unknown step $step (run robustness sweep labels)" >&2; exit 2 ;;
  esac
done
