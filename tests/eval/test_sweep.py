"""Sweeps (supcon.eval.sweep): the grid parser, the plan's skipped axes, and a tiny sweep trained in-process."""

from __future__ import annotations

import csv
import json

import pytest

from supcon.config import ConfigError, config_from_dict
from supcon.eval.sweep import CE_IRRELEVANT_KEYS, parse_grid, plan_sweep, run_sweep
from supcon.report.plots import write_sweep_plot
from supcon.runfiles import RunDirError
from tiny_runs import TINY_SETTINGS

def test_parse_grid_types_and_errors():
    grid = parse_grid(["temperature=0.05,0.1,0.1", "batch-size=64,128", "augment=sim,randaugment"])
    assert grid == {"temperature": [0.05, 0.1], "batch_size": [64, 128], "augment": ["sim", "randaugment"]}
    for bad, match in [(["nope=1"], "unknown config key"), (["batch_size=a"], "batch_size expects int"),
                       (["temperature"], "key=value1,value2"), (["method=supcon,simclr"], "--methods"),
                       (["lr=0.1,"], "empty value"), (["lr=0.1", "lr=0.2"], "twice")]:
        with pytest.raises(ConfigError, match=match):
            parse_grid(bad)


def test_plan_sweep_skips_axes_that_cannot_change_cross_entropy():
    base = config_from_dict({"arch": "small", "device": "cpu"})
    grid = parse_grid(["temperature=0.05,0.1,0.5", "lr=0.05,0.1", "batch_size=64,128", "augment=sim,randaugment"])
    runs = plan_sweep(base, grid, ["supcon", "ce"])
    supcon = [r for r in runs if r.method == "supcon"]
    ce = [r for r in runs if r.method == "ce"]
    assert len(supcon) == 24 and len(ce) == 8
    assert all("temperature" not in r.params for r in ce)
    assert len({r.name for r in runs}) == len(runs)
    assert all(not r.config.plots for r in runs)
    assert {r.config.temperature for r in supcon} == {0.05, 0.1, 0.5}
    # With a separate CE learning rate, lr no longer changes a CE run either.
    with_ce_lr = plan_sweep(config_from_dict({"arch": "small", "ce_lr": 0.2}), grid, ["ce"])
    assert len(with_ce_lr) == 4
    assert "temperature" in CE_IRRELEVANT_KEYS
    with pytest.raises(ConfigError, match="--methods"):
        plan_sweep(base, grid, ["supcon", "byol"])
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        plan_sweep(base, parse_grid(["temperature=0,0.1"]), ["supcon"])


def test_run_sweep_trains_the_grid_and_plots_the_spread(tiny_npz, tmp_path):
    base = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})
    grid = parse_grid(["temperature=0.1,0.5"])
    out = tmp_path / "sweep"
    rows = run_sweep(base, grid, ["supcon", "ce"], out, on_finish=write_sweep_plot)
    assert [(r["method"], r["temperature"]) for r in rows] == [("supcon", 0.1), ("supcon", 0.5), ("ce", "")]
    with (out / "sweep.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [t["method"] for t in table] == ["supcon", "supcon", "ce"]
    assert table[2]["temperature"] == ""
    for t in table:
        assert 0 <= float(t["accuracy"]) <= 100
    assert (out / "sweep_box.png").is_file()
    spread = json.loads((out / "sweep.json").read_text())["spread"]
    assert spread["supcon"]["runs"] == 2 and spread["ce"]["runs"] == 1
    # Each run's config holds its grid value; CE ran once.
    assert "temperature: 0.5" in (out / "supcon" / "temperature=0.5" / "config.yaml").read_text()
    assert sorted(p.name for p in (out / "ce").iterdir()) == ["default"]
    # A second sweep into the same folder needs --resume (reuses finished runs) or --overwrite.
    with pytest.raises(RunDirError, match="--resume"):
        run_sweep(base, grid, ["supcon", "ce"], out)
    again = run_sweep(base, grid, ["supcon", "ce"], out, resume=True)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]


def test_sweep_overwrite_replaces_only_the_sweep(tiny_npz, tmp_path):
    import shutil

    from supcon import runfiles

    base = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})
    grid = parse_grid(["lr=0.05"])
    # A folder that holds no sweep is never emptied.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("mine")
    with pytest.raises(RunDirError, match="not a supcon run folder"):
        run_sweep(base, grid, ["ce"], mine, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["results.csv"]
    # A sweep is: its runs go, the user's files stay.
    out = tmp_path / "sweep"
    run_sweep(base, grid, ["ce"], out)
    (out / "notes.txt").write_text("mine")
    run_sweep(base, grid, ["ce"], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "sweep.csv").is_file()
    # ... but not a run of its own that someone put inside it, nor while another run holds it.
    shutil.copytree(out / "ce" / "lr=0.05", out / "other")
    with pytest.raises(RunDirError, match="other is a supcon ce run of its own"):
        run_sweep(base, grid, ["ce"], out, overwrite=True)
    shutil.rmtree(out / "other")
    with runfiles.claim_run_dir(out / "ce" / "lr=0.05", "ce", resume=True):
        with pytest.raises(RunDirError, match="another supcon run .* is using"):
            run_sweep(base, grid, ["ce"], out, overwrite=True)
    with runfiles.claim_run_dir(out, "sweep", resume=True):
        with pytest.raises(RunDirError, match=f"another supcon run .* is using {out}"):
            run_sweep(base, grid, ["ce"], out, resume=True)
    # An --out that holds the dataset.
    data = out / "data.npz"
    shutil.copy(tiny_npz, data)
    with pytest.raises(RunDirError, match="an input of this run"):
        run_sweep(config_from_dict({"dataset": f"npz:{data}", **TINY_SETTINGS}), grid, ["ce"], out, overwrite=True)
    assert data.is_file()
