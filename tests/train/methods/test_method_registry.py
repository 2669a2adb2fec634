"""The method registry: every method the config and the CLI name is registered, with its stage."""

from __future__ import annotations

import pytest

from supcon.config import PRETRAIN_METHODS, RUN_METHODS
from supcon.train.methods import METHODS, method_config, pretrain, train_ce, train_linear


def test_the_config_lists_and_the_registry_agree():
    assert set(PRETRAIN_METHODS) == {m.name for m in METHODS.values() if m.stage == "encoder"}
    assert set(RUN_METHODS) == {m.name for m in METHODS.values() if m.stage != "probe"}
    assert all(name == m.name for name, m in METHODS.items())


def test_each_method_trains_through_its_function():
    assert METHODS["supcon"].train is pretrain and METHODS["simclr"].train is pretrain
    assert METHODS["ce"].train is train_ce
    assert METHODS["linear"].train is train_linear and METHODS["finetune"].train is train_linear
    assert {m.checkpoint_kind for m in METHODS.values()} == {"pretrain", "ce", "linear"}


@pytest.mark.parametrize("name, field, value", [("simclr", "method", "simclr"), ("supcon", "method", "supcon"),
                                                ("finetune", "finetune", True), ("linear", "finetune", False)])
def test_method_config_sets_what_the_method_needs(tiny_config, name, field, value):
    cfg = method_config(tiny_config(method="supcon", finetune=name == "linear"), name)
    assert getattr(cfg, field) == value


def test_one_epoch_of_every_registered_method(tmp_path, tiny_config):
    """Each registered method trains one epoch into its folder and reports its metrics."""
    cfg = tiny_config()
    for name, method in METHODS.items():
        mcfg = method_config(cfg, name)
        if method.stage == "probe":
            metrics = method.train(mcfg, tmp_path / "supcon" / "checkpoint.pt", tmp_path / name)
            assert 0 <= metrics["test_acc"] <= 100
        else:
            metrics = method.train(mcfg, tmp_path / name)
            assert "knn_acc" in metrics and metrics["epochs"] == 1
        assert (tmp_path / name / "checkpoint.pt").is_file()
