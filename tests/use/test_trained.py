"""``supcon.use.trained``: what each kind of checkpoint offers a user of its encoder."""

from __future__ import annotations

import pytest

from supcon.checkpoint import CheckpointError
from supcon.use.trained import load_trained, require_classifier


@pytest.mark.parametrize("kind, has_classifier, has_head", [
    ("pretrain", False, True), ("linear", True, False), ("finetune", True, False), ("ce", True, False)])
def test_every_kind_gives_its_encoder_and_preprocessing(kind, has_classifier, has_head, trained):
    model = load_trained(trained[kind])
    assert model.kind == ("linear" if kind == "finetune" else kind)
    assert (model.channels, model.image_size, model.classes) == (1, 8, ["0", "1", "2", "3"])
    assert (model.classifier is not None, model.head is not None) == (has_classifier, has_head)
    assert model.is_finetune == (kind == "finetune")
    assert (model.source_checkpoint is not None) == (kind == "linear")


def test_a_linear_probe_reaches_its_projection_head(trained):
    assert load_trained(trained["linear"], projection=True).head is not None


def test_require_classifier_names_the_commands_that_fit(trained):
    with pytest.raises(CheckpointError, match="`supcon predict` needs a linear-probe, fine-tune or CE checkpoint"):
        require_classifier(load_trained(trained["pretrain"]), "predict")
