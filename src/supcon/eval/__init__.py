"""Evaluation beyond the linear probe: corruption robustness, hyper-parameter sweeps, gradients.

Three analyses of the SupCon paper (Khosla et al., NeurIPS 2020, arXiv 2004.11362), each a library
function here and a ``supcon`` subcommand:

* **Robustness** (:mod:`supcon.eval.robustness`, the paper's section 4): accuracy of a classifier
  checkpoint on corrupted copies of its test split, and the ``CE`` / ``mCE`` / relative ``mCE``
  arithmetic of :mod:`supcon.eval.robustness_metrics` against a baseline.
* **Sweeps** (:mod:`supcon.eval.sweep`, the paper's Fig. 4): a grid of configs per method, trained
  through :func:`supcon.eval.pipeline.train_and_probe`, and the accuracy spread.
* **Gradients** (:mod:`supcon.eval.gradients`, section 3.2 and supplementary section 7): the
  per-positive and per-negative gradient terms of ``L_out`` and ``L_in`` on a trained encoder.

Nothing here plots: each ``run_*`` takes an ``on_finish`` callable (the report layer's plot writers)
that receives what it needs once the numbers are written.
"""

from supcon.eval.gradients import (
    GradientsFinish,
    analyze_gradients,
    anchor_gradients,
    gradient_coefficients,
    gradient_pairs,
    gradients_rows,
    loss_gradients,
    run_gradients,
)
from supcon.eval.pipeline import run_methods, train_and_probe
from supcon.eval.robustness import (
    RobustnessFinish,
    classifier_accuracy,
    display_name,
    evaluate_robustness,
    parse_corruptions,
    parse_severities,
    robustness_rows,
    run_robustness,
)
from supcon.eval.robustness_metrics import (
    Table,
    corruption_errors,
    error_table,
    mce,
    relative_corruption_errors,
    relative_mce,
)
from supcon.eval.sweep import (
    CE_IRRELEVANT_KEYS,
    CONTRASTIVE_IRRELEVANT_KEYS,
    SweepFinish,
    SweepRun,
    parse_grid,
    plan_sweep,
    run_sweep,
    sweep_spread,
)

__all__ = [
    "CE_IRRELEVANT_KEYS", "CONTRASTIVE_IRRELEVANT_KEYS", "GradientsFinish", "RobustnessFinish", "SweepFinish",
    "SweepRun", "Table", "analyze_gradients", "anchor_gradients", "classifier_accuracy", "corruption_errors",
    "display_name", "error_table", "evaluate_robustness", "gradient_coefficients", "gradient_pairs",
    "gradients_rows", "loss_gradients", "mce", "parse_corruptions", "parse_grid", "parse_severities",
    "plan_sweep", "relative_corruption_errors", "relative_mce", "robustness_rows", "run_gradients",
    "run_methods", "run_robustness", "run_sweep", "sweep_spread", "train_and_probe",
]
