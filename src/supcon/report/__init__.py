"""Plots, tables and reports: everything a person reads, built from what the other layers wrote.

* :mod:`supcon.report.tables`: the one Markdown table writer (:func:`markdown_table`).
* :mod:`supcon.report.plots`: every matplotlib plot, the training callbacks (:func:`training_plots`)
  and the ``on_finish`` writers of the analyses.
* :mod:`supcon.report.document`: the report's block model, rendered to Markdown and HTML.
* :mod:`supcon.report.collect` and :mod:`supcon.report.write`: :func:`write_report` gathers one
  or more run folders (single runs, a ``supcon run`` folder with its ``supcon/``, ``simclr/``,
  ``ce/`` runs and ``summary.json``, robustness, sweep and gradient outputs) into ``report.md``
  (images beside it in ``report_files/``) and ``report.html``, a single self-contained file.
"""

from supcon.metrics import confusion_matrix
from supcon.report.collect import ReportInputs, find_report_inputs
from supcon.report.document import Document
from supcon.report.plots import (
    plot_accuracy_vs_severity,
    plot_confusion_matrix,
    plot_gradient_analysis,
    plot_robustness_heatmap,
    plot_sweep_box,
    plot_training_curves,
    plot_tsne,
    read_metrics,
    training_plots,
    write_gradients_plot,
    write_robustness_plots,
    write_sweep_plot,
)
from supcon.report.tables import format_cell, gradients_table, markdown_table, robustness_table
from supcon.report.write import write_report

__all__ = [
    "Document", "ReportInputs", "confusion_matrix", "find_report_inputs", "format_cell", "gradients_table",
    "markdown_table", "plot_accuracy_vs_severity", "plot_confusion_matrix", "plot_gradient_analysis",
    "plot_robustness_heatmap", "plot_sweep_box", "plot_training_curves", "plot_tsne", "read_metrics",
    "robustness_table", "training_plots", "write_gradients_plot", "write_report", "write_robustness_plots",
    "write_sweep_plot",
]
