#!/usr/bin/env bash
# Transfer: the encoders of `supcon run` (SupCon, SimCLR, cross-entropy at one budget) pretrained on
# CIFAR-10 and on MNIST, each probed by a linear classifier on CIFAR-10, MNIST and digits (the other
# datasets, and its own with the same probe for the in-domain number). Every probe dataset is adapted to
# the encoder (supcon.data.adapt: shorter side resized to the encoder's image size and centre-cropped,
# gray repeated to RGB or RGB to ITU-R 601 luma, the encoder's normalisation). Prints one Markdown
# table (README, Transfer section) and writes it to $OUT/transfer.md; each probe runs in $OUT/<encoder>/<dataset>.
#
#   DATA=/work/data STEPS=run bash benchmarks/cifar10_cpu.sh     # the CIFAR-10 run folder (~25 min)
#   bash benchmarks/transfer.sh      # pretrains the MNIST encoders first if $MNIST_RUN lacks them (~15 min)
#   FROM=mnist bash benchmarks/transfer.sh                        # only the MNIST encoders' rows
#   DRY_RUN=1 bash benchmarks/transfer.sh                         # print the commands, run nothing
#
# Probe budget (PROBE): 10 epochs of a linear classifier on cached, standardised features (no
# augmentation), lr 0.1 per 256, batch 256, the encoder's seed (0) and split rules (test_fraction 0.2
# for the stratified MNIST and digits splits). Given the checkpoints, the 18 probes take about 8 minutes
# on 2 quiet cores: one method's 6 probes took 156 s (cifar-fast 32x32 RGB and small 28x28 gray
# stand-in encoders of configs/cifar10_cpu.yaml and configs/mnist_small.yaml, 2026-12-02), most of it
# the passes over CIFAR-10's 60,000 images (35 s; 80 s for the MNIST encoder, whose first probe also
# decodes the JPEGs at 28x28 into the folder cache). Pretraining the MNIST encoders adds their run.
# The last column is the run's own number from its summary.json (its 30-epoch probe; CE: its own classifier).
set -euo pipefail
cd "$(dirname "$0")/.."
CIFAR_RUN=${CIFAR_RUN:-runs/cifar10-cpu/run}   # supcon run layout: supcon/checkpoint.pt, simclr/..., ce/...
MNIST_RUN=${MNIST_RUN:-runs/mnist}
DATA=${DATA:-/work/data}                       # CIFAR-10 as JPEG class folders train/ and test/
MNIST=${MNIST:-../shared/data/mnist-test}      # the MNIST test set, IDX gz (split 80/20 stratified)
CIFAR_SPEC=${CIFAR_SPEC:-folder:$DATA}
MNIST_SPEC=${MNIST_SPEC:-idx:$MNIST}
DIGITS_SPEC=${DIGITS_SPEC:-digits}
FROM=${FROM:-cifar10 mnist}                    # which encoders' rows
METHODS=${METHODS:-supcon simclr ce}
OUT=${OUT:-runs/transfer}
PROBE=${PROBE:---linear-epochs 10 --linear-lr 0.1 --linear-batch-size 256 --linear-augment none}
FLAGS=${FLAGS:---device cpu --threads 2 --no-plots --no-progress}
TRAIN_MNIST=${TRAIN_MNIST:-1}                  # 1: pretrain the MNIST encoders when $MNIST_RUN lacks one
MNIST_RUN_FLAGS=${MNIST_RUN_FLAGS:-}           # extra flags of that run (the tests make it tiny)
DRY_RUN=${DRY_RUN:-0}
SUPCON=${SUPCON:-.venv/bin/supcon}
PYTHON=${PYTHON:-.venv/bin/python}

names="cifar10 mnist digits"
spec_of() { case $1 in cifar10) echo "$CIFAR_SPEC" ;; mnist) echo "$MNIST_SPEC" ;; digits) echo "$DIGITS_SPEC" ;; esac; }
run_of() { case $1 in cifar10) echo "$CIFAR_RUN" ;; mnist) echo "$MNIST_RUN" ;; esac; }
say() { echo "$*" >&2; }
run() {  # echo the command; run it unless DRY_RUN=1
  say "+ $*"
  if [ "$DRY_RUN" != 1 ]; then "$@" >&2; fi
}

mkdir -p "$OUT"
methods_csv=$(echo "$METHODS" | tr ' ' ',')
for from in $FROM; do
  case $from in cifar10|mnist) ;; *) say "transfer.sh: FROM may name cifar10 and mnist, got $from"; exit 2 ;; esac
  source_run=$(run_of "$from")
  for method in $METHODS; do
    if [ ! -f "$source_run/$method/checkpoint.pt" ]; then
      if [ "$from" = mnist ] && [ "$TRAIN_MNIST" = 1 ]; then
        say "== pretraining the MNIST encoders ($METHODS) into $source_run"
        # shellcheck disable=SC2086
        run "$SUPCON" run --config configs/mnist_small.yaml --dataset "$MNIST_SPEC" --methods "$methods_csv" \
          --out "$source_run" --auto-resume $MNIST_RUN_FLAGS
        break
      elif [ "$DRY_RUN" != 1 ]; then
        say "transfer.sh: $source_run/$method/checkpoint.pt is missing: train the $from encoders first (see $0)"
        exit 2
      fi
    fi
  done
  for method in $METHODS; do
    for to in $names; do
      say "== $from $method -> $to (${SECONDS}s since the start)"
      # shellcheck disable=SC2086
      run "$SUPCON" linear --checkpoint "$source_run/$method/checkpoint.pt" --dataset "$(spec_of "$to")" \
        --out "$OUT/$from-$method/$to" --overwrite $PROBE $FLAGS
    done
  done
done

say "== all probes done in ${SECONDS}s"
OUT="$OUT" FROM="$FROM" METHODS="$METHODS" CIFAR_RUN="$CIFAR_RUN" MNIST_RUN="$MNIST_RUN" PROBE="$PROBE" \
  "$PYTHON" - <<'EOF' | tee "$OUT/transfer.md"
import json, os
from pathlib import Path
from supcon.report.tables import markdown_table

out, runs = Path(os.environ["OUT"]), {"cifar10": Path(os.environ["CIFAR_RUN"]), "mnist": Path(os.environ["MNIST_RUN"])}
title = {"cifar10": "CIFAR-10", "mnist": "MNIST", "digits": "digits"}
rows = []
for source in os.environ["FROM"].split():
    summary = runs[source] / "summary.json"
    own = json.loads(summary.read_text()) if summary.is_file() else {}
    for method in os.environ["METHODS"].split():
        row = [title[source], method]
        for target in title:
            metrics = out / f"{source}-{method}" / target / "metrics.json"
            acc = json.loads(metrics.read_text())["test_acc"] if metrics.is_file() else None
            cell = "-" if acc is None else f"{acc:.2f}"
            row.append(f"**{cell}** (in-domain)" if target == source else cell)
        ran = own.get(method, {}).get("linear_acc")
        row.append("-" if ran is None else f"{ran:.2f}")
        rows.append(row)
header = ["pretrained on", "method", *(f"{t} probe top-1 (%)" for t in title.values()), "run's own (%)"]
print(markdown_table(header, rows))
print(f"\nlinear probe: {os.environ['PROBE']}; in-domain cells in bold; run's own = the run's summary.json "
      "(its own probe budget; CE: its own classifier)")
EOF
