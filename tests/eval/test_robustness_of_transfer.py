"""Robustness of a transfer probe: its test split is read in the channels its encoder takes."""

from __future__ import annotations

import pytest

from transfer_runs import pretrain_tiny, tiny_cfg, write_rgb_folder
from supcon.eval.robustness import run_robustness
from supcon.train import methods as engine


def test_a_digits_probe_of_an_rgb_encoder_is_scored_under_corruptions(tmp_path):
    source = pretrain_tiny("supcon", f"folder:{write_rgb_folder(tmp_path / 'rgb')}", tmp_path / "pre")
    probe = engine.train_linear(tiny_cfg("digits"), source, tmp_path / "lin")
    summary = run_robustness(tmp_path / "lin" / "checkpoint.pt", tmp_path / "rob", corruptions="fog",
                             severities="1", device="cpu")
    model = summary["models"]["model"]
    assert model["clean_accuracy"] == pytest.approx(probe["test_acc"])  # the probe's own test split, adapted
    assert summary["test_images"] == 360 and 0 <= model["accuracy"]["fog"][0] <= 100
