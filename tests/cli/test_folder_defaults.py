"""`supcon run --dataset folder:DIR` on a small RGB photo folder with the default recipe: no refusal,
no divergence, a finite loss in every stage (only the budget is cut for test time)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from supcon.cli import main


def _photo_folder(root, classes: int = 3, per_class: int = 10, side: int = 40):
    """RGB images of different sizes per split: class k is a noisy blob of colour k."""
    rng = np.random.default_rng(0)
    colours = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230]])
    for split, count in (("train", per_class), ("test", 4)):
        for k in range(classes):
            folder = root / split / f"class_{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                size = side + int(rng.integers(-8, 9))
                image = rng.integers(0, 90, size=(size, size, 3)) + colours[k] * 0.6
                Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def test_run_with_default_recipe_on_a_small_rgb_folder(tmp_path, capsys):
    data = _photo_folder(tmp_path / "photos")
    out = tmp_path / "run"
    # Defaults everywhere (ResNet-18, batch 256 > 42 images, lr per 256, warm-up, standardised probe)
    # except the budget and threads.
    code = main(["run", "--dataset", f"folder:{data}", "--out", str(out), "--epochs", "1", "--linear-epochs", "2",
                 "--image-size", "16", "--threads", "1", "--no-plots", "--no-progress", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"supcon", "simclr", "ce"}
    for method, result in summary.items():
        assert 0 <= result["linear_acc"] <= 100
    for stage in ("supcon", "supcon/linear", "simclr/linear", "ce"):
        metrics = json.loads((out / stage / "metrics.json").read_text())
        assert np.isfinite(metrics["loss"]) and metrics["loss"] < 20, (stage, metrics["loss"])
    assert "# effective batch_size: 30 (asked 256" in (out / "supcon" / "config.yaml").read_text()
