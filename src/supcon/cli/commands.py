"""The one static table of ``supcon`` subcommands: name -> (add its arguments, run it, help)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

import supcon.cli.analysis as analysis
import supcon.cli.handlers as handlers
from supcon.config import PRETRAIN_METHODS
import supcon.cli.use as use

__all__ = ["Command", "COMMANDS"]


class Command(NamedTuple):
    """A subcommand: how to build its arguments, its handler (returns the exit code), its help line."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    help: str


COMMANDS: dict[str, Command] = {
    "pretrain": Command(handlers.add_pretrain_arguments, handlers.run_pretrain_command,
                        f"contrastive pretraining (--method {'|'.join(PRETRAIN_METHODS)})"),
    "linear": Command(handlers.add_linear_arguments, handlers.run_linear_command,
                      "linear probe (or --finetune) on a pretrained encoder"),
    "train-ce": Command(handlers.add_train_ce_arguments, handlers.run_train_ce_command,
                        "cross-entropy baseline trained end to end"),
    "knn": Command(handlers.add_knn_arguments, handlers.run_knn_command, "kNN accuracy of a checkpoint's encoder"),
    "run": Command(handlers.add_run_arguments, handlers.run_run_command,
                   "SupCon + SimCLR pretraining with linear probes, CE baseline, table"),
    "robustness": Command(analysis.add_robustness_arguments, analysis.run_robustness_command,
                          "accuracy under corruptions, CE / mCE / relative mCE against a baseline"),
    "sweep": Command(analysis.add_sweep_arguments, analysis.run_sweep_command,
                     "train a hyper-parameter grid per method, tabulate the accuracy spread"),
    "gradients": Command(analysis.add_gradients_arguments, analysis.run_gradients_command,
                         "per-positive / per-negative gradient magnitudes of L_out and L_in"),
    "report": Command(analysis.add_report_arguments, analysis.run_report_command,
                      "Markdown + self-contained HTML report of run folders"),
    "embed": Command(use.add_embed_arguments, use.run_embed_command,
                     "a checkpoint encoder's representations of a dataset split (.npz or .csv)"),
    "predict": Command(use.add_predict_arguments, use.run_predict_command,
                       "a classifier checkpoint's top classes for image files (.csv)"),
    "export": Command(use.add_export_arguments, use.run_export_command,
                      "a checkpoint's encoder or classifier as safetensors + JSON (optionally ONNX)"),
    "ood": Command(use.add_ood_arguments, use.run_ood_command,
                   "out-of-distribution scores (cosine, kNN, Mahalanobis, MSP, energy): AUROC, AUPR, FPR@95"),
}
