"""Label fraction: both stages (`supcon pretrain`, then `supcon linear` on its checkpoint) train on
the class-balanced subset."""

from __future__ import annotations

from supcon.checkpoint import load_checkpoint
from supcon.cli import main
from tiny_runs import TINY_SETTINGS, flags_for


def test_label_fraction_applies_to_pretraining_and_the_probe(tiny_npz, tmp_path, capsys):
    flags = flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS, "batch_size": 8, "label_fraction": 0.25})
    assert main(["pretrain", "--out", str(tmp_path / "pre"), *flags]) == 0
    # The probe inherits label_fraction from the pretrain checkpoint's config.
    assert main(["linear", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--out",
                 str(tmp_path / "lin")]) == 0
    pre = load_checkpoint(tmp_path / "pre" / "checkpoint.pt")
    lin = load_checkpoint(tmp_path / "lin" / "checkpoint.pt")
    # 4 classes x 16 training images, a quarter of each class kept: 16 images.
    assert pre["train_images"] == 16 and lin["train_images"] == 16
    assert lin["config"]["label_fraction"] == 0.25
