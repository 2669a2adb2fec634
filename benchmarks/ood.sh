#!/usr/bin/env bash
# Out-of-distribution detection with the encoders of `supcon run` (SupCon, SimCLR, cross-entropy, one
# budget): CIFAR-10 (in) against the MNIST test set shown as RGB and against digits, and MNIST (in)
# against digits. Every OOD image is adapted to the encoder (shorter side resized to its image size,
# gray repeated to RGB). Each encoder's scores are fitted on its in-distribution train split, the
# in-distribution test split is scored against all of the OOD dataset's images (--ood-split all).
# Prints one Markdown table (README, Out-of-distribution section) and writes each run under $OUT/<pair>/<model>.
#
#   DATA=/work/data STEPS=run bash benchmarks/cifar10_cpu.sh      # the CIFAR-10 run folder (~25 min)
#   supcon run --config configs/mnist_small.yaml --out runs/mnist  # the MNIST encoders (or STEPS="mnist-train ...")
#   bash benchmarks/ood.sh                                          # all three in-distribution sets
#   STEPS=mnist bash benchmarks/ood.sh                              # MNIST -> digits only
#   make demo && STEPS=digits bash benchmarks/ood.sh                # digits (in) -> the MNIST test set
#
# The linear-probe checkpoints of SupCon and SimCLR carry their frozen encoder's representation plus
# a classifier (so MSP and energy too); CE's checkpoint is its own classifier. CPU, seed of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
CIFAR_RUN=${CIFAR_RUN:-runs/cifar10-cpu/run}   # supcon run layout: supcon/linear/, simclr/linear/, ce/
MNIST_RUN=${MNIST_RUN:-runs/mnist}
DEMO_RUN=${DEMO_RUN:-runs/demo}                # `make demo`: the digits encoders
MNIST=${MNIST:-../shared/data/mnist-test}      # the MNIST test set, IDX gz
CIFAR_OOD=${CIFAR_OOD:-"idx:$MNIST digits"}    # OOD datasets of the CIFAR-10 encoders
MNIST_OOD=${MNIST_OOD:-digits}                 # OOD datasets of the MNIST encoders
DIGITS_OOD=${DIGITS_OOD:-"idx:$MNIST"}          # OOD datasets of the digits encoders (STEPS=digits)
OUT=${OUT:-runs/ood}
STEPS=${STEPS:-cifar mnist digits}
K=${K:-50}
METHODS=${METHODS:-supcon simclr ce}
SUPCON=${SUPCON:-.venv/bin/supcon}
PYTHON=${PYTHON:-.venv/bin/python}
FLAGS=${FLAGS:---device cpu --no-plots}
mkdir -p "$OUT"

checkpoint() {  # run folder, method -> the checkpoint scored for that method
  if [ "$2" = ce ]; then echo "$1/ce/checkpoint.pt"; else echo "$1/$2/linear/checkpoint.pt"; fi
}

done_runs=()
score_run() {  # name of the in-distribution side, run folder, OOD specs...
  local in_name=$1 run=$2; shift 2
  for ood in "$@"; do
    local ood_name=${ood##*/}; ood_name=${ood_name#*:}
    for method in $METHODS; do
      local ckpt; ckpt=$(checkpoint "$run" "$method")
      if [ ! -f "$ckpt" ]; then
        echo "ood.sh: $ckpt is missing: train the $in_name encoders first (see the header of $0)" >&2; exit 2
      fi
      local dir="$OUT/$in_name-vs-$ood_name/$method"
      echo "== $in_name vs $ood ($method)" >&2
      # shellcheck disable=SC2086
      $SUPCON ood --checkpoint "$ckpt" --ood-dataset "$ood" --ood-split all --k "$K" --out "$dir" $FLAGS >&2
      done_runs+=("$dir|$in_name|$ood_name")
    done
  done
}

for step in $STEPS; do
  case $step in
    mnist-train)  # the MNIST encoders, if they are not there yet (about as long as README's MNIST table)
      [ -f "$(checkpoint "$MNIST_RUN" supcon)" ] || \
        $SUPCON run --config configs/mnist_small.yaml --dataset "idx:$MNIST" --out "$MNIST_RUN" >&2 ;;
    cifar)  # shellcheck disable=SC2086
      score_run CIFAR-10 "$CIFAR_RUN" $CIFAR_OOD ;;
    mnist)  # shellcheck disable=SC2086
      score_run MNIST "$MNIST_RUN" $MNIST_OOD ;;
    digits)  # shellcheck disable=SC2086
      score_run digits "$DEMO_RUN" $DIGITS_OOD ;;
    *) echo "unknown step $step (mnist-train cifar mnist digits)" >&2; exit 2 ;;
  esac
done

[ ${#done_runs[@]} -gt 0 ] || exit 0
"$PYTHON" - "$K" "${done_runs[@]}" <<'EOF'
import sys

from supcon.report.tables import markdown_table
from supcon.use.ood import ood_rows, read_ood

k, runs = sys.argv[1], sys.argv[2:]
summaries = []
for entry in runs:
    folder, in_name, ood_name = entry.split("|")
    summary = read_ood(folder)
    summaries.append({**summary, "in_dataset": f"{in_name} ({summary['in_count']})",
                      "ood_dataset": f"{ood_name} ({summary['ood_count']})"})
print(f"\nOOD detection, in-distribution test split vs all OOD images (counts in brackets), k = {k}, "
      "in-distribution = positive:\n")
print(markdown_table(*ood_rows(summaries)))
EOF
