"""Finding report inputs and reading run folders (supcon.report.collect)."""

from __future__ import annotations

import pytest

from supcon import report
from supcon.config import ConfigError
from supcon.report.collect import find_report_inputs, load_run, run_row


def test_find_report_inputs_raises_on_nothing(tmp_path):
    with pytest.raises(ConfigError, match="no runs found"):
        report.find_report_inputs([tmp_path])


def test_find_report_inputs_sorts_folders_and_skips_a_sweeps_runs(tmp_path):
    (tmp_path / "run" / "ce").mkdir(parents=True)
    (tmp_path / "run" / "ce" / "config.yaml").write_text("dataset: digits\n")
    (tmp_path / "run" / "ce" / "metrics.json").write_text("{}")
    (tmp_path / "run" / "summary.json").write_text("{}")
    (tmp_path / "sweep" / "ce" / "default").mkdir(parents=True)
    (tmp_path / "sweep" / "sweep.csv").write_text("method,accuracy\n")
    (tmp_path / "sweep" / "ce" / "default" / "config.yaml").write_text("dataset: digits\n")
    (tmp_path / "sweep" / "ce" / "default" / "metrics.json").write_text("{}")
    (tmp_path / "rep" / "report_files").mkdir(parents=True)
    (tmp_path / "rep" / "report_files" / "robustness.json").write_text("{}")
    found = find_report_inputs([tmp_path])
    assert [found.name(p) for p in found.runs] == [f"{tmp_path.name}/run/ce"]
    assert [found.name(p) for p in found.summaries] == [f"{tmp_path.name}/run"]
    assert [found.name(p) for p in found.sweeps] == [f"{tmp_path.name}/sweep"]
    assert found.robustness == [] and found.gradients == []
    with pytest.raises(ConfigError, match="is not a folder"):
        find_report_inputs([tmp_path / "missing"])


def test_run_row_of_a_ce_run_uses_the_ce_learning_rate_and_epochs(tmp_path):
    (tmp_path / "config.yaml").write_text("method: supcon\nlr: 0.5\nce_lr: 0.1\nepochs: 100\nce_epochs: null\n"
                                          "batch_size: 64\ntemperature: 0.1\n")
    (tmp_path / "metrics.json").write_text('{"test_acc": 91.5, "knn_acc": 90.0}')
    run = load_run(tmp_path, "ce")
    assert run.kind == "ce" and run.method == "ce"
    row = run_row(run)
    assert row[5:9] == [100, 64, 0.1, None]  # epochs, batch, lr, no temperature for CE
    assert row[10:12] == [91.5, 90.0]


def test_load_run_with_an_unreadable_config_keeps_its_metrics(tmp_path, caplog):
    (tmp_path / "config.yaml").write_text("[not, a, mapping]\n")
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,2.5\n2,1.5\n")
    run = load_run(tmp_path, "broken")
    assert run.config == {} and run.metrics == {"epoch": 2.0, "loss": 1.5}
    assert "could not read" in caplog.text
